"""Speed of two versions of credsim in one benchmark run: ``python -m benchmarks.before_after``.

``--before REV`` (a git revision, default the commit before the engine redesign) is exported
with ``git archive`` into a temporary folder; each model is then simulated by both versions,
alternately (before, after, after, before, ...), each in its own single-threaded subprocess
whose PYTHONPATH points at that version's ``src``. Each version's numba cache is filled by an
untimed run first, and every subprocess runs a small warm-up (so compilation is never timed),
then times ``simulate`` on the full size. The ratio compares the process CPU seconds of
``simulate`` (one thread: its compute, far less disturbed than wall time when other processes
share the cores), median of the repeats; the loop and wall seconds and the load average before
each measurement are reported beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"toy": str(ROOT / "benchmarks" / "toy.yaml"), "integrated": "integrated"}
CHILD = r"""
import json, sys, time
import credsim
from credsim.engine import simulate
source, n, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
simulate(credsim.load_scenario(source, {"population.size": 20000, "run.days": 30}))  # compile every kernel
scen = credsim.load_scenario(source, {"population.size": n, "run.days": days})
t0, c0 = time.perf_counter(), time.process_time()
res = simulate(scen)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
loop = sum(v for k, v in res.timings.items() if k != "setup")
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "loop_s": loop, "timings": res.timings, "file": credsim.__file__}))
"""


def export(rev: str, into: Path) -> Path:
    """``src`` of revision ``rev`` under ``into`` (git archive: nothing in the worktree changes)."""
    tar = into / "src.tar"
    with open(tar, "wb") as fh:
        subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, stdout=fh, check=True)
    with tarfile.open(tar) as tf:
        tf.extractall(into, filter="data")
    return into / "src"


def measure(src: Path, source: str, n: int, days: int, cache: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src), "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "NUMBA_CACHE_DIR": str(cache)}
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", CHILD, source, str(n), str(days)], env=env, check=True,
                         capture_output=True, text=True)
    row: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    row["load_before"] = load
    if not row["file"].startswith(str(src)):
        raise RuntimeError(f"measured {row['file']}, not the version under {src}")
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.before_after", description=__doc__)
    ap.add_argument("--before", default="ba57ce9", help="git revision of the 'before' version")
    ap.add_argument("--after", default=str(ROOT / "src"), help="the 'after' src folder (default: this worktree)")
    ap.add_argument("-n", type=int, default=1_000_000)
    ap.add_argument("-d", "--days", type=int, default=365)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--models", default="toy,integrated")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="credsim-before-") as tmp:
        before = export(args.before, Path(tmp))
        versions = {"before": before, "after": Path(args.after)}
        caches = {k: Path(tmp) / f"numba-{k}" for k in versions}
        report: dict[str, Any] = {"n": args.n, "days": args.days, "before": args.before, "threads": 1,
                                  "started": time.strftime("%Y-%m-%d %H:%M:%S"), "models": {}}
        for model in args.models.split(","):
            for name, src in versions.items():  # fill each version's numba cache before timing anything
                measure(src, MODELS[model], 20000, 30, caches[name])
            runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
            for rep in range(args.repeats):
                order = list(versions.items())
                for name, src in order if rep % 2 == 0 else order[::-1]:  # ABBA: drift in load cancels
                    row = measure(src, MODELS[model], args.n, args.days, caches[name])
                    runs[name].append(row)
                    print(f"{model:<10} {name:<6} cpu {row['cpu_s']:8.2f} s  loop {row['loop_s']:8.2f} s  "
                          f"wall {row['wall_s']:8.2f} s  (load {row['load_before']:.2f})", flush=True)
            med = {k: statistics.median(r["cpu_s"] for r in v) for k, v in runs.items()}
            ratio = med["after"] / med["before"]
            report["models"][model] = {"runs": runs, "median_cpu_s": med, "after_over_before": ratio}
            print(f"{model:<10} after/before CPU time: {ratio:.3f}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
