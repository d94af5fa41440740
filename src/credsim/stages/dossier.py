"""Stage 3, file: records due today enter the dossier; records whose time is up leave it.

Filing a record, in each view it belongs to (official, shadow):
- adds its points to the points score, within the cap per period, and schedules the
  same amount to be taken back when the record expires;
- counts it for model-score features and for list entry rules (within their windows);
- a count reaching a list's threshold schedules an entry after the grace days;
- a cure record (repayment, compliance) clears the list's count, cancels a pending entry
  and takes the citizen off the list.

Every filed record is kept in the state's ledger under an id (``day << 32 | row``), so it can
be retracted later (an appeal, a correction; see :mod:`credsim.stages.retraction`), which this
stage applies after filing and expiry on the day it is due.

The work is one sequential pass over today's records (few, compared with citizens).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from credsim.day import Day, Filed, ListExits, Retracted, ScoreChanges
from credsim.exchange import Exchange
from credsim.plan import Plan
from credsim.prefetch import AHEAD, prefetch2, prefetch3
from credsim.stages.retraction import retract_due
from credsim.state import C, State

K_POINTS, K_FEATURE, K_LIST = 0, 1, 2


class FileRules(NamedTuple):
    """The file stage's part of the scenario, as the kernel takes it: points rules and their cap,
    model features, list entry and cure rules (index tables by record type and list)."""

    n_beh: int
    rule_points: np.ndarray  # (R,) points per record type
    rule_expiry: np.ndarray  # (R,) days until the points are taken back
    rtype_neg_row: np.ndarray  # (R,) row of neg_by_domain of each record type's domain (plan.neg_row)
    rtype_adverse: np.ndarray  # (R,) counts against the citizen (plan.rtype_adverse)
    cap_period: int  # 0: no cap
    cap_loss: float
    cap_gain: float
    feat_types: np.ndarray  # (R, F) record types counted by each model feature
    feat_expiry: np.ndarray  # (F,)
    entry_types: np.ndarray  # (R, L) record types counted by each list's entry rule
    entry_count: np.ndarray  # (L,)
    entry_count_dim: np.ndarray  # (L,) group dimension of a per-group count, or -1
    entry_count_g: np.ndarray  # (L, V) count per group of that dimension
    entry_window: np.ndarray  # (L,)
    entry_grace: np.ndarray  # (L,)
    cure_types: np.ndarray  # (R, L) record types that clear a list
    cure_slot: np.ndarray  # (L,) the list's row of cured_seq (-1: no cure)
    c_true: int  # counter rows
    c_false: int
    c_adverse: int
    feat_max: int  # the largest count state.feat_count's type holds (state.feat_dtype)
    list_max: int  # the same for state.list_count (state.list_count_dtype)


class DossierColumns(NamedTuple):
    """The state columns filing changes (all indexed ``[view, ..., citizen]``)."""

    score: np.ndarray
    cap_used: np.ndarray
    neg_by_domain: np.ndarray
    assoc_pts: np.ndarray
    feat_count: np.ndarray
    list_count: np.ndarray
    cured_seq: np.ndarray
    pending: np.ndarray
    listed: np.ndarray
    counters: np.ndarray
    groups: np.ndarray  # (D, N) read only: a list's entry count may depend on the group


class RecordColumns(NamedTuple):
    cit: np.ndarray
    rtype: np.ndarray
    official: np.ndarray
    shadow: np.ndarray
    true: np.ndarray


def file_rules(plan: Plan, st: State) -> FileRules:
    """Compile the file stage's rules from the plan (references to its arrays: free to rebuild), with the largest
    counts the state's count columns hold."""
    return FileRules(plan.n_beh, plan.rule_points, plan.rule_expiry, plan.rtype_neg_row, plan.rtype_adverse,
                     plan.cap_period, plan.cap_loss, plan.cap_gain, plan.feat_types, plan.feat_expiry,
                     plan.entry_types, plan.entry_count, plan.entry_count_dim, plan.entry_count_g,
                     plan.entry_window, plan.entry_grace, plan.cure_types, plan.cure_slot,
                     C["records_true"], C["records_false"], C["records_adverse"],
                     int(np.iinfo(st.feat_count.dtype).max), int(np.iinfo(st.list_count.dtype).max))


def dossier_columns(st: State) -> DossierColumns:
    return DossierColumns(st.score, st.cap_used, st.neg_by_domain, st.assoc_pts, st.feat_count, st.list_count,
                          st.cured_seq, st.pending, st.listed, st.counters, st.groups)


