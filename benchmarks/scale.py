"""Country scale, measured here: memory per shard, set-up, sharded runs on Ray, per-shard costs.

    nice -n 5 .venv/bin/python -m benchmarks.scale [--parts rss,rss-large,setup,ray2,big] [--n-rss 4000000] ...

Parts (each measurement in a fresh subprocess, so each has its own peak RSS; never two at once):

- ``rss``: ``city-points`` (with association records and cut ties: ``CROSS``) at ``--n-rss``
  citizens x ``--days-rss`` days, one process vs K = 4
  shards on local Ray (one thread each): peak RSS of the single process and of every shard's
  worker (``VmHWM``), the ratio, and the per-shard costs docs/scale.md extrapolates from
  (set-up, seconds per day, exchange bytes per day, parts written).
- ``rss-large``: the same at ``--n-rss-large`` citizens (10^7), where the fixed costs of a process weigh less.
- ``setup``: ``court-defaulters`` at ``--n-setup`` x 30 days in one process: set-up (population,
  graph, state), the 30 days, writing, end to end, citizen-days per second end to end; each also
  with the set-up kernels as they were (``benchmarks/setup_before.py``) in the same run, and
  whether both give identical population, graph and metrics.
- ``setup-ref``: ``court-defaulters`` at ``--n-setup`` x 30 days in one process, with 1 and 2
  threads, each run end to end with the credsim of git revision ``--ref`` (its ``src`` exported
  into a temporary folder) and then with this tree's, back to back: every piece of set-up, the
  days and writing (``benchmarks/setup_profile.py``), and whether metrics.parquet is byte-identical
  and the citizens table's rows identical (one file, or parts above a row group of citizens).
- ``ray2``: ``integrated`` at ``--n-ray`` x 30 days, one process (2 threads) vs 2 shards on local
  Ray (1 thread each), end to end, same seed; the metrics must be byte-identical.
- ``big``: ``court-defaulters`` at ``--n-big`` x 30 days as 4 shards on local Ray (peak RSS of
  every worker and of the driver; compare with the machine's 24 GB).
- ``shard``: one shard of ``court-defaulters`` (1/4 and 1/8 of ``--n-shard`` citizens) x 30 days
  alone: its peak per own citizen and fixed part, and the model for 4 shards of ``--n-big``.

Each number is reported with the 1-minute load average when it was taken (the machine is
shared). Results merge into ``benchmarks/results/scale.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import setup_profile

RESULTS = Path(__file__).parent / "results"
# city-points with every cross-shard path but the model feature (association records, cut ties,
# contacts chilled), so that the exchange measured is the one a system with those features has
CROSS: dict[str, Any] = {
    "lists.court_defaulters.association_points": -10,
    "lists.court_defaulters.entry.grace_days": 0,
    "responses.cut_ties": {"effect": "cut_ties", "trigger": "contact_listed", "probability": 0.3},
}
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def peak_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """This process's resident set every ``every`` seconds, to tell in which phase of a run it peaked."""

    def __init__(self, every: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append((time.perf_counter(), rss_kb()))
            self.done.wait(self.every)

    def peak_kb(self, start: float, end: float) -> int:
        """The highest sample in ``[start, end]`` (kB; 0 if none)."""
        return max((kb for t, kb in self.samples if start <= t <= end), default=0)

    def peak_mb(self, start: float, end: float) -> float:
        """The highest sample in ``[start, end]`` (MB; 0 if none)."""
        return round(self.peak_kb(start, end) / 1024, 1)


def _ray(cpus: int) -> Any:
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1", object_store_memory=1024**3)
    return ray


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scenario(scenario: str, n: int, days: int, over: dict[str, Any] | None = None) -> Any:
    import credsim

    extra = CROSS if scenario == "city-points" else {}
    return credsim.load_scenario(scenario, {**extra, **(over or {}), "population.size": n, "run.days": days})


def single(scenario: str, n: int, days: int, threads: int, before: bool = False) -> dict[str, Any]:
    """One process end to end (credsim.run), its manifest timings and peak RSS; ``before``: with the
    set-up kernels as they were (``benchmarks/setup_before.py``), for a before/after in one run."""
    import credsim
    from credsim.distributed.run import rss_kinds

    if before:
        from benchmarks import setup_before
        from credsim import graph as graph_mod
        from credsim import population as pop_mod

        pop_mod.generate = setup_before.generate  # type: ignore[assignment]
        graph_mod.build = setup_before.build

    scen = _scenario(scenario, n, days)
    sampler = RssSampler()
    sampler.start()
    with tempfile.TemporaryDirectory() as tmp:
        la = load()
        t0 = time.perf_counter()
        run = credsim.run(scen, out=Path(tmp) / "run", threads=threads)
        t1 = time.perf_counter()
        sampler.done.set()
        sampler.join()
        wall = t1 - t0
        man = run.manifest
        # phases from the manifest's timings, laid end to end (set-up first, writing last)
        t_setup, t_write = t0 + man["timings_s"]["setup"], t1 - man["timings_s"]["write"]
        phases = {"setup": sampler.peak_mb(t0, t_setup), "days": sampler.peak_mb(t_setup, t_write),
                  "write": sampler.peak_mb(t_write, t1)}
        return {"wall_s": round(wall, 3), "timings_s": man["timings_s"], "peak_rss_mb": round(peak_kb() / 1024, 1),
                "peak_rss_by_phase_mb": phases,
                "rss_kinds_end_mb": {k: round(v / 2**20, 1) for k, v in rss_kinds().items()},
                "metrics_sha": _sha(run.dir / "metrics.parquet"), "load_before": la, "load_after": load(),
                "citizen_days_per_s": round(n * days / wall, 1)}


def sharded(scenario: str, n: int, days: int, shards: int, cpus: int,
            over: dict[str, Any] | None = None) -> dict[str, Any]:
    """K shards on local Ray (one thread each) end to end, with every worker's peak RSS at the end."""
    from credsim import store
    from credsim.distributed.run import Layout, ShardedDriver

    scen = _scenario(scenario, n, days, over)
    ray = _ray(cpus)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            la = load()
            t0 = time.perf_counter()
            drv = ShardedDriver(scen, Layout(shards, True, None, 1.0), threads=1)
            t_built = time.perf_counter() - t0
            backend: Any = drv.backend
            built = (backend.peak_memory(), backend.memory())
            for day in range(drv.days):
                drv.step(day)
            t_days = time.perf_counter() - t0 - t_built
            ran = (backend.peak_memory(), backend.memory())
            result = drv.result()
            out = Path(tmp) / "run"
            t1 = time.perf_counter()
            store.write_run(result, scen, out, wall=0.0, extra={"sharded": drv.stats})
            t_write = time.perf_counter() - t1
            wall = time.perf_counter() - t0
            # VmHWM only rises: the peak after set-up, after the days and after writing the parts, and the
            # resident set (steady) after set-up and after the days
            peaks = backend.peak_memory()
            kinds = backend.memory_kinds()
            drv.close()
            return {"wall_s": round(wall, 3), "build_s": round(t_built, 3), "days_s": round(t_days, 3),
                    "write_s": round(t_write, 3), "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
                    "shard_peak_rss_mb": [round(p / 2**20, 1) for p in peaks],
                    "shard_peak_after_setup_mb": [round(p / 2**20, 1) for p in built[0]],
                    "shard_rss_after_setup_mb": [round(p / 2**20, 1) for p in built[1]],
                    "shard_peak_before_write_mb": [round(p / 2**20, 1) for p in ran[0]],
                    "shard_rss_after_days_mb": [round(p / 2**20, 1) for p in ran[1]],
                    "shard_rss_kinds_end_mb": [{k: round(v / 2**20, 1) for k, v in x.items()} for x in kinds],
                    "driver_peak_rss_mb": round(peak_kb() / 1024, 1),
                    "exchange_bytes_per_day": round(drv.stats["exchange_bytes_per_day"], 1),
                    "exchange_rows": drv.stats["exchange_rows"], "num_cpus_per_shard": backend.num_cpus,
                    "metrics_sha": _sha(out / "metrics.parquet"), "load_before": la, "load_after": load(),
                    "citizen_days_per_s": round(n * days / wall, 1)}
    finally:
        ray.shutdown()


def setup_parts(scenario: str, n: int) -> dict[str, Any]:
    """Where one process's set-up goes: population, graph, everything else (state, metrics, stages);
    population and graph also with the kernels as they were (``benchmarks/setup_before.py``), each
    pair timed back to back, and whether the two give identical arrays."""
    import numpy as np

    import credsim
    from benchmarks import setup_before
    from credsim import engine
    from credsim import graph as graph_mod
    from credsim import population as pop_mod
    from credsim.plan import compile_plan

    scen = credsim.load_scenario(scenario, {"population.size": n})
    plan = compile_plan(scen)
    seed = scen.run.seed
    small = pop_mod.generate(plan, 5000, seed)  # compile (or load) every kernel before timing
    graph_mod.build(plan, small, seed)
    setup_before.build(plan, setup_before.generate(plan, 5000, seed), seed)
    out: dict[str, Any] = {"load": load()}
    t0 = time.perf_counter()
    pop = pop_mod.generate(plan, n, seed)
    out["population_s"] = round(time.perf_counter() - t0, 3)
    out["load_before_old"] = load()
    t0 = time.perf_counter()
    old_pop = setup_before.generate(plan, n, seed)
    out["population_before_s"] = round(time.perf_counter() - t0, 3)
    out["same_population"] = bool(np.array_equal(pop.groups, old_pop.groups)
                                  and np.array_equal(pop.traits, old_pop.traits))
    del old_pop
    out["load_graph"] = load()
    t0 = time.perf_counter()
    g = graph_mod.build(plan, pop, seed)
    out["graph_s"] = round(time.perf_counter() - t0, 3)
    out["load_graph_before_old"] = load()
    t0 = time.perf_counter()
    old = setup_before.build(plan, pop, seed)
    out["graph_before_s"] = round(time.perf_counter() - t0, 3)
    out["same_graph"] = bool(np.array_equal(g.indptr, old.indptr) and np.array_equal(g.indices, old.indices))
    out["ties"] = int(g.indices.shape[0])
    del pop, g, old
    out["load_prepare"] = load()
    _loop, total = engine.prepare(scen)
    out["prepare_s"] = round(total, 3)
    return out


def in_subprocess(fn: str, *args: Any, src: Path | None = None) -> dict[str, Any]:
    """Call ``fn(*args)`` of this module in a fresh interpreter (its own peak RSS); its JSON result.
    ``src``: the credsim sources it imports (default: this tree's)."""
    code = (f"import json, sys; from benchmarks import scale; "
            f"print('@@' + json.dumps(scale.{fn}(*{list(args)!r})))")
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src or root / "src"), str(root)])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            data: dict[str, Any] = json.loads(line[2:])
            return data
    raise RuntimeError(f"{fn}{args} failed:\n{proc.stderr[-4000:]}")


