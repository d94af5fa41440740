"""Where one shard's memory goes: the set-up steps of one shard, in one process, with RSS after each.

    nice -n 5 .venv/bin/python -m benchmarks.shard_memory SCENARIO N [--shards 4] [--index 1] [--days 1]

Builds shard ``index`` of ``shards`` of a run of ``N`` citizens with the same calls
:func:`credsim.engine.prepare` makes and runs its days alone (messages to other shards are
dropped, so the figures are the shard's own, not a run's results), printing the resident set (``VmRSS``) and its peak
(``VmHWM``) after each step (population, graph rows, initial state, the rest of the set-up, the
first day(s), writing the parts), then every array reachable from the loop of 1 MB or more with
its size and the bytes of it actually resident (pages this process wrote, from
``/proc/self/pagemap``: a page never written is not resident, or is the shared zero page). An
array whose resident bytes grow with N rather than with the shard is what keeps a shard's
memory from shrinking with K. The last line is the JSON of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

import credsim
from credsim import engine, shard_graph, threads
from credsim import population as pop_mod
from credsim.distributed import Shard, boundaries
from credsim.exchange import deliver
from credsim.plan import compile_plan
from credsim.stages import score
from credsim.state import initial_state

PAGE = os.sysconf("SC_PAGE_SIZE")
# /proc/self/pagemap: bit 63 page present, bit 56 page exclusively mapped (a page this process wrote;
# the shared zero page that a read of a never-written page maps is present but not exclusive)
PRESENT, EXCLUSIVE = 1 << 63, 1 << 56


def status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def resident_bytes(a: np.ndarray) -> int:
    """Bytes of ``a``'s buffer on pages this process wrote (its share of RSS)."""
    base = a
    while isinstance(base.base, np.ndarray):
        base = base.base
    if base.nbytes == 0:
        return 0
    addr = base.__array_interface__["data"][0]
    first, last = addr // PAGE, (addr + base.nbytes - 1) // PAGE
    with open("/proc/self/pagemap", "rb") as fh:
        fh.seek(first * 8)
        words = np.frombuffer(fh.read((last - first + 1) * 8), dtype=np.uint64)
    own = (words & np.uint64(PRESENT | EXCLUSIVE)) == np.uint64(PRESENT | EXCLUSIVE)
    return int(own.sum()) * PAGE


def arrays(obj: Any, path: str = "", seen: set[int] | None = None, depth: int = 0) -> Iterator[tuple[str, np.ndarray]]:
    """Every ndarray reachable from ``obj`` through attributes, dicts, lists and tuples (each buffer once)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 8:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield path, obj
        return
    if isinstance(obj, dict):
        items = [(f"{path}[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("credsim"):
        items = [(f"{path}.{k}", v) for k, v in vars(obj).items()]
    elif hasattr(obj, "_fields"):
        items = [(f"{path}.{k}", getattr(obj, k)) for k in obj._fields]
    else:
        return
    for p, v in items:
        yield from arrays(v, p, seen, depth + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario")
    ap.add_argument("n", type=int)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--index", type=int, default=1)
    ap.add_argument("--days", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="override KEY=JSON (e.g. redress=null)")
    args = ap.parse_args()
    over: dict[str, Any] = {"population.size": args.n, "run.days": args.days}
    for kv in args.set:
        k, v = kv.split("=", 1)
        over[k] = json.loads(v)
    scen = credsim.load_scenario(args.scenario, over)
    cuts = boundaries(args.n, args.shards)
    lo, hi = cuts[args.index], cuts[args.index + 1]
    steps: list[dict[str, Any]] = []

    def mark(step: str, t0: float) -> None:
        row = {"step": step, "s": round(time.perf_counter() - t0, 2), "rss_mb": round(status_kb("VmRSS") / 1024, 1),
               "peak_mb": round(status_kb("VmHWM") / 1024, 1)}
        steps.append(row)
        print(f"{step:<28} {row['s']:>7} s  rss {row['rss_mb']:>8,.1f} MB  peak {row['peak_mb']:>8,.1f} MB", flush=True)

    mark("imports", time.perf_counter())
    # the steps of credsim.engine.prepare for one range, one at a time (then the shard itself, whose
    # own prepare repeats them: the steps' objects are dropped first, so its figures are its own)
    threads.configure(1)
    plan = compile_plan(scen)
    seed = scen.run.seed
    t0 = time.perf_counter()
    pop = pop_mod.generate(plan, args.n, seed, engine.DEFAULT_BLOCK, lo, hi)
    mark("population", t0)
    t0 = time.perf_counter()
    g = shard_graph.build_rows(plan, pop, seed, lo, hi)
    mark("graph rows", t0)
    t0 = time.perf_counter()
    st = initial_state(plan, pop, g, lo, hi)
    mark("initial state", t0)
    t0 = time.perf_counter()
    score.recompute_model(plan, st, 0, lo, hi)
    mark("model scores", t0)
    del pop, g, st
    t0 = time.perf_counter()
    shard = Shard(scen, args.index, cuts, threads=1)
    mark(f"whole prepare (setup {shard.setup:.1f} s)", t0)
    t0 = time.perf_counter()
    for day in range(args.days):  # the shard alone: what it sends to other shards is dropped
        box = shard.begin_day(day)
        for _ in range(engine.rounds_per_day(plan) - 1):
            box = shard.next_round(deliver([box], args.index))
        shard.end_day(deliver([box], args.index))
        if day == 0 or day == args.days - 1:
            mark(f"day {day}" if day == 0 else f"days 1-{day}", t0)
            t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        shard.write_parts(tmp)
        mark("write parts", t0)
    held = []
    for path, a in arrays(shard.loop, "loop"):
        if a.nbytes >= 1 << 20:
            held.append({"array": path, "shape": list(a.shape), "dtype": str(a.dtype), "mb": round(a.nbytes / 2**20, 1),
                         "resident_mb": round(resident_bytes(a) / 2**20, 1)})
    held.sort(key=lambda r: -r["resident_mb"])
    for r in held:
        print(f"  {r['array']:<48} {str(r['shape']):<18} {r['dtype']:<8} {r['mb']:>8} MB, "
              f"resident {r['resident_mb']:>8} MB")
    total = sum(r["resident_mb"] for r in held)
    print(f"resident in arrays >= 1 MB: {total:,.1f} MB for {hi - lo:,} citizens of {args.n:,}")
    print("@@" + json.dumps({"scenario": args.scenario, "n": args.n, "lo": lo, "hi": hi, "steps": steps, "arrays": held,
                             "load": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
