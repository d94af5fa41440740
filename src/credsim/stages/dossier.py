"""Stage 3, file: records due today enter the dossier; records whose time is up leave it.

Filing a record, in each view it belongs to (official, shadow):
- adds its points to the points score, within the cap per period, and schedules the
  same amount to be taken back when the record expires;
- counts it for model-score features and for list entry rules (within their windows);
- a count reaching a list's threshold schedules an entry after the grace days;
- a cure record (repayment, compliance) clears the list's count, cancels a pending entry
  and takes the citizen off the list.

The work is one sequential pass over today's records (few, compared with citizens).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.plan import Plan
from credsim.state import C, Records, State

K_POINTS, K_FEATURE, K_LIST = 0, 1, 2


@njit(cache=True)
def _file(cit: np.ndarray, rtype: np.ndarray, official: np.ndarray, shadow: np.ndarray,
          true: np.ndarray, day: int, n_beh: int,
          rule_points: np.ndarray, rule_expiry: np.ndarray, rtype_domain: np.ndarray,
          cap_period: int, cap_loss: float, cap_gain: float,
          feat_types: np.ndarray, feat_expiry: np.ndarray,
          entry_types: np.ndarray, entry_count: np.ndarray, entry_window: np.ndarray,
          entry_grace: np.ndarray, cure_types: np.ndarray,
          score: np.ndarray, cap_used: np.ndarray, neg_by_domain: np.ndarray, assoc_pts: np.ndarray,
          feat_count: np.ndarray, list_count: np.ndarray, cured_seq: np.ndarray,
          pending: np.ndarray, listed: np.ndarray, counters: np.ndarray,
          c_true: int, c_false: int, horizon: int):
    R = cit.shape[0]
    F = feat_types.shape[1]
    L = entry_types.shape[1]
    applied = np.zeros((R, 2), dtype=np.float32)
    cap = R * 2 * (1 + F + L)
    # expiry items, compact: citizen, code = idx << 3 | kind << 1 | view, amount, filing sequence
    x_day = np.empty(cap, dtype=np.int64)
    x_cit = np.empty(cap, dtype=np.int32)
    x_code = np.empty(cap, dtype=np.int32)
    x_amt = np.empty(cap, dtype=np.float32)
    x_seq = np.empty(cap, dtype=np.int64)
    nx = 0
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
        i, t = cit[r], rtype[r]
        seq = np.int64(day) * np.int64(1 << 32) + r
        if official[r] and t < n_beh:
            if true[r]:
                counters[c_true, i] += 1
            else:
                counters[c_false, i] += 1
        for m in range(2):
            if (official[r] if m == 0 else shadow[r]) == 0:
                continue
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
                        neg_by_domain[rtype_domain[t], i] += -a
                    if t >= n_beh and assoc_pts.shape[1] > 0:
                        assoc_pts[m, i] += a
                    due = day + rule_expiry[t]
                    if due < horizon:
                        x_day[nx] = due; x_cit[nx] = i; x_code[nx] = (t << 3) | (K_POINTS << 1) | m
                        x_amt[nx] = a; x_seq[nx] = seq
                        nx += 1
            for f in range(F):
                if feat_types[t, f]:
                    feat_count[m, f, i] += 1
                    due = day + feat_expiry[f]
                    if due < horizon:
                        x_day[nx] = due; x_cit[nx] = i; x_code[nx] = (f << 3) | (K_FEATURE << 1) | m
                        x_amt[nx] = 1.0; x_seq[nx] = seq
                        nx += 1
            for li in range(L):
                if cure_types[t, li]:
                    list_count[m, li, i] = 0
                    cured_seq[m, li, i] = seq
                    pending[m, li, i] = -1
                    if listed[m, li, i]:
                        c_cit[nc] = i; c_mode[nc] = m; c_list[nc] = li
                        nc += 1
                if entry_types[t, li]:
                    list_count[m, li, i] += 1
                    due = day + entry_window[li]
                    if due < horizon:
                        x_day[nx] = due; x_cit[nx] = i; x_code[nx] = (li << 3) | (K_LIST << 1) | m
                        x_amt[nx] = 1.0; x_seq[nx] = seq
                        nx += 1
                    if (list_count[m, li, i] >= entry_count[li] and listed[m, li, i] == 0
                            and pending[m, li, i] < 0):
                        due = day + entry_grace[li]
                        pending[m, li, i] = due
                        p_day[np_] = due; p_cit[np_] = i; p_mode[np_] = m; p_list[np_] = li
                        np_ += 1
    return (applied,
            (x_day[:nx], x_cit[:nx], x_code[:nx], x_amt[:nx], x_seq[:nx]),
            (p_day[:np_], p_cit[:np_], p_mode[:np_], p_list[:np_]),
            (c_cit[:nc], c_mode[:nc], c_list[:nc]))


@njit(cache=True)
def _expire(cit: np.ndarray, code: np.ndarray, amt: np.ndarray, seq: np.ndarray, n_beh: int,
            rtype_domain: np.ndarray, score: np.ndarray, neg_by_domain: np.ndarray, assoc_pts: np.ndarray,
            feat_count: np.ndarray, list_count: np.ndarray, cured_seq: np.ndarray) -> None:
    for k in range(cit.shape[0]):
        i, m, kind, j = cit[k], code[k] & 1, (code[k] >> 1) & 3, code[k] >> 3
        if kind == K_POINTS:
            score[m, i] -= amt[k]
            if m == 0 and amt[k] < 0 and neg_by_domain.shape[0] > 0:
                neg_by_domain[rtype_domain[j], i] -= -amt[k]
            if j >= n_beh and assoc_pts.shape[1] > 0:
                assoc_pts[m, i] -= amt[k]
        elif kind == K_FEATURE:
            feat_count[m, j, i] -= 1
        elif seq[k] > cured_seq[m, j, i]:
            list_count[m, j, i] -= 1


def file_records(plan: Plan, st: State, day: int, horizon: int) -> tuple[Records, np.ndarray, tuple[np.ndarray, ...]]:
    """File the records due today; return them, the points applied, and the cures."""
    rec = Records(*st.records.pop(day, 7))
    if len(rec) == 0:
        z = np.zeros(0, dtype=np.int64)
        return rec, np.zeros((0, 2), dtype=np.float32), (z, z, z)
    applied, exp, pend, cures = _file(
        rec.cit, rec.rtype, rec.official, rec.shadow, rec.true, day, plan.n_beh,
        plan.rule_points, plan.rule_expiry, plan.rtype_domain,
        plan.cap_period, plan.cap_loss, plan.cap_gain,
        plan.feat_types, plan.feat_expiry,
        plan.entry_types, plan.entry_count, plan.entry_window, plan.entry_grace, plan.cure_types,
        st.score, st.cap_used, st.neg_by_domain, st.assoc_pts, st.feat_count, st.list_count,
        st.cured_seq, st.pending, st.listed, st.counters, C["records_true"], C["records_false"], horizon,
    )
    st.expiry.push_by_day(exp[0], *exp[1:])
    st.entries.push_by_day(pend[0], *pend[1:])
    return rec, applied, cures


def expire(plan: Plan, st: State, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Take back what expires today; return (citizen, view, points) of score changes."""
    cit, code, amt, seq = st.expiry.pop(day, 4)
    if cit.shape[0]:
        _expire(cit, code, amt, seq, plan.n_beh, plan.rtype_domain, st.score, st.neg_by_domain,
                st.assoc_pts, st.feat_count, st.list_count, st.cured_seq)
    pts = ((code >> 1) & 3) == K_POINTS
    return cit[pts].astype(np.int64), (code[pts] & 1).astype(np.int64), amt[pts].astype(np.float64)


def reset_caps(plan: Plan, st: State, day: int) -> None:
    if plan.cap_period and day % plan.cap_period == 0 and day > 0:
        st.cap_used[:] = 0
