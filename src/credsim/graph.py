"""Contacts in CSR form, built by a vectorised generator with homophily.

Each citizen opens ``contacts // 2`` ties. A tie goes to a random citizen of the same
group on a homophily dimension with that dimension's probability (region, occupation),
else to anyone. Ties are undirected, deduplicated and stored both ways, so the mean
degree is close to ``contacts``. Every draw is keyed by (seed, citizen, tie number), so
the graph does not depend on how the work is split; each row is sorted, so neither does
the order of neighbours. Building costs O(ties), with no global sort.

A shard builds only the rows of its citizens ``[lo, hi)`` (:func:`build_rows`, a :class:`Graph`
whose ``indptr`` covers the range only, with the range's first id as ``lo``): the other
end of every tie is a pure function of (seed, opener, tie number) and of the group codes
(themselves pure functions of the citizen id), so the shard recomputes every stub in
parallel, keeps those that touch its range (its own ties and the reverse direction of
ties opened towards it) and never holds the whole graph. The rows are exactly the rows of
the whole graph, so results do not depend on the layout.

Cutting a tie (a response) clears a byte in ``active`` for both directions instead of
rebuilding the arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from credsim.plan import Plan
from credsim.population import Population, dim_codes
from credsim.rng import static_key, uniform


@dataclass
class Graph:
    """The rows of the citizens ``[lo, lo + len(indptr) - 1)``: citizen ``i``'s contacts are
    ``indices[indptr[i - lo]:indptr[i - lo + 1]]`` (global ids). One process holds every row
    (``lo`` 0); a shard only its own, so its ``indptr`` is as long as its range, not the population."""

    indptr: np.ndarray  # (rows + 1,) int64
    indices: np.ndarray  # (E,) int32
    active: np.ndarray  # (E,) uint8
    lo: int = 0  # the first row's citizen

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])

    @property
    def rows(self) -> int:
        return int(self.indptr.shape[0]) - 1

    def degree(self) -> np.ndarray:
        """Each held row's length (active or not), in row order."""
        return np.diff(self.indptr)

    @staticmethod
    def empty(n: int, lo: int = 0) -> Graph:
        # every row is empty: a read-only zero-stride view costs no memory even at 100M citizens
        indptr = np.broadcast_to(np.zeros(1, dtype=np.int64), (n + 1,))
        return Graph(indptr, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.uint8), lo)


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


