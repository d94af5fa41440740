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

from credsim.plan import Plan
from credsim.state import State

COLUMNS = ("day", "citizen", "kind", "item", "view", "value", "prev", "sanction", "cross", "gravity", "assoc")


class EventLog:
    """Collects today's status changes (called once per day by the engine's loop)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.parts: list[dict[str, np.ndarray]] = []

    def _add(self, day: int, cit: np.ndarray, kind: str, item: np.ndarray, view: np.ndarray,
             value: np.ndarray, prev: np.ndarray, sanction: np.ndarray | None = None,
             cross: np.ndarray | None = None, gravity: np.ndarray | None = None,
             assoc: np.ndarray | None = None) -> None:
        k = cit.shape[0]
        if k == 0:
            return
        nan = np.full(k, np.nan)
        self.parts.append({
            "day": np.full(k, day, np.int32), "citizen": cit.astype(np.int64),
            "kind": np.full(k, kind, dtype=object), "item": item.astype(object), "view": view.astype(object),
            "value": value.astype(np.float64), "prev": prev.astype(np.float64),
            "sanction": np.full(k, "", dtype=object) if sanction is None else sanction.astype(object),
            "cross": nan if cross is None else cross.astype(np.float64),
            "gravity": nan if gravity is None else gravity.astype(np.float64),
            "assoc": np.zeros(k, np.int8) if assoc is None else assoc.astype(np.int8),
        })

    def add(self, day: int, st: State, grades: tuple[np.ndarray, ...], lists: tuple[np.ndarray, ...],
            out: dict[str, np.ndarray]) -> None:
        p = self.plan
        views = np.array(["official", "shadow"], dtype=object)
        gc, gm, gold, gnew = grades
        if gc.shape[0] and p.grades:
            self._add(day, gc, "grade", np.array(p.grades, dtype=object)[gnew], views[gm], gnew, gold)
        ec, em, el, ed, es = lists
        if ec.shape[0]:
            self._add(day, ec, "list", np.array(p.lists, dtype=object)[el], views[em], ed, es)
        den = out["den"]
        sel = np.flatnonzero((den[:, 0] == 1) | (den[:, 1] == 1)) if den.shape[0] else np.zeros(0, np.int64)
        if sel.shape[0]:
            cit, d = out["cit"][sel], den[sel]
            view = np.where((d[:, 0] == 1) & (d[:, 1] == 1), "both", np.where(d[:, 0] == 1, "official", "shadow"))
            first = out["first"][sel]
            names = np.array(list(p.sanctions) + [""], dtype=object)[np.where(first >= 0, first, len(p.sanctions))]
            sev = np.where(first >= 0, p.san_severity[np.maximum(first, 0)] if len(p.sanctions) else 0.0, np.nan)
            gravity = st.neg_by_domain[:, cit].sum(axis=0) if st.neg_by_domain.shape[0] else np.zeros(cit.shape[0])
            self._add(day, cit, "denial", np.array(p.beh, dtype=object)[out["beh"][sel]], view, sev,
                      np.full(cit.shape[0], np.nan), names, out["cross"][sel], gravity, out["assoc_only"][sel])

    def to_arrow(self) -> pa.Table:
        types = {"day": pa.int32(), "citizen": pa.int64(), "value": pa.float64(), "prev": pa.float64(),
                 "cross": pa.float64(), "gravity": pa.float64(), "assoc": pa.int8()}
        cols: dict[str, pa.Array] = {}
        for c in COLUMNS:
            vals = np.concatenate([part[c] for part in self.parts]) if self.parts else np.zeros(0, dtype=object)
            if c in types:
                cols[c] = pa.array(vals.astype(types[c].to_pandas_dtype()) if self.parts else [], types[c])
            else:
                cols[c] = pa.array(vals, pa.string()).dictionary_encode()
        return pa.table(cols)
