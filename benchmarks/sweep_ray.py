"""Beyond one machine, measured locally: sweep throughput (process pool vs Ray) and sharded runs.

    .venv/bin/python -m benchmarks.sweep_ray [--n 10000000] [--days 3] [--shards 2] [--points 8]

1. **Sweep throughput**: the same sweep (``--points`` policies x 1 seed, 20,000 citizens x
   60 days each) on the local process pool and on a local Ray cluster, both with 2 workers.
2. **Sharded vs single process** at ``--n`` citizens for ``--days`` days: wall time, resident
   memory of each shard's worker, exchange volume per day (bytes and rows by message kind),
   and a check that the merged metrics and citizen columns equal the single-process ones.

Each part runs in a fresh subprocess (its own peak RSS). Results: ``benchmarks/results/
sweep_ray.json`` and ``.md``. A measurement, not a test: ratios depend on the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
RICH: dict[str, Any] = {  # every cross-shard path (as in tests/test_determinism.py)
    "lists.court_defaulters.association_points": -10,
    "lists.court_defaulters.entry.grace_days": 0,
    "responses.cut_ties": {"effect": "cut_ties", "trigger": "contact_listed", "probability": 0.3},
}
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _ray_init(cpus: int) -> Any:
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1", object_store_memory=3 * 1024**3)
    return ray


def sweep_part(points: int) -> dict[str, Any]:
    import credsim
    from credsim.experiments import SweepSpec, load_spec, sweep

    scen = credsim.load_scenario("city-points", {"population.size": 20_000, "run.days": 60})
    spec = load_spec({"name": "bench", "baseline": False, "replicates": 1, "parameters": {
        "jaywalk": {"path": "scoring.points.rules[traffic.jaywalk]",
                    "values": [-2 - 2 * i for i in range(points)]}}}, SweepSpec)
    out: dict[str, Any] = {"runs": points, "citizens": 20_000, "days": 60}
    with tempfile.TemporaryDirectory() as tmp:
        credsim.run(scen, out=Path(tmp) / "warm", days=2)  # compile caches warm for both
        t0 = time.perf_counter()
        sweep(scen, spec, Path(tmp) / "pool", workers=2)
        out["pool_s"] = round(time.perf_counter() - t0, 3)
        ray = _ray_init(2)
        t1 = time.perf_counter()
        sweep(scen, spec, Path(tmp) / "ray", ray=True)
        out["ray_s"] = round(time.perf_counter() - t1, 3)
        ray.shutdown()
    out["pool_runs_per_s"] = points / out["pool_s"]
    out["ray_runs_per_s"] = points / out["ray_s"]
    out["ray_over_pool"] = out["ray_runs_per_s"] / out["pool_runs_per_s"]
    return out


def _digest(result: Any) -> dict[str, str]:
    cols = result.citizens_table()
    h = hashlib.sha256()
    for c in cols.columns:
        for chunk in c.chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(buf)
    return {"metrics": hashlib.sha256(result.metrics.table.tobytes()).hexdigest(), "citizens": h.hexdigest()}


def single_part(n: int, days: int) -> dict[str, Any]:
    import credsim
    from credsim.engine import simulate

    scen = credsim.load_scenario("city-points", {**RICH, "population.size": n, "run.days": days})
    t0 = time.perf_counter()
    res = simulate(scen)
    wall = time.perf_counter() - t0
    return {"n": n, "days": days, "wall_s": round(wall, 3), "setup_s": round(res.timings["setup"], 3),
            "day_s": round((wall - res.timings["setup"]) / days, 3),
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, **_digest(res)}


def sharded_part(n: int, days: int, shards: int) -> dict[str, Any]:
    import credsim
    from credsim.distributed import simulate_sharded

    scen = credsim.load_scenario("city-points", {**RICH, "population.size": n, "run.days": days})
    _ray_init(2)
    mem: list[int] = []

    def sample(day: int, backend: Any) -> None:
        if day == days - 1:
            mem.extend(backend.memory())

    t0 = time.perf_counter()
    # one numba thread per shard: the shards are the parallelism (2 cores here)
    res, stats = simulate_sharded(scen, shards, ray=True, num_cpus=2 / shards, threads=max(1, 2 // shards),
                                  on_day=sample)
    wall = time.perf_counter() - t0
    return {"n": n, "days": days, "shards": shards, "wall_s": round(wall, 3),
            "day_s": round(stats["wall_days_s"] / days, 3), "shard_rss_bytes": mem,
            "driver_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "exchange_bytes_per_day": stats["exchange_bytes_per_day"],
            "exchange_rows_per_day": {k: v / days for k, v in stats["exchange_rows"].items()}, **_digest(res)}


def _sub(part: str, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.sweep_ray", "--part", part, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def markdown(r: dict[str, Any]) -> str:
    s, a, b = r.get("sweep", {}), r.get("single", {}), r.get("sharded", {})
    gib = 1024**3
    lines = ["# Sweeps on Ray and sharded runs (local, 2 cores)", ""]
    if "pool_s" in s:
        lines += [f"Sweep of {s['runs']} runs ({s['citizens']:,} citizens x {s['days']} days each), 2 workers:", "",
                  "| backend | wall s | runs/s |", "|---|---|---|",
                  f"| process pool (spawn) | {s['pool_s']} | {s['pool_runs_per_s']:.3f} |",
                  f"| Ray (local) | {s['ray_s']} | {s['ray_runs_per_s']:.3f} |", "",
                  f"Ray / pool throughput: **{s['ray_over_pool']:.2f}x**.", ""]
    if "wall_s" in a and "wall_s" in b:
        same = a["metrics"] == b["metrics"] and a["citizens"] == b["citizens"]
        lines += [f"Sharded vs single process, city-points + association and cut ties, {a['n']:,} citizens x "
                  f"{a['days']} days:", "",
                  "| layout | wall s | s/day | memory |", "|---|---|---|---|",
                  f"| single process | {a['wall_s']} | {a['day_s']} | peak RSS {a['peak_rss_bytes'] / gib:.2f} GiB |",
                  f"| {b['shards']} shards on Ray | {b['wall_s']} | {b['day_s']} | shard RSS "
                  + ", ".join(f"{m / gib:.2f}" for m in b["shard_rss_bytes"]) + " GiB |", "",
                  f"Exchange between shards: **{b['exchange_bytes_per_day']:,.0f} bytes/day** "
                  f"(rows/day by kind: {', '.join(f'{k} {v:,.0f}' for k, v in b['exchange_rows_per_day'].items())}).",
                  f"Merged results identical to the single process: **{same}**.", ""]
    for k in ("sweep", "single", "sharded"):
        if "error" in r.get(k, {}):
            lines += [f"{k}: failed: `{r[k]['error'][-300:]}`", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="all")
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--points", type=int, default=8)
    a = ap.parse_args()
    if a.part == "sweep":
        print(json.dumps(sweep_part(a.points)))
        return
    if a.part == "single":
        print(json.dumps(single_part(a.n, a.days)))
        return
    if a.part == "sharded":
        print(json.dumps(sharded_part(a.n, a.days, a.shards)))
        return
    args = ["--n", str(a.n), "--days", str(a.days), "--shards", str(a.shards), "--points", str(a.points)]
    res = {"sweep": _sub("sweep", *args), "single": _sub("single", *args), "sharded": _sub("sharded", *args)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sweep_ray.json").write_text(json.dumps(res, indent=1))
    (RESULTS / "sweep_ray.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