@njit(cache=True)
def entry_need(li: int, i: int, count: np.ndarray, dim: np.ndarray, by_group: np.ndarray,
               groups: np.ndarray) -> int:
    """Records citizen ``i`` needs to enter list ``li``: the list's count, or its group's under ``count_by``."""
    d = dim[li]
    return count[li] if d < 0 else by_group[li, groups[d, i]]


@njit(inline="always", cache=True)
def _hint(i: int, t: int, rules: FileRules, cols: DossierColumns) -> None:
    """Prefetch the dossier lines a record will touch (see :mod:`credsim.prefetch`): why filing is not
    one cache miss after the other."""
    if rules.rule_points[t] != 0.0:
        prefetch2(cols.score, 0, i)
        prefetch2(cols.score, 1, i)
        if rules.rule_points[t] < 0.0 and cols.neg_by_domain.shape[0] > 0:
            prefetch2(cols.neg_by_domain, rules.rtype_neg_row[t], i)
    if t < rules.n_beh:
        prefetch2(cols.counters, rules.c_true, i)
        if rules.rtype_adverse[t]:
            prefetch2(cols.counters, rules.c_adverse, i)
    for li in range(rules.entry_types.shape[1]):
        if rules.entry_types[t, li] or rules.cure_types[t, li]:
            prefetch3(cols.list_count, 0, li, i)
            prefetch3(cols.listed, 0, li, i)
            prefetch3(cols.pending, 0, li, i)


