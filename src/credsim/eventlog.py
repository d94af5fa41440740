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

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from credsim import allocator, arrowcols
from credsim.day import Day
from credsim.plan import Plan
from credsim.spool import Spool, repeated
from credsim.state import State

COLUMNS = ("day", "citizen", "kind", "item", "view", "value", "prev", "sanction", "cross", "gravity", "assoc")


KINDS = ("list", "grade", "denial")
VIEWS = ("official", "shadow", "both")


ROW_GROUP = arrowcols.ROW_GROUP  # the log is written one row group at a time (write_parquet)

# a spooling log moves its parts to disk once it holds this many rows: ~1-2 MB in memory (8-16 B a row held)
SPILL_ROWS = 1 << 17


def _same(value: float | int, k: int, dtype: type) -> np.ndarray:
    """A column of ``k`` equal values that takes no memory (:func:`credsim.spool.repeated`: a read-only view with
    stride 0, built directly, as ``np.broadcast_to`` would, at a fraction of its cost on the daily path)."""
    return repeated(np.full(1, value, dtype=dtype), k)


_NARROW = tuple((t, int(np.iinfo(t).min), int(np.iinfo(t).max)) for t in (np.int8, np.int16, np.int32))


def _narrow(a: np.ndarray) -> np.ndarray:
    """Integer codes in the smallest signed type that holds them exactly (they become float64 on output,
    which every integer below 2**24 survives unchanged, as it did through float32)."""
    if a.shape[0] == 0:
        return a.astype(np.int8)
    lo, hi = int(a.min()), int(a.max())
    for t, tmin, tmax in _NARROW:
        if tmin <= lo and hi <= tmax:
            return a.astype(t, copy=False)  # already narrow: the same array (a grade row's item is its value)
    return a.astype(np.int64, copy=False)


def _view_runs(mode: np.ndarray) -> list[tuple[int, int, np.ndarray | int]]:
    """The rows ``[a, b)`` of each view: a day's grade changes come view 0 first, then view 1
    (:func:`credsim.stages.classify.regrade`), so each view is one run and its column takes no memory
    (a row otherwise; any other order keeps the column)."""
    k0 = int(np.searchsorted(mode, 1))
    if not ((mode[:k0] == 0).all() and (mode[k0:] == 1).all()):
        return [(0, mode.shape[0], mode)]
    return [(a, b, v) for a, b, v in ((0, k0, 0), (k0, mode.shape[0], 1)) if b > a]


