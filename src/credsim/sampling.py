"""Sparse Bernoulli sampling: work in proportion to events, not to citizens.

Many daily streams are rare (a traffic ticket, a false camera match): drawing one number
per citizen per stream per day would spend almost all the time on citizens to whom
nothing happens. Instead, citizens are cut into fixed **RNG chunks** of ``CHUNK`` ids
(a constant of the random-number contract, independent of how the work is split), and for
each (stream, day, chunk):

1. candidates are drawn as a Bernoulli(``ub``) process over the chunk by geometric gaps,
   where ``ub`` is the largest static rate of any citizen in the chunk;
2. a candidate ``i`` becomes an event when ``uniform(thin_key, i) * ub < rate_i``.

So P(event at i) = ub * rate_i / ub = rate_i exactly, lowering a rate (a response) can
only remove events, so common random numbers stay monotone, and every event is a pure
function of (seed, stream, day, chunk, citizen). Streams whose chunk bound is high
(>= ``DENSE``) are drawn densely, one number per citizen, which is cheaper there.

Events come out sorted by (citizen, stream) whatever the execution block size or number
of threads: each block sorts its chunk segments, and blocks are contiguous id ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from credsim import threads
from credsim.prefetch import prefetch2, prefetch3
from credsim.rng import day_key, mix64, uniform

CHUNK = 1024
DENSE = 0.25


@njit(inline="always", cache=True)
def group_factor(table: np.ndarray, s: int, groups: np.ndarray, i: int) -> float:
    f = 1.0
    for d in range(groups.shape[0]):
        f *= table[s, d, groups[d, i]]
    return f


@njit(inline="always", cache=True)
def covered(s: int, i: int, cov_keys: np.ndarray, cov: np.ndarray, cov_group: np.ndarray,
            groups: np.ndarray) -> bool:
    """Whether sensor ``s`` covers citizen ``i`` (a fixed draw per sensor and citizen)."""
    p = min(1.0, cov[s] * group_factor(cov_group, s, groups, i))
    return uniform(cov_keys[s], np.uint64(i)) < p


@njit(inline="always", cache=True)
def static_rate(i: int, s: int, base: np.ndarray, gm: np.ndarray, groups: np.ndarray,
                beta: np.ndarray, traits: np.ndarray) -> float:
    r = base[s] * group_factor(gm, s, groups, i)
    x = 0.0
    for t in range(traits.shape[0]):
        x += beta[s, t] * traits[t, i]
    if x != 0.0:
        r *= math.exp(x)
    return min(r, 1.0)


@njit(inline="always", cache=True)
def response_multiplier(i: int, s: int, day: int, resp_day: np.ndarray, applies: np.ndarray,
                        size: np.ndarray, half: np.ndarray) -> float:
    m = 1.0
    for q in range(resp_day.shape[0]):
        if applies[q, s] and resp_day[q, i] > 0:  # state.resp_day holds the day plus 1, 0 for never
            m *= 1.0 - size[q] * 0.5 ** ((day + 1 - resp_day[q, i]) / half[q])
    return m


@dataclass
class Streams:
    """The rate model of a set of daily Bernoulli streams (behaviours, false records)."""

    names: list[str]  # stream names: the random streams are keyed by them
    base: np.ndarray  # (S,)
    group: np.ndarray  # (S, D, V) multipliers
    beta: np.ndarray  # (S, T) log-multipliers per unit of trait
    only_listed: np.ndarray  # (S,) list index whose (official) members alone can do it, or -1
    applies: np.ndarray  # (Q, S) which responses lower the stream's rate
    cover_sensor: np.ndarray  # (S,) sensor whose coverage the citizen needs, or -1

    def __len__(self) -> int:
        return len(self.names)


@njit(inline="always", cache=True)
def _chunk_bound(ub: np.ndarray, c: int, n: int, base: np.ndarray, gm: np.ndarray, groups: np.ndarray,
                 beta: np.ndarray, traits: np.ndarray, dims: np.ndarray, nd: np.ndarray, trs: np.ndarray,
                 nt: np.ndarray, f: np.ndarray, x: np.ndarray) -> None:
    """``ub[c, s]`` for every stream s: the largest of :func:`static_rate`'s values over chunk ``c``, each
    computed with the same operations in the same order, but only with the factors that can change it
    (``dims``/``nd``, ``trs``/``nt``: see :func:`_factors`), a stream and a factor at a time over the
    chunk (``f``, ``x``: scratch of ``CHUNK`` values), so each pass reads one row in order and the
    loops carry no dependence from one citizen to the next."""
    lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
    m = hi - lo
    for s in range(base.shape[0]):
        top = 0.0
        if nd[s] == 0 and nt[s] == 0:  # the same rate for everyone in the chunk
            r = min(base[s] * 1.0, 1.0)
            if m > 0 and r > top:
                top = r
        else:
            f[:m] = 1.0
            for k in range(nd[s]):
                tab = gm[s, dims[s, k]]
                g = groups[dims[s, k], lo:hi]
                for j in range(m):
                    f[j] *= tab[g[j]]
            x[:m] = 0.0
            for k in range(nt[s]):
                b = beta[s, trs[s, k]]
                tr = traits[trs[s, k], lo:hi]
                for j in range(m):
                    x[j] += b * tr[j]
            bs = base[s]
            for j in range(m):
                r = bs * f[j]
                if x[j] != 0.0:
                    r *= math.exp(x[j])
                r = min(r, 1.0)
                if r > top:
                    top = r
        ub[c, s] = top


_BOUND_CHUNKS = 64  # chunks per parallel task: one scratch pair per task


@njit(cache=True)
def _chunk_bounds_serial(n: int, c0: int, c1: int, base: np.ndarray, gm: np.ndarray, groups: np.ndarray,
                         beta: np.ndarray, traits: np.ndarray, dims: np.ndarray, nd: np.ndarray, trs: np.ndarray,
                         nt: np.ndarray, ub: np.ndarray) -> None:
    f, x = np.empty(CHUNK), np.empty(CHUNK)
    for c in range(c0, c1):
        _chunk_bound(ub, c, n, base, gm, groups, beta, traits, dims, nd, trs, nt, f, x)


@njit(parallel=True, cache=True)
def _chunk_bounds_parallel(n: int, c0: int, c1: int, base: np.ndarray, gm: np.ndarray, groups: np.ndarray,
                           beta: np.ndarray, traits: np.ndarray, dims: np.ndarray, nd: np.ndarray, trs: np.ndarray,
                           nt: np.ndarray, ub: np.ndarray) -> None:
    for t in prange((c1 - c0 + _BOUND_CHUNKS - 1) // _BOUND_CHUNKS):
        f, x = np.empty(CHUNK), np.empty(CHUNK)
        for c in range(c0 + t * _BOUND_CHUNKS, min(c1, c0 + (t + 1) * _BOUND_CHUNKS)):
            _chunk_bound(ub, c, n, base, gm, groups, beta, traits, dims, nd, trs, nt, f, x)


def _factors(gm: np.ndarray, beta: np.ndarray, traits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                            np.ndarray]:
    """Per stream, the group dimensions and traits that can change its rate, in their order.

    A dimension whose multipliers are all exactly 1 leaves the running product as it is, and a
    trait with a zero coefficient adds a zero to the log-multiplier (0 + -0 is +0, so even the sign
    of a zero sum stays) -- as long as every trait value is finite (0 x inf would be NaN; then every
    trait is kept). Most streams scale with one or two dimensions of seven and one trait or none,
    so leaving the rest out skips most of the work and changes no bit of any rate."""
    S, D = gm.shape[0], gm.shape[1]
    act = (gm != 1.0).any(axis=2) if gm.size else np.zeros((S, D), dtype=np.bool_)
    use = beta != 0.0 if bool(np.isfinite(traits).all()) else np.ones(beta.shape, dtype=np.bool_)
    dims = np.zeros((S, max(D, 1)), dtype=np.int64)
    trs = np.zeros((S, max(beta.shape[1], 1)), dtype=np.int64)
    for s in range(S):
        a, t = np.flatnonzero(act[s]), np.flatnonzero(use[s])
        dims[s, :a.shape[0]] = a
        trs[s, :t.shape[0]] = t
    return dims, act.sum(axis=1).astype(np.int64), trs, use.sum(axis=1).astype(np.int64)


def chunk_bounds(n: int, base: np.ndarray, gm: np.ndarray, groups: np.ndarray, beta: np.ndarray,
                 traits: np.ndarray, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """``ub[c, s]``: the largest static rate of stream s in RNG chunk c (once per run), for the chunks of the
    citizens ``[lo, hi)`` only (``lo`` a multiple of ``CHUNK``); 0 elsewhere, where nothing is drawn. The
    other chunks are never written, so a shard's table is zero pages but for its own chunks: O(N/K)."""
    hi = n if hi is None else hi
    c0, c1 = lo // CHUNK, (hi + CHUNK - 1) // CHUNK
    ub = np.zeros(((n + CHUNK - 1) // CHUNK, base.shape[0]))
    kernel = _chunk_bounds_parallel if threads.parallel_for((hi - lo) * base.shape[0]) else _chunk_bounds_serial
    kernel(n, c0, c1, base, gm, groups, beta, traits, *_factors(gm, beta, traits[:, lo:hi]), ub)
    return ub


@njit(cache=True)
def _insertion_sort(a: np.ndarray, lo: int, hi: int) -> None:
    for j in range(lo + 1, hi):
        x = a[j]
        k = j - 1
        while k >= lo and a[k] > x:
            a[k + 1] = a[k]
            k -= 1
        a[k + 1] = x


@njit(cache=True)
def gap_logs(ubc: np.ndarray, c0: int = 0, c1: int = -1) -> np.ndarray:
    """``log1p(-ub)`` of every chunk bound of chunks ``[c0, c1)`` (``c1`` -1: all), 0 (the log of a bound of 0)
    elsewhere: the divisor of each geometric gap, computed once per run rather than once per chunk, stream
    and day (the same ``math.log1p`` of the same number, so the same gaps)."""
    out = np.zeros(ubc.shape)
    for c in range(c0, ubc.shape[0] if c1 < 0 else c1):
        for s in range(ubc.shape[1]):
            out[c, s] = math.log1p(-ubc[c, s])
    return out


class RateTables(NamedTuple):
    """The streams' rate model as the kernel takes it (see :class:`Streams`), with the chunk bounds."""

    ubc: np.ndarray  # (chunks, S) largest static rate per RNG chunk; 0 = nothing to draw there
    lg: np.ndarray  # (chunks, S) gap_logs(ubc)
    base: np.ndarray
    group: np.ndarray
    beta: np.ndarray
    only_listed: np.ndarray
    applies: np.ndarray
    cover_sensor: np.ndarray


class People(NamedTuple):
    groups: np.ndarray  # (D, N)
    traits: np.ndarray  # (T, N)


class Today(NamedTuple):
    """What changes from day to day: the day's stream keys, list status and responses."""

    cand_keys: np.ndarray
    thin_keys: np.ndarray
    listed_off: np.ndarray
    resp_day: np.ndarray
    rsize: np.ndarray
    rhalf: np.ndarray


class Coverage(NamedTuple):
    """Sensor coverage, for streams that need the citizen covered (false records)."""

    keys: np.ndarray
    cov: np.ndarray
    cov_group: np.ndarray


class Hints(NamedTuple):
    """Lines a caller will touch at each event after drawing the block (the fused day): prefetched with each
    candidate's own, so they arrive while the sampler works. Empty arrays: nothing more (the staged loop)."""

    i32: np.ndarray  # (R, N) int32 columns ...
    i32_rows: np.ndarray  # ... of which these rows
    f32: np.ndarray  # (V, N) float32, every row
    i8: np.ndarray  # (V, N) int8, every row
    u8: np.ndarray  # (V, L, N) uint8, every row and list


def no_hints() -> Hints:
    return Hints(np.zeros((0, 0), np.int32), np.zeros(0, np.int64), np.zeros((0, 0), np.float32),
                 np.zeros((0, 0), np.int8), np.zeros((0, 0, 0), np.uint8))


_NO_HINTS = no_hints()  # a module constant, not a Sampler attribute: checkpoints restore attributes as tuples


@njit(inline="always", cache=True)
def code_bits(S: int) -> int:
    """Bits of the stream in an event's code, ``citizen << code_bits(S) | stream`` (:func:`_sample_block`'s
    buffer): ordered as (citizen, stream), as ``citizen * S + stream`` is, and read back by a shift and a
    mask instead of an integer division, which cost ~5 ns an event (12-15 ms a day for 3e6 events)."""
    b = 0
    while (1 << b) < S:
        b += 1
    return b


@njit(inline="always", cache=True)
def _sample_block(blk: int, start: int, cap: int, buf: np.ndarray, n: int, block: int, day: int,
                  rates: RateTables, people: People, today: Today, coverage: Coverage, hints: Hints) -> int:
    """Draw the events of execution block ``blk`` into ``buf[start:start + cap]``; return how many there were
    (more than ``cap`` means the buffer was too small and the caller draws the block again).

    Chunk by chunk: the candidates of the next chunk are drawn (and their lines prefetched) before the
    candidates of this one are thinned, so the memory of one overlaps the work of the other; which
    candidates become events, and their order, are those of drawing and thinning one chunk at a time.

    Each candidate is drawn as a Bernoulli(``ub``) process by geometric gaps, stream by stream in increasing
    position; a candidate becomes an event with probability ``rate / ub`` (:func:`static_rate` times
    :func:`response_multiplier`, for a citizen the stream's sensor :func:`covered`). Those helpers are
    written out in the loops here, with every array taken out of its tuple once: an inlined call that takes
    arrays, inside a loop with branches, kept a reference count update per array per call (~450 ns a chunk
    with nothing to draw, before); the arithmetic, and so every number, is theirs.

    Inlined into :mod:`credsim.fused`'s kernels too, whose numba cache is keyed by ``fused.py`` alone:
    after changing this function, touch ``fused.py`` (or clear its cache) so they are compiled again."""
    ubc, lgs, base, gm, beta = rates.ubc, rates.lg, rates.base, rates.group, rates.beta
    only_listed, applies, cover_sensor = rates.only_listed, rates.applies, rates.cover_sensor
    groups, traits = people.groups, people.traits
    cand_keys, thin_keys, listed_off = today.cand_keys, today.thin_keys, today.listed_off
    resp_day, rsize, rhalf = today.resp_day, today.rsize, today.rhalf
    cov_keys, cov, cov_group = coverage.keys, coverage.cov, coverage.cov_group
    h32, h32_rows, h_f32, h_i8, h_u8 = hints.i32, hints.i32_rows, hints.f32, hints.i8, hints.u8
    S, D, T, Q = base.shape[0], groups.shape[0], traits.shape[0], resp_day.shape[0]
    H32, HF, HI, HU, HL = h32_rows.shape[0], h_f32.shape[0], h_i8.shape[0], h_u8.shape[0], h_u8.shape[1]
    lo, hi = blk * block, min(n, (blk + 1) * block)
    W = CHUNK * S
    sb = code_bits(S)
    cpos = np.empty(2 * W, dtype=np.int64)  # two chunks' candidates: the one being thinned, the next
    cstr = np.empty(2 * W, dtype=np.int64)
    n_even = 0
    n_odd = 0
    k = 0
    c0 = lo // CHUNK
    c_end = (hi + CHUNK - 1) // CHUNK
    for cc in range(c0, c_end + 1):
        if cc < c_end:  # candidates of chunk cc, stream by stream in increasing position
            slot = (cc & 1) * W
            a, z = max(lo, cc * CHUNK), min(hi, (cc + 1) * CHUNK)
            m = 0
            for s in range(S):
                ub = ubc[cc, s]
                if ub <= 0.0:
                    continue
                if ub >= DENSE:
                    for i in range(a, z):
                        cpos[slot + m] = i
                        cstr[slot + m] = s
                        m += 1
                    continue
                pos = cc * CHUNK - 1
                lg = lgs[cc, s]
                kk = np.uint64(0)
                ckey = mix64(cand_keys[s] ^ mix64(np.uint64(cc)))
                while True:
                    u = uniform(ckey, kk)
                    kk += np.uint64(1)
                    g = math.log1p(-u) / lg
                    if g >= z - pos:
                        break
                    pos += 1 + int(g)
                    if pos >= z:
                        break
                    if pos < a:
                        continue
                    cpos[slot + m] = pos
                    cstr[slot + m] = s
                    m += 1
                    for d in range(D):
                        prefetch2(groups, d, pos)
                    for t in range(T):
                        prefetch2(traits, t, pos)
                    for q in range(Q):
                        prefetch2(resp_day, q, pos)
                    if only_listed[s] >= 0:
                        prefetch2(listed_off, only_listed[s], pos)
                    for r in range(H32):
                        prefetch2(h32, h32_rows[r], pos)
                    for r in range(HF):
                        prefetch2(h_f32, r, pos)
                    for r in range(HI):
                        prefetch2(h_i8, r, pos)
                    for r in range(HU):
                        for li in range(HL):
                            prefetch3(h_u8, r, li, pos)
            if cc & 1:
                n_odd = m
            else:
                n_even = m
        if cc == c0:
            continue
        c = cc - 1  # thin chunk c
        off = (c & 1) * W
        seg = k
        for j in range(n_odd if c & 1 else n_even):
            i = cpos[off + j]
            s = cstr[off + j]
            ub = ubc[c, s]
            ol = only_listed[s]
            cs = cover_sensor[s]
            if ol >= 0 and listed_off[ol, i] == 0:
                continue
            v = uniform(thin_keys[s], np.uint64(i))
            if ub < DENSE:
                v *= ub
            f = 1.0  # static_rate
            for d in range(D):
                f *= gm[s, d, groups[d, i]]
            r = base[s] * f
            x = 0.0
            for t in range(T):
                x += beta[s, t] * traits[t, i]
            if x != 0.0:
                r *= math.exp(x)
            r = min(r, 1.0)
            if v >= r:
                continue
            mult = 1.0  # response_multiplier
            for q in range(Q):
                if applies[q, s] and resp_day[q, i] > 0:  # the day plus 1, 0 for never
                    mult *= 1.0 - rsize[q] * 0.5 ** ((day + 1 - resp_day[q, i]) / rhalf[q])
            r *= mult
            if v >= r:
                continue
            if cs >= 0:  # covered
                fc = 1.0
                for d in range(D):
                    fc *= cov_group[cs, d, groups[d, i]]
                p = min(1.0, cov[cs] * fc)
                if not uniform(cov_keys[cs], np.uint64(i)) < p:
                    continue
            if k < cap:
                buf[start + k] = (np.int64(i) << sb) | s
            k += 1
        if k <= cap:
            _insertion_sort(buf, start + seg, start + k)
    return k


@njit(cache=True)
def _sample_serial(blocks: np.ndarray, starts: np.ndarray, caps: np.ndarray, buf: np.ndarray, n: int, block: int,
                   day: int, rates: RateTables, people: People, today: Today, coverage: Coverage,
                   hints: Hints) -> np.ndarray:
    counts = np.zeros(blocks.shape[0], dtype=np.int64)
    for j in range(blocks.shape[0]):
        counts[j] = _sample_block(blocks[j], starts[j], caps[j], buf, n, block, day, rates, people, today, coverage,
                                  hints)
    return counts


@njit(parallel=True, cache=True)
def _sample_parallel(blocks: np.ndarray, starts: np.ndarray, caps: np.ndarray, buf: np.ndarray, n: int,
                     block: int, day: int, rates: RateTables, people: People, today: Today,
                     coverage: Coverage, hints: Hints) -> np.ndarray:
    counts = np.zeros(blocks.shape[0], dtype=np.int64)
    for j in prange(blocks.shape[0]):
        counts[j] = _sample_block(blocks[j], starts[j], caps[j], buf, n, block, day, rates, people, today, coverage,
                                  hints)
    return counts


class Sampler:
    """Draws the daily events of a set of streams over a population."""

    def __init__(self, streams: Streams, groups: np.ndarray, traits: np.ndarray, seed: int,
                 prefix: str, n: int, lo: int = 0, hi: int | None = None) -> None:
        """Streams over ``n`` citizens, of which only ``[lo, hi)`` (a shard's range: whole RNG chunks) draw."""
        self.st = streams
        self.n = n
        self.seed = seed
        self.prefix = prefix
        self.groups, self.traits = groups, traits
        hi = n if hi is None else hi
        if len(streams):
            self.ubc = chunk_bounds(n, streams.base, streams.group, groups, streams.beta, traits, lo, hi)
        else:
            self.ubc = np.zeros(((n + CHUNK - 1) // CHUNK, 0))
        self.lg = gap_logs(self.ubc, lo // CHUNK, (hi + CHUNK - 1) // CHUNK)
        self._block = -1
        self._caps = np.zeros(0, dtype=np.int64)
        self._work = 0.0

    def expected_per_block(self, block: int) -> np.ndarray:
        """Upper bound of the mean event count of each execution block (sizes its buffer)."""
        return _expected(self.n, block, self.ubc.sum(axis=1))

    def sample(self, day: int, block: int, listed_off: np.ndarray, resp_day: np.ndarray,
               rsize: np.ndarray, rhalf: np.ndarray, cov_keys: np.ndarray, cov: np.ndarray,
               cov_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Today's events as (citizen, stream index), sorted by citizen then stream."""
        S = len(self.st)
        if S == 0 or self.n == 0:
            z = np.zeros(0, dtype=np.int64)
            return z, z
        cand = np.array([day_key(self.seed, f"{self.prefix}cand:{nm}", day) for nm in self.st.names],
                        dtype=np.uint64)
        thin = np.array([day_key(self.seed, f"{self.prefix}{nm}", day) for nm in self.st.names],
                        dtype=np.uint64)
        if self._block != block:
            exp = self.expected_per_block(block)
            self._caps = (exp + 8 * np.sqrt(exp) + 64).astype(np.int64)
            self._block = block
            # expected candidate draws, plus the per-chunk set-up of each stream (the kernel's work)
            self._work = float(exp.sum()) + self.ubc.shape[0] * S
        nb = self._caps.shape[0]
        blocks = np.arange(nb, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(self._caps)[:-1]]).astype(np.int64)
        buf = np.empty(int(self._caps.sum()), dtype=np.int64)
        st = self.st
        args = (self.n, block, day,
                RateTables(self.ubc, self.lg, st.base, st.group, st.beta, st.only_listed, st.applies, st.cover_sensor),
                People(self.groups, self.traits), Today(cand, thin, listed_off, resp_day, rsize, rhalf),
                Coverage(cov_keys, cov, cov_group), _NO_HINTS)
        if threads.parallel_for(self._work):
            # blocks are handed out one at a time: a worker the OS has descheduled holds up one block, not half
            with numba.parallel_chunksize(1):
                counts = _sample_parallel(blocks, starts, self._caps, buf, *args)
        else:
            counts = _sample_serial(blocks, starts, self._caps, buf, *args)
        over = np.flatnonzero(counts > self._caps)
        parts = [buf[starts[b]:starts[b] + counts[b]] for b in range(nb)]
        if over.shape[0]:
            caps2 = counts[over]
            starts2 = np.concatenate([[0], np.cumsum(caps2)[:-1]]).astype(np.int64)
            buf2 = np.empty(int(caps2.sum()), dtype=np.int64)
            _sample_serial(over, starts2, caps2, buf2, *args)  # rare, and only the overflowing blocks
            for j, b in enumerate(over):
                parts[b] = buf2[starts2[j]:starts2[j] + caps2[j]]
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        sb = code_bits(S)
        return flat >> sb, flat & ((1 << sb) - 1)


@njit(cache=True)
def _expected(n: int, block: int, per_citizen_chunk: np.ndarray) -> np.ndarray:
    nb = (n + block - 1) // block
    out = np.zeros(nb)
    for b in range(nb):
        lo, hi = b * block, min(n, (b + 1) * block)
        c = lo // CHUNK
        while c * CHUNK < hi:
            a, z = max(lo, c * CHUNK), min(hi, (c + 1) * CHUNK)
            out[b] += per_citizen_chunk[c] * (z - a)
            c += 1
    return out
