"""Each built-in scenario at a given size: citizen-days/s, peak RSS, bytes per citizen, time per stage.

Each measurement runs in a fresh subprocess (``python -m benchmarks.scenarios NAME N DAYS``), so
peak RSS is that run's own and compile caches are warm but nothing else is shared. Resident memory is also
sampled every 20 ms, to tell the peak before the run writes its files from the peak while it writes.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.scale import RssSampler


def peak_rss() -> int:
    """This process's peak resident set (VmHWM). Unlike ``ru_maxrss``, which Linux carries over
    from the parent across fork and exec, it starts afresh in a new program."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_one(name: str, n: int, days: int, write: bool = True) -> dict[str, Any]:
    import credsim
    from credsim.engine import simulate
    from credsim.memory import estimate_memory

    scen = credsim.load_scenario(name, {"population.size": n, "run.days": days})
    est = estimate_memory(scen).total
    sampler = RssSampler()  # to split the peak into the part before the run writes its files and while it does
    sampler.start()
    t0 = time.perf_counter()
    if write:
        with tempfile.TemporaryDirectory() as tmp:
            run = credsim.run(scen, out=Path(tmp) / "run")
            timings = run.manifest["timings_s"]
    else:
        res = simulate(scen)
        timings = res.timings
    t1 = time.perf_counter()
    sampler.done.set()
    sampler.join()
    wall = t1 - t0
    rss = peak_rss()
    # the run's own clock: writing is its last ``write`` seconds (then the temporary directory is removed)
    writing = t1 - timings.get("write", 0.0) if write else t1
    return {"scenario": name, "n": n, "days": days, "wall_s": round(wall, 3),
            "rate": n * days / wall, "peak_rss_bytes": rss, "bytes_per_citizen": rss / n,
            "sampled_before_write_bytes": sampler.peak_kb(t0, writing) * 1024,
            "sampled_while_writing_bytes": sampler.peak_kb(writing, t1) * 1024,
            "estimate_bytes": est, "timings_s": {k: round(v, 3) for k, v in timings.items()}}


def measure(name: str, n: int, days: int, timeout: float = 1800) -> dict[str, Any]:
    """Run :func:`measure_one` in a subprocess and return its JSON."""
    cmd = [sys.executable, "-m", "benchmarks.scenarios", name, str(n), str(days)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        return {"scenario": name, "n": n, "days": days, "error": out.stderr.strip().splitlines()[-1:]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    name, n, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(measure_one(name, n, days)))
