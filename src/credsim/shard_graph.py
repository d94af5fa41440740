"""The contact graph rows of a shard: the citizens ``[lo, hi)`` of a sharded run, without the whole graph.

The other end of every tie is a pure function of (seed, opener, tie number) and of the group
codes (themselves pure functions of the citizen id), so both ends can compute it
(:mod:`credsim.graph`). Each shard draws only the stubs its own citizens open
(:func:`draw_stubs_lean`) and tells every other shard which of them point at its citizens: a bit a
stub, or positions when few do (:class:`Marks`); the receiver draws those stubs again by the same
rule (:func:`marked_positions`, :func:`ties_of`) and merges its rows as :func:`credsim.graph.build`
does (:func:`rows_from`). A tie crosses as a bit, not as its two ends, and no shard draws another's
stubs. Nor does a shard hold the whole population's group codes and order that a pick within a
group reads (5 bytes a citizen and homophily dimension): it keeps only the groups' sizes
(:class:`Lean`) and resolves all the picks it needs at once, by one pass over the population that
draws each citizen's code again (:func:`resolve`). A range built alone, with no other shard to
swap with, draws everyone's stubs itself (:func:`build_rows`). Either way the rows are exactly the
rows of the whole graph, so results do not depend on the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from credsim import threads
from credsim.graph import (
    Graph,
    Picks,
    _block_shift,
    _mode,
    _place,
    _rows_parallel,
    _rows_serial,
    _stubs_parallel,
    _stubs_serial,
    no_cuts,
    pack,
    pick_tables,
)
from credsim.plan import Plan
from credsim.population import Population, code_at, code_rule
from credsim.rng import static_key


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
    """The ties the citizens ``[lo, hi)`` open, drawn by the rule every range shares
    (:func:`credsim.graph._target`): work and memory O(hi - lo), whatever the population (the pick tables
    aside: 5 bytes a citizen of the population and homophily dimension)."""
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
    share (:func:`credsim.graph._target`), so a tie crosses as a bit, not as the 8 bytes of its two ends."""

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
    deg = np.empty(k, dtype=np.int32)
    (_rows_parallel if threads.parallel_for(k * m) else _rows_serial)(
        shift, k, m, stubs.tgt, region, own, rfirst[:nb].copy(), indices, low, deg)
    del low
    indptr = pack(shift, region, deg, indices)
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
