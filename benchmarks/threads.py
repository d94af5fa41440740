"""Threads on a busy machine: the toy model quiet vs next to a spinning neighbour, default threads vs one.

``python -m benchmarks.threads [--sizes 100000,1000000] [--days 365] [--reps 3]`` runs, in one
process run, for each size: the day loop with the default thread count and with one thread,
once on the machine as it is ("quiet") and once with a competing busy process that this
benchmark starts (one Python process spinning on a core) and stops. It also measures the
serial/parallel cut-off of the event sampler (:data:`credsim.threads.MIN_PARALLEL_WORK`):
the serial and the parallel kernel on the same draws at growing sizes.

The model is the points toy of ``benchmarks/toy.yaml`` with 1.5% events per citizen-day
(infractions 1%, good deeds 0.5%). Every timing is the median of ``--reps`` runs and comes
with the 1-minute load average before it, because the machine may be shared: "quiet" means
"no neighbour started by us", not an idle machine. Results go to ``benchmarks/results/threads.*``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

import credsim
from credsim import threads
from credsim.engine import simulate
from credsim.plan import compile_plan
from credsim.population import generate
from credsim.sampling import Sampler
from credsim.stages.behave import behaviour_streams

RESULTS = Path(__file__).with_name("results")
TOY = Path(__file__).with_name("toy.yaml")
RATES = {'behaviours["civic.infraction"].rate': 0.01, 'behaviours["civic.good_deed"].rate': 0.005}
SPIN = "while True: pass"


def load() -> float:
    return os.getloadavg()[0]


@contextmanager
def neighbour(busy: bool) -> Iterator[None]:
    """A competing process spinning on one core while the block runs (nothing when ``busy`` is false)."""
    if not busy:
        yield
        return
    proc = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.5)  # let it reach the scheduler's steady state
        yield
    finally:
        proc.kill()
        proc.wait()


def toy_once(n: int, days: int, nthreads: int | None) -> tuple[float, float, str]:
    """(wall s of the whole simulate, of which the event draws' s, hash of the final scores) with ``nthreads``.

    The draws are the behave stage, or the whole fused day when the toy runs as one kernel (it does whenever
    :func:`credsim.fused.run_obstacles` finds nothing against it): then behave's own timer reads 0."""
    threads.configure(nthreads)
    scen = credsim.load_scenario(TOY, {"population.size": n, "run.days": days, **RATES})
    t0 = time.perf_counter()
    res = simulate(scen)
    wall = time.perf_counter() - t0
    digest = hashlib.sha256(res.state.score.tobytes() + res.state.listed.tobytes()).hexdigest()[:16]
    return wall, res.timings["behave"] + res.timings["fused"], digest


def bench_toy(sizes: list[int], days: int, reps: int) -> list[dict[str, Any]]:
    rows = []
    default = threads.default_threads()
    for n in sizes:
        for busy in (False, True):
            with neighbour(busy):
                for label, nt in (("default", default), ("1 thread", 1)):
                    walls, behaves, hashes, loads = [], [], set(), []
                    for _ in range(reps):
                        loads.append(load())
                        w, b, h = toy_once(n, days, nt)
                        walls.append(w)
                        behaves.append(b)
                        hashes.add(h)
                    row = {"n": n, "days": days, "neighbour": "busy" if busy else "quiet", "threads": label,
                           "nthreads": nt, "wall_s": statistics.median(walls), "walls": walls,
                           "behave_s": statistics.median(behaves), "load1": loads, "hashes": sorted(hashes)}
                    rows.append(row)
                    print(f"toy n={n:>9,} {row['neighbour']:5} {label:8}: {row['wall_s']:.3f} s "
                          f"(behave {row['behave_s']:.3f}) load {loads}", flush=True)
    threads.configure(None)
    return rows


def sampler_for(n: int) -> tuple[Sampler, Any]:
    scen = credsim.load_scenario(TOY, {"population.size": n, **RATES})
    plan = compile_plan(scen)
    pop = generate(plan, n, 1, 1 << 16)
    smp = Sampler(behaviour_streams(plan), pop.groups, pop.traits, 1, "behave:", n)
    listed = np.zeros((1, n), dtype=np.uint8)
    Q = len(plan.responses)
    args = (listed, np.full((Q, n), -1, dtype=np.int32), plan.resp_size, plan.resp_half,
            np.zeros(1, dtype=np.uint64), np.zeros(1), np.ones((1, len(plan.dims), plan.maxv)))
    return smp, args


def time_sampler(n: int, min_work: int, days: int) -> float:
    """Seconds per day of drawing the toy's events for ``n`` citizens (``min_work`` 0 forces the parallel kernel)."""
    smp, args = sampler_for(n)
    threads.configure(None, min_parallel_work=min_work)
    smp.sample(0, 1 << 16, *args)
    t0 = time.perf_counter()
    for d in range(days):
        smp.sample(d, 1 << 16, *args)
    return (time.perf_counter() - t0) / days


def bench_crossover(sizes: list[int], days: int) -> list[dict[str, Any]]:
    rows = []
    big = 1 << 62
    for busy in (False, True):
        with neighbour(busy):
            for n in sizes:
                smp, _ = sampler_for(n)
                smp.expected_per_block(1 << 16)
                work = float(smp.expected_per_block(1 << 16).sum()) + smp.ubc.shape[0] * smp.ubc.shape[1]
                l0 = load()
                ser = time_sampler(n, big, days)
                par = time_sampler(n, 0, days)
                rows.append({"n": n, "work": work, "neighbour": "busy" if busy else "quiet",
                             "serial_us": ser * 1e6, "parallel_us": par * 1e6, "load1": l0})
                print(f"sampler n={n:>9,} work {work:>10,.0f} {'busy' if busy else 'quiet':5}: serial "
                      f"{ser * 1e6:8.1f} us/day, parallel {par * 1e6:8.1f} us/day (load {l0:.2f})", flush=True)
    threads.configure(None, min_parallel_work=threads.MIN_PARALLEL_WORK)
    return rows


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# Threads on a busy machine ({res['when']}, {res['machine']})", "",
             f"Threading layer: {res['layer']}; environment {res['env']}; default threads {res['default_threads']}; "
             f"serial/parallel cut-off {res['min_parallel_work']:,} work units.", "",
             "The machine is shared with other engineers' jobs: load averages (1 min) before each repetition are "
             "listed; 'quiet' means no neighbour started by this benchmark.", "",
             "## Toy points model, 1.5% events per citizen-day (whole simulate, median of reps)", "",
             "| citizens x days | neighbour | threads | wall s | behave (or fused day) s | busy / quiet | "
             "default / 1 thread | load 1 min | same result |", "|---|---|---|---|---|---|---|---|---|"]
    rows = res["toy"]
    by = {(r["n"], r["neighbour"], r["threads"]): r for r in rows}
    for r in rows:
        quiet = by[(r["n"], "quiet", r["threads"])]
        one = by[(r["n"], r["neighbour"], "1 thread")]
        same = len({h for x in rows if x["n"] == r["n"] for h in x["hashes"]}) == 1
        lines.append(f"| {r['n']:,} x {r['days']} | {r['neighbour']} | {r['threads']} ({r['nthreads']}) | "
                     f"{r['wall_s']:.3f} | {r['behave_s']:.3f} | {r['wall_s'] / quiet['wall_s']:.2f}x | "
                     f"{r['wall_s'] / one['wall_s']:.2f}x | {', '.join(f'{x:.1f}' for x in r['load1'])} | "
                     f"{'yes' if same else 'NO'} |")
    if res.get("crossover"):
        lines += ["", "## Event sampler: serial vs parallel kernel (us per day)", "",
                  "| citizens | work units | neighbour | serial | parallel | parallel / serial | load 1 min |",
                  "|---|---|---|---|---|---|---|"]
        for c in res["crossover"]:
            lines.append(f"| {c['n']:,} | {c['work']:,.0f} | {c['neighbour']} | {c['serial_us']:.0f} | "
                         f"{c['parallel_us']:.0f} | {c['parallel_us'] / c['serial_us']:.2f} | {c['load1']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.threads")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--crossover", default="10000,30000,100000,300000,1000000,3000000")
    ap.add_argument("--tag", default="threads")
    args = ap.parse_args()
    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "machine": f"{os.uname().machine}, {os.cpu_count()} cores",
                           "layer": "", "env": {k: os.environ.get(k) for k in threads.THREAD_ENV},
                           "default_threads": threads.default_threads(),
                           "min_parallel_work": threads.MIN_PARALLEL_WORK}
    sizes = [int(x) for x in args.crossover.split(",") if x]
    res["crossover"] = bench_crossover(sizes, 60) if sizes else []
    res["toy"] = bench_toy([int(x) for x in args.sizes.split(",")], args.days, args.reps)
    res["layer"] = threads.layer()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(res, indent=2))
    md = markdown(res)
    (RESULTS / f"{args.tag}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
