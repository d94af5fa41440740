"""Stage 1, behave: every citizen may do every behaviour once a day.

P(citizen i does behaviour b on day t) =
    rate_b x prod_d by_b[d, group_d(i)] x exp(sum_k beta_bk trait_k(i)) x response_b(i, t),
capped at 1. ``response`` multiplies in each active response (deterrence, chilling) as
``1 - size * 0.5 ** (days_since_trigger / half_life)``; it can only lower a rate.

A behaviour's ``schedule`` (policy eras) then thins its events to the day's multiplier, and its
``state`` factors (a score range, a grade, a list, a money balance) to ``m_i / M`` of a stream drawn
at ``rate x M`` (:mod:`credsim.economy`). State conditions are read here, before any other stage of
the day, so they are the end state of the day before; the rows go on in ``Day.events.cond`` for the
outcomes of attempts, which therefore read the same start-of-day state.

Events are drawn by :mod:`credsim.sampling` on the streams ``behave:<behaviour>``: work
in proportion to (near-)events, the same events whatever the block size or threads, and
the same random numbers for the same behaviour in any scenario run with the same seed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.day import Day, Events
from credsim.economy import Economy, conditions, factor_product
from credsim.exchange import Exchange
from credsim.names import KINDS
from credsim.plan import Plan
from credsim.prefetch import AHEAD, prefetch2
from credsim.rng import day_key, uniform, uniforms
from credsim.sampling import Sampler, Streams
from credsim.state import C, State


def behaviour_streams(plan: Plan) -> Streams:
    """The behaviours' streams; a behaviour with state factors is drawn at ``rate x M`` and thinned to
    ``m_i / M`` by :func:`apply_state` (see :mod:`credsim.economy`)."""
    B = plan.n_beh
    econ = plan.econ
    base = plan.beh_rate if econ is None or not econ.beh_has_state.any() else plan.beh_rate * econ.beh_state_max
    return Streams(
        names=list(plan.beh),
        base=base,
        group=plan.beh_group,
        beta=plan.beh_trait,
        only_listed=plan.beh_only_listed,
        applies=plan.resp_applies,
        cover_sensor=np.full(B, -1, dtype=np.int64),
    )


def make_sampler(plan: Plan, st: State, seed: int, lo: int = 0, hi: int | None = None) -> Sampler:
    return Sampler(behaviour_streams(plan), st.groups, st.traits, seed, "behave:", st.n, lo, hi)


def behave(plan: Plan, st: State, day: int, block: int, sampler: Sampler) -> tuple[np.ndarray, np.ndarray]:
    """Today's true events as ``(citizen, behaviour)`` arrays sorted by citizen."""
    listed_off = st.listed[0] if st.listed.shape[1] else np.zeros((1, 1), dtype=np.uint8)
    S = len(plan.sensors)
    z = np.zeros(max(S, 1), dtype=np.uint64)
    cit, beh = sampler.sample(day, block, listed_off, st.resp_day, plan.resp_size, plan.resp_half,
                              z, np.zeros(max(S, 1)), np.ones((max(S, 1), len(plan.dims), plan.maxv)))
    if plan.beh_schedule:
        cit, beh = apply_schedules(plan, day, sampler.seed, cit, beh)
    return cit, beh


def start_conditions(econ: Economy, st: State, cit: np.ndarray) -> np.ndarray:
    """The state conditions today's event citizens meet, read before any other stage of the day runs."""
    return conditions(econ, st.listed, st.grade, st.score, st.mscore, st.money, cit)


def apply_state(plan: Plan, econ: Economy, day: int, seed: int, cit: np.ndarray, beh: np.ndarray,
                cond: np.ndarray) -> np.ndarray:
    """Keep mask of the events: a behaviour with state factors keeps an event with probability ``m_i / M``
    (a draw of ``state:<behaviour>`` keyed by (seed, day, citizen)); the others keep every event."""
    keep = np.ones(cit.shape[0], dtype=np.bool_)
    for b in np.flatnonzero(econ.beh_has_state).tolist():
        sel = np.flatnonzero(beh == b)
        if sel.shape[0] == 0:
            continue
        m = factor_product(econ, econ.beh_factors[b], cond[sel])
        u = uniforms(day_key(seed, f"state:{plan.beh[b]}", day), cit[sel].astype(np.uint64))
        keep[sel] = u * econ.beh_state_max[b] < m
    return keep


