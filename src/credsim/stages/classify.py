"""Stage 5, classify: grades from score bands, and list entries and exits.

Only citizens whose score changed today are re-graded (all of them on a model-score
recompute day). List actions are applied in one ordered pass, each checked against the
state at that moment, in both views:
cure exits, entries falling due after their grace days, grade-based entries and exits,
and fixed-term exits.

Grades are set before day 0 from the starting scores, and a list entered by grade is
entered then too (:func:`enter_start_grades`): "re-grade on change" alone would leave a
citizen who *starts* in an entry grade off the list until their grade next changes.
:func:`grade_rule_violations` is the invariant that catches it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from credsim import rng
from credsim.day import Day, GradeChanges, ListChanges, ListExits
from credsim.exchange import Exchange
from credsim.plan import Plan
from credsim.prefetch import AHEAD, prefetch2
from credsim.stages.dossier import entry_need
from credsim.state import C, State, term_rows

A_CURE, A_PENDING, A_GRADE_IN, A_GRADE_OUT, A_TERM = 0, 1, 2, 3, 4


def grade_of(score: np.ndarray, mins: np.ndarray) -> np.ndarray:
    """Band index (0 = highest) for each score; bands are ``min`` descending."""
    return np.searchsorted(-mins, -score.astype(np.float64), side="left").astype(np.int8)


def unique_sorted(a: np.ndarray) -> np.ndarray:
    """Sorted unique values: one pass when already sorted (today's records often are), else NumPy's
    sort (vectorised, several times numba's) and one pass; far faster than np.unique here."""
    if a.shape[0] == 0:
        return a
    return _dedupe_sorted(a if _is_sorted(a) else np.sort(a))


@njit(cache=True)
def _is_sorted(a: np.ndarray) -> bool:
    ok = True
    for j in range(1, a.shape[0]):
        if a[j] < a[j - 1]:
            ok = False
            break
    return ok


@njit(cache=True)
def _dedupe_sorted(s: np.ndarray) -> np.ndarray:
    """The distinct values of the sorted ``s``, in one pass."""
    out = np.empty(s.shape[0], dtype=s.dtype)
    k = 0
    for j in range(s.shape[0]):
        if j == 0 or s[j] != s[j - 1]:
            out[k] = s[j]
            k += 1
    return out[:k]


@njit(inline="always", cache=True)
def _band(x: float, mins: np.ndarray) -> int:
    """:func:`grade_of` of one score: bands whose ``min`` is above it (a NaN sorts last, as in NumPy)."""
    if x != x:
        return mins.shape[0]
    g = 0
    for k in range(mins.shape[0]):
        if mins[k] > x:
            g += 1
    return g


@njit(cache=True)
def _regrade_ids(src: np.ndarray, grade: np.ndarray, mins: np.ndarray, cand: np.ndarray, by_cand: bool, lo: int,
                 hi: int, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Regrade the distinct citizens ``cand`` (``by_cand``), or every citizen of ``[lo, hi)``, in view 0, then
    view 1: the changes, in that order (the order :func:`regrade` has always returned), at most ``cap`` of
    them; the score and grade lines of ``cand`` are prefetched."""
    n = cand.shape[0] if by_cand else hi - lo
    c_out = np.empty(cap, dtype=np.int64)
    m_out = np.empty(cap, dtype=np.int64)
    old_out = np.empty(cap, dtype=np.int64)
    new_out = np.empty(cap, dtype=np.int64)
    k = 0
    for m in range(2):
        for j in range(n):
            if by_cand and j + AHEAD < n:
                prefetch2(src, m, cand[j + AHEAD])
                prefetch2(grade, m, cand[j + AHEAD])
            i = cand[j] if by_cand else lo + j
            g = _band(np.float64(src[m, i]), mins)
            old = grade[m, i]
            if g != old:
                grade[m, i] = g
                c_out[k] = i
                m_out[k] = m
                old_out[k] = old
                new_out[k] = g
                k += 1
    return c_out[:k], m_out[:k], old_out[:k], new_out[:k]


@njit(cache=True)
def _regrade_cand(src: np.ndarray, grade: np.ndarray, mins: np.ndarray, cand: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Regrade the distinct citizens ``cand`` (see :func:`_regrade_ids`); room for every one to change."""
    return _regrade_ids(src, grade, mins, cand, True, 0, 0, 2 * cand.shape[0])


@njit(cache=True)
def _regrade_range(src: np.ndarray, grade: np.ndarray, mins: np.ndarray, lo: int, hi: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Regrade every citizen of ``[lo, hi)`` (see :func:`_regrade_ids`). The changes are counted in a first
    pass, so nothing the size of the range is allocated (a model-score day regrades everyone: whole-range
    temporaries held ~24 B a citizen, 240 MB at 10^7)."""
    k = 0
    for m in range(2):
        for i in range(lo, hi):
            if _band(np.float64(src[m, i]), mins) != grade[m, i]:
                k += 1
    return _regrade_ids(src, grade, mins, np.empty(0, np.int64), False, lo, hi, k)


def regrade(plan: Plan, st: State, cand: np.ndarray | tuple[int, int]) -> GradeChanges:
    """Recompute grades of ``cand`` (distinct citizens, or a range ``(lo, hi)`` of them: everyone of a
    model-score day) and return the changes."""
    if not plan.grades:
        return GradeChanges()
    src = st.score if plan.grade_source == "points" else st.mscore
    if isinstance(cand, tuple):
        return GradeChanges(*_regrade_range(src, st.grade, plan.grade_mins, cand[0], cand[1]))
    return GradeChanges(*_regrade_cand(src, st.grade, plan.grade_mins, cand.astype(np.int64)))


class ListColumns(NamedTuple):
    """The state columns the list pass changes (indexed ``[view, list, citizen]``, counters by row)."""

    listed: np.ndarray
    listed_since: np.ndarray
    list_count: np.ndarray
    pending: np.ndarray
    counters: np.ndarray
    groups: np.ndarray  # (D, N) read only: a list's entry count may depend on the group


class ListRules(NamedTuple):
    entry_count: np.ndarray  # (L,) records needed to enter
    entry_count_dim: np.ndarray  # (L,) group dimension of a per-group count, or -1
    entry_count_g: np.ndarray  # (L, V) records needed per group of that dimension
    c_times: int  # counter rows: times listed, days listed
    c_days: int


@njit(inline="always", cache=True)
def _act(i: int, m: int, li: int, a: int, aux: int, day: int, rules: ListRules, cols: ListColumns
         ) -> tuple[int, int]:
    """One list action on citizen ``i``'s list ``li`` in view ``m``, checked against the state now: +1 (entered),
    -1 (left) or 0 (nothing), and the first day of the stay entered or left."""
    listed, listed_since, list_count = cols.listed, cols.listed_since, cols.list_count
    pending, counters = cols.pending, cols.counters
    enter = False
    leave = False
    if a == A_CURE or a == A_GRADE_OUT:
        leave = listed[m, li, i] == 1
    elif a == A_TERM:
        leave = listed[m, li, i] == 1 and listed_since[m, li, i] == aux
    elif a == A_PENDING:
        if pending[m, li, i] == day + 1:  # due today (state.pending holds the day plus 1)
            pending[m, li, i] = 0
            enter = listed[m, li, i] == 0 and list_count[m, li, i] >= entry_need(
                li, i, rules.entry_count, rules.entry_count_dim, rules.entry_count_g, cols.groups)
    elif a == A_GRADE_IN:
        enter = listed[m, li, i] == 0
    if enter:
        listed[m, li, i] = 1
        listed_since[m, li, i] = day
        if m == 0:
            counters[rules.c_times, i] += 1
        return 1, day
    if leave:
        listed[m, li, i] = 0
        since = int(listed_since[m, li, i])
        if m == 0:
            counters[rules.c_days, i] += day - since
        return -1, since
    return 0, 0


@njit(inline="always", cache=True)
def _changes(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Room for ``k`` accepted list actions: the columns of :class:`~credsim.day.ListChanges`."""
    return (np.empty(k, dtype=np.int64), np.empty(k, dtype=np.int64), np.empty(k, dtype=np.int64),
            np.empty(k, dtype=np.int64), np.empty(k, dtype=np.int64))


@njit(inline="always", cache=True)
def _put(out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], k: int, i: int, m: int, li: int,
         d: int, since: int) -> None:
    """Row ``k`` of :func:`_changes`: citizen, view, list, direction, first day of the stay."""
    out[0][k] = i
    out[1][k] = m
    out[2][k] = li
    out[3][k] = d
    out[4][k] = since


@njit(cache=True)
def _apply(cit: np.ndarray, mode: np.ndarray, lst: np.ndarray, action: int, aux: np.ndarray, day: int,
           rules: ListRules, cols: ListColumns
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply one kind of action to each row in order; the accepted ones (``aux``: a term's entry day)."""
    out = _changes(cit.shape[0])
    k = 0
    for r in range(cit.shape[0]):
        d, since = _act(cit[r], mode[r], lst[r], action, aux[r], day, rules, cols)
        if d != 0:
            _put(out, k, cit[r], mode[r], lst[r], d, since)
            k += 1
    return out[0][:k], out[1][:k], out[2][:k], out[3][:k], out[4][:k]


@njit(cache=True)
def _apply_grades(gc: np.ndarray, gm: np.ndarray, gnew: np.ndarray, li: int, into: np.ndarray, exits: bool, day: int,
                  rules: ListRules, cols: ListColumns
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The grade list ``li``'s actions, read from the grade changes in place: entries of whoever moved into an entry
    grade (``into[new grade]``), in the changes' order, then, with ``exits``, exits of whoever moved out of one.

    A model-score day changes millions of grades and few of them move anyone on or off a list, so the accepted
    actions are counted first and only they are allocated (columns of actions for every change held ~120 B a
    change, 120 MiB at 10^7). The count is exact because a citizen changes grade at most once per view a day
    (:func:`regrade` takes distinct citizens), so no action here sees another's write."""
    n = gc.shape[0]
    listed = cols.listed
    k = 0
    for r in range(n):
        if into[gnew[r]]:
            k += listed[gm[r], li, gc[r]] == 0
        elif exits:
            k += listed[gm[r], li, gc[r]] == 1
    out = _changes(k)
    j = 0
    for a in (A_GRADE_IN, A_GRADE_OUT):
        if a == A_GRADE_OUT and not exits:
            break
        for r in range(n):
            if into[gnew[r]] != (a == A_GRADE_IN):
                continue
            d, since = _act(gc[r], gm[r], li, a, 0, day, rules, cols)
            if d != 0:
                if j == k:
                    raise AssertionError("a citizen changed grade twice in one view")
                _put(out, j, gc[r], gm[r], li, d, since)
                j += 1
    return out


def ground_terms(plan: Plan, seed: int, day: int, cit: np.ndarray, lst: np.ndarray, term: np.ndarray) -> np.ndarray:
    """Each entry's term under the list's grounds (D1): a share of entries is extended by a whole number of
    days drawn uniformly in the ground's range, or has no fixed term (0). The ground is one uniform draw of
    the stream ``list:ground:<list>`` and the extension another of ``list:extend:<list>``, both keyed by
    (seed, day, citizen): the two views draw the same numbers when they list a citizen the same day."""
    out = term.copy()
    for li, (cum, lo, hi, none) in plan.list_grounds.items():
        sel = np.flatnonzero(lst == li)
        if sel.shape[0] == 0:
            continue
        c = cit[sel].astype(np.int64)
        g = np.searchsorted(cum, rng.uniforms(rng.day_key(seed, f"list:ground:{plan.lists[li]}", day), c),
                            side="right")
        on = g < cum.shape[0]
        gi = np.minimum(g, cum.shape[0] - 1)
        span = (hi[gi] - lo[gi] + 1).astype(np.float64)
        ext = lo[gi] + np.floor(rng.uniforms(rng.day_key(seed, f"list:extend:{plan.lists[li]}", day), c)
                                * span).astype(np.int64)
        out[sel] = np.where(on & none[gi], 0, np.where(on, term[sel] + ext, term[sel]))
    return out


def update_lists(plan: Plan, st: State, day: int, cures: ListExits, grade_changes: GradeChanges,
                 seed: int | None = None) -> ListChanges:
    """Apply today's list actions; return the accepted entries and exits (``seed``: draw listing grounds)."""
    rules = ListRules(plan.entry_count, plan.entry_count_dim, plan.entry_count_g, C["times_listed"], C["days_listed"])
    cols = ListColumns(st.listed, st.listed_since, st.list_count, st.pending, st.counters, st.groups)
    # The actions run in a fixed order, each against the state left by those before it: cures, entries falling
    # due, each grade list's entries then exits, fixed-term exits.
    parts: list[tuple[np.ndarray, ...]] = []

    def run(c: np.ndarray, m: np.ndarray, li: np.ndarray, action: int, aux: np.ndarray | None = None) -> None:
        if c.shape[0]:
            i64 = np.int64
            parts.append(_apply(c.astype(i64, copy=False), m.astype(i64, copy=False), li.astype(i64, copy=False),
                                action, aux.astype(i64, copy=False) if aux is not None else np.zeros(c.shape[0], i64),
                                day, rules, cols))

    run(cures.cit, cures.mode, cures.lst, A_CURE)
    pc, pm, pl = st.entries.pop(day)
    run(pc, pm, pl, A_PENDING)
    g = grade_changes
    if g.cit.shape[0]:
        for li in np.flatnonzero(plan.list_by_grade):
            parts.append(_apply_grades(g.cit.astype(np.int64, copy=False), g.mode.astype(np.int64, copy=False),
                                       g.new.astype(np.int64, copy=False), int(li), plan.entry_grades[li],
                                       bool(plan.exit_on_recovery[li]), day, rules, cols))
    tc, tm, tl, ts = st.terms.pop(day)
    run(tc, tm, tl, A_TERM, ts)
    if not parts:
        return ListChanges()
    ev = ListChanges(*(np.concatenate([p[k] for p in parts]) for k in range(5)))
    ent = ev.direction == 1
    if ent.any():
        term = plan.exit_term[ev.lst[ent]]
        if seed is not None:
            term = ground_terms(plan, seed, day, ev.cit[ent], ev.lst[ent], term)
        has = term > 0
        st.terms.push_by_day((day + term)[has], *term_rows(ev.cit[ent][has], ev.mode[ent][has], ev.lst[ent][has],
                                                           np.full(int(has.sum()), day, np.int64)))
    return ev


class Classify:
    """Stage 5: regrade whoever's score changed (everyone in range on a model day), then the list pass."""

    name: str = "classify"
    reads: tuple[str, ...] = ("day.filed", "day.score_changes", "day.model_day", "day.list_exits", "state.score",
                              "state.mscore", "state.entries", "state.terms")
    writes: tuple[str, ...] = ("day.grades", "day.lists", "state.grade", "state.listed", "state.listed_since",
                               "state.pending", "state.entries", "state.terms", "state.counters")

    def __init__(self, plan: Plan, lo: int, hi: int, seed: int = 0) -> None:
        self.plan = plan
        self.lo, self.hi = lo, hi
        self.seed = seed

    def run(self, st: State, d: Day, x: Exchange) -> None:
        p = self.plan
        if d.model_day and p.grade_source == "model":
            d.grades = regrade(p, st, (self.lo, self.hi))
        else:
            cand = unique_sorted(np.concatenate([d.filed.records.cit, d.score_changes.cit]).astype(np.int64))
            d.grades = regrade(p, st, cand)
        d.lists = update_lists(p, st, d.day, d.list_exits, d.grades, self.seed if p.list_grounds else None)


def enter_start_grades(plan: Plan, st: State, lo: int = 0, hi: int | None = None) -> int:
    """Put every citizen whose starting grade enters a grade list on it, in both views, on day 0.

    Called once before day 0, after the starting grades are set. The stay begins on day 0
    (``listed_since``, ``times_listed`` and a fixed term count from then), exactly as if the
    citizen had moved into the grade that day. Returns the number of (citizen, view, list)
    entries made. No metric flow or event row is written: this is the starting state, and
    the ``listed.*`` stocks start from it (:meth:`~credsim.stages.measure.Metrics.init_stocks`).
    """
    made = 0
    if not plan.grades:
        return made
    hi = st.n if hi is None else hi
    for li in np.flatnonzero(plan.list_by_grade):
        for m in range(2):
            g = st.grade[m, lo:hi]
            if hi > lo and not plan.entry_grades[li, g[0]] and g.min() == g.max():
                continue  # everyone starts in one grade, and not an entry grade (a common start: no pass over ids)
            cit = lo + np.flatnonzero(plan.entry_grades[li, st.grade[m, lo:hi]]
                                      & (st.listed[m, li, lo:hi] == 0)).astype(np.int64)
            if cit.shape[0] == 0:
                continue
            st.listed[m, li, cit] = 1
            st.listed_since[m, li, cit] = 0
            if m == 0:
                st.counters[C["times_listed"], cit] += 1
            if plan.exit_term[li] > 0:
                k = cit.shape[0]
                rows = term_rows(cit, np.full(k, m, np.int64), np.full(k, li, np.int64), np.zeros(k, np.int64))
                st.terms.push_by_day(np.full(k, int(plan.exit_term[li]), np.int64), *rows)
            made += int(cit.shape[0])
    return made


def grade_rule_violations(plan: Plan, st: State) -> dict[str, int]:
    """Per list entered by grade: citizens (official view) whose membership breaks the grade rule.

    Grade entries have no grace, so two halves hold: (a) a citizen in an entry grade is on
    the list -- unless the list has a fixed term, which may have ended the stay while the
    grade stayed; (b) with ``on_grade_recovery`` exits, a citizen on the list is in an entry
    grade. Zero everywhere means the state follows the rules.
    """
    out: dict[str, int] = {}
    if not plan.grades:
        return out
    for li in np.flatnonzero(plan.list_by_grade):
        into = plan.entry_grades[li, st.grade[0]]
        on = st.listed[0, li] == 1
        bad = 0
        if plan.exit_term[li] == 0:
            bad += int(np.count_nonzero(into & ~on))
        if plan.exit_on_recovery[li]:
            bad += int(np.count_nonzero(on & ~into))
        out[plan.lists[li]] = bad
    return out
