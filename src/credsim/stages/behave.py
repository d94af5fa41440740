"""Stage 1, behave: every citizen may do every behaviour once a day.

P(citizen i does behaviour b on day t) =
    rate_b x prod_d by_b[d, group_d(i)] x exp(sum_k beta_bk trait_k(i)) x response_b(i, t),
capped at 1. ``response`` multiplies in each active response (deterrence, chilling) as
``1 - size * 0.5 ** (days_since_trigger / half_life)``; it can only lower a rate.

A behaviour's ``schedule`` (policy eras) then thins its events to the day's multiplier.

Events are drawn by :mod:`credsim.sampling` on the streams ``behave:<behaviour>``: work
in proportion to (near-)events, the same events whatever the block size or threads, and
the same random numbers for the same behaviour in any scenario run with the same seed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.day import Day, Events
from credsim.exchange import Exchange
from credsim.names import KINDS
from credsim.plan import Plan
from credsim.rng import day_key, uniforms
from credsim.sampling import Sampler, Streams
from credsim.state import C, State


def behaviour_streams(plan: Plan) -> Streams:
    B = plan.n_beh
    return Streams(
        names=list(plan.beh),
        base=plan.beh_rate,
        group=plan.beh_group,
        beta=plan.beh_trait,
        only_listed=plan.beh_only_listed,
        applies=plan.resp_applies,
        cover_sensor=np.full(B, -1, dtype=np.int64),
    )


def make_sampler(plan: Plan, st: State, seed: int) -> Sampler:
    return Sampler(behaviour_streams(plan), st.groups, st.traits, seed, "behave:", st.n)


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


def apply_schedules(plan: Plan, day: int, seed: int, cit: np.ndarray, beh: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Thin the events of scheduled behaviours to today's multiplier (policy eras).

    An event survives when ``uniform(schedule:<behaviour>, day, citizen) < multiplier``: a
    pure function of (seed, stream, day, citizen), and a lower multiplier keeps a subset.
    """
    keep = np.ones(cit.shape[0], dtype=np.bool_)
    for b in plan.beh_schedule:
        m = plan.schedule_multiplier(b, day)
        if m >= 1.0:
            continue
        sel = np.flatnonzero(beh == b)
        if sel.shape[0]:
            u = uniforms(day_key(seed, f"schedule:{plan.beh[b]}", day), cit[sel].astype(np.uint64))
            keep[sel] = u < m
    return (cit, beh) if keep.all() else (cit[keep], beh[keep])


@njit(cache=True)
def _count_events(counters: np.ndarray, cit: np.ndarray, kinds: np.ndarray, c_all: int, c_inf: int,
                  k_inf: int, c_speech: int, k_speech: int) -> None:
    for j in range(cit.shape[0]):
        i = cit[j]
        counters[c_all, i] += 1
        if kinds[j] == k_inf:
            counters[c_inf, i] += 1
        elif kinds[j] == k_speech:
            counters[c_speech, i] += 1


class Behave:
    """Stage 1: today's true events, and each citizen's lifetime event counters."""

    name: str = "behave"
    reads: tuple[str, ...] = ("state.listed", "state.resp_day")
    writes: tuple[str, ...] = ("day.events", "state.counters")

    def __init__(self, plan: Plan, st: State, seed: int, block: int) -> None:
        self.plan = plan
        self.block = block
        self.sampler = make_sampler(plan, st, seed)

    def run(self, st: State, d: Day, x: Exchange) -> None:
        cit, beh = behave(self.plan, st, d.day, self.block, self.sampler)
        _count_events(st.counters, cit, self.plan.beh_kind[beh], C["events"], C["infractions"],
                      KINDS.index("infraction"), C["speech"], KINDS.index("speech"))
        d.events = Events(cit, beh)
