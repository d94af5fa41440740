"""Stage 6, sanction: today's attempts (book a flight, apply for a loan) meet the rules.

Each attempt is checked twice, against the official state and against the shadow one:
denied if any ``deny`` sanction covering the attempt applies (the citizen is on its list
or holds one of its grades), else rewarded if any ``reward`` sanction applies.

A sanction marked ``own_domain`` (the audit's cross-context counterfactual) uses only the
attempt's own domain, in the official view: a record-entered list applies only to attempts
of the list's domain; a points grade (or a list entered by grade) is the grade of the base
score less the official points lost in that domain -- the same "points lost" the
cross-context share below is made of. A model-score grade cannot be split by domain and is
used as it is.

For each official denial the stage also records
- the **cross-context share**: how much of what triggered it came from another domain
  than the attempt's (a court list blocking a train ticket scores 1.0; for a grade, the
  share of points lost in other domains) -- the test of EU AI Act Art. 5(1)(c)(i);
- whether it was **association-only**: the grade would not have triggered it without the
  points lost because of contacts.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from credsim.conditions import VIEW_ADJUSTED, VIEW_AS_IS, VIEW_OWN_DOMAIN, CondTables, Reading, first_atom_held, holds
from credsim.day import Attempts, Day
from credsim.exchange import Exchange
from credsim.names import KINDS
from credsim.plan import Plan
from credsim.prefetch import AHEAD, prefetch2, prefetch3
from credsim.state import C, State


@njit(cache=True)
def _grade(score: float, mins: np.ndarray) -> int:
    g = 0
    while g < mins.shape[0] and score < mins[g]:
        g += 1
    return g


class SanctionRules(NamedTuple):
    """The sanction stage's part of the scenario: which sanction covers which attempt, when it
    applies (a list or grades), and what is needed to split a denial by domain and association."""

    san_list: np.ndarray  # (K,) list index or -1 (a grade sanction)
    san_grades: np.ndarray  # (K, G)
    san_attempts: np.ndarray  # (K, B)
    san_reward: np.ndarray  # (K,)
    list_domain: np.ndarray  # (L,) at least one row
    list_by_grade: np.ndarray  # (L,)
    entry_grades: np.ndarray  # (L, G)
    beh_domain: np.ndarray  # (B,)
    neg_row: np.ndarray  # (domains,) row of neg_by_domain holding a domain's points lost (plan.neg_row)
    grade_mins: np.ndarray  # (G-1,) descending
    points_graded: bool  # grades come from the points score (association-only can be judged)
    own_domain: np.ndarray  # (K,) only records of the attempt's domain count (cross-context counterfactual)
    points_base: float  # the points score everyone starts from (unless by group)
    counter_rows: np.ndarray  # attempts, denied, rewarded, wrongful, missed, association_only
    base_dim: int  # group dimension of per-group starting points, or -1
    base_g: np.ndarray  # (V,) starting points per group of that dimension
    cond: CondTables  # compound conditions (san_list == -2)
    san_reaches: np.ndarray  # (K,) bool: a denial also harms the citizen's dependants


class SanctionColumns(NamedTuple):
    listed: np.ndarray
    grade: np.ndarray
    neg_by_domain: np.ndarray
    score: np.ndarray
    assoc_pts: np.ndarray
    counters: np.ndarray
    mscore: np.ndarray  # (2, N or 0): a compound condition may test the model score
    groups: np.ndarray  # (D, N): starting points may depend on the group


def sanction_rules(plan: Plan) -> SanctionRules:
    has_lists = len(plan.lists) > 0
    return SanctionRules(
        plan.san_list, plan.san_grades, plan.san_attempts, plan.san_reward,
        plan.list_domain if has_lists else np.zeros(1, np.int64),
        plan.list_by_grade if has_lists else np.zeros(1, np.bool_),
        plan.entry_grades if has_lists else np.zeros((1, 1), np.bool_),
        plan.beh_domain, plan.neg_row, plan.grade_mins, plan.grade_source == "points" and bool(plan.grades),
        plan.san_own_domain, float(plan.points_base),
        np.array([C[k] for k in ("attempts", "denied", "rewarded", "wrongful", "missed", "association_only")],
                 dtype=np.int64),
        plan.points_base_dim, plan.points_base_g, plan.san_cond, plan.san_reaches)


@njit(cache=True)
def _base(i: int, rules: SanctionRules, groups: np.ndarray) -> float:
    """Citizen ``i``'s starting points (the score with nothing lost or gained)."""
    d = rules.base_dim
    return rules.points_base if d < 0 else rules.base_g[groups[d, i]]


