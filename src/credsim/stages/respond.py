"""Stage 7, respond: sanctions and listings change behaviour, and spread along ties.

- ``own_sanction`` / ``own_listed`` responses start for the citizen concerned;
- ``contact_listed`` responses start for every active contact of a newly listed citizen;
- ``cut_ties``: each such contact drops the tie with the given probability;
- **association**: a list with ``association_points`` files a record against every active
  contact of a newly listed citizen, tomorrow -- in the official view for official
  listings and in the shadow view for shadow listings.

A response's effect on rates is computed lazily in ``behave`` from the day it was last
triggered, so fading with a half-life costs nothing here. Work is in proportion to
listings and their contacts, never to the population.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.plan import TRIGGERS, Plan
from credsim.rng import day_key, uniform
from credsim.state import State


@njit(cache=True)
def _neighbours(src: np.ndarray, indptr: np.ndarray, indices: np.ndarray, active: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    tot = 0
    for j in src:
        tot += indptr[j + 1] - indptr[j]
    nb = np.empty(tot, dtype=np.int64)
    origin = np.empty(tot, dtype=np.int64)
    k = 0
    for j in src:
        for e in range(indptr[j], indptr[j + 1]):
            if active[e]:
                nb[k] = indices[e]
                origin[k] = j
                k += 1
    return nb[:k], origin[:k]


@njit(cache=True)
def cut_ties(src: np.ndarray, key: np.uint64, prob: float, indptr: np.ndarray, indices: np.ndarray,
             active: np.ndarray, lo: int, hi: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Each active contact ``i`` of a newly listed ``j`` drops the tie with probability ``prob``.

    Both directions are cleared when ``i`` is in ``[lo, hi)`` (the whole population in one
    process); otherwise the ``i -> j`` direction belongs to another shard and the pair is
    returned so that shard can clear it. Returns (ties cut, foreign i, foreign j)."""
    cut = 0
    tot = 0
    for j in src:
        tot += indptr[j + 1] - indptr[j]
    fi = np.empty(tot, dtype=np.int64)
    fj = np.empty(tot, dtype=np.int64)
    k = 0
    for j in src:
        for e in range(indptr[j], indptr[j + 1]):
            if not active[e]:
                continue
            i = indices[e]
            c = (np.uint64(i) << np.uint64(32)) | np.uint64(j)
            if uniform(key, c) < prob:
                active[e] = 0
                cut += 1
                if lo <= i < hi:
                    for f in range(indptr[i], indptr[i + 1]):
                        if indices[f] == j:
                            active[f] = 0
                else:
                    fi[k] = i
                    fj[k] = j
                    k += 1
    return cut, fi[:k], fj[:k]


def respond(plan: Plan, st: State, day: int, seed: int, denied: np.ndarray,
            list_events: tuple[np.ndarray, ...]) -> dict[str, object]:
    """Trigger responses and association; return what happened for measure and traces."""
    ecit, emode, elist, edir, _ = list_events
    g = st.graph
    out: dict[str, object] = {"triggered": {}, "ties_cut": 0, "assoc": 0}
    for q, name in enumerate(plan.responses):
        trig = TRIGGERS[plan.resp_trigger[q]]
        sel = (emode == 0) & (edir == 1) & plan.resp_lists[q, elist] if ecit.shape[0] else np.zeros(0, np.bool_)
        if trig == "own_sanction":
            who = denied
        elif trig == "own_listed":
            who = ecit[sel]
        else:
            src = ecit[sel]
            if plan.resp_cut[q]:
                key = day_key(seed, f"cut:{name}", day)
                n_cut, _fi, _fj = cut_ties(src, key, plan.resp_prob[q], g.indptr, g.indices, g.active, 0, st.n)
                out["ties_cut"] = int(out["ties_cut"]) + int(n_cut)  # type: ignore[call-overload]
                continue
            who, _o = _neighbours(src, g.indptr, g.indices, g.active)
        if who.shape[0]:
            st.resp_day[q, who] = day
        out["triggered"][name] = who  # type: ignore[index]
    # association records, filed tomorrow
    n_assoc = 0
    for li in np.flatnonzero(plan.assoc_points != 0):
        rtype = plan.n_beh + int(li)
        for m in range(2):
            sel = (emode == m) & (edir == 1) & (elist == li)
            if not sel.any():
                continue
            nb, _o = _neighbours(ecit[sel], g.indptr, g.indices, g.active)
            if nb.shape[0] == 0:
                continue
            order = np.argsort(nb, kind="stable")
            nb = nb[order]
            k = nb.shape[0]
            one, zero = np.ones(k, np.uint8), np.zeros(k, np.uint8)
            st.records.push(day + 1, nb, np.full(k, rtype, np.int64), np.full(k, -1, np.int64),
                            np.full(k, day, np.int64), one if m == 0 else zero,
                            zero if m == 0 else one, one)
            n_assoc += k
    out["assoc"] = n_assoc
    return out
