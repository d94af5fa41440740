"""Retraction: a filed record leaves the dossier before its time (an appeal won, a correction).

What "retracted on day d" means, view by view (the official dossier, the shadow one, or both):
from day d on the record's **points**, **feature counts** and **list counts** are as if it had
never been filed, and so is the **list membership** they caused; the past is kept (the days it
counted stay in the metrics, the traces and the event log). Concretely, for each live part:

- points come off the score (and off the points-lost-by-domain and association columns), the
  cap room of the current period is given back, and an *undo* item is queued for the day the
  record would have expired, so that day's take-back is cancelled;
- feature and list-window counts drop by one (a list count only while the record still
  counts, i.e. no cure has cleared it), with undo items for their expiry days;
- when a list's count falls below its entry count, a pending entry is cancelled, and a stay
  that began after the record was filed ends today (an exit the list pass applies). A stay
  that began before it was filed did not need it and is kept.

Exactness holds for what a record adds directly. Two effects of a record are not replayed,
and are said here rather than hidden: the cap room it used is given back, but records filed
after it in the same cap period keep the capped amounts they got; and a grade-based list
follows the regraded score by its own exit rule (``on_grade_recovery``). Retraction does not
cascade to association records a listing sent to contacts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from credsim.day import ListExits, ScoreChanges
from credsim.names import RETRACTION_REASONS
from credsim.plan import Plan
from credsim.state import F_OFFICIAL, F_RETRACTED_OFFICIAL, F_RETRACTED_SHADOW, F_SHADOW, State

K_POINTS, K_FEATURE, K_LIST = 0, 1, 2  # the dossier's item kinds (see dossier.py)
VIEW_BITS = ((F_OFFICIAL, F_RETRACTED_OFFICIAL), (F_SHADOW, F_RETRACTED_SHADOW))


class RetractionResult(NamedTuple):
    """What today's retractions changed: the score deltas, the exits to apply, the records and reasons."""

    scores: ScoreChanges
    exits: ListExits
    rid: np.ndarray
    reason: np.ndarray


def request(st: State, day: int, rid: np.ndarray, reason: str, views: int = 1) -> None:
    """Queue the retraction of records ``rid`` on ``day`` (``views``: bit 0 official, bit 1 shadow;
    ``reason`` one of :data:`credsim.names.RETRACTION_REASONS`)."""
    if reason not in RETRACTION_REASONS:
        raise ValueError(f"retraction reason {reason!r} is not one of {', '.join(RETRACTION_REASONS)}")
    if not st.ledger.keep:
        raise ValueError("retraction needs the record ledger, which only runs of scenarios with a redress "
                         "section keep (set state.ledger.keep before the first record is filed)")
    rid = np.asarray(rid, dtype=np.int64)
    code = RETRACTION_REASONS.index(reason)
    st.retractions.push(day, rid, np.full(rid.shape[0], views, np.int64), np.full(rid.shape[0], code, np.int64))


def retract_due(plan: Plan, st: State, day: int, horizon: int) -> RetractionResult:
    """Apply the retractions due today (see the module docstring)."""
    req = st.retractions.pop(day)
    empty = RetractionResult(ScoreChanges(), ListExits(), req.rid, req.reason)
    if req.rid.shape[0] == 0:
        return empty
    found, fday, row = st.ledger.lookup(req.rid)
    rid, views, fday, row = req.rid[found], req.views[found], fday[found], row[found]
    if rid.shape[0] == 0:
        return empty
    led = st.ledger
    cit = led.column(0, fday, row).astype(np.int64)
    rtype = led.column(1, fday, row).astype(np.int64)
    flags = led.column(2, fday, row)
    applied = np.stack([led.column(3, fday, row), led.column(4, fday, row)], axis=1)
    sc: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    ex: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for m, (in_view, gone) in enumerate(VIEW_BITS):
        sel = np.flatnonzero(((views >> m) & 1 == 1) & ((flags & in_view) != 0) & ((flags & gone) == 0))
        if sel.shape[0] == 0:
            continue
        led.set_flags(fday[sel], row[sel], gone)
        i, t, f, a = cit[sel], rtype[sel], fday[sel], applied[sel, m]
        seq = rid[sel]
        sc.append(_points(plan, st, day, horizon, m, i, t, f, a))
        _features(plan, st, day, horizon, m, i, t, f)
        ex.append(_lists(plan, st, day, horizon, m, i, t, f, seq))
    scores = ScoreChanges(*(np.concatenate([x[k] for x in sc]) for k in range(3))) if sc else ScoreChanges()
    exits = ListExits(*(np.concatenate([x[k] for x in ex]) for k in range(3))) if ex else ListExits()
    return RetractionResult(scores, exits, rid, req.reason[found])


