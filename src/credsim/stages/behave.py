"""Stage 1, behave: every citizen may do every behaviour once a day.

P(citizen i does behaviour b on day t) =
    rate_b x prod_d by_b[d, group_d(i)] x exp(sum_k beta_bk trait_k(i)) x response_b(i, t),
capped at 1. ``response`` multiplies in each active response (deterrence, chilling) as
``1 - size * 0.5 ** (days_since_trigger / half_life)``.

The draw is ``uniform(key(seed, "behave:<b>", t), i)``. Most events are rare, so the
kernel first compares the draw with an upper bound of the citizen's rate (computed once
per run) and only works out the exact rate for the few draws below it: the cost is one
hash per citizen-behaviour plus work in proportion to (near-)events.

Events come out sorted by (citizen, behaviour) whatever the block size or thread count,
because blocks are counted, then filled at fixed offsets.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from credsim.plan import Plan
from credsim.rng import day_key, uniform
from credsim.state import State


@njit(inline="always", cache=True)
def static_rate(i: int, b: int, rate: np.ndarray, gm: np.ndarray, groups: np.ndarray,
                beta: np.ndarray, traits: np.ndarray) -> float:
    r = rate[b]
    for d in range(groups.shape[0]):
        r *= gm[b, d, groups[d, i]]
    s = 0.0
    for t in range(traits.shape[0]):
        s += beta[b, t] * traits[t, i]
    if s != 0.0:
        r *= math.exp(s)
    return min(r, 1.0)


@njit(inline="always", cache=True)
def response_multiplier(i: int, b: int, day: int, resp_day: np.ndarray, applies: np.ndarray,
                        size: np.ndarray, half: np.ndarray) -> float:
    m = 1.0
    for q in range(resp_day.shape[0]):
        if applies[q, b] and resp_day[q, i] >= 0:
            m *= 1.0 - size[q] * 0.5 ** ((day - resp_day[q, i]) / half[q])
    return m


@njit(parallel=True, cache=True)
def upper_bounds(n: int, block: int, rate: np.ndarray, gm: np.ndarray, groups: np.ndarray,
                 beta: np.ndarray, traits: np.ndarray) -> np.ndarray:
    """Per behaviour, the largest static rate of any citizen (responses only lower it)."""
    B = rate.shape[0]
    nblocks = (n + block - 1) // block
    part = np.zeros((nblocks, B))
    for c in prange(nblocks):
        for i in range(c * block, min(n, (c + 1) * block)):
            for b in range(B):
                r = static_rate(i, b, rate, gm, groups, beta, traits)
                if r > part[c, b]:
                    part[c, b] = r
    out = np.zeros(B)
    for c in range(nblocks):
        for b in range(B):
            out[b] = max(out[b], part[c, b])
    return out


@njit(parallel=True, cache=True)
def _scan(fill: bool, offsets: np.ndarray, out_cit: np.ndarray, out_beh: np.ndarray,
          n: int, block: int, day: int, keys: np.ndarray, ub: np.ndarray, rate: np.ndarray,
          gm: np.ndarray, groups: np.ndarray, beta: np.ndarray, traits: np.ndarray,
          only_listed: np.ndarray, listed_off: np.ndarray, resp_day: np.ndarray,
          applies: np.ndarray, size: np.ndarray, half: np.ndarray) -> np.ndarray:
    B = rate.shape[0]
    nblocks = (n + block - 1) // block
    counts = np.zeros(nblocks, dtype=np.int64)
    for c in prange(nblocks):
        k = offsets[c] if fill else 0
        cnt = 0
        for i in range(c * block, min(n, (c + 1) * block)):
            for b in range(B):
                u = uniform(keys[b], np.uint64(i))
                if u >= ub[b]:
                    continue
                ol = only_listed[b]
                if ol >= 0 and listed_off[ol, i] == 0:
                    continue
                r = static_rate(i, b, rate, gm, groups, beta, traits)
                if u >= r:
                    continue
                r *= response_multiplier(i, b, day, resp_day, applies, size, half)
                if u < r:
                    if fill:
                        out_cit[k + cnt] = i
                        out_beh[k + cnt] = b
                    cnt += 1
        counts[c] = cnt
    return counts


def behave(plan: Plan, st: State, day: int, seed: int, block: int, ub: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Today's true events as ``(citizen, behaviour)`` arrays sorted by citizen."""
    keys = np.array([day_key(seed, f"behave:{b}", day) for b in plan.beh], dtype=np.uint64)
    listed_off = st.listed[0] if st.listed.shape[1] else np.zeros((1, st.n), dtype=np.uint8)
    args = (st.n, block, day, keys, ub, plan.beh_rate, plan.beh_group, st.groups, plan.beh_trait,
            st.traits, plan.beh_only_listed, listed_off, st.resp_day, plan.resp_applies,
            plan.resp_size, plan.resp_half)
    z = np.zeros(0, dtype=np.int64)
    counts = _scan(False, z, z, z, *args)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cit = np.empty(int(offsets[-1]), dtype=np.int64)
    beh = np.empty(int(offsets[-1]), dtype=np.int64)
    _scan(True, offsets, cit, beh, *args)
    return cit, beh


def rate_bounds(plan: Plan, st: State, block: int) -> np.ndarray:
    return upper_bounds(st.n, block, plan.beh_rate, plan.beh_group, st.groups, plan.beh_trait, st.traits)
