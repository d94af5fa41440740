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
from numba import njit, prange

from credsim.plan import Plan
from credsim.rng import day_key, static_key, uniform
from credsim.state import Records, State


@njit(inline="always", cache=True)
def _group_factor(table: np.ndarray, s: int, groups: np.ndarray, i: int) -> float:
    f = 1.0
    for d in range(groups.shape[0]):
        f *= table[s, d, groups[d, i]]
    return f


@njit(inline="always", cache=True)
def covered(s: int, i: int, cov_keys: np.ndarray, cov: np.ndarray, cov_group: np.ndarray,
            groups: np.ndarray) -> bool:
    p = min(1.0, cov[s] * _group_factor(cov_group, s, groups, i))
    return uniform(cov_keys[s], np.uint64(i)) < p


@njit(cache=True)
def _detect(cit: np.ndarray, beh: np.ndarray, det_keys: np.ndarray, cov_keys: np.ndarray,
            cov: np.ndarray, cov_group: np.ndarray, det: np.ndarray, surv: np.ndarray,
            obs: np.ndarray, shared: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per event: the filing sensor (or -1), and per (event, sensor) whether it saw it."""
    E, S = cit.shape[0], obs.shape[0]
    filer = np.full(E, -1, dtype=np.int64)
    seen = np.zeros((E, S), dtype=np.uint8)
    for j in range(E):
        i, b = cit[j], beh[j]
        for s in range(S):
            if not obs[s, b]:
                continue
            if not covered(s, i, cov_keys, cov, cov_group, groups):
                continue
            p = min(1.0, det[s] * _group_factor(surv, s, groups, i))
            if uniform(det_keys[s, b], np.uint64(i)) < p:
                seen[j, s] = 1
                if shared[s] and filer[j] < 0:
                    filer[j] = s
    return filer, seen


@njit(parallel=True, cache=True)
def _false_scan(fill: bool, offsets: np.ndarray, out_cit: np.ndarray, out_pair: np.ndarray,
                n: int, block: int, pair_s: np.ndarray, pair_b: np.ndarray, keys: np.ndarray,
                ub: np.ndarray, fr: np.ndarray, surv: np.ndarray, cov_keys: np.ndarray,
                cov: np.ndarray, cov_group: np.ndarray, groups: np.ndarray) -> np.ndarray:
    P = pair_s.shape[0]
    nblocks = (n + block - 1) // block
    counts = np.zeros(nblocks, dtype=np.int64)
    for c in prange(nblocks):
        k = offsets[c] if fill else 0
        cnt = 0
        for i in range(c * block, min(n, (c + 1) * block)):
            for p in range(P):
                u = uniform(keys[p], np.uint64(i))
                if u >= ub[p]:
                    continue
                s = pair_s[p]
                if u >= min(1.0, fr[s] * _group_factor(surv, s, groups, i)):
                    continue
                if not covered(s, i, cov_keys, cov, cov_group, groups):
                    continue
                if fill:
                    out_cit[k + cnt] = i
                    out_pair[k + cnt] = p
                cnt += 1
        counts[c] = cnt
    return counts


class Observer:
    """Holds the per-run keys and bounds of the observe stage."""

    def __init__(self, plan: Plan, seed: int) -> None:
        self.plan, self.seed = plan, seed
        S = len(plan.sensors)
        self.cov_keys = np.array([static_key(seed, f"coverage:{s}") for s in plan.sensors], dtype=np.uint64)
        pairs = [(s, b) for s in range(S) for b in range(plan.n_beh)
                 if plan.sen_obs[s, b] and plan.sen_false[s] > 0]
        self.pair_s = np.array([p[0] for p in pairs], dtype=np.int64)
        self.pair_b = np.array([p[1] for p in pairs], dtype=np.int64)
        max_surv = plan.sen_surv.reshape(S, -1).max(axis=1) if S else np.zeros(0)
        self.pair_ub = np.array([min(1.0, plan.sen_false[s] * max_surv[s]) for s, _ in pairs])

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
        keys = np.array([day_key(seed, f"false:{p.sensors[s]}:{p.beh[b]}", day)
                         for s, b in zip(self.pair_s, self.pair_b, strict=True)], dtype=np.uint64)
        z = np.zeros(0, dtype=np.int64)
        fargs = (st.n, block, self.pair_s, self.pair_b, keys, self.pair_ub, p.sen_false,
                 p.sen_surv, self.cov_keys, p.sen_cov, p.sen_cov_group, st.groups)
        if len(keys):
            counts = _false_scan(False, z, z, z, *fargs)
            offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            fcit = np.empty(int(offsets[-1]), dtype=np.int64)
            fpair = np.empty(int(offsets[-1]), dtype=np.int64)
            _false_scan(True, offsets, fcit, fpair, *fargs)
        else:
            fcit, fpair = z, z
        fsen, fbeh = self.pair_s[fpair], self.pair_b[fpair]

        # assemble records: official true, shadow true (merged when delays agree), false
        in_scope = p.beh_in_scope[beh]
        has_off = filer >= 0
        off_delay = np.where(has_off, p.sen_delay[np.maximum(filer, 0)], -1)
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
        # queue by file day; within a day keep (citizen, type) order for determinism
        order = np.lexsort((rec.rtype, rec.cit, fileday))
        rec = rec.take(order)
        fileday = fileday[order]
        for d in np.unique(fileday) if fileday.shape[0] else []:
            sel = fileday == d
            st.records.push(int(d), *(rec.take(np.flatnonzero(sel)).__dict__.values()))
        return rec, seen, fcit, fsen