def _points(plan: Plan, st: State, day: int, horizon: int, m: int, i: np.ndarray, t: np.ndarray,
            f: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    due = f + plan.rule_expiry[t]
    live = (a != 0) & (day < due)
    i, t, f, a, due = i[live], t[live], f[live], a[live], due[live]
    np.subtract.at(st.score[m], i, a)
    if m == 0 and st.neg_by_domain.shape[0]:
        lost = a < 0
        np.subtract.at(st.neg_by_domain, (plan.rtype_neg_row[t[lost]], i[lost]), -a[lost])
    if st.assoc_pts.shape[1]:
        assoc = t >= plan.n_beh
        np.subtract.at(st.assoc_pts[m], i[assoc], a[assoc])
    if plan.cap_period:
        same = (f // plan.cap_period) == (day // plan.cap_period)  # caps reset on multiples of the period
        np.subtract.at(st.cap_used, (m, np.where(a < 0, 0, 1)[same], i[same]), np.abs(a[same]))
    later = due < horizon
    code = ((t << 4) | (K_POINTS << 2) | m).astype(np.int32)
    st.expiry_undo.push_by_day(due[later], i[later].astype(np.int32), code[later], a[later].astype(np.float32))
    return i, np.full(i.shape[0], m, np.int64), -a.astype(np.float64)


def _features(plan: Plan, st: State, day: int, horizon: int, m: int, i: np.ndarray, t: np.ndarray,
              f: np.ndarray) -> None:
    for k in range(plan.feat_types.shape[1]):
        due = f + plan.feat_expiry[k]
        live = plan.feat_types[t, k] & (day < due)
        np.subtract.at(st.feat_count[m, k], i[live], 1)
        later = live & (due < horizon)
        st.expiry_undo.push_by_day(due[later], i[later].astype(np.int32),
                                   np.full(int(later.sum()), (k << 4) | (K_FEATURE << 2) | m, np.int32),
                                   np.ones(int(later.sum()), np.float32))


def _lists(plan: Plan, st: State, day: int, horizon: int, m: int, i: np.ndarray, t: np.ndarray,
           f: np.ndarray, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out_c, out_l = [], []
    for li in range(len(plan.lists)):
        due = f + plan.entry_window[li]
        cs = int(plan.cure_slot[li])
        live = plan.entry_types[t, li] & (day < due)
        if cs >= 0:  # (a list no record cures has no row: nothing of it was cured)
            live &= seq >= st.cured_seq[m, cs, i]  # cured_seq holds the cure's number plus 1
        if not live.any():
            continue
        np.subtract.at(st.list_count[m, li], i[live], 1)
        later = live & (due < horizon)
        st.list_undo.push_by_day(due[later], i[later].astype(np.int32),
                                 np.full(int(later.sum()), (li << 4) | (K_LIST << 2) | m, np.int32), seq[later])
        ii, ff = i[live], f[live]
        order = np.lexsort((ff, ii))  # by citizen, earliest filing first
        ii, ff = ii[order], ff[order]
        starts = np.flatnonzero(np.concatenate([[True], ii[1:] != ii[:-1]]))
        who, first = ii[starts], ff[starts]
        below = st.list_count[m, li, who] < plan.entry_count_of(li, st.groups, who)
        who, first = who[below], first[below]
        st.pending[m, li, who] = 0  # the queued entry finds no pending entry on its day
        if plan.list_by_grade[li]:
            continue
        leave = (st.listed[m, li, who] == 1) & (st.listed_since[m, li, who] >= first)
        out_c.append(who[leave])
        out_l.append(np.full(int(leave.sum()), li, np.int64))
    c = np.concatenate(out_c) if out_c else np.zeros(0, np.int64)
    lst = np.concatenate(out_l) if out_l else np.zeros(0, np.int64)
    return c, np.full(c.shape[0], m, np.int64), lst
