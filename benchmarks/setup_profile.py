"""Where a whole run's time goes, stage by stage: set-up pieces, the days, writing.

    nice -n 5 .venv/bin/python -m benchmarks.setup_profile [--n 10000000] [--days 30] [--threads 1,2]

Each configuration runs ``credsim.run`` end to end in a fresh interpreter, as a user's run does,
with timers wrapped around the functions a run calls (the wrappers only add a clock read per
call, a few hundred calls in all). Inclusive seconds: a piece's time contains the pieces it
calls. ``cold`` is the run as a fresh process makes it (loading every compiled kernel from
numba's cache on first use, importing what the writers import); ``warm`` runs a 5,000-citizen
copy first in the same process, so the difference is what loading costs, not what work costs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMES: dict[str, float] = {}
CPU: dict[str, float] = {}  # processor seconds of the whole process (all threads) during the piece
CALLS: dict[str, int] = {}


def _wrap(owner: Any, attr: str, label: str, key: Callable[..., str] | None = None) -> None:
    """Replace ``owner.attr`` by a timed copy that adds its inclusive seconds to ``TIMES[label]``."""
    fn = getattr(owner, attr)

    def timed(*args: Any, **kw: Any) -> Any:
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kw)
        finally:
            name = label if key is None else f"{label}:{key(*args, **kw)}"
            TIMES[name] = TIMES.get(name, 0.0) + time.perf_counter() - t
            CPU[name] = CPU.get(name, 0.0) + time.process_time() - c
            CALLS[name] = CALLS.get(name, 0) + 1

    setattr(owner, attr, timed)


def instrument() -> None:
    """Timers around the pieces of ``engine.prepare``, the graph build, the samplers and the writers."""
    import duckdb
    import pyarrow.parquet as pq

    from credsim import engine, graph, population, resumable, sampling, state, store
    from credsim.stages import classify, measure, score
    from credsim.tracing import Tracer

    _wrap(engine, "prepare", "setup")
    _wrap(engine, "compile_plan", "setup.plan")
    _wrap(population, "generate", "setup.population")
    _wrap(population, "_categorical", "setup.population.groups")
    _wrap(population, "_normals", "setup.population.ndtri")
    for k in ("_open_uniforms_serial", "_open_uniforms_parallel"):
        _wrap(population, k, "setup.population.uniforms")
    for k in ("_traits_serial", "_traits_parallel"):
        _wrap(population, k, "setup.population.traits")
    _wrap(graph, "build", "setup.graph")
    _wrap(graph, "pick_tables", "setup.graph.picks")
    for k in ("_stubs_serial", "_stubs_parallel"):
        _wrap(graph, k, "setup.graph.stubs")
    _wrap(graph, "_layout", "setup.graph.layout")
    for k in ("_scatter_serial", "_scatter_parallel"):
        _wrap(graph, k, "setup.graph.scatter")
    for k in ("_rows_serial", "_rows_parallel"):
        _wrap(graph, k, "setup.graph.rows")
    _wrap(graph, "pack" if hasattr(graph, "pack") else "_pack", "setup.graph.pack")  # a tree before it: _pack
    _wrap(engine, "initial_state", "setup.initial_state")
    _wrap(state, "starting_points", "setup.initial_state.points")
    _wrap(score, "recompute_model", "setup.model_scores")
    _wrap(classify, "grade_of", "setup.grades")
    _wrap(classify, "enter_start_grades", "setup.start_lists")
    _wrap(engine, "Metrics", "setup.metrics")
    _wrap(measure.Metrics, "init_stocks", "setup.metrics.stocks")
    _wrap(engine, "trace_ids", "setup.tracer")
    _wrap(engine, "build_stages", "setup.stages")
    _wrap(sampling, "chunk_bounds", "setup.stages.chunk_bounds")
    _wrap(engine, "finish", "finish")
    _wrap(store, "write_run", "write")
    _wrap(engine, "citizens_table", "write.citizens_table")
    _wrap(measure.Metrics, "to_arrow", "write.metrics_table")
    _wrap(Tracer, "to_arrow", "write.traces_table")
    _wrap(pq, "write_table", "write.parquet", lambda table, where, **kw: Path(str(where)).name)
    # citizens.parquet and events.parquet are written a row group at a time, not by pq.write_table; above a
    # row group of citizens, as parts side by side (write_row_parts; a tree from before it has write_rows)
    if hasattr(store, "write_row_parts"):
        _wrap(store, "write_row_parts", "write.parquet", lambda rows, n, directory, table, threads: f"{table}.parquet")
    else:
        _wrap(store, "write_rows", "write.parquet", lambda rows, lo, hi, directory, name: Path(name).name)
    _wrap(store, "write_events", "write.parquet", lambda events, directory, name, **kw: Path(name).name)
    _wrap(duckdb, "connect", "write.duckdb_connect")
    _wrap(resumable, "make_driver", "driver")


def profile(scenario: str, n: int, days: int, threads: int, warm: bool) -> dict[str, Any]:
    """One run end to end with the timers; ``warm``: a 5,000-citizen run first (kernels loaded)."""
    import tempfile

    t0 = time.perf_counter()
    import credsim
    from credsim import threads as threads_mod

    imported = time.perf_counter() - t0
    instrument()
    la = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        if warm:
            small = credsim.load_scenario(scenario, {"population.size": 5000, "run.days": days})
            t = time.perf_counter()
            credsim.run(small, out=Path(tmp) / "small", threads=threads)
            warm_s = time.perf_counter() - t
            TIMES.clear()
            CPU.clear()
            CALLS.clear()
        scen = credsim.load_scenario(scenario, {"population.size": n, "run.days": days})
        t, c = time.perf_counter(), time.process_time()
        run = credsim.run(scen, out=Path(tmp) / "run", threads=threads)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        man = run.manifest
        shas = {"metrics.parquet": _sha(run.dir / "metrics.parquet"), "citizens": _table_sha(run.citizens())}
    out: dict[str, Any] = {"scenario": scenario, "n": n, "days": days, "threads": threads,
                           "threads_used": threads_mod.configure(threads), "warm": warm,
                           "load_before": la, "import_s": round(imported, 3), "wall_s": round(wall, 3),
                           "citizen_days_per_s": round(n * days / wall, 1),
                           "timings_s": man["timings_s"], "sha256": shas,
                           "cpu_s": round(cpu, 3),
                           "pieces_s": {k: round(v, 3) for k, v in sorted(TIMES.items())},
                           "pieces_cpu_s": {k: round(v, 3) for k, v in sorted(CPU.items())},
                           "calls": dict(sorted(CALLS.items()))}
    if warm:
        out["warm_up_s"] = round(warm_s, 3)
    out["load_after"] = round(os.getloadavg()[0], 2)
    return out


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def _table_sha(table: Any) -> str:
    """A table's rows, whatever its files: one ``citizens.parquet`` or its parts (the same rows either way), and
    whether its columns are declared nullable or required (a tree before the citizens' columns were required
    wrote the same values as nullable)."""
    import pyarrow as pa

    schema = pa.schema([f.with_nullable(True) for f in table.schema])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(pa.Table.from_arrays(table.combine_chunks().columns, schema=schema))
    return hashlib.sha256(sink.getvalue()).hexdigest()


def warm(scenario: str, days: int) -> dict[str, Any]:
    """Compile (or load) every kernel a run calls, serial and parallel, into numba's cache of the credsim
    on the path: small runs with one thread, then two threads with no work cut-off."""
    import tempfile

    import credsim
    from credsim import threads as threads_mod

    t = time.perf_counter()
    small = credsim.load_scenario(scenario, {"population.size": 3000, "run.days": days})
    mid = credsim.load_scenario(scenario, {"population.size": 200_000, "run.days": days})
    with tempfile.TemporaryDirectory() as tmp:
        credsim.run(small, out=Path(tmp) / "one", threads=1)
        credsim.run(mid, out=Path(tmp) / "one-mid", threads=1)  # paths only a bigger run takes
        threads_mod.configure(2, min_parallel_work=0)
        credsim.run(small, out=Path(tmp) / "two", threads=2)
        threads_mod.configure(2, min_parallel_work=threads_mod.MIN_PARALLEL_WORK)
        credsim.run(mid, out=Path(tmp) / "two-mid", threads=2)
    return {"credsim": credsim.__file__, "seconds": round(time.perf_counter() - t, 1)}


def in_subprocess(*args: Any) -> dict[str, Any]:
    """:func:`profile` in a fresh interpreter (its own imports, kernel loads and memory); its JSON result."""
    code = ("import json; from benchmarks import setup_profile as m; "
            f"print('@@' + json.dumps(m.profile(*{list(args)!r})))")
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            data: dict[str, Any] = json.loads(line[2:])
            return data
    raise RuntimeError(f"profile{args} failed:\n{proc.stderr[-4000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="court-defaulters")
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--modes", default="cold,warm")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    res = []
    for th in (int(x) for x in args.threads.split(",")):
        for mode in args.modes.split(","):
            r = in_subprocess(args.scenario, args.n, args.days, th, mode == "warm")
            res.append(r)
            print(json.dumps(r), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
