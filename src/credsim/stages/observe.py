"""Stage 2, observe: sensors turn true events into records, miss some, invent some.

For each true event of behaviour b by citizen i, each sensor s that observes b:
- covers i with probability ``coverage_s x coverage_by_s(groups of i)`` (a fixed draw per
  sensor and citizen: a camera network covers the same people every day);
- detects the event with probability ``detection_s x surveillance_s(groups of i)``.
The first *shared* sensor (in declared order) that detects it files the official record,
after its delay. Every event of a behaviour that some shared sensor observes also files
a **shadow** record (the perfectly informed view), after the first such sensor's delay.

False records (misattributed camera matches, benign posts flagged) arrive at rate
``false_rate_s x surveillance_s(i)`` per covered citizen, day and observed behaviour;
they enter the official dossier only. Face matching and text screening are modelled as
these rates with their error profile: credsim contains no classifier of any kind.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.day import Day, Observations
from credsim.exchange import Exchange
from credsim.plan import Plan
from credsim.prefetch import AHEAD, prefetch2
from credsim.rng import day_key, static_key, uniform
from credsim.sampling import Sampler, Streams, covered, group_factor
from credsim.state import Records, State


@njit(cache=True)
def _detect(cit: np.ndarray, beh: np.ndarray, det_keys: np.ndarray, cov_keys: np.ndarray,
            cov: np.ndarray, cov_group: np.ndarray, det: np.ndarray, surv: np.ndarray,
            obs: np.ndarray, shared: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per event: the filing sensor (or -1), and per (event, sensor) whether it saw it."""
    E, S = cit.shape[0], obs.shape[0]
    filer = np.full(E, -1, dtype=np.int64)
    seen = np.zeros((E, S), dtype=np.uint8)
    for j in range(E):
        if j + AHEAD < E:
            for d in range(groups.shape[0]):  # coverage and detection read the groups of the event's citizen
                prefetch2(groups, d, cit[j + AHEAD])
        i, b = cit[j], beh[j]
        for s in range(S):
            if not obs[s, b]:
                continue
            if not covered(s, i, cov_keys, cov, cov_group, groups):
                continue
            p = min(1.0, det[s] * group_factor(surv, s, groups, i))
            if uniform(det_keys[s, b], np.uint64(i)) < p:
                seen[j, s] = 1
                if shared[s] and filer[j] < 0:
                    filer[j] = s
    return filer, seen


