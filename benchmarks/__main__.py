"""Run the benchmark suite: ``python -m benchmarks [--quick] [--only toy,scenarios,bandwidth,fused]``.

Everything is timed in one process run (scenarios in subprocesses for their own peak RSS)
and reported side by side as ratios; results go to ``benchmarks/results/`` as JSON and a
markdown table meant to be committed with the code. Timings are never unit-tested.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks import bandwidth, fused, scenarios, toy

RESULTS = Path(__file__).with_name("results")
MESA_BUDGET_S = 150.0


def bench_toy(sizes: list[int], days: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    mesa_rate = None
    for n in sizes:
        c = toy.run_credsim(n, days)
        d = toy.run_numpy(n, days)
        row = {"n": n, "days": days, "credsim": c["rate"], "credsim_loop": c["loop_rate"], "numpy": d["rate"],
               "mesa": None}
        pair = [c, d]
        predicted = n * days / mesa_rate if mesa_rate else 0.0
        if predicted <= MESA_BUDGET_S:
            m = toy.run_mesa(n, days)
            mesa_rate = m["rate"]
            row["mesa"] = m["rate"]
            pair.append(m)
        for a in pair[1:]:
            ok, msg = toy.agree(c, a)
            checks.append({"ok": ok, "detail": msg})
        rows.append(row)
        print(f"toy n={n:>10,}: credsim {c['rate']:.3g}/s (loop {c['loop_rate']:.3g}/s), numpy {d['rate']:.3g}/s, "
              f"mesa {row['mesa'] and format(row['mesa'], '.3g')}", flush=True)
    return {"rows": rows, "agreement": checks}


def bench_scenarios(names: list[str], sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    out = []
    for name in names:
        for n, days in sizes:
            r = scenarios.measure(name, n, days)
            out.append(r)
            if "error" in r:
                print(f"{name} n={n:,}: ERROR {r['error']}", flush=True)
            else:
                print(f"{name} n={n:,} x {days}d: {r['rate']:.3g} citizen-days/s, wall {r['wall_s']:.1f}s, "
                      f"peak {r['peak_rss_bytes'] / 2**30:.2f} GiB ({r['bytes_per_citizen']:.0f} B/citizen)",
                      flush=True)
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [f"# credsim benchmarks ({res['when']}, {res['machine']})", ""]
    if "toy" in res:
        lines += ["## Toy points model (citizen-days/s)", "",
                  "| citizens | days | credsim (end to end) | credsim (day loop) | dense NumPy | Mesa | "
                  "credsim / Mesa | credsim / NumPy |", "|---|---|---|---|---|---|---|---|"]
        for r in res["toy"]["rows"]:
            mesa = r["mesa"]
            vs_mesa = "" if mesa is None else f"{r['credsim'] / mesa:.1f}x"
            lines.append(
                f"| {r['n']:,} | {r['days']} | {r['credsim']:.3g} | {r['credsim_loop']:.3g} | {r['numpy']:.3g} | "
                f"{'' if mesa is None else format(mesa, '.3g')} | {vs_mesa} | {r['credsim'] / r['numpy']:.1f}x |")
        lines += ["", "Agreement (mean score and share listed within 5 standard errors):", ""]
        lines += [f"- {'ok' if c['ok'] else 'FAIL'}: {c['detail']}" for c in res["toy"]["agreement"]]
        lines.append("")
    if "scenarios" in res:
        lines += ["## Built-in scenarios", "",
                  "| scenario | citizens | days | citizen-days/s | wall s | peak RSS GiB | bytes/citizen | "
                  "estimate GiB | slowest stages (s) |", "|---|---|---|---|---|---|---|---|---|"]
        for r in res["scenarios"]:
            if "error" in r:
                lines.append(f"| {r['scenario']} | {r['n']:,} | {r['days']} | error: {r['error']} | | | | | |")
                continue
            t = {k: v for k, v in r["timings_s"].items() if k not in ("wall",)}
            top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(t.items(), key=lambda kv: -kv[1])[:3])
            lines.append(f"| {r['scenario']} | {r['n']:,} | {r['days']} | {r['rate']:.3g} | {r['wall_s']:.1f} | "
                         f"{r['peak_rss_bytes'] / 2**30:.2f} | {r['bytes_per_citizen']:.0f} | "
                         f"{r['estimate_bytes'] / 2**30:.2f} | {top} |")
        lines.append("")
    if "fused" in res:
        lines += [fused.markdown(res["fused"]), ""]
    if "bandwidth" in res:
        b = res["bandwidth"]
        lines += ["## Memory bandwidth reference", "",
                  f"- streaming copy: {b['copy']['gb_per_s']:.1f} GB/s (read + write)",
                  f"- credsim's dense per-run pass (rate bounds of every behaviour): "
                  f"{b['dense']['citizens_per_s']:.3g} citizens/s, reading {b['dense']['bytes_read_per_citizen']:.0f}"
                  f" B/citizen = {b['dense']['gb_per_s']:.1f} GB/s", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    ap.add_argument("--only", default="toy,scenarios,bandwidth")
    ap.add_argument("--scenarios", default="", help="comma-separated names (default: all built-ins)")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--big-days", type=int, default=365, help="days for the 1e7 scenario runs")
    ap.add_argument("--tag", default="latest")
    args = ap.parse_args()
    only = set(args.only.split(","))
    res: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, "
                           f"{__import__('os').cpu_count()} cores"}
    if "toy" in only:
        sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000, 10_000_000]
        res["toy"] = bench_toy(sizes, 60 if args.quick else args.days)
    if "scenarios" in only:
        import credsim

        names = args.scenarios.split(",") if args.scenarios else credsim.builtin_names()
        sizes = [(100_000, 30)] if args.quick else [(1_000_000, args.days), (10_000_000, args.big_days)]
        res["scenarios"] = bench_scenarios(names, sizes)
    if "fused" in only:  # the toy through the fused day and the staged loop, alternately (benchmarks/fused.py)
        res["fused"] = fused.bench([100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000],
                                   60 if args.quick else args.days, 2, None)
    if "bandwidth" in only:
        res["bandwidth"] = {"copy": bandwidth.stream_copy(1 << 28 if args.quick else 1 << 30),
                            "dense": bandwidth.dense_rate_pass(1_000_000 if args.quick else 10_000_000)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(res, indent=2))
    md = markdown(res)
    (RESULTS / f"{args.tag}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
