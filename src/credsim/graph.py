"""Contacts in CSR form, built by a vectorised generator with homophily.

Each citizen opens ``contacts // 2`` ties. A tie goes to a random citizen of the same
group on a homophily dimension with that dimension's probability (region, occupation),
else to anyone. Ties are undirected, deduplicated and stored both ways, so the mean
degree is close to ``contacts``. Every draw is keyed by (seed, citizen, tie number), so
the graph does not depend on how the work is split.

Cutting a tie (a response) clears a byte in ``active`` for both directions instead of
rebuilding the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from credsim.plan import Plan
from credsim.population import Population
from credsim.rng import static_key, uniform


@dataclass
class Graph:
    indptr: np.ndarray  # (N+1,) int64
    indices: np.ndarray  # (E,) int32
    active: np.ndarray  # (E,) uint8

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])

    @staticmethod
    def empty(n: int) -> Graph:
        return Graph(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint8))


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
    """Pair keys ``min*n + max`` for every stub, or -1 for a self-tie."""
    out = np.empty(n * m, dtype=np.int64)
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
            if j == i:
                out[i * m + e] = -1
            else:
                a, b = min(i, j), max(i, j)
                out[i * m + e] = np.int64(a) * n + b
    return out


@njit(cache=True)
def _to_csr(pairs: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    deg = np.zeros(n + 1, dtype=np.int64)
    prev = -1
    for k in range(pairs.shape[0]):
        p = pairs[k]
        if p < 0 or p == prev:
            continue
        prev = p
        deg[p // n + 1] += 1
        deg[p % n + 1] += 1
    for i in range(n):
        deg[i + 1] += deg[i]
    indptr = deg.copy()
    fill = deg[:-1].copy()
    indices = np.empty(indptr[n], dtype=np.int32)
    prev = -1
    for k in range(pairs.shape[0]):
        p = pairs[k]
        if p < 0 or p == prev:
            continue
        prev = p
        a, b = p // n, p % n
        indices[fill[a]] = b
        fill[a] += 1
        indices[fill[b]] = a
        fill[b] += 1
    return indptr, indices


def build(plan: Plan, pop: Population, seed: int) -> Graph:
    spec = plan.scen.graph
    n = pop.n
    m = spec.contacts // 2
    if m == 0 or n < 2:
        return Graph.empty(n)
    hdims = list(spec.homophily)
    H = len(hdims)
    cum_mode = np.cumsum([spec.homophily[d] for d in hdims]).astype(np.float64)
    maxv = plan.maxv
    codes = np.zeros((max(H, 1), n), dtype=np.uint8)
    orders = np.zeros((max(H, 1), n), dtype=np.int64)
    starts = np.zeros((max(H, 1), maxv), dtype=np.int64)
    sizes = np.ones((max(H, 1), maxv), dtype=np.int64)
    for h, dim in enumerate(hdims):
        d = plan.dims.index(dim)
        codes[h] = pop.groups[d]
        orders[h] = np.argsort(pop.groups[d], kind="stable")
        cnt = np.bincount(pop.groups[d], minlength=maxv)
        starts[h] = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        sizes[h] = np.maximum(cnt, 1)
    pairs = _stubs(
        n, m, static_key(seed, "graph:mode"), static_key(seed, "graph:pick"),
        cum_mode, codes, orders, starts, sizes,
    )
    pairs.sort()
    indptr, indices = _to_csr(pairs, n)
    return Graph(indptr, indices, np.ones(indices.shape[0], dtype=np.uint8))