@njit(cache=True)
def _file(rec: RecordColumns, day: int, horizon: int, rules: FileRules, cols: DossierColumns):  # type: ignore[no-untyped-def]
    cit, rtype, official, shadow, true = rec.cit, rec.rtype, rec.official, rec.shadow, rec.true
    n_beh, rule_points, rule_expiry = rules.n_beh, rules.rule_points, rules.rule_expiry
    rtype_neg_row, rtype_adverse, c_adverse = rules.rtype_neg_row, rules.rtype_adverse, rules.c_adverse
    cap_period, cap_loss, cap_gain = rules.cap_period, rules.cap_loss, rules.cap_gain
    feat_types, feat_expiry = rules.feat_types, rules.feat_expiry
    entry_types, entry_count, entry_window = rules.entry_types, rules.entry_count, rules.entry_window
    entry_grace, cure_types, c_true, c_false = rules.entry_grace, rules.cure_types, rules.c_true, rules.c_false
    cure_slot = rules.cure_slot
    score, cap_used, neg_by_domain, assoc_pts = cols.score, cols.cap_used, cols.neg_by_domain, cols.assoc_pts
    feat_count, list_count, cured_seq = cols.feat_count, cols.list_count, cols.cured_seq
    pending, listed, counters = cols.pending, cols.listed, cols.counters
    R = cit.shape[0]
    F = feat_types.shape[1]
    L = entry_types.shape[1]
    applied = np.zeros((R, 2), dtype=np.float32)
    cap = R * 2 * (1 + F)
    # expiry items, compact: citizen, code = idx << 4 | kind << 2 | view (2 = both views), and the
    # amount (points, features) or the filing sequence (list counters, compared with cures)
    x_day = np.empty(cap, dtype=np.int64)
    x_cit = np.empty(cap, dtype=np.int32)
    x_code = np.empty(cap, dtype=np.int32)
    x_amt = np.empty(cap, dtype=np.float32)
    nx = 0
    no_amt = np.zeros(0, dtype=np.float32)
    ycap = R * 2 * max(L, 1)
    y_day = np.empty(ycap, dtype=np.int64)
    y_cit = np.empty(ycap, dtype=np.int32)
    y_code = np.empty(ycap, dtype=np.int32)
    y_seq = np.empty(ycap, dtype=np.int64)
    ny = 0
    pcap = R * 2 * max(L, 1)
    p_day = np.empty(pcap, dtype=np.int64)
    p_cit = np.empty(pcap, dtype=np.int64)
    p_mode = np.empty(pcap, dtype=np.int64)
    p_list = np.empty(pcap, dtype=np.int64)
    np_ = 0
    c_cit = np.empty(pcap, dtype=np.int64)
    c_mode = np.empty(pcap, dtype=np.int64)
    c_list = np.empty(pcap, dtype=np.int64)
    nc = 0
    for r in range(R):
        if r + AHEAD < R:
            _hint(cit[r + AHEAD], rtype[r + AHEAD], rules, cols)
        i, t = cit[r], rtype[r]
        seq = np.int64(day) * np.int64(1 << 32) + r
        if official[r] and t < n_beh:
            if true[r]:
                counters[c_true, i] += 1
            else:
                counters[c_false, i] += 1
            if rtype_adverse[t]:
                counters[c_adverse, i] += 1
        vx = (nx, nx)
        vy = (ny, ny)
        for m in range(2):
            if (official[r] if m == 0 else shadow[r]) == 0:
                continue
            if m == 1:
                vx = (vx[0], nx)
                vy = (vy[0], ny)
            pts = rule_points[t]
            if pts != 0.0:
                a = pts
                if cap_period > 0:
                    if pts < 0:
                        room = cap_loss - cap_used[m, 0, i]
                        a = -min(-pts, max(room, 0.0))
                        cap_used[m, 0, i] += -a
                    else:
                        room = cap_gain - cap_used[m, 1, i]
                        a = min(pts, max(room, 0.0))
                        cap_used[m, 1, i] += a
                if a != 0.0:
                    score[m, i] += a
                    applied[r, m] = a
                    if m == 0 and a < 0 and neg_by_domain.shape[0] > 0:
                        neg_by_domain[rtype_neg_row[t], i] += -a
                    if t >= n_beh and assoc_pts.shape[1] > 0:
                        assoc_pts[m, i] += a
                    due = day + rule_expiry[t]
                    if due < horizon:
                        x_day[nx] = due; x_cit[nx] = i; x_code[nx] = (t << 4) | (K_POINTS << 2) | m
                        x_amt[nx] = a
                        nx += 1
            for f in range(F):
                if feat_types[t, f]:
                    if feat_count[m, f, i] == rules.feat_max:  # state.feat_dtype's bound was wrong: never wrap
                        raise OverflowError("a model feature's live records outgrew state.feat_count's type")
                    feat_count[m, f, i] += 1
                    due = day + feat_expiry[f]
                    if due < horizon:
                        x_day[nx] = due; x_cit[nx] = i; x_code[nx] = (f << 4) | (K_FEATURE << 2) | m
                        x_amt[nx] = 1.0
                        nx += 1
            for li in range(L):
                if cure_types[t, li]:
                    list_count[m, li, i] = 0
                    cured_seq[m, cure_slot[li], i] = seq + 1  # 0: nothing cured yet
                    pending[m, li, i] = 0
                    if listed[m, li, i]:
                        c_cit[nc] = i; c_mode[nc] = m; c_list[nc] = li
                        nc += 1
                if entry_types[t, li]:
                    if list_count[m, li, i] == rules.list_max:  # state.list_count_dtype's bound was wrong: never wrap
                        raise OverflowError("a list's live entry records outgrew state.list_count's type")
                    list_count[m, li, i] += 1
                    due = day + entry_window[li]
                    if due < horizon:
                        y_day[ny] = due; y_cit[ny] = i; y_code[ny] = (li << 4) | (K_LIST << 2) | m
                        y_seq[ny] = seq
                        ny += 1
                    if (list_count[m, li, i] >= entry_need(li, i, entry_count, rules.entry_count_dim,
                                                           rules.entry_count_g, cols.groups)
                            and listed[m, li, i] == 0
                            and pending[m, li, i] == 0):
                        due = day + entry_grace[li]
                        pending[m, li, i] = due + 1  # 0 is none (state.pending)
                        p_day[np_] = due; p_cit[np_] = i; p_mode[np_] = m; p_list[np_] = li
                        np_ += 1
        # a record in both views usually schedules the same items twice: keep one, marked "both"
        if official[r] and shadow[r]:
            nx = _merge_views(vx[0], vx[1], nx, x_day, x_code, x_amt)
            ny = _merge_views(vy[0], vy[1], ny, y_day, y_code, no_amt)
    return (applied,
            (x_day[:nx], x_cit[:nx], x_code[:nx], x_amt[:nx]),
            (y_day[:ny], y_cit[:ny], y_code[:ny], y_seq[:ny]),
            (p_day[:np_], p_cit[:np_], p_mode[:np_], p_list[:np_]),
            (c_cit[:nc], c_mode[:nc], c_list[:nc]))


