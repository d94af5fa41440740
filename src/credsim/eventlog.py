"""A sparse log of status changes of *every* citizen, for the audit (``events.parquet``).

The daily metrics are aggregates and the traces cover a small sample; some audit
questions need individual status changes of the whole population:

- **recovery**: how long citizens stay on a list, how long until a lost grade is regained
  (needs every list entry and exit and every grade change, with days);
- **grade transitions**: start-of-run to end-of-run grade of everyone;
- **per-denial detail**: for each denied attempt, the sanction that fired, its severity,
  the cross-context share, the points the dossier held against the citizen at that moment
  (the gravity behind the sanction), whether it was association-only, and whether the
  other view (official vs shadow) agreed -- for cross-context, proportionality and
  intersectional disparate-impact figures.

These changes are rare compared with citizen-days, so the log stays small. One row per
change; columns:

=========  ==================================================================
kind       ``list`` | ``grade`` | ``denial``
item       the list, the new grade, or the attempted activity
view       ``official`` | ``shadow``; for denials ``both`` | ``official`` (wrongful)
           | ``shadow`` (missed)
value      list: +1 entry / -1 exit; grade: new grade index; denial: sanction severity
prev       list: day the stay began; grade: previous grade index; denial: NaN
sanction   denial: the first official sanction that fired ('' when only the shadow denied)
cross      denial: cross-context share of what triggered it (NaN unless official)
gravity    denial: official points lost held in the dossier at that moment
assoc      denial: 1 when the denial happened only because of contacts' records
=========  ==================================================================
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from credsim.day import Day
from credsim.plan import Plan
from credsim.state import State

COLUMNS = ("day", "citizen", "kind", "item", "view", "value", "prev", "sanction", "cross", "gravity", "assoc")


KINDS = ("list", "grade", "denial")
VIEWS = ("official", "shadow", "both")


class EventLog:
    """Collects today's status changes (an observer of the day).

    Rows are kept as small integer codes and 32-bit numbers (about 40 bytes a row: tens of
    millions of rows at 10M citizens) and turned into dictionary-encoded strings on output."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.parts: list[dict[str, np.ndarray]] = []
        # one string table for every item: grades, then lists, then behaviours
        self.items = list(plan.grades) + list(plan.lists) + list(plan.beh)
        self.sanctions = list(plan.sanctions) + [""]

    def _add(self, day: int, cit: np.ndarray, kind: int, item: np.ndarray, view: np.ndarray,
             value: np.ndarray, prev: np.ndarray, sanction: np.ndarray | None = None,
             cross: np.ndarray | None = None, gravity: np.ndarray | None = None,
             assoc: np.ndarray | None = None) -> None:
        k = cit.shape[0]
        if k == 0:
            return
        self.parts.append({
            "day": np.full(k, day, np.int32), "citizen": cit.astype(np.int32),
            "kind": np.full(k, kind, np.int8), "item": item.astype(np.int16), "view": view.astype(np.int8),
            "value": value.astype(np.float64), "prev": prev.astype(np.float32),
            "sanction": (np.full(k, len(self.sanctions) - 1, np.int16) if sanction is None
                         else sanction.astype(np.int16)),
            "cross": np.full(k, np.nan) if cross is None else cross.astype(np.float64),
            "gravity": np.full(k, np.nan, np.float32) if gravity is None else gravity.astype(np.float32),
            "assoc": np.zeros(k, np.int8) if assoc is None else assoc.astype(np.int8),
        })

    def observe(self, st: State, d: Day) -> None:
        p, day = self.plan, d.day
        G, L = len(p.grades), len(p.lists)
        g = d.grades
        if g.cit.shape[0] and p.grades:
            self._add(day, g.cit, 1, g.new, g.mode, g.new, g.old)
        lc = d.lists
        if lc.cit.shape[0]:
            self._add(day, lc.cit, 0, G + lc.lst, lc.mode, lc.direction, lc.since)
        a = d.attempts
        den = a.denied
        sel = np.flatnonzero((den[:, 0] == 1) | (den[:, 1] == 1)) if den.shape[0] else np.zeros(0, np.int64)
        if sel.shape[0]:
            cit, dd = a.cit[sel], den[sel]
            view = np.where((dd[:, 0] == 1) & (dd[:, 1] == 1), 2, np.where(dd[:, 0] == 1, 0, 1))
            first = a.first[sel]
            names = np.where(first >= 0, first, len(p.sanctions))
            sev = np.where(first >= 0, p.san_severity[np.maximum(first, 0)] if len(p.sanctions) else 0.0, np.nan)
            gravity = st.neg_by_domain[:, cit].sum(axis=0) if st.neg_by_domain.shape[0] else np.zeros(cit.shape[0])
            self._add(day, cit, 2, G + L + a.beh[sel], view, sev,
                      np.full(cit.shape[0], np.nan), names, a.cross[sel], gravity, a.assoc_only[sel])

    def to_arrow(self) -> pa.Table:
        def col(c: str, dtype: type) -> np.ndarray:
            return np.concatenate([part[c] for part in self.parts]).astype(dtype) if self.parts \
                else np.zeros(0, dtype=dtype)

        def coded(c: str, table: list[str] | tuple[str, ...]) -> pa.Array:
            return pa.DictionaryArray.from_arrays(pa.array(col(c, np.int32)), pa.array(list(table), pa.string()))

        return pa.table({
            "day": pa.array(col("day", np.int32)),
            "citizen": pa.array(col("citizen", np.int64)),
            "kind": coded("kind", KINDS),
            "item": coded("item", self.items),
            "view": coded("view", VIEWS),
            "value": pa.array(col("value", np.float64)),
            "prev": pa.array(col("prev", np.float64)),
            "sanction": coded("sanction", self.sanctions),
            "cross": pa.array(col("cross", np.float64)),
            "gravity": pa.array(col("gravity", np.float64)),
            "assoc": pa.array(col("assoc", np.int8)),
        })