def part_rss(n: int, days: int) -> dict[str, Any]:
    one = in_subprocess("single", "city-points", n, days, 1)
    four = in_subprocess("sharded", "city-points", n, days, 4, 2)
    worst = max(four["shard_peak_rss_mb"])
    return {"n": n, "days": days, "single": one, "shards4": four,
            "ratio_worst_shard_to_single": round(worst / one["peak_rss_mb"], 3),
            "ratio_before_write": round(max(four["shard_peak_before_write_mb"]) / one["peak_rss_mb"], 3),
            "same_metrics": one["metrics_sha"] == four["metrics_sha"],
            "ratio_less_mapped": _less_mapped(one, four)}


def _less_mapped(one: dict[str, Any], four: dict[str, Any]) -> float | None:
    """The worst shard's peak less the mapped files and shared memory resident at its end, over the same for
    the one process: the part of a peak that is the process's own (arrays, interpreter heaps). The libraries'
    code pages (numba's LLVM alone ~100 MB) are file-backed: the kernel can drop and re-read them, and every
    process on a node that maps them shares one copy, so K shards on one node do not pay them K times."""
    if "rss_kinds_end_mb" not in one or "shard_rss_kinds_end_mb" not in four:
        return None
    own = max(p - k["file"] - k["shmem"] for p, k in zip(four["shard_peak_rss_mb"], four["shard_rss_kinds_end_mb"],
                                                           strict=True))
    k1 = one["rss_kinds_end_mb"]
    return round(own / (one["peak_rss_mb"] - k1["file"] - k1["shmem"]), 3)


