"""Contacts in CSR form, built by a vectorised generator with homophily.

Each citizen opens ``contacts // 2`` ties. A tie goes to a random citizen of the same
group on a homophily dimension with that dimension's probability (region, occupation),
else to anyone. Ties are undirected, deduplicated and stored both ways, so the mean
degree is close to ``contacts``. Every draw is keyed by (seed, citizen, tie number), so
the graph does not depend on how the work is split; each row is sorted, so neither does
the order of neighbours. Building costs O(ties), with no global sort.

The whole graph (:func:`build`) is built a block of citizens at a time: every stub's other end
is drawn once, the reversed ties are partitioned by the block of their row, and each block's
rows are merged and deduplicated while they sit in cache -- no random write per tie into the
whole graph's arrays, which on a shared machine cost more than the draws.

A shard builds only the rows of its citizens ``[lo, hi)``, a :class:`Graph` whose ``indptr`` covers
the range only, with the range's first id as ``lo`` (:mod:`credsim.shard_graph`): the other end of
every tie is a pure function of (seed, opener, tie number) and of the group codes (themselves pure
functions of the citizen id), so both ends can compute it, and the rows are exactly the rows of
the whole graph.

Cutting a tie (a response) sets a bit in ``cut`` for both directions instead of
rebuilding the arrays: a bit a tie direction, not a byte (integrated's 16 ties: 2 B a citizen, not 16).
The bits say *cut*, not active, so that a graph no response cuts leaves them zero pages, not resident.
Every cut is made by the one serial pass of ``Respond``, so no two threads write one byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from credsim import threads
from credsim.plan import Plan
from credsim.population import Population, dim_codes
from credsim.rng import static_key, uniform


@dataclass
class Graph:
    """The rows of the citizens ``[lo, lo + len(indptr) - 1)``: citizen ``i``'s contacts are
    ``indices[indptr[i - lo]:indptr[i - lo + 1]]`` (global ids). One process holds every row
    (``lo`` 0); a shard only its own, so its ``indptr`` is as long as its range, not the population."""

    indptr: np.ndarray  # (rows + 1,) int32, int64 above 2^31 - 1 tie directions (offsets_dtype)
    indices: np.ndarray  # (E,) int32
    cut: np.ndarray  # (ceil(E / 8),) uint8 bits (no_cuts, is_cut, set_cut): tie e has been cut (a response)
    lo: int = 0  # the first row's citizen

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])

    @property
    def rows(self) -> int:
        return int(self.indptr.shape[0]) - 1

    def degree(self) -> np.ndarray:
        """Each held row's length (cut ties included), in row order."""
        return np.diff(self.indptr)

    def cut_flags(self) -> np.ndarray:
        """Whether each tie direction has been cut, one bool per entry of ``indices`` (for tests and tools)."""
        flags: np.ndarray = np.unpackbits(self.cut, bitorder="little")[:self.n_edges].astype(bool)
        return flags

    @staticmethod
    def empty(n: int, lo: int = 0) -> Graph:
        # every row is empty: a read-only zero-stride view costs no memory even at 100M citizens
        indptr: np.ndarray = np.broadcast_to(np.zeros(1, dtype=offsets_dtype(0)), (n + 1,))
        return Graph(indptr, np.zeros(0, dtype=np.int32), no_cuts(0), lo)


def offsets_dtype(bound: int) -> type:
    """The type of the row offsets (``indptr``) of a graph of at most ``bound`` tie directions: int32 up to
    2^31 - 1 (a population of 1.3e8 at 16 contacts), else int64. At 10^7 citizens that is 40 MB, 4 B a
    citizen, held for the whole run; the kernels read either."""
    return np.int32 if bound <= np.iinfo(np.int32).max else np.int64