@njit(cache=True)
def _compound(k: int, i: int, m: int, how: int, dom: int, rules: SanctionRules, cols: SanctionColumns,
              reading: Reading) -> bool:
    """Sanction ``k``'s compound condition for citizen ``i`` in view ``m``: as it is, with only domain ``dom``'s
    records (VIEW_OWN_DOMAIN: points = start less the points lost in that domain) or without association
    points (VIEW_ADJUSTED). A grade follows the adjusted points when grades come from points."""
    pts = cols.score[m, i]
    mod = cols.mscore[m, i] if cols.mscore.shape[1] > 0 else 0.0
    g = cols.grade[m, i]
    if how == VIEW_OWN_DOMAIN and cols.neg_by_domain.shape[0] > 0:
        pts = _base(i, rules, cols.groups) - cols.neg_by_domain[rules.neg_row[dom], i]
    elif how == VIEW_ADJUSTED and cols.assoc_pts.shape[1] > 0:
        pts = cols.score[m, i] - cols.assoc_pts[m, i]
    if how != VIEW_AS_IS and rules.points_graded:
        g = _grade(pts, rules.grade_mins)
    elif how == VIEW_ADJUSTED:
        how = VIEW_AS_IS  # the grade is not made of points: lists are read as they are
    return holds(k, rules.cond, reading, i, m, g, pts, mod, how, dom)


@njit(cache=True)
def _own_domain_hit(k: int, li: int, i: int, dom: int, row: int, san_grades: np.ndarray, list_domain: np.ndarray,
                    list_by_grade: np.ndarray, entry_grades: np.ndarray, listed: np.ndarray, grade: np.ndarray,
                    neg_by_domain: np.ndarray, mins: np.ndarray, points_graded: bool, points_base: float) -> bool:
    """Whether sanction ``k`` applies to citizen ``i`` counting only records of domain ``dom`` (official; its
    points lost are in ``neg_by_domain``'s row ``row``)."""
    if li >= 0 and not list_by_grade[li]:
        return listed[0, li, i] == 1 and list_domain[li] == dom
    if points_graded and neg_by_domain.shape[0] > 0:
        g = _grade(points_base - neg_by_domain[row, i], mins)
    else:
        g = grade[0, i]
    return entry_grades[li, g] if li >= 0 else san_grades[k, g]


@njit(cache=True)
def _check(cit: np.ndarray, beh: np.ndarray, rules: SanctionRules, cols: SanctionColumns):  # type: ignore[no-untyped-def]
    san_list, san_grades, san_attempts = rules.san_list, rules.san_grades, rules.san_attempts
    san_reward = rules.san_reward
    list_domain, list_by_grade, entry_grades = rules.list_domain, rules.list_by_grade, rules.entry_grades
    beh_domain, mins, points_graded = rules.beh_domain, rules.grade_mins, rules.points_graded
    own_domain = rules.own_domain
    c_att, c_den, c_rew = rules.counter_rows[0], rules.counter_rows[1], rules.counter_rows[2]
    c_wrong, c_miss, c_assoc = rules.counter_rows[3], rules.counter_rows[4], rules.counter_rows[5]
    listed, grade, neg_by_domain, score = cols.listed, cols.grade, cols.neg_by_domain, cols.score
    assoc_pts, counters = cols.assoc_pts, cols.counters
    reading = Reading(listed, list_by_grade, list_domain, entry_grades)
    A, K = cit.shape[0], san_list.shape[0]
    den = np.zeros((A, 2), dtype=np.uint8)
    rew = np.zeros((A, 2), dtype=np.uint8)
    first = np.full(A, -1, dtype=np.int64)
    cross = np.full(A, np.nan)
    assoc_only = np.zeros(A, dtype=np.uint8)
    reach = np.zeros(A, dtype=np.uint8)
    L = listed.shape[1]
    for a in range(A):
        if a + AHEAD < A:  # the lines of the attempt a few rows on: their misses overlap (credsim.prefetch)
            j = cit[a + AHEAD]
            prefetch2(counters, c_att, j)
            for li in range(L):
                prefetch3(listed, 0, li, j)
                prefetch3(listed, 1, li, j)
        i, b = cit[a], beh[a]
        for m in range(2):
            for k in range(K):
                if not san_attempts[k, b]:
                    continue
                li = san_list[k]
                if li == -2:
                    hit = _compound(k, i, m, VIEW_OWN_DOMAIN if m == 0 and own_domain[k] else VIEW_AS_IS,
                                    beh_domain[b], rules, cols, reading)
                elif m == 0 and own_domain[k]:
                    hit = _own_domain_hit(k, li, i, beh_domain[b], rules.neg_row[beh_domain[b]], san_grades,
                                          list_domain, list_by_grade,
                                          entry_grades, listed, grade, neg_by_domain, mins, points_graded,
                                          _base(i, rules, cols.groups))
                else:
                    hit = listed[m, li, i] == 1 if li >= 0 else san_grades[k, grade[m, i]]
                if not hit:
                    continue
                if san_reward[k]:
                    rew[a, m] = 1
                else:
                    den[a, m] = 1
                    if m == 0 and first[a] < 0:
                        first[a] = k
                    if m == 0 and rules.san_reaches[k]:
                        reach[a] = 1
        if den[a, 0]:
            rew[a, 0] = 0
        if den[a, 1]:
            rew[a, 1] = 0
        counters[c_att, i] += 1
        k = first[a]
        if k >= 0:
            counters[c_den, i] += 1
            li = san_list[k]
            dom = beh_domain[b]
            if li == -2:
                _compound_denial(a, k, i, dom, rules, cols, reading, cross, assoc_only)
            elif li >= 0 and not list_by_grade[li]:
                cross[a] = 1.0 if list_domain[li] != dom else 0.0
            else:
                cross[a] = _share_elsewhere(neg_by_domain, rules.neg_row[dom], i)
                if points_graded and assoc_pts.shape[1] > 0 and assoc_pts[0, i] < 0:
                    g = _grade(score[0, i] - assoc_pts[0, i], mins)
                    still = entry_grades[li, g] if li >= 0 else san_grades[k, g]
                    if not still:
                        assoc_only[a] = 1
                        counters[c_assoc, i] += 1
            if den[a, 1] == 0:
                counters[c_wrong, i] += 1
        elif den[a, 1]:
            counters[c_miss, i] += 1
        if rew[a, 0]:
            counters[c_rew, i] += 1
    return den, rew, first, cross, assoc_only, reach