@njit(inline="always", cache=True)
def _merge_views(s0: int, s1: int, end: int, day: np.ndarray, code: np.ndarray, amt: np.ndarray) -> int:
    """Items ``[s0, s1)`` (official) and ``[s1, end)`` (shadow) of one record: if they are the same
    but for the view, keep the first run marked "both" and return the new end. ``amt`` may be
    empty (list items carry no amount)."""
    k = s1 - s0
    if k == 0 or end - s1 != k:
        return end
    for a in range(k):
        if day[s0 + a] != day[s1 + a] or code[s0 + a] != code[s1 + a] - 1:
            return end
        if amt.shape[0] and amt[s0 + a] != amt[s1 + a]:
            return end
    for a in range(k):
        code[s0 + a] += 2
    return s1


@njit(cache=True)
def _expire(cit: np.ndarray, code: np.ndarray, amt: np.ndarray, n_beh: int, rtype_neg_row: np.ndarray,
            score: np.ndarray, neg_by_domain: np.ndarray, assoc_pts: np.ndarray, feat_count: np.ndarray) -> None:
    """Take back points and feature counts (view 2 means both views)."""
    for k in range(cit.shape[0]):
        i, v, kind, j = cit[k], code[k] & 3, (code[k] >> 2) & 3, code[k] >> 4
        for m in range(2):
            if v != 2 and v != m:
                continue
            if kind == K_POINTS:
                score[m, i] -= amt[k]
                if m == 0 and amt[k] < 0 and neg_by_domain.shape[0] > 0:
                    neg_by_domain[rtype_neg_row[j], i] -= -amt[k]
                if j >= n_beh and assoc_pts.shape[1] > 0:
                    assoc_pts[m, i] -= amt[k]
            else:
                feat_count[m, j, i] -= 1


@njit(cache=True)
def _expire_lists(cit: np.ndarray, code: np.ndarray, seq: np.ndarray, list_count: np.ndarray,
                  cured_seq: np.ndarray, cure_slot: np.ndarray) -> None:
    """Drop list-window counts, unless a cure has cleared the record already."""
    for k in range(cit.shape[0]):
        i, v, j = cit[k], code[k] & 3, code[k] >> 4
        cs = cure_slot[j]
        for m in range(2):
            if (v == 2 or v == m) and (cs < 0 or seq[k] >= cured_seq[m, cs, i]):
                list_count[m, j, i] -= 1


@njit(cache=True)
def _unexpire(cit: np.ndarray, code: np.ndarray, amt: np.ndarray, n_beh: int, rtype_neg_row: np.ndarray,
              score: np.ndarray, neg_by_domain: np.ndarray, assoc_pts: np.ndarray, feat_count: np.ndarray) -> None:
    """Cancel take-backs of retracted records (undo items name one view each): the inverse of ``_expire``."""
    for k in range(cit.shape[0]):
        i, m, kind, j = cit[k], code[k] & 3, (code[k] >> 2) & 3, code[k] >> 4
        if kind == K_POINTS:
            score[m, i] += amt[k]
            if m == 0 and amt[k] < 0 and neg_by_domain.shape[0] > 0:
                neg_by_domain[rtype_neg_row[j], i] += -amt[k]
            if j >= n_beh and assoc_pts.shape[1] > 0:
                assoc_pts[m, i] += amt[k]
        else:
            feat_count[m, j, i] += 1


@njit(cache=True)
def _unexpire_lists(cit: np.ndarray, code: np.ndarray, seq: np.ndarray, list_count: np.ndarray,
                    cured_seq: np.ndarray, cure_slot: np.ndarray) -> None:
    """Cancel list-window drops of retracted records: the inverse of ``_expire_lists``."""
    for k in range(cit.shape[0]):
        i, m, j = cit[k], code[k] & 3, code[k] >> 4
        cs = cure_slot[j]
        if cs < 0 or seq[k] >= cured_seq[m, cs, i]:
            list_count[m, j, i] += 1


def file_records(plan: Plan, st: State, day: int, horizon: int) -> tuple[Filed, ListExits]:
    """File the records due today; return them with the points applied, and the cure exits."""
    rec = st.records.pop(day)
    if len(rec) == 0:
        return Filed(rec), ListExits()
    applied, exp, lexp, pend, cures = _file(
        RecordColumns(rec.cit, rec.rtype, rec.official, rec.shadow, rec.true), day, horizon,
        file_rules(plan, st),
        dossier_columns(st))
    st.expiry.push_by_day(exp[0], *exp[1:])
    st.list_expiry.push_by_day(lexp[0], *lexp[1:])
    st.entries.push_by_day(pend[0], *pend[1:])
    st.ledger.add(day, rec, applied)
    return Filed(rec, applied), ListExits(*cures)