def no_cuts(edges: int) -> np.ndarray:
    """The cut bits of ``edges`` tie directions, none cut (zero pages until a response cuts one)."""
    return np.zeros((edges + 7) // 8, dtype=np.uint8)


@njit(inline="always", cache=True)
def is_cut(cut: np.ndarray, e: int) -> int:
    """1 when tie direction ``e`` has been cut, else 0."""
    return (cut[e >> 3] >> (e & 7)) & 1


@njit(inline="always", cache=True)
def set_cut(cut: np.ndarray, e: int) -> None:
    """Cut tie direction ``e``."""
    cut[e >> 3] |= np.uint8(1 << (e & 7))


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


_ORDER_BLOCK = 1 << 16  # citizens a task counts and places in :func:`_group_order_parallel`


@njit(parallel=True, cache=True)
def _group_order_parallel(codes: np.ndarray, maxv: int) -> np.ndarray:
    """:func:`_group_order` by blocks of citizens: each block counts its codes, a prefix sum over
    (code, block) gives each block its first slot per code, and each block places its ids in id
    order -- the same stable order, whatever the threads."""
    n = codes.shape[0]
    nb = (n + _ORDER_BLOCK - 1) // _ORDER_BLOCK
    cnt = np.zeros((nb, maxv), dtype=np.int64)
    for b in prange(nb):
        for i in range(b * _ORDER_BLOCK, min(n, (b + 1) * _ORDER_BLOCK)):
            cnt[b, codes[i]] += 1
    at = np.empty((nb, maxv), dtype=np.int64)
    q = 0
    for g in range(maxv):
        for b in range(nb):
            at[b, g] = q
            q += cnt[b, g]
    out = np.empty(n, dtype=np.int32)
    for b in prange(nb):
        pos = at[b].copy()
        for i in range(b * _ORDER_BLOCK, min(n, (b + 1) * _ORDER_BLOCK)):
            out[pos[codes[i]]] = i
            pos[codes[i]] += 1
    return out


@dataclass
class Picks:
    """What the stub rule reads: homophily modes and, per homophily dimension, the citizens by group."""

    cum_mode: np.ndarray  # (H,) cumulative homophily probabilities
    codes: np.ndarray  # (H, N) uint8 group codes
    orders: np.ndarray  # (H, N) int32 citizen ids sorted by group
    starts: np.ndarray  # (H, V) first position of each group in ``orders``
    sizes: np.ndarray  # (H, V) group sizes (at least 1)


def pick_tables(plan: Plan, pop: Population, seed: int) -> Picks:
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
        orders[h] = (_group_order_parallel if threads.parallel_for(n) else _group_order)(codes[h], maxv)
        cnt = np.bincount(codes[h], minlength=maxv)
        starts[h] = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        sizes[h] = np.maximum(cnt, 1)
    cum_mode = np.cumsum([spec.homophily[d] for d in hdims]).astype(np.float64)
    return Picks(cum_mode, codes, orders, starts, sizes)


@njit(inline="always", cache=True)
def _target(i: int, e: int, n: int, m: int, key_mode: np.uint64, key_pick: np.uint64, cum_mode: np.ndarray,
            codes: np.ndarray, orders: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> int:
    """The other end of citizen i's e-th stub, or -1 for a self-tie (the rule of :func:`_stub_block`)."""
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


# Rows are built a block of 2**14 citizens at a time: a block's row starts (128 KiB) and rows (about
# 0.5 MB at 8 contacts) stay in cache while they are filled, merged and deduplicated, and every tie
# is moved to its row's block once, by a partition that writes a few hundred sequential streams
# instead of one random write per tie. (Measured at 2*10^6 citizens, one thread: 2**14 cost 15%
# less than 2**16.)
_SHIFT = 14  # 16,384 citizens a block
# at most this many blocks (their partition tables are blocks squared): wider blocks beyond 3*10^7 citizens
_MAX_BLOCKS = 2048


# openers whose stubs are drawn before their other ends are looked up (positions: 16 KiB a tie a citizen opens)
_SUB = 2048


@njit(inline="always", cache=True)
def _mode(i: int, e: int, m: int, nh: int, key_mode: np.uint64, key_pick: np.uint64,
          cum_mode: np.ndarray) -> tuple[int, int, float]:
    """Citizen i's e-th stub's draws (the rule of :func:`_target`): the homophily dimension ``h`` (``nh``: to
    anyone), the dimension whose group code the placing reads (``hh``; dimension 0 stands in when there is
    none: the tables have a row) and the pick ``v``."""
    c = np.uint64(i * m + e)
    u = uniform(key_mode, c)
    v = uniform(key_pick, c)
    h = 0
    for k in range(nh):  # the first k with u < cum_mode[k], without a branch (cum_mode rises)
        h += u >= cum_mode[k]
    return h, min(h, max(nh - 1, 0)), v


@njit(inline="always", cache=True)
def _place(h: int, hh: int, g: int, v: float, n: int, nh: int, starts: np.ndarray, sizes: np.ndarray) -> int:
    """A stub's position in the flattened group orders, or, negative, ``-1 -`` its other end (a tie to anyone).
    Both candidates, then a select: whether the tie stays in the group is a draw the CPU cannot predict."""
    size = sizes[hh, g]
    within = hh * n + starts[hh, g] + min(int(v * size), size - 1)
    anyone = -1 - min(int(v * n), n - 1)
    return within if h < nh else anyone


@njit(inline="always", cache=True)
def _position(i: int, e: int, n: int, m: int, nh: int, key_mode: np.uint64, key_pick: np.uint64, cum_mode: np.ndarray,
              codes: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> int:
    """Citizen i's e-th stub drawn (the rule of :func:`_target`) but not looked up: :func:`_place`."""
    h, hh, v = _mode(i, e, m, nh, key_mode, key_pick, cum_mode)
    return _place(h, hh, codes[hh, i], v, n, nh, starts, sizes)


@njit(inline="always", cache=True)
def _resolve(x: int, i: int, flat: np.ndarray) -> int:
    """The other end a :func:`_position` names (-1 for a self-tie)."""
    looked = flat[max(x, 0)]
    j = looked if x >= 0 else -1 - x
    return -1 if j == i else j


@njit(inline="always", cache=True)
def _stub_block(b: int, shift: int, base: int, nloc: int, n: int, m: int, key_mode: np.uint64, key_pick: np.uint64,
                cum_mode: np.ndarray, codes: np.ndarray, orders: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                tgt: np.ndarray, counts: np.ndarray) -> None:
    """The stubs of opener block ``b`` of the openers ``[base, base + nloc)`` into ``tgt`` (indexed from
    ``base``; the rule of :func:`_target`) and, per target block of the same range, how many of them point
    there; the last column of ``counts`` counts those that point outside the range.

    Two passes over ``_SUB`` openers at a time: the draws give each stub a position in ``orders``
    (or, negative, its other end directly), then a short loop looks the positions up. The
    lookups are random reads of a table of 4 bytes a citizen, mostly cache misses; a loop doing
    nothing else keeps many of them in flight instead of one per long iteration."""
    nh = cum_mode.shape[0]
    flat = orders.ravel()
    pos = np.empty(_SUB * m, dtype=np.int64)
    elsewhere = counts.shape[1] - 1
    end = base + min(nloc, (b + 1) << shift)
    for s0 in range(base + (b << shift), end, _SUB):
        s1 = min(end, s0 + _SUB)
        for i in range(s0, s1):
            for e in range(m):
                pos[(i - s0) * m + e] = _position(i, e, n, m, nh, key_mode, key_pick, cum_mode, codes, starts, sizes)
        for i in range(s0, s1):
            for e in range(m):
                j = _resolve(pos[(i - s0) * m + e], i, flat)
                tgt[(i - base) * m + e] = j
                if j >= 0:
                    r = j - base
                    counts[b, (r >> shift) if 0 <= r < nloc else elsewhere] += 1


@njit(cache=True)
def _stubs_serial(shift: int, base: int, nloc: int, n: int, m: int, key_mode: np.uint64, key_pick: np.uint64,
                  cum_mode: np.ndarray, codes: np.ndarray, orders: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                  tgt: np.ndarray, counts: np.ndarray) -> None:
    for b in range(counts.shape[0]):
        _stub_block(b, shift, base, nloc, n, m, key_mode, key_pick, cum_mode, codes, orders, starts, sizes, tgt,
                    counts)


@njit(parallel=True, cache=True)
def _stubs_parallel(shift: int, base: int, nloc: int, n: int, m: int, key_mode: np.uint64, key_pick: np.uint64,
                    cum_mode: np.ndarray, codes: np.ndarray, orders: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                    tgt: np.ndarray, counts: np.ndarray) -> None:
    for b in prange(counts.shape[0]):
        _stub_block(b, shift, base, nloc, n, m, key_mode, key_pick, cum_mode, codes, orders, starts, sizes, tgt,
                    counts)


@njit(cache=True)
def _layout(counts: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each block's rows start in ``indices`` (its own stubs, then the ties opened towards it),
    and where each opener block writes its reverse ties: in ``indices`` and in the row-offset list."""
    nb = counts.shape[0]
    region = np.zeros(nb + 1, dtype=np.int64)
    slot = np.empty((nb, nb), dtype=np.int64)
    rslot = np.empty((nb, nb), dtype=np.int64)
    q = 0
    for t in range(nb):
        pos = region[t] + own[t]
        for b in range(nb):
            slot[b, t] = pos
            rslot[b, t] = q
            pos += counts[b, t]
            q += counts[b, t]
        region[t + 1] = pos
    return region, slot, rslot


@njit(inline="always", cache=True)
def _scatter_block(b: int, shift: int, n: int, m: int, tgt: np.ndarray, slot: np.ndarray, rslot: np.ndarray,
                   indices: np.ndarray, low: np.ndarray) -> None:
    """Opener block ``b``'s ties, reversed, into the blocks of their other ends: the opener id in
    that block's region of ``indices``, the row within the block in ``low``."""
    at = slot[b].copy()
    rat = rslot[b].copy()
    for i in range(b << shift, min(n, (b + 1) << shift)):
        for e in range(m):
            j = tgt[i * m + e]
            if j >= 0:
                t = j >> shift
                indices[at[t]] = i
                low[rat[t]] = j & ((1 << shift) - 1)
                at[t] += 1
                rat[t] += 1


@njit(cache=True)
def _scatter_serial(shift: int, n: int, m: int, tgt: np.ndarray, slot: np.ndarray, rslot: np.ndarray,
                    indices: np.ndarray, low: np.ndarray) -> None:
    for b in range(slot.shape[0]):
        _scatter_block(b, shift, n, m, tgt, slot, rslot, indices, low)


@njit(parallel=True, cache=True)
def _scatter_parallel(shift: int, n: int, m: int, tgt: np.ndarray, slot: np.ndarray, rslot: np.ndarray,
                      indices: np.ndarray, low: np.ndarray) -> None:
    for b in prange(slot.shape[0]):
        _scatter_block(b, shift, n, m, tgt, slot, rslot, indices, low)


@njit(inline="always", cache=True)
def _rows_block(t: int, shift: int, n: int, m: int, tgt: np.ndarray, region: np.ndarray, own: np.ndarray, rstart: int,
                indices: np.ndarray, low: np.ndarray, deg: np.ndarray) -> None:
    """The sorted, deduplicated rows of block ``t``, packed from the start of its region; ``deg`` the
    length of each row.

    A row is its own stubs (at most ``m``, in ``tgt``) and the ties opened towards it, which arrive
    already in id order (the partition keeps opener order). So each row's slot gets its reversed
    ties at its end; its own stubs are sorted in a few registers and merged with them, repeats
    dropped, writing from the block's packing point -- which never passes what is still to read. The
    merge picks with arithmetic, not branches: which list is next is a coin toss the CPU would
    mispredict half the time (30% less time for the rows at 2*10^6 citizens, one thread)."""
    b0 = t << shift
    b1 = min(n, (t + 1) << shift)
    r0 = region[t]
    nrev = region[t + 1] - r0 - own[t]
    rev = indices[r0 + own[t]: region[t + 1]].copy()  # overwritten below: the rows fill the whole region
    start = np.zeros(b1 - b0 + 1, dtype=np.int64)
    for i in range(b0, b1):
        for e in range(m):
            if tgt[i * m + e] >= 0:
                start[i - b0 + 1] += 1
    for q in range(nrev):
        start[low[rstart + q] + 1] += 1
    for r in range(b1 - b0):
        start[r + 1] += start[r]
    fill = start[1:].copy()
    for q in range(nrev - 1, -1, -1):  # from the end of each slot backwards: in id order again
        r = low[rstart + q]
        fill[r] -= 1
        indices[r0 + fill[r]] = rev[q]
    mine = np.empty(m, dtype=np.int64)
    w = r0
    for r in range(b1 - b0):
        i = b0 + r
        k = 0
        for e in range(m):
            j = tgt[i * m + e]
            if j >= 0:
                c = k - 1
                while c >= 0 and mine[c] > j:
                    mine[c + 1] = mine[c]
                    c -= 1
                mine[c + 1] = j
                k += 1
        a = 0
        q = r0 + start[r] + k
        end = r0 + start[r + 1]
        first = w
        last = -1
        while a < k and q < end:  # both lists open: take the smaller, repeats written over
            y = mine[a]
            z = indices[q]
            own_first = y <= z
            x = y if own_first else z
            a += own_first
            q += 1 - own_first
            indices[w] = x  # never past what is still to read (w <= q - (k - a))
            w += x != last
            last = x
        while a < k:
            x = mine[a]
            a += 1
            indices[w] = x
            w += x != last
            last = x
        while q < end:
            x = indices[q]
            q += 1
            indices[w] = x
            w += x != last
            last = x
        deg[i] = w - first


@njit(cache=True)
def _rows_serial(shift: int, n: int, m: int, tgt: np.ndarray, region: np.ndarray, own: np.ndarray, rfirst: np.ndarray,
                 indices: np.ndarray, low: np.ndarray, deg: np.ndarray) -> None:
    for t in range(own.shape[0]):
        _rows_block(t, shift, n, m, tgt, region, own, rfirst[t], indices, low, deg)


@njit(parallel=True, cache=True)
def _rows_parallel(shift: int, n: int, m: int, tgt: np.ndarray, region: np.ndarray, own: np.ndarray, rfirst: np.ndarray,
                   indices: np.ndarray, low: np.ndarray, deg: np.ndarray) -> None:
    for t in prange(own.shape[0]):
        _rows_block(t, shift, n, m, tgt, region, own, rfirst[t], indices, low, deg)


@njit(cache=True)
def _fill_pack(shift: int, region: np.ndarray, deg: np.ndarray, indices: np.ndarray, indptr: np.ndarray) -> None:
    n = deg.shape[0]
    indptr[0] = 0
    for i in range(n):
        indptr[i + 1] = indptr[i] + deg[i]
    for t in range(region.shape[0] - 1):
        src = region[t]
        dst = indptr[t << shift]
        size = indptr[min(n, (t + 1) << shift)] - dst
        if src != dst:
            for a in range(size):
                indices[dst + a] = indices[src + a]


def pack(shift: int, region: np.ndarray, deg: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Move each block's packed rows left over the slack duplicates left (in place, in block order:
    a forward copy never overwrites what it has still to read) and return ``indptr``, in the type
    :func:`offsets_dtype` gives for ``indices``' length (every row fits in it, duplicates included)."""
    indptr = np.empty(deg.shape[0] + 1, dtype=offsets_dtype(indices.shape[0]))
    _fill_pack(shift, region, deg, indices, indptr)
    return indptr


def _block_shift(n: int) -> int:
    """log2 of the block width: 2**14 citizens, wider when that would make more than _MAX_BLOCKS blocks."""
    shift = _SHIFT
    while (n >> shift) >= _MAX_BLOCKS:
        shift += 1
    return shift


def build(plan: Plan, pop: Population, seed: int) -> Graph:
    """The whole contact graph, a block of citizens at a time (see :data:`_SHIFT`).

    Every stub's other end is drawn once (in parallel by opener block), counted by the block of
    its other end, then each reversed tie is written into its block's region of ``indices``; each
    block then gathers its rows, sorts and deduplicates them in cache. The rows are sets (sorted,
    no repeats), so neither the block width nor the number of threads changes a byte."""
    n = pop.n
    m = plan.scen.graph.contacts // 2
    if m == 0 or n < 2:
        return Graph.empty(n)
    shift = _block_shift(n)
    nb = ((n - 1) >> shift) + 1
    par = threads.parallel_for(n * m)
    p = pick_tables(plan, pop, seed)
    # the big arrays come from NumPy: it asks for huge pages, and first touches are costly here
    tgt = np.empty(n * m, dtype=np.int32)
    counts = np.zeros((nb, nb + 1), dtype=np.int64)  # the last column (elsewhere) stays 0: every tie is in range
    (_stubs_parallel if par else _stubs_serial)(
        shift, 0, n, n, m, static_key(seed, "graph:mode"), static_key(seed, "graph:pick"),
        p.cum_mode, p.codes, p.orders, p.starts, p.sizes, tgt, counts,
    )
    del p
    own = counts.sum(axis=1)
    region, slot, rslot = _layout(counts, own)
    indices = np.empty(int(region[nb]), dtype=np.int32)
    low = np.empty(int(own.sum()), dtype=np.uint16 if shift <= 16 else np.uint32)
    (_scatter_parallel if par else _scatter_serial)(shift, n, m, tgt, slot, rslot, indices, low)
    deg = np.empty(n, dtype=np.int32)  # a row holds at most n - 1 ties
    (_rows_parallel if par else _rows_serial)(shift, n, m, tgt, region, own, rslot[0].copy(), indices, low, deg)
    del tgt, low
    indptr = pack(shift, region, deg, indices)
    indices = indices[: indptr[n]]  # a view: duplicates are rare, the slack is tiny
    return Graph(indptr, indices, no_cuts(indices.shape[0]))