@njit(cache=True)
def _share_elsewhere(neg_by_domain: np.ndarray, row: int, i: int) -> float:
    """The share of citizen ``i``'s official points lost outside the domain whose losses are in ``row`` (the
    cross-context share of a denial by points or grade); 0 when nothing was lost."""
    tot = 0.0
    for d in range(neg_by_domain.shape[0]):
        tot += neg_by_domain[d, i]
    return 0.0 if tot <= 0 else (tot - neg_by_domain[row, i]) / tot


@njit(cache=True)
def _compound_denial(a: int, k: int, i: int, dom: int, rules: SanctionRules, cols: SanctionColumns,
                     reading: Reading, cross: np.ndarray, assoc_only: np.ndarray) -> None:
    """Cross-context share and association-only test of an official denial by a compound condition.

    The share is judged by the first atom that holds (declared order): a list entered by records
    gives 1 or 0 by its domain, anything else the share of points lost in other domains. The
    denial is association-only when the condition no longer holds without the association points."""
    mod = cols.mscore[0, i] if cols.mscore.shape[1] > 0 else 0.0
    at = first_atom_held(k, rules.cond, reading, i, 0, cols.grade[0, i], cols.score[0, i], mod)
    li = rules.cond.atom_list[at] if at >= 0 else -1
    if li >= 0 and not rules.list_by_grade[li]:
        cross[a] = 1.0 if rules.list_domain[li] != dom else 0.0
    else:
        cross[a] = _share_elsewhere(cols.neg_by_domain, rules.neg_row[dom], i)
    if (cols.assoc_pts.shape[1] > 0 and cols.assoc_pts[0, i] < 0
            and not _compound(k, i, 0, VIEW_ADJUSTED, dom, rules, cols, reading)):
        assoc_only[a] = 1
        cols.counters[rules.counter_rows[5], i] += 1


@njit(cache=True)
def _increment(counters: np.ndarray, row: int, cit: np.ndarray) -> None:
    for i in cit:
        counters[row, i] += 1


def sanction(plan: Plan, st: State, cit: np.ndarray, beh: np.ndarray) -> Attempts:
    """Check today's attempts; return per-attempt outcomes in both views."""
    att = plan.beh_kind[beh] == KINDS.index("attempt")
    a_cit, a_beh = cit[att], beh[att]
    if len(plan.sanctions) == 0 or a_cit.shape[0] == 0:
        A = a_cit.shape[0]
        _increment(st.counters, C["attempts"], a_cit)
        return Attempts(a_cit, a_beh, np.zeros((A, 2), np.uint8), np.zeros((A, 2), np.uint8),
                        np.full(A, -1, np.int64), np.full(A, np.nan), np.zeros(A, np.uint8))
    listed = st.listed if st.listed.shape[1] else np.zeros((2, 1, st.n), dtype=np.uint8)
    cols = SanctionColumns(listed, st.grade, st.neg_by_domain, st.score, st.assoc_pts, st.counters, st.mscore,
                           st.groups)
    den, rew, first, cross, assoc_only, reach = _check(a_cit, a_beh, sanction_rules(plan), cols)
    if st.dep_denied.shape[0]:
        # a denial that reaches dependants: counted per citizen (children affected = their dependants)
        np.add.at(st.dep_denied, a_cit[reach == 1], 1)
    return Attempts(a_cit, a_beh, den, rew, first, cross, assoc_only)


class Sanction:
    """Stage 6: today's attempts against today's grades and lists, in both views."""

    name: str = "sanction"
    reads: tuple[str, ...] = ("day.events", "state.listed", "state.grade", "state.neg_by_domain", "state.score",
                              "state.assoc_pts", "state.mscore", "state.groups")
    writes: tuple[str, ...] = ("day.attempts", "state.counters", "state.dep_denied")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def run(self, st: State, d: Day, x: Exchange) -> None:
        d.attempts = sanction(self.plan, st, d.events.cit, d.events.beh)
