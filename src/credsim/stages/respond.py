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

What reaches another citizen goes through the exchange (see :mod:`credsim.exchange`): in one
process it comes straight back; across shards it is routed to the citizen's owner. The stage
waits at a barrier after each ``cut_ties`` response (a later response must see the ties cut
everywhere) and once at the end of the day (association records, responses and list status
of contacts owned elsewhere).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numba import njit

from credsim.day import Day, Responses
from credsim.exchange import Exchange
from credsim.graph import is_cut, set_cut
from credsim.names import TRIGGERS
from credsim.plan import Plan
from credsim.rng import day_key, uniform
from credsim.state import State


@njit(cache=True)
def _neighbours(src: np.ndarray, indptr: np.ndarray, indices: np.ndarray, cut: np.ndarray, lo: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Active contacts of the citizens ``src`` (rows held from citizen ``lo`` on), with whose contact each is."""
    tot = 0
    for j in src:
        tot += indptr[j - lo + 1] - indptr[j - lo]
    nb = np.empty(tot, dtype=np.int64)
    origin = np.empty(tot, dtype=np.int64)
    k = 0
    for j in src:
        for e in range(indptr[j - lo], indptr[j - lo + 1]):
            if not is_cut(cut, e):
                nb[k] = indices[e]
                origin[k] = j
                k += 1
    return nb[:k], origin[:k]


@njit(cache=True)
def cut_ties(src: np.ndarray, key: np.uint64, prob: float, indptr: np.ndarray, indices: np.ndarray,
             cut: np.ndarray, lo: int, hi: int) -> tuple[int, np.ndarray, np.ndarray]:
    """Each active contact ``i`` of a newly listed ``j`` drops the tie with probability ``prob``.

    Both directions are cleared when ``i`` is in ``[lo, hi)`` (the whole population in one
    process); otherwise the ``i -> j`` direction belongs to another shard and the pair is
    returned so that shard can clear it. The rows held are those of ``[lo, hi)`` (``indptr[i - lo]``).
    Returns (ties cut, foreign i, foreign j)."""
    n_cut = 0
    tot = 0
    for j in src:
        tot += indptr[j - lo + 1] - indptr[j - lo]
    fi = np.empty(tot, dtype=np.int64)
    fj = np.empty(tot, dtype=np.int64)
    k = 0
    for j in src:
        for e in range(indptr[j - lo], indptr[j - lo + 1]):
            if is_cut(cut, e):
                continue
            i = indices[e]
            c = (np.uint64(i) << np.uint64(32)) | np.uint64(j)
            if uniform(key, c) < prob:
                set_cut(cut, e)
                n_cut += 1
                if lo <= i < hi:
                    for f in range(indptr[i - lo], indptr[i - lo + 1]):
                        if indices[f] == j:
                            set_cut(cut, f)
                else:
                    fi[k] = i
                    fj[k] = j
                    k += 1
    return n_cut, fi[:k], fj[:k]


@njit(cache=True)
def apply_cuts(ci: np.ndarray, cj: np.ndarray, indptr: np.ndarray, indices: np.ndarray, cut: np.ndarray,
               lo: int) -> int:
    """Clear ties ``i -> j`` cut by j's owner (rows held from citizen ``lo`` on); return how many were
    cleared already (cut from both sides)."""
    twice = 0
    for k in range(ci.shape[0]):
        i, j = ci[k], cj[k]
        for f in range(indptr[i - lo], indptr[i - lo + 1]):
            if indices[f] == j:
                if not is_cut(cut, f):
                    set_cut(cut, f)
                else:
                    twice += 1
    return twice


class Respond:
    """Stage 7: deterrence, chilling, cut ties, association records (see the module docstring)."""

    name: str = "respond"
    reads: tuple[str, ...] = ("day.lists", "day.attempts", "state.graph")
    writes: tuple[str, ...] = ("day.responses", "state.resp_day", "state.graph", "state.records", "state.listed")

    def __init__(self, plan: Plan, seed: int) -> None:
        self.plan = plan
        self.seed = seed
        model = plan.scen.scoring.model
        # only a model feature on contacts' list status reads other ranges' list flags
        self.needs_listed = model is not None and any(f.contacts_listed for f in model.features.values())

    def run(self, st: State, d: Day, x: Exchange) -> Iterator[None]:
        p, g, day = self.plan, st.graph, d.day
        ecit, emode, elist, edir = d.lists.cit, d.lists.mode, d.lists.lst, d.lists.direction
        att = d.attempts
        denied = att.cit[att.denied[:, 0] == 1]
        out = Responses()
        for q, name in enumerate(p.responses):
            trig = TRIGGERS[p.resp_trigger[q]]
            sel = (emode == 0) & (edir == 1) & p.resp_lists[q, elist] if ecit.shape[0] else np.zeros(0, np.bool_)
            if trig == "own_sanction":
                who = denied
            elif trig == "own_listed":
                who = ecit[sel]
            else:
                src = ecit[sel]
                if p.resp_cut[q]:
                    key = day_key(self.seed, f"cut:{name}", day)
                    n_cut, fi, fj = cut_ties(src, key, p.resp_prob[q], g.indptr, g.indices, g.cut, x.lo, x.hi)
                    out.ties_cut += int(n_cut)
                    x.send("cut", fi, fj)
                    yield  # barrier: later responses must see every range's cuts
                    out.ties_cut -= self._apply_round(st, x, day)
                    continue
                who, _o = _neighbours(src, g.indptr, g.indices, g.cut, g.lo)
                mine = x.mine(who)
                x.send("resp", who[~mine], np.full(int((~mine).sum()), q, np.int64))
                who_own = who[mine]
                if who_own.shape[0]:
                    st.resp_day[q, who_own] = day + 1  # the day plus 1 (state.resp_day)
                out.triggered[name] = who
                continue
            if who.shape[0]:
                st.resp_day[q, who] = day + 1
            out.triggered[name] = who
        # association records for contacts of newly listed citizens, filed tomorrow by their owners
        for li in np.flatnonzero(p.assoc_points != 0):
            for m in range(2):
                sel = (emode == m) & (edir == 1) & (elist == li)
                if not sel.any():
                    continue
                nb, _o = _neighbours(ecit[sel], g.indptr, g.indices, g.cut, g.lo)
                out.assoc += int(nb.shape[0])
                x.send("assoc", nb, np.full(nb.shape[0], int(li) * 2 + m, np.int64))
        # today's list changes, to the ranges holding a contact (only a model feature reads them);
        # a tie cut later is never read again, so a stale flag behind it does not matter
        if ecit.shape[0] and self.needs_listed and x.ranges > 1:
            rows = np.stack([ecit, emode, elist, edir]).astype(np.int64)
            nb, origin = _neighbours(np.unique(ecit), g.indptr, g.indices, g.cut, g.lo)
            dest = x.owner(nb)
            for k in np.unique(dest[dest != x.index]).tolist():
                x.send_to(int(k), "listed", rows[:, np.isin(ecit, origin[dest == k])])
        yield  # end of the day: what other ranges sent for this one
        out.ties_cut -= self._apply_round(st, x, day)
        self._file_association(st, x, day)
        for rows in x.received("listed"):
            c, m, li, dr = rows
            st.listed[m, li, c] = (dr == 1).astype(np.uint8)
        x.end_day()
        d.responses = out

    @staticmethod
    def _apply_round(st: State, x: Exchange, day: int) -> int:
        """Ties cut by other ranges, and responses they started here; returns cuts counted twice."""
        g = st.graph
        twice = 0
        for rows in x.received("cut"):
            twice += int(apply_cuts(rows[0], rows[1], g.indptr, g.indices, g.cut, g.lo))
        for rows in x.received("resp"):
            st.resp_day[rows[1], rows[0]] = day + 1
        return twice

    def _file_association(self, st: State, x: Exchange, day: int) -> None:
        """Queue association records for tomorrow, per list and view, in citizen order."""
        got = x.received("assoc")
        if not got:
            return
        allr = np.concatenate(got, axis=1)
        for code in range(2 * len(self.plan.lists)):
            nb = allr[0, allr[1] == code]
            if nb.shape[0] == 0:
                continue
            nb = np.sort(nb, kind="stable")
            k = nb.shape[0]
            li, m = divmod(code, 2)
            one, zero = np.ones(k, np.uint8), np.zeros(k, np.uint8)
            st.records.push(day + 1, nb, np.full(k, self.plan.n_beh + li, np.int64), np.full(k, -1, np.int64),
                            np.full(k, day, np.int64), one if m == 0 else zero, zero if m == 0 else one, one)