def apply_schedules(plan: Plan, day: int, seed: int, cit: np.ndarray, beh: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Thin the events of scheduled behaviours to today's multiplier (policy eras).

    An event survives when ``uniform(schedule:<behaviour>, day, citizen) < multiplier``: a
    pure function of (seed, stream, day, citizen), and a lower multiplier keeps a subset.
    One pass over the events (:func:`_schedule_keep`): court-defaulters thins ~290,000 events a
    day at 10^7 citizens, and a selection, a key and a draw array per behaviour took 7 ms of it.
    """
    mult = np.ones(plan.n_beh)
    keys = np.zeros(plan.n_beh, dtype=np.uint64)
    for b in plan.beh_schedule:
        mult[b] = plan.schedule_multiplier(b, day)
        if mult[b] < 1.0:
            keys[b] = day_key(seed, f"schedule:{plan.beh[b]}", day)
    if (mult >= 1.0).all():
        return cit, beh
    keep = np.empty(cit.shape[0], dtype=np.bool_)
    kept = _schedule_keep(cit, beh, mult, keys, keep)
    return (cit, beh) if kept == cit.shape[0] else (cit[keep], beh[keep])


@njit(cache=True)
def _schedule_keep(cit: np.ndarray, beh: np.ndarray, mult: np.ndarray, keys: np.ndarray, keep: np.ndarray) -> int:
    """``keep[j]``: event ``j`` survives its behaviour's multiplier (always, at 1 or more); how many do."""
    kept = 0
    for j in range(cit.shape[0]):
        m = mult[beh[j]]
        ok = m >= 1.0 or uniform(keys[beh[j]], np.uint64(cit[j])) < m
        keep[j] = ok
        kept += ok
    return kept


@njit(cache=True)
def _count_events(counters: np.ndarray, cit: np.ndarray, kinds: np.ndarray, c_all: int, c_inf: int,
                  k_inf: int, c_speech: int, k_speech: int) -> None:
    n = cit.shape[0]
    for j in range(n):
        if j + AHEAD < n:  # the counters of the event a few rows on: their misses overlap (credsim.prefetch)
            prefetch2(counters, c_all, cit[j + AHEAD])
            if kinds[j + AHEAD] == k_inf:
                prefetch2(counters, c_inf, cit[j + AHEAD])
            elif kinds[j + AHEAD] == k_speech:
                prefetch2(counters, c_speech, cit[j + AHEAD])
        i = cit[j]
        counters[c_all, i] += 1
        if kinds[j] == k_inf:
            counters[c_inf, i] += 1
        elif kinds[j] == k_speech:
            counters[c_speech, i] += 1


class Behave:
    """Stage 1: today's true events, and each citizen's lifetime event counters."""

    name: str = "behave"
    reads: tuple[str, ...] = ("state.listed", "state.resp_day", "state.grade", "state.score", "state.mscore",
                              "state.money")
    writes: tuple[str, ...] = ("day.events", "state.counters")

    def __init__(self, plan: Plan, st: State, seed: int, block: int, lo: int = 0, hi: int | None = None) -> None:
        self.plan = plan
        self.block = block
        self.sampler = make_sampler(plan, st, seed, lo, hi)  # only the range's RNG chunks draw

    def run(self, st: State, d: Day, x: Exchange) -> None:
        cit, beh = behave(self.plan, st, d.day, self.block, self.sampler)
        econ = self.plan.econ
        cond = np.zeros((0, 0), dtype=np.bool_)
        if econ is not None and econ.n_cond:
            cond = start_conditions(econ, st, cit)
            if econ.beh_has_state.any():
                keep = apply_state(self.plan, econ, d.day, self.sampler.seed, cit, beh, cond)
                if not keep.all():
                    cit, beh, cond = cit[keep], beh[keep], cond[keep]
        _count_events(st.counters, cit, self.plan.beh_kind[beh], C["events"], C["infractions"],
                      KINDS.index("infraction"), C["speech"], KINDS.index("speech"))
        d.events = Events(cit, beh, cond)
