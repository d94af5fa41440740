"""A memory-bandwidth reference: how fast can this machine stream bytes at all?

A dense stage that reads and writes k bytes per citizen cannot beat ``bandwidth / k``
citizens per second; the report states how close the dense stages come to that ceiling.
"""

from __future__ import annotations

import time

import numpy as np


def stream_copy(n_bytes: int = 1 << 30, repeats: int = 5) -> dict[str, float]:
    src = np.ones(n_bytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    # a copy reads n and writes n bytes
    return {"bytes": float(n_bytes), "seconds": best, "gb_per_s": 2 * n_bytes / best / 1e9}


def dense_rate_pass(n: int = 10_000_000, repeats: int = 5) -> dict[str, float]:
    """credsim's one dense per-run pass (chunk bounds of every stream), for comparison."""
    import credsim
    from credsim import population as pm
    from credsim.plan import compile_plan
    from credsim.sampling import chunk_bounds
    from credsim.stages.behave import behaviour_streams

    scen = credsim.load_scenario("city-points", {"population.size": n})
    plan = compile_plan(scen)
    pop = pm.generate(plan, n, 1)
    st = behaviour_streams(plan)
    chunk_bounds(1024, st.base, st.group, pop.groups, st.beta, pop.traits)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        chunk_bounds(n, st.base, st.group, pop.groups, st.beta, pop.traits)
        best = min(best, time.perf_counter() - t0)
    read = pop.groups.nbytes + pop.traits.nbytes
    return {"citizens": float(n), "seconds": best, "citizens_per_s": n / best,
            "bytes_read_per_citizen": read / n, "gb_per_s": read / best / 1e9}
