"""The set-up kernels as they were before the blocked rewrite, kept for ``benchmarks.scale``'s
before/after of the set-up leg only (credsim itself never imports this).

Same results as :func:`credsim.population.generate` and :func:`credsim.graph.build`: the benchmark
checks that the two give identical arrays in the same run in which it times them.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from scipy.special import ndtri

from credsim.graph import Graph, _compact, _sort_dedupe_rows, pick_tables
from credsim.plan import Plan
from credsim.population import Population
from credsim.rng import static_key, uniform


@njit(parallel=True, cache=True)
def _categorical(key: np.uint64, cum: np.ndarray, n: int, block: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint8)
    nblocks = (n + block - 1) // block
    for c in prange(nblocks):
        for i in range(c * block, min(n, (c + 1) * block)):
            u = uniform(key, np.uint64(i))
            k = 0
            while k < cum.shape[0] - 1 and u >= cum[k]:
                k += 1
            out[i] = k
    return out


@njit(parallel=True, cache=True)
def _open_uniforms(key: np.uint64, n: int, block: int) -> np.ndarray:
    out = np.empty(n, dtype=np.float64)
    nblocks = (n + block - 1) // block
    for c in prange(nblocks):
        for i in range(c * block, min(n, (c + 1) * block)):
            u = uniform(key, np.uint64(i))
            out[i] = min(max(u, 1e-15), 1.0 - 1e-15)
    return out


def generate(plan: Plan, n: int, seed: int, block: int = 1 << 16) -> Population:
    """The population generator as it was (the same citizens, drawn one branchy value at a time)."""
    pop = plan.scen.population
    groups = np.empty((len(plan.dims), n), dtype=np.uint8)
    for d, dim in enumerate(plan.dims):
        shares = np.array(list(pop.groups[dim].values()), dtype=np.float64)
        cum = np.cumsum(shares)
        cum[-1] = 1.0 + 1e-12  # the last value catches rounding
        groups[d] = _categorical(static_key(seed, f"pop:{dim}"), cum, n, block)
    traits = np.empty((len(plan.traits), n), dtype=np.float32)
    for t, name in enumerate(plan.traits):
        spec = pop.traits[name]
        z = ndtri(_open_uniforms(static_key(seed, f"trait:{name}"), n, block))
        for dim, vals in spec.shift.items():
            d = plan.dims.index(dim)
            table = np.zeros(len(plan.dim_values[d]))
            for v, s in vals.items():
                table[plan.dim_values[d].index(v)] = s
            z += table[groups[d]]
        traits[t] = (spec.mean + spec.sd * z).astype(np.float32)
    deps = np.zeros(0, np.uint8)
    if pop.dependants is not None:
        # one draw per citizen id on its own stream: the same citizen has the same family in every shard
        cum = np.cumsum(np.array(pop.dependants.shares, dtype=np.float64))
        cum[-1] = 1.0 + 1e-12
        deps = _categorical(static_key(seed, "dependants"), cum, n, block)
    return Population(n=n, groups=groups, traits=traits, dependants=deps)


@njit(parallel=True, cache=True)
def _stubs(
    n: int,
    m: int,
    key_mode: np.uint64,
    key_pick: np.uint64,
    cum_mode: np.ndarray,
    codes: np.ndarray,
    orders: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
) -> np.ndarray:
    """The other end of every stub (citizen i's e-th tie), or -1 for a self-tie."""
    out = np.empty(n * m, dtype=np.int32)
    nh = cum_mode.shape[0]
    for i in prange(n):
        for e in range(m):
            c = np.uint64(i * m + e)
            u = uniform(key_mode, c)
            v = uniform(key_pick, c)
            h = 0
            while h < nh and u >= cum_mode[h]:
                h += 1
            if h < nh:
                g = codes[h, i]
                j = orders[h, starts[h, g] + min(int(v * sizes[h, g]), sizes[h, g] - 1)]
            else:
                j = min(int(v * n), n - 1)
            out[i * m + e] = -1 if j == i else j
    return out


@njit(parallel=True, cache=True)
def _fill(tgt: np.ndarray, n: int, m: int, parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Both directions of every stub, rows in any order (rows are sorted afterwards).

    Each of ``parts`` workers scans all stubs and writes only the rows of its own id range,
    so the result does not depend on the number of threads."""
    indptr = np.zeros(n + 1, dtype=np.int64)
    for k in range(tgt.shape[0]):
        j = tgt[k]
        if j >= 0:
            indptr[k // m + 1] += 1
            indptr[j + 1] += 1
    for i in range(n):
        indptr[i + 1] += indptr[i]
    fill = indptr[:-1].copy()
    indices = np.empty(indptr[n], dtype=np.int32)
    width = (n + parts - 1) // parts
    for p in prange(parts):
        lo, hi = p * width, min(n, (p + 1) * width)
        for k in range(tgt.shape[0]):
            j = tgt[k]
            if j < 0:
                continue
            i = k // m
            if lo <= i < hi:
                indices[fill[i]] = j
                fill[i] += 1
            if lo <= j < hi:
                indices[fill[j]] = i
                fill[j] += 1
    return indptr, indices


def build(plan: Plan, pop: Population, seed: int) -> Graph:
    """The whole-graph builder as it was: one random write per tie direction, rows insertion-sorted."""
    n = pop.n
    m = plan.scen.graph.contacts // 2
    if m == 0 or n < 2:
        return Graph.empty(n)
    p = pick_tables(plan, pop, seed)
    tgt = _stubs(
        n, m, static_key(seed, "graph:mode"), static_key(seed, "graph:pick"),
        p.cum_mode, p.codes, p.orders, p.starts, p.sizes,
    )
    del p
    indptr, indices = _fill(tgt, n, m, 2)
    del tgt
    deg = _sort_dedupe_rows(indptr, indices)
    indptr = _compact(indptr, indices, deg)
    indices = indices[: indptr[n]]  # a view: duplicates are rare, the slack is tiny
    return Graph(indptr, indices, np.zeros(indices.shape[0], dtype=np.uint8))