class EventLog:
    """Collects today's status changes (an observer of the day).

    Why it is compact: grade changes of a monthly re-grading can reach tens of millions of rows at
    10^7 citizens. Grade and list rows keep only their citizen, item, view and one small integer
    (previous grade, stay start) in narrow integer types; their constant columns (day, kind, no
    sanction, NaN cross and gravity; a grade row's view, one part per view) are zero-memory broadcast
    views, and a grade row's item is its value. About 6 bytes a grade row, 8-12 a list row, 40 a denial.
    On output the columns are widened to the types of ``events.parquet``
    (every value exact) one row group at a time (:meth:`write_parquet`), never the whole log at once.

    A log that spools (:meth:`spool_to`) moves its parts to an anonymous file on disk whenever it holds
    :data:`SPILL_ROWS` rows, so it holds at most about a row group whatever the number of days; the parts
    are read back in order when the log is written, the same bytes."""

    # left out of checkpoints (credsim.checkpoint): a checkpoint empties the spool into ``parts`` first (unspool)
    CHECKPOINT_SKIP = ("spool",)

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.parts: list[dict[str, np.ndarray]] = []
        self.spool: Spool | None = None
        self.released = False  # see release()
        # one string table for every item: grades, then lists, then behaviours
        self.items = list(plan.grades) + list(plan.lists) + list(plan.beh)
        self.sanctions = list(plan.sanctions) + [""]
        # a denial's value by its sanction code (the last code: no sanction named)
        self.severity = np.append(np.asarray(plan.san_severity, np.float64)[:len(plan.sanctions)], np.nan)

    def _add(self, day: int, cit: np.ndarray, kind: int, item: np.ndarray, view: np.ndarray | int,
             value: np.ndarray | None, prev: np.ndarray, sanction: np.ndarray | None = None,
             cross: np.ndarray | None = None, gravity: np.ndarray | None = None,
             assoc: np.ndarray | None = None) -> None:
        """One part of rows; ``value`` None: the severity of each row's sanction (:meth:`_values`)."""
        k = cit.shape[0]
        if k == 0:
            return
        part = {
            "day": _same(day, k, np.int32), "citizen": cit.astype(np.int32),
            "kind": _same(kind, k, np.int8), "item": _narrow(item),
            "view": _same(view, k, np.int8) if isinstance(view, int) else view.astype(np.int8),
            "prev": prev if prev.dtype.kind in "iu" else prev.astype(np.float32),
            "sanction": (_same(len(self.sanctions) - 1, k, np.int16) if sanction is None
                         else sanction.astype(np.int16)),
            "cross": _same(np.nan, k, np.float64) if cross is None else cross.astype(np.float64),
            "gravity": _same(np.nan, k, np.float32) if gravity is None else gravity.astype(np.float32),
            "assoc": _same(0, k, np.int8) if assoc is None else assoc.astype(np.int8),
        }
        if value is not None:
            part["value"] = value if value.dtype.kind in "iu" else value.astype(np.float64)
        self.parts.append(part)

    def _values(self, part: dict[str, np.ndarray]) -> np.ndarray:
        """A part's ``value`` column: as held, or a denial's sanction severity (NaN for a denial with no
        sanction named), looked up from its sanction code on output rather than held as 8 B a row."""
        if "value" in part:
            return part["value"]
        return self.severity[part["sanction"]]

    def observe(self, st: State, d: Day) -> None:
        p, day = self.plan, d.day
        G, L = len(p.grades), len(p.lists)
        g = d.grades
        if g.cit.shape[0] and p.grades:
            new, old = _narrow(g.new), _narrow(g.old)  # a row's item and value are both the new grade: held once
            for lo, hi, view in _view_runs(g.mode):
                self._add(day, g.cit[lo:hi], 1, new[lo:hi], view, new[lo:hi], old[lo:hi])
        lc = d.lists
        if lc.cit.shape[0]:
            self._add(day, lc.cit, 0, G + lc.lst, lc.mode, _narrow(lc.direction), _narrow(lc.since))
        a = d.attempts
        den = a.denied
        sel = np.flatnonzero((den[:, 0] == 1) | (den[:, 1] == 1)) if den.shape[0] else np.zeros(0, np.int64)
        if sel.shape[0]:
            cit, dd = a.cit[sel], den[sel]
            view = np.where((dd[:, 0] == 1) & (dd[:, 1] == 1), 2, np.where(dd[:, 0] == 1, 0, 1))
            first = a.first[sel]
            names = np.where(first >= 0, first, len(p.sanctions))
            gravity = st.neg_by_domain[:, cit].sum(axis=0) if st.neg_by_domain.shape[0] else np.zeros(cit.shape[0])
            # value: the sanction's severity, read back from ``names`` (self.severity); prev: NaN, held once
            self._add(day, cit, 2, G + L + a.beh[sel], view, None, _same(np.nan, cit.shape[0], np.float32),
                      names, a.cross[sel], gravity, a.assoc_only[sel])
        if self.spool is not None and self.held() >= SPILL_ROWS:
            self._spill()

    def spool_to(self, directory: Path) -> None:
        """From now on keep the log's parts on disk, in an anonymous file in ``directory`` (the run's output
        folder or the folder that will hold it: :mod:`credsim.spool`), all but the last :data:`SPILL_ROWS`."""
        if self.spool is None:
            self.spool = Spool(directory)

    def _spill(self) -> None:
        assert self.spool is not None
        for part in self.parts:
            self.spool.append(part)
        self.parts = []
        # the parts were small blocks in glibc's heap, between others still in use: without the trim their pages
        # stay with the process (integrated, 10^5 citizens x 10 years: 596 -> 582 MB resident at the end)
        allocator.give_back()

    def unspool(self) -> None:
        """Bring the spooled parts back into memory, before the held ones (a checkpoint stores ``parts``)."""
        if self.spool is not None and self.spool.parts:
            self.parts = list(self.spool.read()) + self.parts
            self.spool.clear()

    def close_spool(self) -> None:
        """Close the spool (a run that stops here: what it held is in its checkpoint, or nowhere)."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def release(self) -> None:
        """Drop the rows (once written, by a caller that reads the log no more): their memory goes back before
        the run writes its citizens. A released log refuses to be read or written, rather than read as empty."""
        self.parts = []
        self.close_spool()
        self.released = True

    def _check_held(self) -> None:
        if self.released:
            raise RuntimeError("this event log was released after it was written; read events.parquet instead")

    def _all_parts(self) -> Iterator[dict[str, np.ndarray]]:
        """Every part in order: the spooled ones (read back from disk), then the ones in memory."""
        self._check_held()
        if self.spool is not None:
            yield from self.spool.read()
        yield from self.parts

    def all_parts(self) -> list[dict[str, np.ndarray]]:
        """Every part, spooled or held, in order (a small log gathered elsewhere: an in-memory sharded run)."""
        return list(self._all_parts())

    def held(self) -> int:
        """Rows in memory (``parts``; all of them unless the log spools)."""
        return sum(part["citizen"].shape[0] for part in self.parts)

    def rows(self) -> int:
        self._check_held()
        return self.held() + (self.spool.rows if self.spool is not None else 0)

    def _table(self, parts: list[dict[str, np.ndarray]]) -> pa.Table:
        def col(c: str, dtype: type) -> np.ndarray:
            # each part is widened on its own: mixed narrow types never meet in one concatenation
            return np.concatenate([part[c].astype(dtype) for part in parts]) if parts \
                else np.zeros(0, dtype=dtype)

        def coded(c: str, table: list[str] | tuple[str, ...]) -> pa.Array:
            return arrowcols.dictionary(col(c, np.int32), table)

        def prev(part: dict[str, np.ndarray]) -> np.ndarray:
            # float32 in the log, as before: a value kept as an integer is exact in both
            return part["prev"].astype(np.float32).astype(np.float64)

        return arrowcols.required({  # a row has every column (NaN, not null, where a value does not apply)
            "day": arrowcols.numeric(col("day", np.int32)),
            "citizen": arrowcols.numeric(col("citizen", np.int64)),
            "kind": coded("kind", KINDS),
            "item": coded("item", self.items),
            "view": coded("view", VIEWS),
            "value": arrowcols.numeric(np.concatenate([self._values(part).astype(np.float64) for part in parts])
                                       if parts else np.zeros(0)),
            "prev": arrowcols.numeric(np.concatenate([prev(part) for part in parts]) if parts else np.zeros(0)),
            "sanction": coded("sanction", self.sanctions),
            "cross": arrowcols.numeric(col("cross", np.float64)),
            "gravity": arrowcols.numeric(col("gravity", np.float64)),
            "assoc": arrowcols.numeric(col("assoc", np.int8)),
        })

    def to_arrow(self) -> pa.Table:
        """The whole log as one table (for small logs and tests; files are written by :meth:`write_parquet`)."""
        return self._table(self.all_parts())

    def _groups(self, size: int) -> Iterator[list[dict[str, np.ndarray]]]:
        """The parts cut into consecutive pieces of exactly ``size`` rows (the last may be shorter)."""
        piece: list[dict[str, np.ndarray]] = []
        have = 0
        for part in self._all_parts():
            k = part["citizen"].shape[0]
            at = 0
            while at < k:
                take = min(k - at, size - have)
                piece.append({c: v[at:at + take] for c, v in part.items()})
                have += take
                at += take
                if have == size:
                    yield piece
                    piece, have = [], 0
        if piece or not self.rows():
            yield piece

    def write_parquet(self, path: Path, row_group: int = ROW_GROUP) -> None:
        """Write ``events.parquet`` one row group at a time: the same bytes as
        ``pq.write_table(self.to_arrow(), path, row_group_size=row_group, **arrowcols.parquet_options(...))``
        with a peak of one row group's widened columns rather than the whole log's."""
        arrowcols.write_row_groups((self._table(piece) for piece in self._groups(row_group)), path, row_group)
