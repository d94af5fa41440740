"""Compound conditions of sanctions: lists, grades and score ranges combined with all/any.

Why tables and not a tree of objects: a condition is evaluated for every attempt inside the
sanction kernel, so it is compiled once into flat arrays that a compiled function walks.
The form is two levels deep, which is all the scenario language allows: a sanction's ``when``
is ``all`` or ``any`` over *clauses*, and each clause is ``all`` or ``any`` over *atoms* (a
single test written directly in the top list is a clause of one atom). A single ``score``
test is ``all`` over one clause of one atom. A sanction whose ``when`` is one ``list`` or one
set of ``grades`` has no clauses: the sanction stage keeps its older, direct test for those,
so scenarios that do not use compound conditions run exactly as before.

Semantics (stated in the language reference): ``all`` holds when every item holds (an empty
``all`` cannot be written), ``any`` when at least one does; items are evaluated in declared
order and evaluation stops at the first item that decides. A score range holds when
``min <= score < below`` (the bands' convention: ``min`` inclusive). Everything is read from
the same view (official or shadow) and from the state of the moment the sanction stage runs:
today's lists and grades after classify, so there is no same-day cycle.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from credsim.scenario.schema import Condition, ConditionGroup, SanctionWhen

ATOM_LIST, ATOM_GRADES, ATOM_SCORE = 0, 1, 2
# how list atoms are read: as they are, with only the attempt's own domain (the cross-context
# counterfactual), or with a score adjusted for association points (the association-only test)
VIEW_AS_IS, VIEW_OWN_DOMAIN, VIEW_ADJUSTED = 0, 1, 2


class CondTables(NamedTuple):
    """Every sanction's condition as offsets into clause and atom arrays (sanction k: clauses
    ``clause_off[k]:clause_off[k+1]``; clause c: atoms ``atom_off[c]:atom_off[c+1]``)."""

    top_any: np.ndarray  # (K,) bool: the sanction's clauses are combined by any (else all)
    clause_off: np.ndarray  # (K+1,) int64
    clause_any: np.ndarray  # (C,) bool
    atom_off: np.ndarray  # (C+1,) int64
    atom_kind: np.ndarray  # (A,) ATOM_*
    atom_list: np.ndarray  # (A,) list index, -1 for other atoms
    atom_grades: np.ndarray  # (A, G) bool
    atom_model: np.ndarray  # (A,) bool: a score atom on the model score (else points)
    atom_lo: np.ndarray  # (A,) inclusive lower bound (-inf: none)
    atom_hi: np.ndarray  # (A,) exclusive upper bound (+inf: none)


Test = Condition | ConditionGroup | SanctionWhen


def _atoms_of(item: Test) -> tuple[bool, list[Test]]:
    """A clause's combinator (any?) and its single tests."""
    if isinstance(item, ConditionGroup) and (item.all is not None or item.any is not None):
        return item.any is not None, list(item.any or item.all or [])
    return False, [item]


def _items(w: SanctionWhen) -> list[Test]:
    """The top level's items: those of ``all``/``any``, or the single test itself."""
    return list(w.any or w.all or []) or [w]


def compile_conditions(whens: list[SanctionWhen], lists: list[str], grades: list[str]) -> CondTables:
    """Flatten the compound conditions (the simple ``list``/``grades`` forms get no clauses)."""
    top_any, clause_off, clause_any, atom_off = [], [0], [], [0]
    kind: list[int] = []
    lst: list[int] = []
    grd: list[list[str]] = []
    model: list[bool] = []
    lo: list[float] = []
    hi: list[float] = []
    for w in whens:
        top_any.append(w.any is not None)
        if w.compound:
            for item in _items(w):
                c_any, atoms = _atoms_of(item)
                clause_any.append(c_any)
                for a in atoms:
                    kind.append(ATOM_LIST if a.list_ is not None else ATOM_GRADES if a.grades is not None
                                else ATOM_SCORE)
                    lst.append(lists.index(a.list_) if a.list_ is not None else -1)
                    grd.append(list(a.grades or []))
                    model.append(a.score is not None and a.score.of == "model")
                    lo.append(-np.inf if a.score is None or a.score.min is None else float(a.score.min))
                    hi.append(np.inf if a.score is None or a.score.below is None else float(a.score.below))
                atom_off.append(len(kind))
        clause_off.append(len(clause_any))
    atom_grades = np.zeros((len(kind), max(len(grades), 1)), np.bool_)
    for j, gs in enumerate(grd):
        for g in gs:
            atom_grades[j, grades.index(g)] = True
    return CondTables(np.array(top_any, np.bool_), np.array(clause_off, np.int64), np.array(clause_any, np.bool_),
                      np.array(atom_off, np.int64), np.array(kind, np.int64), np.array(lst, np.int64), atom_grades,
                      np.array(model, np.bool_), np.array(lo, np.float64), np.array(hi, np.float64))