def part_setup(n: int) -> dict[str, Any]:
    before = in_subprocess("single", "court-defaulters", n, 30, 2, True)
    run = in_subprocess("single", "court-defaulters", n, 30, 2)
    parts = in_subprocess("setup_parts", "court-defaulters", n)
    return {"n": n, "days": 30, "run": run, "run_before": before, "setup_parts": parts,
            "same_metrics": run["metrics_sha"] == before["metrics_sha"]}


def ref_src(ref: str) -> Path:
    """The ``src`` folder of git revision ``ref`` of this repository, exported once into a temporary
    folder (numba keeps its compiled kernels next to it, so later runs load them)."""
    root = Path(__file__).parents[1]
    sha = subprocess.run(["git", "-C", str(root), "rev-parse", ref], capture_output=True, text=True,
                         check=True).stdout.strip()
    dest = Path(tempfile.gettempdir()) / f"credsim-src-{sha[:12]}"
    if not (dest / "src").is_dir():
        tar = subprocess.run(["git", "-C", str(root), "archive", sha, "src"], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(dest, filter="data")
    return dest / "src"


def warm(scenario: str, days: int) -> dict[str, Any]:
    return setup_profile.warm(scenario, days)


def profile_run(scenario: str, n: int, days: int, threads: int, warm: bool) -> dict[str, Any]:
    return setup_profile.profile(scenario, n, days, threads, warm)


def part_setup_ref(n: int, ref: str) -> dict[str, Any]:
    """court-defaulters end to end with the credsim of ``ref`` and with this tree's, back to back, per
    thread count; every piece timed the same way (``setup_profile``)."""
    trees = {"before": ref_src(ref), "after": Path(__file__).parents[1] / "src"}
    sha = subprocess.run(["git", "-C", str(Path(__file__).parents[1]), "rev-parse", "--short", ref],
                         capture_output=True, text=True, check=True).stdout.strip()
    out: dict[str, Any] = {"n": n, "days": 30, "ref": ref, "ref_sha": sha,
                           "warm": {k: in_subprocess("warm", "court-defaulters", 30, src=v) for k, v in trees.items()},
                           "runs": {}}
    for th in (1, 2):
        for label, src in trees.items():
            out["runs"][f"{label}-{th}"] = in_subprocess("profile_run", "court-defaulters", n, 30, th, False, src=src)
        b, a = out["runs"][f"before-{th}"], out["runs"][f"after-{th}"]
        out[f"same_files_{th}"] = b["sha256"] == a["sha256"]
    # the same run with every kernel already loaded: what loading them costs a fresh process
    out["runs"]["after-2-warm"] = in_subprocess("profile_run", "court-defaulters", n, 30, 2, True)
    return out


def _setup_ref_lines(r: dict[str, Any]) -> list[str]:
    """The table of the ``setup-ref`` part: each piece before and after, one and two threads."""
    runs = r["runs"]
    cols = [k for k in ("before-1", "after-1", "before-2", "after-2", "after-2-warm") if k in runs]

    def piece(run: dict[str, Any], key: str) -> float:
        return float(run["pieces_s"].get(key, 0.0))

    def days(run: dict[str, Any]) -> float:
        return sum(v for k, v in run["timings_s"].items() if k not in ("setup", "write", "wall"))

    rows: list[tuple[str, Any]] = [
        ("set-up inside the run", lambda x: x["timings_s"]["setup"]),
        ("- population (first kernel call: numba's start-up)", lambda x: piece(x, "setup.population")),
        ("- contact graph", lambda x: piece(x, "setup.graph")),
        ("  - pick tables (group order)", lambda x: piece(x, "setup.graph.picks")),
        ("  - stubs", lambda x: piece(x, "setup.graph.stubs")),
        ("  - scatter + rows + pack", lambda x: piece(x, "setup.graph.scatter") + piece(x, "setup.graph.rows")
         + piece(x, "setup.graph.pack")),
        ("- initial state", lambda x: piece(x, "setup.initial_state")),
        ("- stages (samplers' chunk bounds)", lambda x: piece(x, "setup.stages")),
        ("  - chunk bounds", lambda x: piece(x, "setup.stages.chunk_bounds")),
        ("- the rest (metrics, tracer, grades, model)", lambda x: x["timings_s"]["setup"] - piece(x, "setup.population")
         - piece(x, "setup.graph") - piece(x, "setup.initial_state") - piece(x, "setup.stages")),
        ("the 30 days", days),
        ("finish (cases and stays tables)", lambda x: piece(x, "finish")),
        ("writing", lambda x: x["timings_s"]["write"]),
        ("- citizens (encoding; parts side by side above a row group)",
         lambda x: piece(x, "write.parquet:citizens.parquet")),
        ("end to end", lambda x: x["wall_s"]),
    ]
    lines = [f"## Set-up, days and writing against `{r['ref']}` ({r['ref_sha']}): court-defaulters, "
             f"{r['n']:,} x {r['days']} days, one process", "",
             f"Each run in a fresh process, end to end (`credsim.run`), before (the credsim of `{r['ref']}`) "
             "and after (this tree) back to back per thread count; `after-2-warm` is the after run with every "
             "kernel loaded by a small run first (the difference is loading, not work). Seconds, wall; a piece "
             "includes the pieces under it.", "",
             "| part | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for label, fn in rows:
        lines.append(f"| {label} | " + " | ".join(f"{fn(runs[c]):.2f}" for c in cols) + " |")
    lines.append("| citizen-days/s end to end | " + " | ".join(f"{runs[c]['citizen_days_per_s']:.3g}"
                                                           for c in cols) + " |")
    if all("pieces_cpu_s" in runs[c] for c in cols):
        lines.append("| **processor seconds** (all threads; less sensitive to the load) | " + " |" * len(cols))
        for label, key in (("population", "setup.population"), ("contact graph", "setup.graph"),
                           ("chunk bounds", "setup.stages.chunk_bounds"), ("set-up in all", "setup"),
                           ("writing", "write"), ("- citizens.parquet", "write.parquet:citizens.parquet")):
            lines.append(f"| {label} | " + " | ".join(f"{runs[c]['pieces_cpu_s'].get(key, 0.0):.2f}"
                                                      for c in cols) + " |")
        lines.append("| end to end | " + " | ".join(f"{runs[c]['cpu_s']:.2f}" for c in cols) + " |")
    lines.append("| load before / after | " + " | ".join(f"{runs[c]['load_before']} / {runs[c]['load_after']}"
                                                         for c in cols) + " |")
    same = ", ".join(f"{th} thread(s): {r.get(f'same_files_{th}')}" for th in (1, 2))
    lines += ["", f"metrics.parquet byte-identical and the citizens' rows identical before/after: {same}.", ""]
    return lines


def part_ray2(n: int) -> dict[str, Any]:
    one = in_subprocess("single", "integrated", n, 30, 2)
    two = in_subprocess("sharded", "integrated", n, 30, 2, 2)
    return {"n": n, "days": 30, "single": one, "shards2_ray": two,
            "speedup_end_to_end": round(one["wall_s"] / two["wall_s"], 3),
            "same_metrics": one["metrics_sha"] == two["metrics_sha"]}


def shard_alone(scenario: str, n: int, shards: int, days: int, overrides: list[str]) -> dict[str, Any]:
    """One shard (index 1 of ``shards``) of an ``n``-citizen run, alone in a fresh process as a Ray shard
    worker runs it (no transparent huge pages): RSS after each set-up step, the days, writing
    (:mod:`benchmarks.shard_memory`)."""
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0", "ARROW_DEFAULT_MEMORY_POOL": "system",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"), str(Path(__file__).parents[1])])}
    cmd = [sys.executable, "-m", "benchmarks.shard_memory", scenario, str(n), "--shards", str(shards), "--index", "1",
           "--days", str(days)] + [x for o in overrides for x in ("--set", o)]
    la = load()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            data: dict[str, Any] = json.loads(line[2:])
            data["load_before"] = la
            return data
    raise RuntimeError(f"{cmd} failed:\n{proc.stderr[-4000:]}")


