"""Stage 5, investigate: capacity-limited enforcement of the riskiest citizens (after score).

Why a stage of its own: welfare-fraud systems (facts E1-E9, NL1, NL9) do not observe events as they
happen; an agency with a fixed number of investigators checks, each day, the citizens a risk
model ranks highest, and what it finds -- or wrongly "finds" -- enters the dossier. The number
investigated is set by capacity, not by behaviour, and whom it reaches is set by the model.

Each day, for each declared investigation, in declaration order:

1. the day's quota is ``floor((d+1)c) - floor(dc)`` for a capacity of ``c`` a day (per 100,000
   citizens of the run with ``per_100k``), so a fractional capacity investigates one citizen
   every ``1/c`` days;
2. the eligible citizens are those not investigated within ``repeat_after_days``; exactly
   ``min(quota, eligible)`` are investigated: the highest (``riskiest: high``) or lowest official
   model or points score, ties by citizen id, or the lowest draws of the stream
   ``investigate:<name>:rank`` (``rank_by: random``: the random checks a model is judged against);
3. a citizen *has* what is looked for when the truth trait is above its threshold; then it is
   found with probability ``found`` (stream ``investigate:<name>:found``), else it is "found"
   with ``false_finding`` times the group multipliers, capped at 1 (same stream);
4. a finding is a record of the declared type filed ``delay_days`` later (at least 1: the
   dossier of today is already filed), official; a true finding is also a shadow record. The
   shadow view of an investigation is therefore the same investigation without false findings.

Scores are today's (the score stage ran), records are filed tomorrow or later: no same-day
cycle between a ranking and the records it produces. The quota is global, so a sharded run is
refused, as for appeal queues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from credsim import rng
from credsim.day import Day, Investigated
from credsim.exchange import Exchange
from credsim.plan import Plan, _group_table
from credsim.scenario.schema import Investigation
from credsim.state import State


def _i64() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass
class InvestigationBook:
    """What the stage remembers: the day each citizen was last investigated, per investigation (-1: never)."""

    last: list[np.ndarray] = field(default_factory=list)


class Investigate:
    """Stage 5: the day's k riskiest citizens are investigated; findings become records."""

    name: str = "investigate"
    reads: tuple[str, ...] = ("state.mscore", "state.score", "state.traits", "state.groups")
    writes: tuple[str, ...] = ("day.investigated", "state.records")

    def __init__(self, plan: Plan, st: State, seed: int, lo: int, hi: int) -> None:
        if (lo, hi) != (0, st.n):
            raise ValueError("investigate: the daily number investigated is one quota for the whole population, so "
                             "a run with investigations cannot be split into shards; run it in one process")
        self.plan = plan
        self.seed = seed
        self.names = list(plan.scen.investigations)
        self.book = InvestigationBook([np.full(st.n, -1, np.int32) for _ in self.names])

    def _one(self, st: State, day: int, k: int, name: str, spec: Investigation) -> tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray]:
        p = self.plan
        c = spec.capacity_per_day * (st.n / 1e5 if spec.per_100k else 1.0)
        quota = math.floor((day + 1) * c) - math.floor(day * c)
        last = self.book.last[k]
        eligible = np.flatnonzero((last < 0) | (day - last >= spec.repeat_after_days))
        if quota <= 0 or eligible.shape[0] == 0:
            return _i64(), _i64(), _i64()
        if spec.rank_by == "random":
            key = rng.uniforms(rng.day_key(self.seed, f"investigate:{name}:rank", day), eligible.astype(np.int64))
        else:
            score = (st.mscore if spec.rank_by == "model" else st.score)[0, eligible].astype(np.float64)
            key = -score if spec.riskiest == "high" else score
        order = np.lexsort((eligible, key))  # smallest key first, ties by citizen id
        who = np.sort(eligible[order[:quota]])
        last[who] = day
        has = st.traits[p.traits.index(spec.truth.trait)][who] > spec.truth.above
        maxv = max(len(v) for v in p.dim_values)
        mult = _group_table(p.scen, spec.false_finding_by, p.dims, maxv)
        fp = np.full(who.shape[0], spec.false_finding)
        for d in range(mult.shape[0]):
            fp = fp * mult[d, st.groups[d][who].astype(np.int64)]
        u = rng.uniforms(rng.day_key(self.seed, f"investigate:{name}:found", day), who.astype(np.int64))
        found = np.where(has, u < spec.found, u < np.minimum(fp, 1.0))
        hit = who[found]
        true = has[found].astype(np.uint8)
        rtype = p.rtypes.index(spec.records)
        nh = hit.shape[0]
        st.records.push(day + spec.delay_days, hit.astype(np.int64), np.full(nh, rtype, np.int64),
                        np.full(nh, -1, np.int64), np.full(nh, day, np.int64), np.ones(nh, np.uint8), true, true)
        return who, found.astype(np.int64), has.astype(np.int64)

    def run(self, st: State, d: Day, x: Exchange) -> None:
        parts = [self._one(st, d.day, k, name, self.plan.scen.investigations[name])
                 for k, name in enumerate(self.names)]
        d.investigated = Investigated(
            np.concatenate([w for w, _f, _h in parts]),
            np.concatenate([np.full(w.shape[0], k, np.int64) for k, (w, _f, _h) in enumerate(parts)]),
            np.concatenate([f for _w, f, _h in parts]), np.concatenate([h for _w, _f, h in parts]))