def first_list(whens: list[SanctionWhen], lists: list[str]) -> list[list[int]]:
    """Per sanction, the lists its condition names, in declared order (what a refusal can tell a citizen of)."""
    out: list[list[int]] = []
    for w in whens:
        names: list[str] = []
        for item in _items(w):
            for a in _atoms_of(item)[1]:
                if a.list_ is not None and a.list_ not in names:
                    names.append(a.list_)
        out.append([lists.index(n) for n in names])
    return out


class Reading(NamedTuple):
    """What one citizen looks like to a condition: the list rows and the values to compare."""

    listed: np.ndarray  # (2, L, N) uint8
    list_by_grade: np.ndarray  # (L,) bool
    list_domain: np.ndarray  # (L,)
    entry_grades: np.ndarray  # (L, G) bool


@njit(cache=True)
def atom_holds(a: int, t: CondTables, r: Reading, i: int, m: int, g: int, pts: float, mod: float, how: int,
               dom: int) -> bool:
    """Whether atom ``a`` holds for citizen ``i`` in view ``m``, given grade ``g`` and scores ``pts``/``mod``
    (already adjusted by the caller when ``how`` is not VIEW_AS_IS)."""
    kind = t.atom_kind[a]
    if kind == ATOM_LIST:
        li = t.atom_list[a]
        if how == VIEW_AS_IS or not r.list_by_grade[li]:
            on = r.listed[m, li, i] == 1
            if how == VIEW_OWN_DOMAIN and not r.list_by_grade[li]:
                on = on and r.list_domain[li] == dom
            return on
        return r.entry_grades[li, g]
    if kind == ATOM_GRADES:
        return t.atom_grades[a, g]
    v = mod if t.atom_model[a] else pts
    return t.atom_lo[a] <= v < t.atom_hi[a]


@njit(cache=True)
def holds(k: int, t: CondTables, r: Reading, i: int, m: int, g: int, pts: float, mod: float, how: int,
          dom: int) -> bool:
    """Whether sanction ``k``'s compound condition holds (first deciding item wins, in declared order)."""
    top_any = t.top_any[k]
    for c in range(t.clause_off[k], t.clause_off[k + 1]):
        c_any = t.clause_any[c]
        res = not c_any
        for a in range(t.atom_off[c], t.atom_off[c + 1]):
            h = atom_holds(a, t, r, i, m, g, pts, mod, how, dom)
            if c_any and h:
                res = True
                break
            if not c_any and not h:
                res = False
                break
        if top_any and res:
            return True
        if not top_any and not res:
            return False
    return not top_any


@njit(cache=True)
def first_atom_held(k: int, t: CondTables, r: Reading, i: int, m: int, g: int, pts: float, mod: float) -> int:
    """The first atom of sanction ``k`` (declared order) that holds as it is, or -1: a compound denial's
    cross-context share is judged by it."""
    for c in range(t.clause_off[k], t.clause_off[k + 1]):
        for a in range(t.atom_off[c], t.atom_off[c + 1]):
            if atom_holds(a, t, r, i, m, g, pts, mod, VIEW_AS_IS, -1):
                return a
    return -1