def expire(plan: Plan, st: State, day: int) -> ScoreChanges:
    """Take back what expires today; return the points taken off each score."""
    lc, lcode, lseq = st.list_expiry.pop(day)
    if lc.shape[0]:
        _expire_lists(lc, lcode, lseq, st.list_count, st.cured_seq, plan.cure_slot)
    cit, code, amt = st.expiry.pop(day)
    if cit.shape[0]:
        _expire(cit, code, amt, plan.n_beh, plan.rtype_neg_row, st.score, st.neg_by_domain,
                st.assoc_pts, st.feat_count)
    pts = ((code >> 2) & 3) == K_POINTS
    c, v, a = cit[pts].astype(np.int64), (code[pts] & 3).astype(np.int64), amt[pts].astype(np.float64)
    both = v == 2
    if both.any():  # one item for both views: report it once per view
        c = np.concatenate([c[~both], c[both], c[both]])
        a = np.concatenate([a[~both], a[both], a[both]])
        v = np.concatenate([v[~both], np.zeros(int(both.sum()), np.int64), np.ones(int(both.sum()), np.int64)])
    changes = ScoreChanges(c, v, -a)
    undo = _undo_expiry(plan, st, day)
    return changes if undo is None else _concat(changes, undo)


def _undo_expiry(plan: Plan, st: State, day: int) -> ScoreChanges | None:
    """Undo items of retracted records due today; None when there are none (the usual day)."""
    lc, lcode, lseq = st.list_undo.pop(day)
    if lc.shape[0]:
        _unexpire_lists(lc, lcode, lseq, st.list_count, st.cured_seq, plan.cure_slot)
    cit, code, amt = st.expiry_undo.pop(day)
    if cit.shape[0] == 0:
        return None
    _unexpire(cit, code, amt, plan.n_beh, plan.rtype_neg_row, st.score, st.neg_by_domain, st.assoc_pts, st.feat_count)
    pts = ((code >> 2) & 3) == K_POINTS
    return ScoreChanges(cit[pts].astype(np.int64), (code[pts] & 3).astype(np.int64), amt[pts].astype(np.float64))


def _concat(a: ScoreChanges, b: ScoreChanges) -> ScoreChanges:
    return ScoreChanges(np.concatenate([a.cit, b.cit]), np.concatenate([a.mode, b.mode]),
                        np.concatenate([a.amount, b.amount]))


def lifetime(plan: Plan) -> int:
    """Days after filing until nothing of a record can be live (points, features, list windows)."""
    spans = [plan.rule_expiry, plan.feat_expiry, plan.entry_window]
    return int(max((int(s.max()) for s in spans if s.shape[0]), default=0))


def reset_caps(plan: Plan, st: State, day: int) -> None:
    if plan.cap_period and day % plan.cap_period == 0 and day > 0:
        st.cap_used[:] = 0


class File:
    """Stage 3: records due today enter the dossier, expired ones leave it (points, features, counts)."""

    name: str = "file"
    reads: tuple[str, ...] = ("state.records", "state.expiry", "state.list_expiry", "state.retractions",
                              "state.ledger", "state.listed", "state.listed_since")
    writes: tuple[str, ...] = ("day.filed", "day.list_exits", "day.score_changes", "state.score", "state.cap_used",
                               "state.neg_by_domain", "state.assoc_pts", "state.feat_count", "state.list_count",
                               "state.cured_seq", "state.pending", "state.counters", "state.records",
                               "state.expiry", "state.list_expiry", "state.entries", "state.ledger",
                               "state.expiry_undo", "state.list_undo", "state.retractions", "day.retracted")

    def __init__(self, plan: Plan, days: int) -> None:
        self.plan = plan
        self.days = days
        self.lifetime = lifetime(plan)

    def run(self, st: State, d: Day, x: Exchange) -> None:
        reset_caps(self.plan, st, d.day)
        d.filed, d.list_exits = file_records(self.plan, st, d.day, self.days)
        d.score_changes = expire(self.plan, st, d.day)
        st.ledger.prune(d.day - self.lifetime + 1)
        ret = retract_due(self.plan, st, d.day, self.days)
        if ret.rid.shape[0]:
            d.retracted = Retracted(ret.rid, ret.reason)
            d.score_changes = _concat(d.score_changes, ret.scores)
            d.list_exits = ListExits(*(np.concatenate([getattr(d.list_exits, k), getattr(ret.exits, k)])
                                       for k in ("cit", "mode", "lst")))