def part_shard(n: int, target: int) -> dict[str, Any]:
    """court-defaulters (without its appeal bodies: one national appeal capacity cannot be split) x 30 days:
    one shard of 1/4 and one of 1/8 of ``n`` citizens; the peak per own citizen (the slope between the two)
    and the fixed part, and what 4 shards of ``target`` citizens would need on this machine."""
    over = ["redress=null"]
    four, eight = shard_alone("court-defaulters", n, 4, 30, over), shard_alone("court-defaulters", n, 8, 30, over)

    def peak(r: dict[str, Any], step: str | None = None) -> float:
        rows = r["steps"] if step is None else [x for x in r["steps"] if x["step"] == step]
        return float(max(x["peak_mb"] for x in rows))

    own4, own8 = four["hi"] - four["lo"], eight["hi"] - eight["lo"]
    slope = (peak(four) - peak(eight)) * 2**20 / (own4 - own8)  # bytes per own citizen, whole run
    fixed = peak(four) - slope * own4 / 2**20  # MB, at this population
    # set-up: the graph rows step also holds 5 bytes per citizen of the population and homophily dimension
    b_setup = (peak(four, "graph rows") - peak(eight, "graph rows")) * 2**20 / (own4 - own8)
    import credsim

    picks = 5 * len(credsim.load_scenario("court-defaulters").graph.homophily)  # codes uint8 + order int32
    imports = float(four["steps"][0]["rss_mb"])
    setup_fixed = peak(four, "graph rows") - b_setup * own4 / 2**20 - picks * n / 2**20  # MB
    own_t = target // 4
    run_mb = fixed + slope * own_t / 2**20
    setup_mb = setup_fixed + b_setup * own_t / 2**20 + picks * target / 2**20
    return {"n": n, "days": 30, "overrides": over, "quarter": four, "eighth": eight,
            "bytes_per_own_citizen": round(slope, 1), "fixed_mb": round(fixed, 1), "imports_mb": imports,
            "setup_bytes_per_own_citizen": round(b_setup, 1), "setup_fixed_mb": round(setup_fixed, 1),
            "target": target, "target_shard_run_gb": round(run_mb / 1024, 2),
            "target_shard_setup_gb": round(setup_mb / 1024, 2),
            "target_four_shards_gb": round(4 * max(run_mb, setup_mb) / 1024, 2)}


