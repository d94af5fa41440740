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

A shard builds only the rows of its citizens ``[lo, hi)`` (a :class:`Graph` whose ``indptr`` covers
the range only, with the range's first id as ``lo``). The other end of every tie is a pure function
of (seed, opener, tie number) and of the group codes (themselves pure functions of the citizen id),
so both ends can compute it. Each shard draws only the stubs its own citizens open
(:func:`draw_stubs_lean`) and tells every other shard which of them point at its citizens: a bit a
stub, or positions when few do (:class:`Marks`); the receiver draws those stubs again by the same
rule (:func:`marked_positions`, :func:`ties_of`) and merges its rows as :func:`build` does
(:func:`rows_from`). A tie crosses as a bit, not as its two ends, and no shard draws another's
stubs. Nor does a shard hold the whole population's group codes and order that a pick within a
group reads (5 bytes a citizen and homophily dimension): it keeps only the groups' sizes
(:class:`Lean`), and resolves all the picks it needs at once, by one pass over the population that
draws each citizen's code again (:func:`resolve`). A range built alone, with no
other shard to swap with, draws everyone's stubs itself (:func:`build_rows`). Either way the rows
are exactly the rows of the whole graph, so results do not depend on the layout.

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
from credsim.population import Population, code_at, code_rule, dim_codes
from credsim.rng import static_key, uniform


@dataclass
class Graph:
    """The rows of the citizens ``[lo, lo + len(indptr) - 1)``: citizen ``i``'s contacts are
    ``indices[indptr[i - lo]:indptr[i - lo + 1]]`` (global ids). One process holds every row
    (``lo`` 0); a shard only its own, so its ``indptr`` is as long as its range, not the population."""

    indptr: np.ndarray  # (rows + 1,) int64
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
        indptr = np.broadcast_to(np.zeros(1, dtype=np.int64), (n + 1,))
        return Graph(indptr, np.zeros(0, dtype=np.int32), no_cuts(0), lo)


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
def _pack(shift: int, region: np.ndarray, deg: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Move each block's packed rows left over the slack duplicates left (in place, in block order:
    a forward copy never overwrites what it has still to read) and return ``indptr``."""
    n = deg.shape[0]
    indptr = np.empty(n + 1, dtype=np.int64)
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
    return indptr


@dataclass
class Stubs:
    """The ties the citizens ``[lo, hi)`` open: each one's ``m`` other ends (global ids, -1 for a self-tie), in
    ``tgt`` from ``lo``; ``counts[b, t]``, how many of opener block ``b``'s point into block ``t`` of the same
    range (the last column: elsewhere). What a shard draws before the shards swap the ties they open
    towards each other's citizens."""

    lo: int
    hi: int
    m: int
    shift: int  # log2 of the block width over the range
    tgt: np.ndarray  # ((hi - lo) * m,) int32
    counts: np.ndarray  # (blocks, blocks + 1) int64


def draw_stubs(plan: Plan, pop: Population, seed: int, lo: int, hi: int, picks: Picks | None = None) -> Stubs:
    """The ties the citizens ``[lo, hi)`` open, drawn by the rule every range shares (:func:`_target`): work
    and memory O(hi - lo), whatever the population (the pick tables aside: 5 bytes a citizen of the
    population and homophily dimension)."""
    n, k = pop.n, hi - lo
    m = plan.scen.graph.contacts // 2
    shift = _block_shift(k)
    nb = ((k - 1) >> shift) + 1 if k else 0
    p = picks if picks is not None else pick_tables(plan, pop, seed)
    tgt = np.empty(k * m, dtype=np.int32)
    counts = np.zeros((nb, nb + 1), dtype=np.int64)
    (_stubs_parallel if threads.parallel_for(k * m) else _stubs_serial)(
        shift, lo, k, n, m, static_key(seed, "graph:mode"), static_key(seed, "graph:pick"),
        p.cum_mode, p.codes, p.orders, p.starts, p.sizes, tgt, counts,
    )
    return Stubs(lo, hi, m, shift, tgt, counts)


@njit(cache=True)
def _towards(tgt: np.ndarray, m: int, base: int, a: int, b: int) -> np.ndarray:
    """(other end, opener) of every tie in ``tgt`` (openers from ``base``) whose other end is in ``[a, b)``, in
    opener order."""
    k = 0
    for x in range(tgt.shape[0]):
        k += a <= tgt[x] < b
    out = np.empty((2, k), dtype=np.int32)
    q = 0
    for x in range(tgt.shape[0]):
        j = tgt[x]
        if a <= j < b:
            out[0, q] = j
            out[1, q] = base + x // m
            q += 1
    return out


def ties_towards(stubs: Stubs, a: int, b: int, first: int = 0, last: int | None = None) -> np.ndarray:
    """The ties ``stubs``' openers (those from ``first`` to ``last``, counted from ``stubs.lo``) open towards
    the citizens ``[a, b)``: a (2, k) int32 array of (other end, opener) in opener order -- what one shard
    sends the shard owning ``[a, b)``, 8 bytes a tie."""
    m = stubs.m
    last = stubs.hi - stubs.lo if last is None else last
    return _towards(stubs.tgt[first * m: last * m], m, stubs.lo + first, a, b)


# the stubs of each shard one round of the swap between shards covers (a bit each: 1 MiB a destination)
SWAP_STUBS = 1 << 23


@dataclass
class Marks:
    """Which of a range's stubs ``[first, first + count)`` (counted from its first citizen's first stub, ``m`` a
    citizen) point into another range: a bit a stub, or their positions when they are few (fewer than
    one in 32). What one shard tells another: the receiver draws those stubs again by the rule both
    share (:func:`_target`), so a tie crosses as a bit, not as the 8 bytes of its two ends."""

    lo: int  # the sender's first citizen
    first: int
    count: int
    bits: np.ndarray  # uint8, little bit order; empty when ``positions`` holds them
    positions: np.ndarray  # uint32 from ``first``; empty when ``bits`` holds them


@njit(inline="always", cache=True)
def _range_of(bounds: np.ndarray, j: int) -> int:
    """The range ``d`` with ``bounds[d] <= j < bounds[d + 1]`` (a search without branches: which range a
    random tie lands in is a coin toss the CPU would mispredict)."""
    a, width = 0, bounds.shape[0] - 1
    while width > 1:
        half = width >> 1
        a += half * (bounds[a + half] <= j)
        width -= half
    return a


@njit(cache=True)
def _hits(seg: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """How many stubs of ``seg`` point into each range."""
    hits = np.zeros(bounds.shape[0] - 1, dtype=np.int64)
    for q in range(seg.shape[0]):
        if seg[q] >= 0:
            hits[_range_of(bounds, seg[q])] += 1
    return hits


@njit(cache=True)
def _mark(seg: np.ndarray, bounds: np.ndarray, skip: int, dense: np.ndarray, bits: np.ndarray, offsets: np.ndarray,
          positions: np.ndarray) -> None:
    """Set the bit of every stub of ``seg`` pointing into a dense range ``d`` (``bits[dense[d]]``), or write its
    position in a sparse one's slice of ``positions`` (from ``offsets[d]``)."""
    at = offsets[:-1].copy()
    for q in range(seg.shape[0]):
        j = seg[q]
        if j < 0 or bounds[skip] <= j < bounds[skip + 1]:  # no self-tie; the sender's own range stays
            continue
        d = _range_of(bounds, j)
        if dense[d] >= 0:
            bits[dense[d], q >> 3] |= np.uint8(1 << (q & 7))
        else:
            positions[at[d]] = q
            at[d] += 1


def marks_towards(stubs: Stubs, cuts: list[int], first: int, last: int) -> list[Marks]:
    """For every range of ``cuts``, the :class:`Marks` of the stubs of ``stubs``' openers ``first`` to ``last``
    (counted from ``stubs.lo``) that point into it; none for ``stubs``' own range (those stay). One pass
    over the stubs, whatever the number of ranges."""
    m, k = stubs.m, len(cuts) - 1
    seg = stubs.tgt[first * m: last * m]
    bounds = np.asarray(cuts, dtype=np.int64)
    skip = cuts.index(stubs.lo)
    hits = _hits(seg, bounds)
    hits[skip] = 0
    is_dense = 32 * hits >= max(seg.shape[0], 1)
    dense = np.where(is_dense, np.cumsum(is_dense) - 1, -1).astype(np.int64)
    bits = np.zeros((int(is_dense.sum()), (seg.shape[0] + 7) // 8), dtype=np.uint8)
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(np.where(is_dense, 0, hits), out=offsets[1:])
    positions = np.empty(int(offsets[k]), dtype=np.uint32)
    _mark(seg, bounds, skip, dense, bits, offsets, positions)
    none_b, none_p = np.zeros(0, np.uint8), np.zeros(0, np.uint32)
    return [Marks(stubs.lo, first * m, int(seg.shape[0]), bits[dense[d]] if dense[d] >= 0 else none_b,
                  positions[offsets[d]:offsets[d + 1]] if dense[d] < 0 else none_p) for d in range(k)]


@njit(cache=True)
def _set_bits(bits: np.ndarray, count: int, first: int) -> np.ndarray:
    """``first`` plus the index of every set bit among the first ``count`` (little bit order)."""
    k = 0
    for b in range(bits.shape[0]):
        x = bits[b]
        while x:
            k += 1
            x &= x - np.uint8(1)
    out = np.empty(k, dtype=np.int64)
    q = 0
    for b in range(bits.shape[0]):
        x = bits[b]
        for t in range(8):
            if (x >> t) & 1 and (b << 3) + t < count:
                out[q] = first + (b << 3) + t
                q += 1
    return out[:q]


@dataclass
class Lean:
    """What a shard draws stubs from instead of :class:`Picks`: neither the whole population's group codes
    nor its group order (5 bytes a citizen and homophily dimension: 14 GB a shard at 1.4e9 with two),
    only each group's start and size in the order and each dimension's code rule. A stub that picks
    within a group names a position in the order; the positions a shard needs are resolved together by
    one pass over the population that draws each citizen's code again (:func:`resolve`), holding a bit a
    position and a running count a 64 (0.25 bytes a citizen and dimension)."""

    cum_mode: np.ndarray  # (H,) cumulative homophily probabilities
    starts: np.ndarray  # (max(H, 1), V) first position of each group in the order
    sizes: np.ndarray  # (max(H, 1), V) group sizes (at least 1)
    keys: np.ndarray  # (max(H, 1),) uint64: each homophily dimension's code key (population.code_rule)
    cums: np.ndarray  # (max(H, 1), V + 1) its cumulative shares, the first ``lens[h]`` of them used
    lens: np.ndarray  # (max(H, 1),) int64
    hdims: list[int]  # the homophily dimensions' indices among the plan's dimensions


@njit(cache=True)
def _count_codes(key: np.uint64, cum: np.ndarray, n: int, maxv: int) -> np.ndarray:
    """How many of the ``n`` citizens draw each code (population.code_at)."""
    cnt = np.zeros(maxv, dtype=np.int64)
    for i in range(n):
        cnt[code_at(key, cum, i)] += 1
    return cnt


def lean_tables(plan: Plan, seed: int, n: int) -> Lean:
    """The :class:`Lean` tables of an ``n``-citizen population: every code is drawn once and counted, none kept."""
    spec = plan.scen.graph
    hdims = [plan.dims.index(d) for d in spec.homophily]
    rows, maxv = max(len(hdims), 1), plan.maxv
    starts = np.zeros((rows, maxv), dtype=np.int64)
    sizes = np.ones((rows, maxv), dtype=np.int64)
    keys = np.zeros(rows, dtype=np.uint64)
    cums = np.full((rows, maxv + 1), 2.0)
    lens = np.ones(rows, dtype=np.int64)
    for h, d in enumerate(hdims):
        key, cum = code_rule(plan, seed, d)
        keys[h], lens[h] = key, cum.shape[0]
        cums[h, : cum.shape[0]] = cum
        cnt = _count_codes(key, cum, n, maxv)
        starts[h] = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        sizes[h] = np.maximum(cnt, 1)
    cum_mode = np.cumsum([spec.homophily[d] for d in spec.homophily]).astype(np.float64)
    return Lean(cum_mode, starts, sizes, keys, cums, lens, hdims)


@njit(cache=True)
def _own_positions(lo: int, k: int, n: int, m: int, key_mode: np.uint64, key_pick: np.uint64, cum_mode: np.ndarray,
                   codes: np.ndarray, starts: np.ndarray, sizes: np.ndarray, x: np.ndarray) -> None:
    """The stubs of the citizens ``[lo, lo + k)`` into ``x`` as :func:`_place` positions (``codes`` from ``lo``)."""
    nh = cum_mode.shape[0]
    for a in range(k):
        for e in range(m):
            h, hh, v = _mode(lo + a, e, m, nh, key_mode, key_pick, cum_mode)
            x[a * m + e] = _place(h, hh, codes[hh, a], v, n, nh, starts, sizes)


@njit(cache=True)
def _marked_positions(pos: np.ndarray, lo: int, n: int, m: int, key_mode: np.uint64, key_pick: np.uint64,
                      cum_mode: np.ndarray, keys: np.ndarray, cums: np.ndarray, lens: np.ndarray, starts: np.ndarray,
                      sizes: np.ndarray, x: np.ndarray, ops: np.ndarray) -> None:
    """The stubs at ``pos`` (from citizen ``lo``'s first) as :func:`_place` positions, each opener's group code
    drawn again from its id; ``ops`` their openers."""
    nh = cum_mode.shape[0]
    for q in range(pos.shape[0]):
        a = pos[q] // m
        i = lo + a
        h, hh, v = _mode(i, pos[q] - a * m, m, nh, key_mode, key_pick, cum_mode)
        x[q] = _place(h, hh, code_at(keys[hh], cums[hh, : lens[hh]], i), v, n, nh, starts, sizes)
        ops[q] = i


@njit(inline="always", cache=True)
def _popcount(w: np.uint64) -> int:
    w = w - ((w >> np.uint64(1)) & np.uint64(0x5555555555555555))
    w = (w & np.uint64(0x3333333333333333)) + ((w >> np.uint64(2)) & np.uint64(0x3333333333333333))
    w = (w + (w >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((w * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True)
def _set_positions(x: np.ndarray, bits: np.ndarray) -> None:
    for q in range(x.shape[0]):
        p = x[q]
        if p >= 0:
            bits[p >> 6] |= np.uint64(1) << np.uint64(p & 63)


@njit(cache=True)
def _ranks(bits: np.ndarray) -> np.ndarray:
    """How many bits are set before each 64-bit word."""
    rank = np.zeros(bits.shape[0] + 1, dtype=np.int64)
    for w in range(bits.shape[0]):
        rank[w + 1] = rank[w] + _popcount(bits[w])
    return rank


@njit(cache=True)
def _stream(base: int, n: int, key: np.uint64, cum: np.ndarray, starts: np.ndarray, bits: np.ndarray, rank: np.ndarray,
            answers: np.ndarray) -> None:
    """Walk the population in id order, giving each citizen its position in its group's order (a running
    count a group), and answer the positions marked in ``bits``."""
    cnt = np.zeros(starts.shape[0], dtype=np.int64)
    for i in range(n):
        g = code_at(key, cum, i)
        p = base + starts[g] + cnt[g]
        cnt[g] += 1
        w = p >> 6
        b = np.uint64(1) << np.uint64(p & 63)
        if bits[w] & b:
            answers[rank[w] + _popcount(bits[w] & (b - np.uint64(1)))] = i


@njit(cache=True)
def _answer(x: np.ndarray, bits: np.ndarray, rank: np.ndarray, answers: np.ndarray) -> None:
    """Each position in ``x`` replaced by its citizen, in place (a negative ``x`` is ``-1 -`` a citizen)."""
    for q in range(x.shape[0]):
        p = x[q]
        if p >= 0:
            w = p >> 6
            x[q] = answers[rank[w] + _popcount(bits[w] & ((np.uint64(1) << np.uint64(p & 63)) - np.uint64(1)))]
        else:
            x[q] = -1 - p


def resolve(lean: Lean, n: int, xs: list[np.ndarray]) -> None:
    """Replace every :func:`_place` position in ``xs`` by the citizen at it, in place: what looking it up in
    :class:`Picks`' group order gives, by one pass over the population per homophily dimension."""
    total = max(len(lean.hdims), 1) * n
    bits = np.zeros((total + 63) >> 6, dtype=np.uint64)
    for x in xs:
        _set_positions(x, bits)
    rank = _ranks(bits)
    answers = np.empty(int(rank[-1]), dtype=np.int32)
    if answers.shape[0]:
        for h in range(len(lean.hdims)):
            _stream(h * n, n, lean.keys[h], lean.cums[h, : lean.lens[h]], lean.starts[h], bits, rank, answers)
    for x in xs:
        _answer(x, bits, rank, answers)


@njit(cache=True)
def _own_targets(x: np.ndarray, lo: int, k: int, m: int, shift: int, tgt: np.ndarray, counts: np.ndarray) -> None:
    """Resolved stubs into ``tgt`` (a self-tie as -1) and, per opener block, how many point into each block of
    the range ``[lo, lo + k)`` (the last column: elsewhere), as :func:`_stub_block` counts them."""
    elsewhere = counts.shape[1] - 1
    for a in range(k):
        for e in range(m):
            j = x[a * m + e]
            j = -1 if j == lo + a else j
            tgt[a * m + e] = j
            if j >= 0:
                r = j - lo
                counts[a >> shift, (r >> shift) if 0 <= r < k else elsewhere] += 1


def draw_stubs_lean(plan: Plan, pop: Population, seed: int, lo: int, hi: int, lean: Lean) -> Stubs:
    """:func:`draw_stubs` from :class:`Lean` tables: the same stubs, with memory O(hi - lo) (and 0.25 bytes a
    citizen of the population and homophily dimension while the positions are resolved)."""
    n, k = pop.n, hi - lo
    m = plan.scen.graph.contacts // 2
    shift = _block_shift(k)
    nb = ((k - 1) >> shift) + 1 if k else 0
    codes = np.zeros((max(len(lean.hdims), 1), k), dtype=np.uint8)
    for h, d in enumerate(lean.hdims):
        codes[h] = pop.groups[d, lo:hi]
    x: np.ndarray = np.empty(k * m, dtype=_position_dtype(lean, n))
    _own_positions(lo, k, n, m, static_key(seed, "graph:mode"), static_key(seed, "graph:pick"), lean.cum_mode,
                   codes, lean.starts, lean.sizes, x)
    del codes
    resolve(lean, n, [x])
    tgt = np.empty(k * m, dtype=np.int32)
    counts = np.zeros((nb, nb + 1), dtype=np.int64)
    _own_targets(x, lo, k, m, shift, tgt, counts)
    return Stubs(lo, hi, m, shift, tgt, counts)


def _position_dtype(lean: Lean, n: int) -> type:
    """int32 while every position fits (H * n below 2**31), else int64."""
    return np.int32 if max(len(lean.hdims), 1) * n < 2**31 else np.int64


@dataclass
class Marked:
    """The stubs one shard's marks name, drawn again up to their positions: resolved with every other
    shard's at once (:func:`resolve`), they become the (other end, opener) ties :func:`ties_towards` gives."""

    x: np.ndarray  # positions (:func:`_place`), then other ends
    ops: np.ndarray  # int32 openers


def marked_positions(marks: Marks, lean: Lean, seed: int, n: int, m: int) -> Marked:
    """The stubs ``marks`` names, drawn again by the rule up to their positions in the group order."""
    if marks.bits.shape[0]:
        pos = _set_bits(marks.bits, marks.count, marks.first)
    else:
        pos = marks.positions.astype(np.int64) + marks.first
    x: np.ndarray = np.empty(pos.shape[0], dtype=_position_dtype(lean, n))
    ops = np.empty(pos.shape[0], dtype=np.int32)
    _marked_positions(pos, marks.lo, n, m, static_key(seed, "graph:mode"), static_key(seed, "graph:pick"),
                      lean.cum_mode, lean.keys, lean.cums, lean.lens, lean.starts, lean.sizes, x, ops)
    return Marked(x, ops)


def ties_of(lean: Lean, n: int, marked: list[Marked]) -> list[np.ndarray]:
    """Every :class:`Marked` resolved in one pass: (other end, opener) ties, as :func:`ties_towards` gives."""
    resolve(lean, n, [k.x for k in marked])
    return [np.stack([k.x.astype(np.int32, copy=False), k.ops]) for k in marked]


@njit(cache=True)
def _scatter_pairs(js: np.ndarray, ops: np.ndarray, lo: int, shift: int, at: np.ndarray, rat: np.ndarray,
                   indices: np.ndarray, low: np.ndarray) -> None:
    """Ties opened towards the range, in the order given, into the regions of their rows' blocks (the
    opener in ``indices``, the row within the block in ``low``), as :func:`_scatter_block` does."""
    mask = (1 << shift) - 1
    for q in range(js.shape[0]):
        r = js[q] - lo
        t = r >> shift
        indices[at[t]] = ops[q]
        low[rat[t]] = r & mask
        at[t] += 1
        rat[t] += 1


def rows_from(stubs: Stubs, incoming: list[np.ndarray | None]) -> Graph:
    """The rows of ``stubs``' range: its own stubs and every tie opened towards it, ``incoming`` giving those
    ties from each range in range order (:func:`ties_towards` arrays; None where the range's own stubs go).

    The same blocked merge as :func:`build` over the range's blocks: ties arrive in opener order from
    ranges in id order, so each row's reversed ties are already in id order. The rows are the
    whole graph's rows, byte for byte."""
    lo, hi, m, shift = stubs.lo, stubs.hi, stubs.m, stubs.shift
    k = hi - lo
    nb = stubs.counts.shape[0]
    own = stubs.counts.sum(axis=1)
    rev = stubs.counts[:, :nb].sum(axis=0)
    for x in incoming:
        if x is not None and x.shape[1]:
            rev += np.bincount((x[0] - lo) >> shift, minlength=nb)[:nb]
    region = np.zeros(nb + 1, dtype=np.int64)
    np.cumsum(own + rev, out=region[1:])
    rfirst = np.zeros(nb + 1, dtype=np.int64)
    np.cumsum(rev, out=rfirst[1:])
    indices = np.empty(int(region[nb]), dtype=np.int32)
    low = np.empty(int(rfirst[nb]), dtype=np.uint16 if shift <= 16 else np.uint32)
    at, rat = region[:nb] + own, rfirst[:nb].copy()
    for x in incoming:
        if x is None:
            mine = _towards(stubs.tgt, m, lo, lo, hi)
            _scatter_pairs(mine[0], mine[1], lo, shift, at, rat, indices, low)
            del mine
        elif x.shape[1]:
            _scatter_pairs(x[0], x[1], lo, shift, at, rat, indices, low)
    deg = np.empty(k, dtype=np.int64)
    (_rows_parallel if threads.parallel_for(k * m) else _rows_serial)(
        shift, k, m, stubs.tgt, region, own, rfirst[:nb].copy(), indices, low, deg)
    del low
    indptr = _pack(shift, region, deg, indices)
    return Graph(indptr, indices[: indptr[k]], no_cuts(int(indptr[k])), lo)


# a range built without the other shards draws their openers' stubs itself, this many at a time
_PIECE = 1 << 20


def build_rows(plan: Plan, pop: Population, seed: int, lo: int, hi: int, stubs: Stubs | None = None) -> Graph:
    """The rows ``[lo, hi)`` of :func:`build`'s graph, by one range alone (no driver to swap ties through):
    it draws every other citizen's stubs too, a piece at a time, keeping the ties towards its range.

    Memory kept is O(ties of the range); time is O(all stubs). A shard of a sharded run draws only
    its own openers' stubs and receives the rest from the other shards (:mod:`credsim.distributed`).
    ``stubs``: the range's own, when already drawn."""
    n = pop.n
    m = plan.scen.graph.contacts // 2
    if m == 0 or n < 2:
        return Graph.empty(hi - lo, lo)
    p = pick_tables(plan, pop, seed)
    if stubs is None:
        stubs = draw_stubs(plan, pop, seed, lo, hi, p)
    incoming: list[np.ndarray | None] = []
    for a0, b0 in ((0, lo), (hi, n)):
        for a in range(a0, b0, _PIECE):
            piece = draw_stubs(plan, pop, seed, a, min(b0, a + _PIECE), p)
            incoming.append(ties_towards(piece, lo, hi))
        if a0 == 0:
            incoming.append(None)
    del p
    return rows_from(stubs, incoming)


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
    deg = np.empty(n, dtype=np.int64)
    (_rows_parallel if par else _rows_serial)(shift, n, m, tgt, region, own, rslot[0].copy(), indices, low, deg)
    del tgt, low
    indptr = _pack(shift, region, deg, indices)
    indices = indices[: indptr[n]]  # a view: duplicates are rare, the slack is tiny
    return Graph(indptr, indices, no_cuts(indices.shape[0]))