class Observer:
    """Stage 2: sensors make records (queued until their delay has passed); holds the per-run keys."""

    name: str = "observe"
    reads: tuple[str, ...] = ("day.events",)
    writes: tuple[str, ...] = ("day.observations", "state.records")

    def __init__(self, plan: Plan, st: State, seed: int, block: int, lo: int = 0, hi: int | None = None) -> None:
        self.plan, self.seed, self.block = plan, seed, block
        S = len(plan.sensors)
        self.cov_keys = np.array([static_key(seed, f"coverage:{s}") for s in plan.sensors], dtype=np.uint64)
        pairs = [(s, b) for s in range(S) for b in range(plan.n_beh)
                 if plan.sen_obs[s, b] and plan.sen_false[s] > 0]
        self.pair_s = np.array([p[0] for p in pairs], dtype=np.int64)
        self.pair_b = np.array([p[1] for p in pairs], dtype=np.int64)
        P = len(pairs)
        # false records: one sparse stream per (sensor, observed behaviour), rate false_rate x
        # surveillance(groups), kept only for citizens the sensor covers
        streams = Streams(
            names=[f"{plan.sensors[s]}:{plan.beh[b]}" for s, b in pairs],
            base=plan.sen_false[self.pair_s] if P else np.zeros(0),
            group=plan.sen_surv[self.pair_s] if P else np.ones((0, len(plan.dims), plan.maxv)),
            beta=np.zeros((P, len(plan.traits))),
            only_listed=np.full(P, -1, dtype=np.int64),
            applies=np.zeros((len(plan.responses), P), dtype=np.bool_),
            cover_sensor=self.pair_s.copy(),
        )
        self.false_sampler = Sampler(streams, st.groups, st.traits, seed, "false:", st.n, lo, hi)

    def run(self, st: State, d: Day, x: Exchange) -> None:
        _rec, seen, fcit, fsen = self.observe(st, d.events.cit, d.events.beh, d.day, self.block)
        d.observations = Observations(seen, fcit, fsen)

    def observe(self, st: State, cit: np.ndarray, beh: np.ndarray, day: int, block: int
                ) -> tuple[Records, np.ndarray, np.ndarray, np.ndarray]:
        """Records from today's events, plus who each sensor saw (true and false)."""
        p, seed = self.plan, self.seed
        S, B = len(p.sensors), p.n_beh
        det_keys = np.zeros((max(S, 1), max(B, 1)), dtype=np.uint64)
        for s in range(S):
            for b in range(B):
                if p.sen_obs[s, b]:
                    det_keys[s, b] = day_key(seed, f"detect:{p.sensors[s]}:{p.beh[b]}", day)
        filer, seen = _detect(cit, beh, det_keys, self.cov_keys, p.sen_cov, p.sen_cov_group,
                              p.sen_det, p.sen_surv, p.sen_obs, p.sen_shared, st.groups)
        # false records, all sensors (unshared ones only count as observations)
        listed_off = np.zeros((1, 1), dtype=np.uint8)  # no false stream is list-restricted
        no_resp = np.zeros((0, 1), dtype=np.int32)
        fcit, fpair = self.false_sampler.sample(day, block, listed_off, no_resp, np.zeros(0), np.ones(0),
                                                self.cov_keys, p.sen_cov, p.sen_cov_group)
        fsen, fbeh = self.pair_s[fpair], self.pair_b[fpair]

        # assemble records: official true, shadow true (merged when delays agree), false
        in_scope = p.beh_in_scope[beh]
        has_off = filer >= 0
        off_delay = np.where(has_off, p.sen_delay[np.maximum(filer, 0)], -1) if S else np.full(filer.shape, -1)
        sh_delay = p.beh_shadow_delay[beh]
        merged = has_off & in_scope & (off_delay == sh_delay)
        only_off = has_off & ~merged
        only_sh = in_scope & ~merged
        fshared = p.sen_shared[fsen] if len(fsen) else np.zeros(0, dtype=np.bool_)
        parts = []
        for mask, sensor, off, sh, delay in (
            (merged, filer, 1, 1, sh_delay),
            (only_off, filer, 1, 0, off_delay),
            (only_sh, np.full_like(filer, -1), 0, 1, sh_delay),
        ):
            idx = np.flatnonzero(mask)
            parts.append((cit[idx], beh[idx], sensor[idx], np.full(idx.shape[0], off, np.uint8),
                          np.full(idx.shape[0], sh, np.uint8), np.ones(idx.shape[0], np.uint8),
                          day + delay[idx]))
        fi = np.flatnonzero(fshared)
        parts.append((fcit[fi], fbeh[fi], fsen[fi], np.ones(fi.shape[0], np.uint8),
                      np.zeros(fi.shape[0], np.uint8), np.zeros(fi.shape[0], np.uint8),
                      day + p.sen_delay[fsen[fi]]))
        cols = [np.concatenate([pt[k] for pt in parts]) for k in range(7)]
        rec = Records(cit=cols[0], rtype=cols[1], sensor=cols[2],
                      eday=np.full(cols[0].shape[0], day, dtype=np.int64),
                      official=cols[3], shadow=cols[4], true=cols[5])
        fileday = cols[6].astype(np.int64)
        # queue by file day (few distinct delays); the order within a day is the order above,
        # which depends only on the events, never on blocks or threads
        if fileday.shape[0]:
            for d in range(int(fileday.min()), int(fileday.max()) + 1):
                sel = np.flatnonzero(fileday == d)
                if sel.shape[0]:
                    part = rec if sel.shape[0] == fileday.shape[0] else rec.take(sel)
                    st.records.push(d, *(part.__dict__.values()))
        return rec, seen, fcit, fsen