def part_big(n: int) -> dict[str, Any]:
    # without its appeal bodies: one national appeal capacity cannot be split into shards
    four = in_subprocess("sharded", "court-defaulters", n, 30, 4, 2, {"redress": None})
    return {"n": n, "days": 30, "overrides": ["redress=null"], "shards4": four,
            "sum_shard_peaks_gb": round(sum(four["shard_peak_rss_mb"]) / 1024, 2)}


def markdown(res: dict[str, Any]) -> str:
    lines = ["# Country scale: measured on this machine (2 cores, 24 GB, shared)", "",
             "`nice -n 5 .venv/bin/python -m benchmarks.scale`; each figure with the 1-minute load average "
             "when it was taken. Raw numbers: `scale.json`.", ""]
    if "rss" in res:
        r = res["rss"]
        s, f = r["single"], r["shards4"]
        lines += [f"## Peak memory: city-points, {r['n']:,} citizens x {r['days']} days", "",
                  "| run | peak RSS | wall | load |", "|---|---|---|---|",
                  f"| one process | {s['peak_rss_mb']:,.0f} MB | {s['wall_s']} s | {s['load_before']} |",
                  f"| 4 shards on Ray, each worker | {', '.join(f'{x:,.0f}' for x in f['shard_peak_rss_mb'])} MB "
                  f"| {f['wall_s']} s | {f['load_before']} |", "",
                  f"Worst shard / single process: **{r['ratio_worst_shard_to_single']}** (target <= 0.35); "
                  f"metrics byte-identical: {r['same_metrics']}. Per shard: set-up {f['timings_s'].get('setup')} s, "
                  f"days {f['days_s']} s ({f['days_s'] / r['days']:.2f} s/day), exchange "
                  f"{f['exchange_bytes_per_day']:,.0f} B/day, parts written in {f['write_s']} s.", ""]
        if "shard_peak_after_setup_mb" in f:
            def mb(xs: list[float]) -> str:
                return ", ".join(f"{x:,.0f}" for x in xs)

            ph = s.get("peak_rss_by_phase_mb", {})
            lines += ["Peaks by phase (MB; a shard's peak is its worker's VmHWM after each phase, the resident set "
                      "is VmRSS then):", "",
                      "| | set-up | the days | writing |", "|---|---|---|---|",
                      f"| one process, highest sample in the phase | {ph.get('setup', 0):,.0f} "
                      f"| {ph.get('days', 0):,.0f} | {ph.get('write', 0):,.0f} |",
                      f"| shards, peak so far | {mb(f['shard_peak_after_setup_mb'])} | "
                      f"{mb(f['shard_peak_before_write_mb'])} | {mb(f['shard_peak_rss_mb'])} |",
                      f"| shards, resident at the end of the phase | {mb(f['shard_rss_after_setup_mb'])} | "
                      f"{mb(f['shard_rss_after_days_mb'])} | |", "",
                      f"Worst shard before writing / single process: {r.get('ratio_before_write', '-')}; "
                      f"driver peak {f['driver_peak_rss_mb']:,.0f} MB.", ""]
        if r.get("ratio_less_mapped") is not None:
            k1, ks = s["rss_kinds_end_mb"], f["shard_rss_kinds_end_mb"]
            lines += ["Resident at the end by kind (MB; `/proc/<pid>/status`: RssAnon is the process's own memory, "
                      "RssFile mapped files -- the libraries' code, shared by every process that maps them and "
                      "dropped by the kernel under pressure -- and RssShmem Ray's object store pages):", "",
                      "| | anon | file | shmem |", "|---|---|---|---|",
                      f"| one process | {k1['anon']:,.0f} | {k1['file']:,.0f} | {k1['shmem']:,.0f} |",
                      *(f"| shard {i} | {k['anon']:,.0f} | {k['file']:,.0f} | {k['shmem']:,.0f} |"
                        for i, k in enumerate(ks)), "",
                      f"Peak less the files and shared pages resident at the end, worst shard / one process: "
                      f"**{r['ratio_less_mapped']}** (not the target's measure, which is the peak RSS above; "
                      f"this is the part of it that is each process's own).", ""]
        if "rss_trial" in res:
            t = res["rss_trial"]
            tf = t["shards4"]
            lines += [f"Before (the code this was measured against, {t.get('code', '')}, measured "
                      f"{t.get('measured', '?')}): one process {t['single']['peak_rss_mb']:,.0f} MB (load "
                      f"{t['single']['load_before']}), shards "
                      f"{', '.join(f'{x:,.0f}' for x in tf['shard_peak_rss_mb'])} MB after writing, "
                      f"{', '.join(f'{x:,.0f}' for x in tf['shard_peak_before_write_mb'])} MB before "
                      f"(load {tf['load_before']}): ratio {t['ratio_worst_shard_to_single']} "
                      f"({t['ratio_before_write']} before writing).", ""]
        if "rss_range_local" in res:
            b = res["rss_range_local"]
            lines += [f"Earlier ({b.get('code', '')}, measured {b.get('measured', '?')}): one process "
                      f"{b['single']['peak_rss_mb']:,.0f} MB (load {b['single']['load_before']}), shards "
                      f"{', '.join(f'{x:,.0f}' for x in b['shards4']['shard_peak_rss_mb'])} MB (load "
                      f"{b['shards4']['load_before']}), ratio {b['ratio_worst_shard_to_single']}.", ""]
        if "rss_before" in res:
            b = res["rss_before"]
            lines += [f"Before (shards holding whole-population arrays, measured {b.get('measured', '?')}): one "
                      f"process {b['single']['peak_rss_mb']:,.0f} MB (load {b['single']['load_before']}), shards "
                      f"{', '.join(f'{x:,.0f}' for x in b['shards4']['shard_peak_rss_mb'])} MB (load "
                      f"{b['shards4']['load_before']}), ratio {b['ratio_worst_shard_to_single']}.", ""]
    if "rss_large" in res:
        r = res["rss_large"]
        s, f = r["single"], r["shards4"]
        lines += [f"The same at {r['n']:,} citizens x {r['days']} days (`--parts rss-large`, measured "
                  f"{r.get('measured', '?')}): one process {s['peak_rss_mb']:,.0f} MB (load {s['load_before']}), "
                  f"4 shards {', '.join(f'{x:,.0f}' for x in f['shard_peak_rss_mb'])} MB (load {f['load_before']}): "
                  f"worst shard / single process **{r['ratio_worst_shard_to_single']}** "
                  f"({r['ratio_before_write']} before writing); metrics byte-identical: {r['same_metrics']}.", ""]
    if "setup" in res:
        r = res["setup"]
        t = r["run"]["timings_s"]
        p = r["setup_parts"]
        b = r.get("run_before")
        lines += [f"## Set-up: court-defaulters, {r['n']:,} x 30 days, one process", ""]
        if b is None or "population_before_s" not in p:
            lines += ["| part | seconds |", "|---|---|",
                      f"| population | {p['population_s']} |", f"| contact graph | {p['graph_s']} |",
                      f"| set-up in all (prepare) | {p['prepare_s']} |",
                      f"| set-up inside the run | {t['setup']} |", f"| write | {t['write']} |",
                      f"| end to end | {r['run']['wall_s']} |", "",
                      f"End to end {r['run']['citizen_days_per_s']:.3g} citizen-days/s "
                      f"(load {r['run']['load_before']}).", ""]
        else:
            tb = b["timings_s"]
            days = sum(v for k, v in t.items() if k not in ("setup", "write", "wall"))
            days_b = sum(v for k, v in tb.items() if k not in ("setup", "write", "wall"))
            lines += ["Before: the set-up kernels as they were (`benchmarks/setup_before.py`), timed in the same "
                      "benchmark run; each pair back to back, with the 1-minute load average before each.", "",
                      "| part | before | after | load before / after |", "|---|---|---|---|",
                      f"| population | {p['population_before_s']} s | {p['population_s']} s "
                      f"| {p['load_before_old']} / {p['load']} |",
                      f"| contact graph ({p['ties']:,} tie directions) | {p['graph_before_s']} s | {p['graph_s']} s "
                      f"| {p['load_graph_before_old']} / {p['load_graph']} |",
                      f"| set-up in all (prepare, after only) | | {p['prepare_s']} s | {p['load_prepare']} |",
                      f"| set-up inside the run | {tb['setup']} s | {t['setup']} s "
                      f"| {b['load_before']} / {r['run']['load_before']} |",
                      f"| the 30 days | {days_b:.2f} s | {days:.2f} s | |",
                      f"| write | {tb['write']} s | {t['write']} s | |",
                      f"| end to end | {b['wall_s']} s | {r['run']['wall_s']} s | |", "",
                      f"End to end {b['citizen_days_per_s']:.3g} -> **{r['run']['citizen_days_per_s']:.3g} "
                      f"citizen-days/s** (target 1e8). Identical results: population {p['same_population']}, "
                      f"graph {p['same_graph']}, metrics.parquet {r['same_metrics']}.", ""]
    if "setup_ref" in res:
        lines += _setup_ref_lines(res["setup_ref"])
    if "ray2" in res:
        r = res["ray2"]
        lines += [f"## integrated, {r['n']:,} x 30 days: one process (2 threads) vs 2 shards on Ray", "",
                  "| run | wall | load |", "|---|---|---|",
                  f"| one process | {r['single']['wall_s']} s | {r['single']['load_before']} |",
                  f"| 2 shards on Ray | {r['shards2_ray']['wall_s']} s | {r['shards2_ray']['load_before']} |", "",
                  f"Speed-up end to end: **{r['speedup_end_to_end']}x**; metrics byte-identical: "
                  f"{r['same_metrics']}.", ""]
    if "shard" in res:
        r = res["shard"]
        q, e = r["quarter"], r["eighth"]
        lines += [f"## One shard of court-defaulters, {r['n']:,} citizens x 30 days (redress off), alone", "",
                  "`benchmarks.shard_memory` in a fresh process as a Ray shard worker runs it (no transparent huge "
                  "pages); peak RSS (MB) after each step:", "",
                  "| step | 1/4 (" + f"{q['hi'] - q['lo']:,}" + " citizens) | 1/8 (" + f"{e['hi'] - e['lo']:,}"
                  + " citizens) |", "|---|---|---|"]
        for a, b in zip(q["steps"], e["steps"], strict=True):
            lines.append(f"| {a['step'].split(' (')[0]} | {a['peak_mb']:,.0f} | {b['peak_mb']:,.0f} |")
        lines += ["", f"Loads {q['load_before']}, {e['load_before']}. Peak per own citizen (slope): "
                  f"**{r['bytes_per_own_citizen']:.0f} B**, fixed {r['fixed_mb']:,.0f} MB (imports "
                  f"{r['imports_mb']:,.0f} MB); while the graph rows are built {r['setup_bytes_per_own_citizen']:.0f} "
                  f"B per own citizen + 5 B per citizen of the population and homophily dimension (pick tables) + "
                  f"{r['setup_fixed_mb']:,.0f} MB.", "",
                  f"Model, {r['target']:,} x 30 as 4 shards on this machine: a shard peaks at "
                  f"{r['target_shard_run_gb']} GB running and writing, {r['target_shard_setup_gb']} GB building its "
                  f"graph rows; 4 shards **{r['target_four_shards_gb']} GB** (plus the driver and ~80 MB of Ray per "
                  "worker).", ""]
    if "big" in res:
        r = res["big"]
        f = r["shards4"]
        lines += [f"## court-defaulters, {r['n']:,} x 30 days as 4 shards", "",
                  f"Wall {f['wall_s']} s, shard peaks {f['shard_peak_rss_mb']} MB (sum {r['sum_shard_peaks_gb']} GB), "
                  f"driver {f['driver_peak_rss_mb']} MB, load {f['load_before']}.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="rss,setup,ray2")
    ap.add_argument("--n-rss", type=int, default=4_000_000)
    ap.add_argument("--days-rss", type=int, default=10)
    ap.add_argument("--n-rss-large", type=int, default=10_000_000)
    ap.add_argument("--n-setup", type=int, default=10_000_000)
    ap.add_argument("--n-ray", type=int, default=10_000_000)
    ap.add_argument("--ref", default="trial", help="setup-ref: the git revision to compare with")
    ap.add_argument("--n-big", type=int, default=100_000_000)
    ap.add_argument("--n-shard", type=int, default=10_000_000)
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "scale.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for part in args.parts.split(","):
        t0 = time.perf_counter()
        if part == "rss":
            if "rss" in res and "rss_before" not in res:  # the figures before shards held only their own range
                res["rss_before"] = res["rss"]
            res["rss"] = part_rss(args.n_rss, args.days_rss)
        elif part == "rss-large":  # the same comparison where the fixed costs weigh less
            res["rss_large"] = part_rss(args.n_rss_large, args.days_rss)
        elif part == "setup":
            res["setup"] = part_setup(args.n_setup)
        elif part == "setup-ref":
            res["setup_ref"] = part_setup_ref(args.n_setup, args.ref)
        elif part == "ray2":
            res["ray2"] = part_ray2(args.n_ray)
        elif part == "shard":
            res["shard"] = part_shard(args.n_shard, args.n_big)
        elif part == "big":
            res["big"] = part_big(args.n_big)
        else:
            raise SystemExit(f"unknown part {part!r}")
        key = part.replace("-", "_")
        res[key]["measured"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(f"{part}: {time.perf_counter() - t0:.0f} s", json.dumps(res[key])[:2000], flush=True)
        path.write_text(json.dumps(res, indent=1) + "\n")
        (RESULTS / "scale.md").write_text(markdown(res))


if __name__ == "__main__":
    main()