@njit(parallel=True, cache=True)
def _sort_dedupe_rows(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Sort each row and drop repeated ties; return each row's new length."""
    n = indptr.shape[0] - 1
    deg = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        lo, hi = indptr[i], indptr[i + 1]
        for a in range(lo + 1, hi):
            x = indices[a]
            b = a - 1
            while b >= lo and indices[b] > x:
                indices[b + 1] = indices[b]
                b -= 1
            indices[b + 1] = x
        k = lo
        for a in range(lo, hi):
            if a == lo or indices[a] != indices[a - 1]:
                indices[k] = indices[a]
                k += 1
        deg[i] = k - lo
    return deg


@njit(cache=True)
def _compact(indptr: np.ndarray, indices: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """Move rows left over the gaps left by duplicates (in place, in row order)."""
    n = deg.shape[0]
    new = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        src = indptr[i]
        dst = new[i]
        for a in range(deg[i]):
            indices[dst + a] = indices[src + a]
        new[i + 1] = dst + deg[i]
    return new


@njit(cache=True)
def _group_order(codes: np.ndarray, maxv: int) -> np.ndarray:
    """Citizen ids sorted by group code, ties in id order (a stable argsort as a counting sort, int32)."""
    cnt = np.zeros(maxv + 1, dtype=np.int64)
    for i in range(codes.shape[0]):
        cnt[codes[i] + 1] += 1
    for g in range(maxv):
        cnt[g + 1] += cnt[g]
    out = np.empty(codes.shape[0], dtype=np.int32)
    for i in range(codes.shape[0]):
        out[cnt[codes[i]]] = i
        cnt[codes[i]] += 1
    return out


@dataclass
class _Picks:
    """What the stub rule reads: homophily modes and, per homophily dimension, the citizens by group."""

    cum_mode: np.ndarray  # (H,) cumulative homophily probabilities
    codes: np.ndarray  # (H, N) uint8 group codes
    orders: np.ndarray  # (H, N) int32 citizen ids sorted by group
    starts: np.ndarray  # (H, V) first position of each group in ``orders``
    sizes: np.ndarray  # (H, V) group sizes (at least 1)


def _picks(plan: Plan, pop: Population, seed: int) -> _Picks:
    """The pick tables; a population that holds only a range has its homophily codes drawn again for
    everyone (a stub may land on anyone), only while the rows are built."""
    spec = plan.scen.graph
    hdims = list(spec.homophily)
    H, n, maxv = len(hdims), pop.n, plan.maxv
    whole = (pop.lo, pop.hi) == (0, n)
    codes = np.zeros((max(H, 1), n), dtype=np.uint8)
    orders = np.zeros((max(H, 1), n), dtype=np.int32)
    starts = np.zeros((max(H, 1), maxv), dtype=np.int64)
    sizes = np.ones((max(H, 1), maxv), dtype=np.int64)
    for h, dim in enumerate(hdims):
        d = plan.dims.index(dim)
        codes[h] = pop.groups[d] if whole else dim_codes(plan, seed, d, n)
        orders[h] = _group_order(codes[h], maxv)
        cnt = np.bincount(codes[h], minlength=maxv)
        starts[h] = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        sizes[h] = np.maximum(cnt, 1)
    cum_mode = np.cumsum([spec.homophily[d] for d in hdims]).astype(np.float64)
    return _Picks(cum_mode, codes, orders, starts, sizes)


@njit(inline="always", cache=True)
def _target(i: int, e: int, n: int, m: int, key_mode: np.uint64, key_pick: np.uint64, cum_mode: np.ndarray,
            codes: np.ndarray, orders: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> int:
    """The other end of citizen i's e-th stub, or -1 for a self-tie (the rule of :func:`_stubs`)."""
    c = np.uint64(i * m + e)
    u = uniform(key_mode, c)
    v = uniform(key_pick, c)
    nh = cum_mode.shape[0]
    h = 0
    while h < nh and u >= cum_mode[h]:
        h += 1
    if h < nh:
        g = codes[h, i]
        j = int(orders[h, starts[h, g] + min(int(v * sizes[h, g]), sizes[h, g] - 1)])
    else:
        j = min(int(v * n), n - 1)
    return -1 if j == i else j


@njit(parallel=True, cache=True)
def _range_pairs(n: int, m: int, lo: int, hi: int, key_mode: np.uint64, key_pick: np.uint64, cum_mode: np.ndarray,
                 codes: np.ndarray, orders: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                 width: int) -> tuple[np.ndarray, np.ndarray]:
    """(row - lo, other end) of every stub direction whose row lies in ``[lo, hi)``.

    Two passes over all stubs in blocks of ``width`` openers (count, then write at each
    block's offset), so the pairs come out in the same order for any number of threads and
    nothing of size O(ties of the whole graph) is ever held."""
    nb = (n + width - 1) // width
    hits = np.zeros(nb + 1, dtype=np.int64)
    for b in prange(nb):
        k = 0
        for i in range(b * width, min(n, (b + 1) * width)):
            mine = lo <= i < hi
            for e in range(m):
                j = _target(i, e, n, m, key_mode, key_pick, cum_mode, codes, orders, starts, sizes)
                if j >= 0:
                    k += mine + (lo <= j < hi)
        hits[b + 1] = k
    for b in range(nb):
        hits[b + 1] += hits[b]
    rows = np.empty(hits[nb], dtype=np.int32)
    cols = np.empty(hits[nb], dtype=np.int32)
    for b in prange(nb):
        k = hits[b]
        for i in range(b * width, min(n, (b + 1) * width)):
            mine = lo <= i < hi
            for e in range(m):
                j = _target(i, e, n, m, key_mode, key_pick, cum_mode, codes, orders, starts, sizes)
                if j < 0:
                    continue
                if mine:
                    rows[k] = i - lo
                    cols[k] = j
                    k += 1
                if lo <= j < hi:
                    rows[k] = j - lo
                    cols[k] = i
                    k += 1
    return rows, cols


@njit(cache=True)
def _csr_rows(rows: np.ndarray, cols: np.ndarray, n: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """A CSR over all ``n`` citizens whose rows outside ``[lo, hi)`` are empty (rows unsorted)."""
    indptr = np.zeros(n + 1, dtype=np.int64)
    for k in range(rows.shape[0]):
        indptr[lo + rows[k] + 1] += 1
    for i in range(lo, n):
        indptr[i + 1] += indptr[i]
    fill = indptr[lo:hi].copy()
    indices = np.empty(rows.shape[0], dtype=np.int32)
    for k in range(rows.shape[0]):
        r = rows[k]
        indices[fill[r]] = cols[k]
        fill[r] += 1
    return indptr, indices


def build_rows(plan: Plan, pop: Population, seed: int, lo: int, hi: int) -> Graph:
    """The rows ``[lo, hi)`` of :func:`build`'s graph: what one shard holds (``indptr`` of the range only).

    Memory kept is O(ties of the range); while building, 5 bytes per citizen and homophily
    dimension (the codes and the group order every stub picks from); time is O(all stubs) but
    each stub costs two counter draws."""
    n = pop.n
    m = plan.scen.graph.contacts // 2
    if m == 0 or n < 2:
        return Graph.empty(hi - lo, lo)
    p = _picks(plan, pop, seed)
    rows, cols = _range_pairs(n, m, lo, hi, static_key(seed, "graph:mode"), static_key(seed, "graph:pick"),
                              p.cum_mode, p.codes, p.orders, p.starts, p.sizes, 1 << 14)
    del p
    # rows are already range-local (row - lo): a CSR of hi - lo rows
    k = hi - lo
    indptr, indices = _csr_rows(rows, cols, k, 0, k)
    del rows, cols
    deg = _sort_dedupe_rows(indptr, indices)
    indptr = _compact(indptr, indices, deg)
    indices = indices[: indptr[k]].copy()
    return Graph(indptr, indices, np.ones(indices.shape[0], dtype=np.uint8), lo)


def build(plan: Plan, pop: Population, seed: int) -> Graph:
    n = pop.n
    m = plan.scen.graph.contacts // 2
    if m == 0 or n < 2:
        return Graph.empty(n)
    p = _picks(plan, pop, seed)
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
    return Graph(indptr, indices, np.ones(indices.shape[0], dtype=np.uint8))
