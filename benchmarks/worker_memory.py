"""What a Ray shard worker's resident set is made of before it holds a citizen.

    nice -n 5 .venv/bin/python -m benchmarks.worker_memory [--n 40000] [--days 2]

Starts a local Ray cluster and one actor (the same options a shard actor gets:
``credsim.distributed.run.SHARD_ENV``), then, step by step in that worker, records ``VmRSS``,
``RssAnon``/``RssFile``/``RssShmem`` and the resident bytes of each mapping (``/proc/self/smaps``,
grouped: the heap, anonymous mappings, LLVM, Arrow, DuckDB, ...):

1. the idle Ray worker (Python, Ray's core worker and its threads);
2. after importing each library a shard uses, in the order the shard's own imports load them
   (NumPy, Numba, pydantic, PyArrow, SciPy, DuckDB), then ``credsim.distributed.run`` itself (what
   Ray imports to unpickle the shard actor's class);
3. a shard of ``--n`` citizens (1/4) built, run ``--days`` days and its parts written: by then the
   compiled kernels it calls are loaded (how many, and whether from Numba's cache or compiled);
4. after ``malloc_trim(0)``: what glibc held freed but not returned.

The same steps run in a plain process (no Ray) for comparison. Each step's figure is the
worker's own resident set; file-backed pages (shared libraries) count in every process that maps
them, as ``VmRSS`` and peak RSS (``VmHWM``) count them. The figures go to
``benchmarks/results/worker_memory.json``; run ``--where ray`` and ``--where plain`` as separate commands
(a plain pass after the Ray pass would find everything already imported by the driver).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
# libraries in the order a shard worker loads them (credsim imports numba first: credsim.threads)
LIBRARIES = ("numpy", "numba", "pydantic", "pyarrow", "pyarrow.parquet", "scipy.special", "scipy.sparse", "duckdb")
GROUPS = (("llvm", ("libllvmlite",)), ("arrow", ("/pyarrow/", "libarrow", "libparquet")), ("duckdb", ("duckdb",)),
          ("python", ("libpython", "/bin/python")), ("numpy/scipy", ("/numpy", "/scipy", "openblas")),
          ("ray", ("/ray/",)), ("plasma/shm", ("/dev/shm", "plasma")))


def status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def mappings() -> dict[str, float]:
    """Resident MB by kind of mapping: [heap], [anon] (incl. thread stacks), groups of libraries, other files."""
    agg: collections.Counter[str] = collections.Counter()
    cur = "[anon]"
    with open("/proc/self/smaps") as fh:
        for line in fh:
            parts = line.split()
            if parts and "-" in parts[0] and not parts[0].endswith(":"):
                path = parts[5] if len(parts) > 5 else "[anon]"
                cur = path if path.startswith("[") else next(
                    (g for g, keys in GROUPS if any(k in path for k in keys)), "other files")
                cur = "[anon]" if cur.startswith("[stack") else cur
            elif parts and parts[0] == "Rss:":
                agg[cur] += int(parts[1])
    return {k: round(v / 1024, 1) for k, v in agg.most_common()}


def kernels() -> dict[str, Any]:
    """Numba dispatchers with at least one compiled signature: how many, loaded from cache or compiled."""
    from numba.core.registry import CPUDispatcher  # numba is loaded by now (step 2)

    used = [d for d in gc.get_objects() if isinstance(d, CPUDispatcher) and d.signatures]
    own = [d for d in used if d.py_func.__module__.startswith("credsim")]
    return {"dispatchers": len(used), "credsim_kernels": len(own),
            "credsim_signatures": sum(len(d.signatures) for d in own),
            "cache_hits": sum(sum(d.stats.cache_hits.values()) for d in own),
            "cache_misses": sum(sum(d.stats.cache_misses.values()) for d in own),
            "compiled": sorted(f"{d.py_func.__module__}.{d.py_func.__name__}" for d in own
                               if sum(d.stats.cache_misses.values()))}


def steps(n: int, days: int) -> dict[str, Any]:
    """The steps of the module docstring in this process."""
    rows: list[dict[str, Any]] = []

    def mark(step: str, smaps: bool = False) -> None:
        row: dict[str, Any] = {"step": step, **status()}
        if smaps:
            row["mappings"] = mappings()
        rows.append(row)

    mark("idle", smaps=True)
    for lib in LIBRARIES:  # the measurement: each import's own cost, in order
        importlib.import_module(lib)
        mark(f"import {lib}")
    importlib.import_module("credsim.distributed.run")
    mark("import credsim.distributed.run", smaps=True)
    mods = collections.Counter(m.split(".")[0] for m in sys.modules)
    shard_mod = importlib.import_module("benchmarks.worker_shard")
    t0 = time.perf_counter()
    shard_mod.tiny_shard(n, days, mark)
    info: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 1), "kernels": kernels()}
    libc = ctypes.CDLL(None)
    libc.malloc_trim(0)
    mark("after malloc_trim(0)", smaps=True)
    return {"pid": os.getpid(), "steps": rows, "modules": dict(mods.most_common(25)), **info,
            "env": {k: os.environ.get(k) for k in ("NUMPY_MADVISE_HUGEPAGE", "MALLOC_ARENA_MAX")}}


def on_ray(n: int, days: int) -> dict[str, Any]:
    """The steps in one actor on a local Ray cluster, with a shard actor's options."""
    import ray  # the optional extra

    from credsim.distributed.run import SHARD_ENV

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1", object_store_memory=100 * 1024**2)
    try:
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {"env_vars": {**SHARD_ENV, "PYTHONPATH": os.pathsep.join([os.path.join(here, "src"), here])}}
        probe = ray.remote(num_cpus=1)(steps).options(runtime_env=env)
        out: dict[str, Any] = ray.get(probe.remote(n, days))
        return out
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40_000)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--where", default="ray", choices=["ray", "plain"])
    args = ap.parse_args()
    path = RESULTS / "worker_memory.json"
    res: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    where = args.where
    la = round(os.getloadavg()[0], 2)
    res[where] = on_ray(args.n, args.days) if where == "ray" else steps(args.n, args.days)
    res[where].update({"n": args.n, "days": args.days, "load": la,
                       "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
    print(f"== {where} (load {la})")
    for r in res[where]["steps"]:
        print(f"  {r['step']:<34} rss {r['VmRSS']:7.1f}  anon {r['RssAnon']:7.1f}  file {r['RssFile']:7.1f}  "
              f"shmem {r['RssShmem']:5.1f}  peak {r['VmHWM']:7.1f} MB")
        if "mappings" in r:
            print("      " + ", ".join(f"{k} {v}" for k, v in r["mappings"].items() if v >= 0.5))
    print("  kernels:", json.dumps({k: v for k, v in res[where]["kernels"].items() if k != "compiled"}))
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(res, indent=1) + "\n")
    print("@@" + json.dumps(res))


if __name__ == "__main__":
    main()
