"""The toy points model through the fused day and the staged loop, in one run: ``python -m benchmarks.fused``.

For each size, the two paths run alternately in this process (staged, fused, fused, staged, ...) after an
untimed warm-up that compiles every kernel; each measurement records the 1-minute load average and
``uptime`` just before it, end-to-end wall seconds of ``simulate`` (set-up included), the day loop's
seconds, process CPU seconds and the per-stage timings. Both paths must give the same metrics table and
final scores (checked on every pair). Ratios are best against best and median against median of wall
time, so a moment of contention on a shared machine shows as spread, not as a ratio.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import credsim
from credsim.engine import simulate

TOY = Path(__file__).with_name("toy.yaml")
RESULTS = Path(__file__).with_name("results")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def one(n: int, days: int, fused: bool, threads: int | None) -> dict[str, Any]:
    """One end-to-end run of the toy; its timings and a digest of what it produced."""
    scen = credsim.load_scenario(TOY, {"population.size": n, "run.days": days})
    gc.collect()
    load, up = os.getloadavg()[0], uptime()
    t0, c0 = time.perf_counter(), time.process_time()
    res = simulate(scen, fused=fused, threads=threads)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    loop = sum(v for k, v in res.timings.items() if k != "setup")
    h = hashlib.sha256(res.metrics.table.tobytes())
    h.update(res.state.score.tobytes())
    h.update(res.state.listed.tobytes())
    out = {"path": "fused" if fused else "staged", "n": n, "days": days, "load": load, "uptime": up,
           "wall_s": wall, "cpu_s": cpu, "loop_s": loop, "rate": n * days / wall, "loop_rate": n * days / loop,
           "timings": {k: round(v, 4) for k, v in res.timings.items() if v > 0}, "digest": h.hexdigest()[:16],
           "mean_score": float(res.state.score[0].mean())}
    del res
    gc.collect()
    return out


def bench(sizes: list[int], days: int, repeats: int, threads: int | None) -> dict[str, Any]:
    for fused in (False, True):  # compile and load every kernel of both paths, untimed; at the largest size,
        one(max(sizes), 2, fused, threads)  # as the parallel twins run only where the work pays for the threads
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for n in sizes:
        runs: list[dict[str, Any]] = []
        for r in range(repeats):
            order = (False, True) if r % 2 == 0 else (True, False)
            for fused in order:
                runs.append(one(n, days, fused, threads))
                x = runs[-1]
                print(f"n={n:>11,} {x['path']:>6}: load {x['load']:.2f}, wall {x['wall_s']:.2f} s "
                      f"({x['rate']:.3g}/s end to end, loop {x['loop_rate']:.3g}/s), cpu {x['cpu_s']:.2f} s, "
                      f"{x['timings']}", flush=True)
        staged = [x for x in runs if x["path"] == "staged"]
        fused_runs = [x for x in runs if x["path"] == "fused"]
        same = len({x["digest"] for x in runs}) == 1
        best_s, best_f = min(x["wall_s"] for x in staged), min(x["wall_s"] for x in fused_runs)
        med_s = statistics.median(x["wall_s"] for x in staged)
        med_f = statistics.median(x["wall_s"] for x in fused_runs)
        summary.append({"n": n, "days": days, "same_results": same,
                        "staged_best_rate": n * days / best_s, "fused_best_rate": n * days / best_f,
                        "speedup_best": best_s / best_f, "speedup_median": med_s / med_f,
                        "fused_best_loop_rate": max(x["loop_rate"] for x in fused_runs),
                        "staged_best_loop_rate": max(x["loop_rate"] for x in staged),
                        "loads": [round(x["load"], 2) for x in runs]})
        rows += runs
    return {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "threads": threads, "runs": rows,
            "summary": summary}


def markdown(res: dict[str, Any]) -> str:
    lines = [f"## Fused vs staged, toy model ({res['when']}, {res['machine']}, threads: "
             f"{res['threads'] or 'default'})", "",
             "| citizens | days | path | load | wall s | end to end /s | day loop /s | cpu s | stages (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for x in res["runs"]:
        st = ", ".join(f"{k} {v:.2f}" for k, v in x["timings"].items())
        lines.append(f"| {x['n']:,} | {x['days']} | {x['path']} | {x['load']:.2f} | {x['wall_s']:.2f} | "
                     f"{x['rate']:.3g} | {x['loop_rate']:.3g} | {x['cpu_s']:.2f} | {st} |")
    lines += ["", "| citizens | fused best end to end /s | staged best /s | speedup (best) | speedup (median) | "
              "fused best day loop /s | same results |", "|---|---|---|---|---|---|---|"]
    for s in res["summary"]:
        lines.append(f"| {s['n']:,} | {s['fused_best_rate']:.3g} | {s['staged_best_rate']:.3g} | "
                     f"{s['speedup_best']:.2f}x | {s['speedup_median']:.2f}x | {s['fused_best_loop_rate']:.3g} | "
                     f"{s['same_results']} |")
    lines += ["", "`uptime` before each run:", ""] + [f"- {x['path']} {x['n']:,}: {x['uptime']}" for x in res["runs"]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fused", description=__doc__)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeats", type=int, default=2, help="pairs per size (the order alternates)")
    ap.add_argument("--threads", type=int, default=None, help="default: credsim's default")
    ap.add_argument("--tag", default="fused")
    args = ap.parse_args()
    res = bench([int(s) for s in args.sizes.split(",")], args.days, args.repeats, args.threads)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    (RESULTS / f"{args.tag}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
