"""Stage 7, redress: notice of listings, objections heard by appeal bodies, exits by route.

Why a stage of its own: what harms a listed citizen is not only the listing but how long it
takes to learn of it and to get a wrong one corrected. This stage runs after ``sanction``
(a refused attempt is how many citizens learn they are listed) and before ``respond``.

A day, in order:

1. **Corrections due** (decided earlier) were applied by the file stage this morning through
   the dossier's retraction; this stage only remembers which (citizen, list) they were for, to
   name the route of the exits they caused.
2. **Exit routes**: every official exit of today is given one route, first match wins:
   ``appeal`` (a retraction of an upheld objection applied today), ``repair`` (credit repair
   granted yesterday), ``compliance`` (a cure record of the list filed today), ``grade`` (a list
   entered by grade), ``term`` (the list has a term), else ``other``.
   The stay (entry day, exit day, route) is logged for the audit's time to exit.
   An exit ends the notice: the next listing needs a new one.
3. **Records and notices**: each official record counting towards a heard list becomes the
   citizen's *contestable record* of that list (the latest one). Notice is served (with the
   declared probability, a draw of the stream ``redress:notice:<list>``) ``delay_days`` after
   the listing (``at: listing``) or after the record is filed (``at: filing``, prior notice: an
   objection can then stop a pending entry during its grace days); with ``learn_on_denial`` an
   official denial by a list's sanction tells the citizen of that list at once.
4. **Filing**: a notified citizen whose contestable record still counts (inside the list's entry
   window, not already contested), who is listed or has an entry pending, and who is inside the
   filing deadline, files with the body's daily probability (stream ``redress:file:<body>``).
   New cases join the body's queue in citizen order.
5. **Decisions**: each body decides at most ``capacity_per_day`` waiting cases in its declared
   order (fifo: filed first; lifo: filed last; ties by filing order); under an enforced
   deadline every case whose deadline falls today is decided as well. A case is upheld with
   ``success_false`` or ``success_true`` (whether the contested record is false) times the
   group multipliers, capped at 1 (stream ``redress:decide:<body>``). An upheld case asks the
   dossier to retract the record ``correction_days`` later: from that day its points, list
   counts and the sanctions they caused are gone; the days already listed and the denials
   already suffered stay in the outputs (they are harm, not history to rewrite).
   A rejected case at a body with a ``reconsideration`` body joins a pool; from the next day the
   citizen files there (stream ``redress:reconsider:<body>:<list>``) with that body's filing
   probability and within its ``file_within_days`` of the rejection (D4: 10 days), while the
   listing and the record still stand; the new case (same record, same notice day) waits in that
   body's queue like any other and is decided by its capacity, deadline and success.
6. **Credit repair**: a citizen listed for at least ``after_days`` is restored with the daily
   probability (stream ``redress:repair:<list>``); the stay ends the next day (route ``repair``).

No same-day cycle: decisions read today's lists and take effect at the earliest tomorrow
(the file stage applies retractions before classify), so a list cannot depend on a decision
that depends on that list on the same day.

Every draw is a counter-based pure function of (seed, stream, day, citizen). The queues are
global (a capacity per day for the whole population), so a sharded run is refused rather
than given a different answer: a shard cannot know the other shards' queues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from numba import njit, prange

from credsim import arrowcols, rng, threads
from credsim.day import Day, RedressDay
from credsim.exchange import Exchange
from credsim.names import APPEAL_ORDERS, EXIT_ROUTES, NOTICE_AT
from credsim.plan import Plan, _group_table
from credsim.scenario.schema import Redress as RedressSpec
from credsim.stages import retraction
from credsim.state import Queue, State, term_rows

ROUTE = {r: i for i, r in enumerate(EXIT_ROUTES)}


class NoticesDue(NamedTuple):
    """Notices to serve on a day: the citizen and the list."""

    cit: np.ndarray
    lst: np.ndarray


class RepairsDue(NamedTuple):
    """Official stays ended by credit repair on a day (to name the route of their exits)."""

    cit: np.ndarray
    lst: np.ndarray


class CorrectionsDue(NamedTuple):
    """Retractions of upheld objections falling due on a day (to name the route of their exits)."""

    cit: np.ndarray
    lst: np.ndarray
    case: np.ndarray


@dataclass
class RedressRules:
    """The scenario's redress section as index tables (lists by plan index, bodies in declared order).

    A dataclass, not a NamedTuple: the stage keeps it, and a checkpoint restores a stage's
    attributes into objects of the same class (a NamedTuple would come back as a bare tuple)."""

    notice_at: np.ndarray  # (L,) index in NOTICE_AT (each list its own rule, else the common one)
    notice_delay: np.ndarray  # (L,)
    notice_p: np.ndarray  # (L,)
    learn_on_denial: np.ndarray  # (L,) bool
    heard_by: np.ndarray  # (L,) body index or -1
    bodies: list[str]
    capacity: np.ndarray  # (Bd,) cases per day, possibly fractional
    order: np.ndarray  # (Bd,) index in APPEAL_ORDERS
    file_p: np.ndarray  # (Bd, 2) by whether the contested record is true (0) or false (1)
    file_within: np.ndarray  # (Bd,) days, -1 = no deadline
    decide_within: np.ndarray  # (Bd,) days, -1 = none declared
    enforced: np.ndarray  # (Bd,) bool
    p_false: np.ndarray  # (Bd,)
    p_true: np.ndarray  # (Bd,)
    p_group: np.ndarray  # (Bd, dims, maxv) multipliers
    correction: np.ndarray  # (Bd,) days
    cost: np.ndarray  # (Bd,)
    repair_lists: np.ndarray  # (L,) bool
    repair_after: int
    repair_p: float
    repair_days: np.ndarray  # (steps,) from_day of the repair schedule's eras, ascending
    repair_mult: np.ndarray  # (steps,) their multipliers of repair_p
    reconsider_by: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (Bd,) body or -1

    def repair_p_on(self, day: int) -> float:
        """The repair probability of ``day``: the base probability times the era's multiplier (x1 before
        the first era, so a section without a schedule draws against exactly ``repair_p``)."""
        k = int(np.searchsorted(self.repair_days, day, side="right")) - 1
        return self.repair_p if k < 0 else self.repair_p * float(self.repair_mult[k])


def redress_rules(plan: Plan, spec: RedressSpec, n_citizens: int) -> RedressRules:
    """Compile the redress section against the plan's lists and groups (capacities for ``n_citizens``)."""
    bodies = list(spec.appeals)
    heard_by = np.full(len(plan.lists), -1, np.int64)
    for b, name in enumerate(bodies):
        for ln in spec.appeals[name].lists:
            heard_by[plan.lists.index(ln)] = b
    ab = [spec.appeals[n] for n in bodies]
    maxv = max(len(v) for v in plan.dim_values)
    ns = [spec.notice_by_list.get(ln, spec.notice) for ln in plan.lists]
    rep = spec.repair
    repair_lists = np.array([rep is not None and ln in rep.lists for ln in plan.lists], np.bool_)
    return RedressRules(
        np.array([NOTICE_AT.index(n.at) for n in ns], np.int64), np.array([n.delay_days for n in ns], np.int64),
        np.array([n.probability for n in ns], np.float64), np.array([n.learn_on_denial for n in ns], np.bool_),
        heard_by, bodies,
        np.array([a.capacity_per_day * (n_citizens / 1e5 if a.per_100k else 1.0) for a in ab], np.float64),
        np.array([APPEAL_ORDERS.index(a.order) for a in ab], np.int64),
        np.array([[a.file_probability, a.file_probability if a.file_probability_false is None
                   else a.file_probability_false] for a in ab]).reshape(len(ab), 2),
        np.array([a.file_within_days or -1 for a in ab], np.int64),
        np.array([a.decide_within_days or -1 for a in ab], np.int64),
        np.array([a.deadline_enforced for a in ab], np.bool_),
        np.array([a.success_false for a in ab]), np.array([a.success_true for a in ab]),
        np.stack([_group_table(plan.scen, a.success_by, plan.dims, maxv) for a in ab]) if ab
        else np.ones((0, len(plan.dims), maxv)),
        np.array([a.correction_days for a in ab], np.int64), np.array([a.cost for a in ab]),
        repair_lists, rep.after_days if rep is not None else 0, rep.daily_probability if rep is not None else 0.0,
        np.array([st.from_day for st in rep.schedule] if rep is not None else [], np.int64),
        np.array([st.multiplier for st in rep.schedule] if rep is not None else [], np.float64),
        np.array([bodies.index(a.reconsideration) if a.reconsideration else -1 for a in ab], np.int64))


CASE_COLUMNS = ("cit", "lst", "body", "rid", "false_record", "notice", "filed", "decided", "upheld")
STAY_COLUMNS = ("cit", "lst", "since", "exit", "route")


def _empty(k: int) -> tuple[np.ndarray, ...]:
    return tuple(np.zeros(0, np.int64) for _ in range(k))


@dataclass
class RedressBook:
    """What the redress stage remembers between days (checkpointed with the loop).

    Per (list, citizen): the contestable record, whether it is false, the day notice was served
    (-1: not notified), the record last contested, whether a case is open. Cases and ended stays
    are append-only tables of int64 columns (:data:`CASE_COLUMNS`, :data:`STAY_COLUMNS`); a case
    not decided yet has ``decided = -1`` and ``upheld = -1``. ``waiting[b]`` holds the case ids
    in body ``b``'s queue, in filing order.
    """

    last_rid: np.ndarray
    last_false: np.ndarray
    notice_day: np.ndarray
    contested: np.ndarray
    open_case: np.ndarray
    cases: tuple[np.ndarray, ...] = field(default_factory=lambda: _empty(len(CASE_COLUMNS)))
    stays: tuple[np.ndarray, ...] = field(default_factory=lambda: _empty(len(STAY_COLUMNS)))
    waiting: list[np.ndarray] = field(default_factory=list)
    notices: Queue[NoticesDue] = field(default_factory=lambda: Queue(NoticesDue))
    corrections: Queue[CorrectionsDue] = field(default_factory=lambda: Queue(CorrectionsDue))
    repairs: Queue[RepairsDue] = field(default_factory=lambda: Queue(RepairsDue))
    rejected: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # case ids open to reconsideration

    def case(self, name: str) -> np.ndarray:
        return self.cases[CASE_COLUMNS.index(name)]


def new_book(n_lists: int, n: int, n_bodies: int) -> RedressBook:
    return RedressBook(np.full((n_lists, n), -1, np.int64), np.zeros((n_lists, n), np.uint8),
                       np.full((n_lists, n), -1, np.int32), np.full((n_lists, n), -1, np.int64),
                       np.zeros((n_lists, n), np.uint8), waiting=[np.zeros(0, np.int64) for _ in range(n_bodies)])


def _append(cols: tuple[np.ndarray, ...], rows: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([c, np.asarray(r, np.int64)]) for c, r in zip(cols, rows, strict=True))


_SCAN = 1 << 16  # citizens a task scans in the candidate kernels below


@njit(cache=True)
def _count_at_least(values: np.ndarray, least: int) -> int:
    """How many of ``values`` are at least ``least``. A loop over a whole array from 0, which LLVM
    vectorises; the same test over a range of a larger array (``values[i]`` for ``i`` from ``lo``) is not,
    as numba must allow for a negative index: 3.9 against 0.8 ms for 10^7 bytes."""
    k = 0
    for i in range(values.shape[0]):
        if values[i] < least:
            continue
        k += 1
    return k


@njit(inline="always", cache=True)
def _file_block(b: int, n: int, out: np.ndarray, at: int, nd: np.ndarray, open_case: np.ndarray,
                last_rid: np.ndarray, contested: np.ndarray, listed: np.ndarray, pending: np.ndarray, day: int,
                window: int, within: int) -> int:
    """Citizens of block ``b`` who may object today (the conditions of :meth:`Redress._file`), in id order,
    from ``out[at]`` (``out`` empty: only counted); how many."""
    lo, hi = b * _SCAN, min(n, (b + 1) * _SCAN)
    if _count_at_least(nd[lo:hi], 0) == 0:  # nobody in the block notified: most blocks, most days
        return 0
    k = 0
    write = out.shape[0] > 0
    for i in range(lo, hi):
        # one test per statement: as a helper function or one chain of ``or``, numba's serial code was
        # 70-200 times slower (10^6 citizens)
        if nd[i] < 0:  # not notified
            continue
        if open_case[i] != 0 or last_rid[i] < 0:
            continue
        if last_rid[i] == contested[i]:  # contested already
            continue
        if listed[i] != 1 and pending[i] == 0:  # neither on the list nor about to be
            continue
        if day >= (last_rid[i] >> 32) + window:  # the record no longer counts towards the list
            continue
        if within >= 0 and day - nd[i] > within:  # too late to object
            continue
        if write:
            out[at + k] = i
        k += 1
    return k


@njit(inline="always", cache=True)
def _repair_block(b: int, n: int, out: np.ndarray, at: int, listed: np.ndarray, since: np.ndarray, day: int,
                  after: int) -> int:
    """Citizens of block ``b`` whose stay may be repaired today, as :func:`_file_block`."""
    lo, hi = b * _SCAN, min(n, (b + 1) * _SCAN)
    if _count_at_least(listed[lo:hi], 1) == 0:  # nobody in the block listed
        return 0
    k = 0
    write = out.shape[0] > 0
    for i in range(lo, hi):
        if listed[i] != 1:
            continue
        if day - since[i] < after:
            continue
        if write:
            out[at + k] = i
        k += 1
    return k


@njit(cache=True)
def _file_scan_serial(n: int, nd: np.ndarray, open_case: np.ndarray, last_rid: np.ndarray, contested: np.ndarray,
                      listed: np.ndarray, pending: np.ndarray, day: int, window: int, within: int) -> np.ndarray:
    nb = (n + _SCAN - 1) // _SCAN
    none = np.empty(0, np.int64)
    total = 0
    for b in range(nb):
        total += _file_block(b, n, none, 0, nd, open_case, last_rid, contested, listed, pending, day, window, within)
    out = np.empty(total, np.int64)
    at = 0
    for b in range(nb):
        at += _file_block(b, n, out, at, nd, open_case, last_rid, contested, listed, pending, day, window, within)
    return out


@njit(parallel=True, cache=True)
def _file_scan_parallel(n: int, nd: np.ndarray, open_case: np.ndarray, last_rid: np.ndarray, contested: np.ndarray,
               listed: np.ndarray, pending: np.ndarray, day: int, window: int, within: int) -> np.ndarray:
    """Who may object today, in id order: blocks counted, then filled (the count before the fill makes
    the order the blocks' order, whatever the threads)."""
    nb = (n + _SCAN - 1) // _SCAN
    none = np.empty(0, np.int64)
    cnt = np.zeros(nb + 1, np.int64)
    for b in prange(nb):
        cnt[b + 1] = _file_block(b, n, none, 0, nd, open_case, last_rid, contested, listed, pending, day, window,
                                 within)
    for b in range(nb):
        cnt[b + 1] += cnt[b]
    out = np.empty(cnt[nb], np.int64)
    for b in prange(nb):
        _file_block(b, n, out, cnt[b], nd, open_case, last_rid, contested, listed, pending, day, window, within)
    return out


@njit(cache=True)
def _repair_scan_serial(n: int, listed: np.ndarray, since: np.ndarray, day: int, after: int) -> np.ndarray:
    nb = (n + _SCAN - 1) // _SCAN
    none = np.empty(0, np.int64)
    total = 0
    for b in range(nb):
        total += _repair_block(b, n, none, 0, listed, since, day, after)
    out = np.empty(total, np.int64)
    at = 0
    for b in range(nb):
        at += _repair_block(b, n, out, at, listed, since, day, after)
    return out


@njit(parallel=True, cache=True)
def _repair_scan_parallel(n: int, listed: np.ndarray, since: np.ndarray, day: int, after: int) -> np.ndarray:
    """Whose stay may be repaired today, in id order (as :func:`_file_scan_parallel`)."""
    nb = (n + _SCAN - 1) // _SCAN
    none = np.empty(0, np.int64)
    cnt = np.zeros(nb + 1, np.int64)
    for b in prange(nb):
        cnt[b + 1] = _repair_block(b, n, none, 0, listed, since, day, after)
    for b in range(nb):
        cnt[b + 1] += cnt[b]
    out = np.empty(cnt[nb], np.int64)
    for b in prange(nb):
        _repair_block(b, n, out, cnt[b], listed, since, day, after)
    return out


def _draw(seed: int, stream: str, day: int, cit: np.ndarray) -> np.ndarray:
    return rng.uniforms(rng.day_key(seed, stream, day), cit.astype(np.int64))


class Redress:
    """Stage 7: notice, objections and their decisions, and the route of every official exit."""

    name: str = "redress"
    reads: tuple[str, ...] = ("day.filed", "day.lists", "day.attempts", "state.listed", "state.listed_since",
                              "state.pending",
                              "state.groups", "state.ledger")
    writes: tuple[str, ...] = ("day.redress", "state.retractions", "state.terms")

    def __init__(self, plan: Plan, st: State, seed: int, lo: int, hi: int) -> None:
        spec = plan.scen.redress
        if spec is None:
            raise ValueError("the redress stage needs a scenario with a redress section")
        if (lo, hi) != (0, st.n):
            raise ValueError("redress: appeal queues have one capacity for the whole population, so a run with "
                             "appeal bodies cannot be split into shards; run it in one process")
        self.plan = plan
        self.seed = seed
        self.rules = redress_rules(plan, spec, st.n)
        self.book = new_book(len(plan.lists), st.n, len(self.rules.bodies))

    # -- 1, 2: exits by route -------------------------------------------------------------------
    def _exits(self, st: State, d: Day, r: RedressDay) -> None:
        p, book, lc = self.plan, self.book, d.lists
        due = book.corrections.pop(d.day)
        out = (lc.mode == 0) & (lc.direction == -1)
        cit, lst, since = lc.cit[out], lc.lst[out], lc.since[out]
        route = np.full(cit.shape[0], ROUTE["other"], np.int64)
        route[p.exit_term[lst] > 0] = ROUTE["term"]
        route[p.list_by_grade[lst]] = ROUTE["grade"]
        rec = d.filed.records
        if len(rec) and cit.shape[0]:
            rows = np.flatnonzero(rec.official == 1)
            rr, ll = np.nonzero(p.cure_types[rec.rtype[rows]])
            if rr.shape[0]:
                key = set(zip(rec.cit[rows[rr]].tolist(), ll.tolist(), strict=True))
                cured = np.array([(c, li) in key for c, li in zip(cit.tolist(), lst.tolist(), strict=True)], np.bool_)
                route[cured] = ROUTE["compliance"]
        fixed = book.repairs.pop(d.day)
        if fixed.cit.shape[0] and cit.shape[0]:
            done = set(zip(fixed.cit.tolist(), fixed.lst.tolist(), strict=True))
            route[np.array([(c, li) in done for c, li in zip(cit.tolist(), lst.tolist(), strict=True)],
                           np.bool_)] = ROUTE["repair"]
        if due.cit.shape[0] and cit.shape[0]:
            won = set(zip(due.cit.tolist(), due.lst.tolist(), strict=True))
            route[np.array([(c, li) in won for c, li in zip(cit.tolist(), lst.tolist(), strict=True)],
                           np.bool_)] = ROUTE["appeal"]
        book.stays = _append(book.stays, (cit, lst, since, np.full(cit.shape[0], d.day), route))
        book.notice_day[lst, cit] = -1
        r.exit_cit, r.exit_lst, r.exit_route = cit, lst, route

    # -- 3: contestable records and notices -----------------------------------------------------
    def _notices(self, st: State, d: Day, r: RedressDay) -> None:
        p, rules, book, day = self.plan, self.rules, self.book, d.day
        heard = rules.heard_by >= 0
        rec = d.filed.records
        if len(rec):
            rows = np.flatnonzero(rec.official == 1)
            rid = (np.int64(day) << 32) | rows.astype(np.int64)
            for li in np.flatnonzero(heard).tolist():
                sel = p.entry_types[rec.rtype[rows], li]
                c = rec.cit[rows[sel]]
                book.last_rid[li, c] = rid[sel]  # rows ascend, so the latest record of a citizen wins
                book.last_false[li, c] = (rec.true[rows[sel]] == 0).astype(np.uint8)
                if rules.notice_at[li] == NOTICE_AT.index("filing"):
                    self._serve_later(day, np.unique(c), li)
        lc = d.lists
        for li in np.flatnonzero(heard).tolist():
            if rules.notice_at[li] == NOTICE_AT.index("listing"):
                sel = (lc.mode == 0) & (lc.direction == 1) & (lc.lst == li)
                self._serve_later(day, lc.cit[sel], li)
        due = book.notices.pop(day)
        key = np.unique(due.lst.astype(np.int64) * st.n + due.cit)  # one notice per (list, citizen)
        dc, dl = key % st.n, key // st.n
        # a notice that arrives after the stay (or the pending entry) ended has nothing left to tell
        fresh = (book.notice_day[dl, dc] < 0) & ((st.listed[0, dl, dc] == 1) | (st.pending[0, dl, dc] > 0))
        book.notice_day[dl[fresh], dc[fresh]] = day
        nc, nl = [dc[fresh]], [dl[fresh]]
        a = d.attempts
        if rules.learn_on_denial.any() and a.cit.shape[0] and len(p.sanctions):
            den = np.flatnonzero((a.denied[:, 0] == 1) & (a.first >= 0))
            # the refusal tells of every heard list its sanction's condition names and the citizen is on
            row, ln = np.nonzero(p.san_names_list[a.first[den]])
            c = a.cit[den[row]]
            ok = heard[ln] & rules.learn_on_denial[ln] & (st.listed[0, ln, c] == 1) & (book.notice_day[ln, c] < 0)
            key = np.unique(ln[ok].astype(np.int64) * st.n + c[ok])
            c, ln = key % st.n, key // st.n
            book.notice_day[ln, c] = day
            nc.append(c)
            nl.append(ln)
        r.notice_cit, r.notice_lst = np.concatenate(nc).astype(np.int64), np.concatenate(nl).astype(np.int64)

    def _serve_later(self, day: int, cit: np.ndarray, li: int) -> None:
        if cit.shape[0] == 0:
            return
        served = _draw(self.seed, f"redress:notice:{self.plan.lists[li]}", day, cit) < self.rules.notice_p[li]
        c = cit[served].astype(np.int64)
        self.book.notices.push(day + int(self.rules.notice_delay[li]), c, np.full(c.shape[0], li, np.int64))

    # -- 4: filing ------------------------------------------------------------------------------
    def _file(self, st: State, d: Day, r: RedressDay) -> None:
        p, rules, book, day = self.plan, self.rules, self.book, d.day
        fc, fb = [], []
        for b, body in enumerate(rules.bodies):
            for li in np.flatnonzero(rules.heard_by == b):
                nd = book.notice_day[li]
                # notified, no case open, a record not contested yet that still counts (listed or pending)
                cand = (_file_scan_parallel if threads.parallel_for(st.n) else _file_scan_serial)(
                    st.n, nd, book.open_case[li], book.last_rid[li], book.contested[li],
                    st.listed[0, li], st.pending[0, li], day, int(p.entry_window[li]), int(rules.file_within[b]))
                if cand.shape[0] == 0:
                    continue
                fp = rules.file_p[b, book.last_false[li, cand].astype(np.int64)]
                go = cand[_draw(self.seed, f"redress:file:{body}:{p.lists[li]}", day, cand) < fp]
                if go.shape[0] == 0:
                    continue
                first = book.cases[0].shape[0]
                k = go.shape[0]
                book.cases = _append(book.cases, (go, np.full(k, li), np.full(k, b), book.last_rid[li, go],
                                                  book.last_false[li, go], nd[go], np.full(k, day),
                                                  np.full(k, -1), np.full(k, -1)))
                book.contested[li, go] = book.last_rid[li, go]
                book.open_case[li, go] = 1
                book.waiting[b] = np.concatenate([book.waiting[b], np.arange(first, first + k, dtype=np.int64)])
                fc.append(go)
                fb.append(np.full(k, b, np.int64))
        self._reconsider(st, day, fc, fb)
        r.filed_cit = np.concatenate(fc) if fc else np.zeros(0, np.int64)
        r.filed_body = np.concatenate(fb) if fb else np.zeros(0, np.int64)

    def _reconsider(self, st: State, day: int, fc: list[np.ndarray], fb: list[np.ndarray]) -> None:
        """Rejected cases go to the body that reconsiders them: the citizen files there, from the day after
        the rejection, with that body's daily probability and within its filing deadline (counted from the
        rejection), while the listing (or pending entry) and the record still stand. Cases are taken in case
        order; a case out of time or of purpose leaves the pool."""
        p, rules, book = self.plan, self.rules, self.book
        pool = book.rejected
        if pool.shape[0] == 0:
            return
        cit, lst, rid = book.case("cit")[pool], book.case("lst")[pool], book.case("rid")[pool]
        to = rules.reconsider_by[book.case("body")[pool]]
        since = book.case("decided")[pool]
        within = rules.file_within[to]
        alive = (((st.listed[0, lst, cit] == 1) | (st.pending[0, lst, cit] > 0))
                 & (day < (rid >> 32) + p.entry_window[lst]) & (book.open_case[lst, cit] == 0)
                 & (book.last_rid[lst, cit] == rid) & ((within < 0) | (day - since <= within)))
        go = np.zeros(pool.shape[0], np.bool_)
        for t in np.unique(to[alive]).tolist():
            for li in np.unique(lst[alive & (to == t)]).tolist():
                sel = np.flatnonzero(alive & (to == t) & (lst == li))
                fp = rules.file_p[t, book.case("false_record")[pool[sel]]]
                u = _draw(self.seed, f"redress:reconsider:{rules.bodies[t]}:{p.lists[li]}", day, cit[sel])
                go[sel[u < fp]] = True
        book.rejected = pool[alive & ~go]
        idx = np.flatnonzero(go)
        for t in np.unique(to[idx]).tolist():
            now = pool[idx[to[idx] == t]]
            k = now.shape[0]
            first = book.cases[0].shape[0]
            c, li = book.case("cit")[now], book.case("lst")[now]
            book.cases = _append(book.cases, (c, li, np.full(k, t), book.case("rid")[now],
                                              book.case("false_record")[now], book.case("notice")[now],
                                              np.full(k, day), np.full(k, -1), np.full(k, -1)))
            book.open_case[li, c] = 1
            book.waiting[t] = np.concatenate([book.waiting[t], np.arange(first, first + k, dtype=np.int64)])
            fc.append(c)
            fb.append(np.full(k, t, np.int64))

    # -- 5: decisions ---------------------------------------------------------------------------
    def _decide(self, st: State, d: Day, r: RedressDay) -> None:
        rules, book, day = self.rules, self.book, d.day
        out: list[np.ndarray] = []
        for b, body in enumerate(rules.bodies):
            q = book.waiting[b]
            if q.shape[0] == 0:
                continue
            c = float(rules.capacity[b])
            cap = math.floor((day + 1) * c) - math.floor(day * c)  # fractional capacities spread evenly
            take = np.zeros(q.shape[0], np.bool_)
            if rules.order[b] == APPEAL_ORDERS.index("fifo"):
                take[:cap] = True
            elif cap:
                take[-cap:] = True
            if rules.enforced[b]:
                take |= day - book.case("filed")[q] >= rules.decide_within[b]
            now, book.waiting[b] = q[take], q[~take]
            cit = book.case("cit")[now]
            false = book.case("false_record")[now] == 1
            prob = np.where(false, rules.p_false[b], rules.p_true[b])
            for dim in range(rules.p_group.shape[1]):
                prob = prob * rules.p_group[b, dim, st.groups[dim][cit].astype(np.int64)]
            upheld = _draw(self.seed, f"redress:decide:{body}", day, cit) < np.minimum(prob, 1.0)
            book.cases[CASE_COLUMNS.index("decided")][now] = day
            book.cases[CASE_COLUMNS.index("upheld")][now] = upheld.astype(np.int64)
            lst = book.case("lst")[now]
            book.open_case[lst, cit] = 0
            won = now[upheld]
            if rules.reconsider_by[b] >= 0:
                book.rejected = np.concatenate([book.rejected, now[~upheld]])
            when = day + int(rules.correction[b])
            retraction.request(st, when, book.case("rid")[won], "appeal")
            book.corrections.push(when, book.case("cit")[won], book.case("lst")[won], won)
            out.append(now)
        r.decided = np.concatenate(out) if out else np.zeros(0, np.int64)

    # -- 6: credit repair -----------------------------------------------------------------------
    def _repair(self, st: State, d: Day) -> None:
        """Eligible stays end tomorrow with the daily probability: a term item with the stay's entry day,
        which the classify stage applies (and ignores if the stay has ended meanwhile). Both views draw
        the same number for a citizen, so the rule acts alike on the official and the shadow list."""
        rules, day = self.rules, d.day
        p = rules.repair_p_on(day)
        for li in np.flatnonzero(rules.repair_lists).tolist():
            for m in (0, 1):
                since = st.listed_since[m, li]
                cand = (_repair_scan_parallel if threads.parallel_for(st.n) else _repair_scan_serial)(
                    st.n, st.listed[m, li], since, day, int(rules.repair_after))
                if cand.shape[0] == 0:
                    continue
                go = cand[_draw(self.seed, f"redress:repair:{self.plan.lists[li]}", day, cand) < p]
                k = go.shape[0]
                st.terms.push(day + 1, *term_rows(go, np.full(k, m, np.int64), np.full(k, li, np.int64), since[go]))
                if m == 0:
                    self.book.repairs.push(day + 1, go.astype(np.int64), np.full(k, li, np.int64))

    def run(self, st: State, d: Day, x: Exchange) -> None:
        r = RedressDay()
        self._exits(st, d, r)
        self._notices(st, d, r)
        self._file(st, d, r)
        self._decide(st, d, r)
        self._repair(st, d)
        book = self.book
        r.decided_cit = book.case("cit")[r.decided]
        r.decided_body = book.case("body")[r.decided]
        r.decided_upheld = book.case("upheld")[r.decided]
        r.decided_false = book.case("false_record")[r.decided]
        lim = self.rules.decide_within[r.decided_body] if r.decided.shape[0] else np.zeros(0, np.int64)
        r.decided_overdue = ((lim >= 0) & (d.day - book.case("filed")[r.decided] > lim)).astype(np.int64)
        d.redress = r

    # -- outputs --------------------------------------------------------------------------------
    def tables(self, st: State) -> tuple[pa.Table, pa.Table]:
        """The cases and the stays as Arrow tables (``cases.parquet``, ``stays.parquet``).

        Stays still running at the end are included with ``exit`` -1 and a null route (censored
        for the audit's Kaplan-Meier curves)."""
        p, book = self.plan, self.book
        cases = {c: arrowcols.numeric(a) for c, a in zip(CASE_COLUMNS, book.cases, strict=True)}
        cases["lst"] = arrowcols.dictionary(book.case("lst").astype(np.int32), p.lists)
        cases["body"] = arrowcols.dictionary(book.case("body").astype(np.int32), self.rules.bodies)
        li, c = np.nonzero(st.listed[0])
        k = c.shape[0]
        stays = _append(book.stays, (c, li, st.listed_since[0, li, c], np.full(k, -1), np.full(k, -1)))
        cols = {name: arrowcols.numeric(a) for name, a in zip(STAY_COLUMNS, stays, strict=True)}
        cols["lst"] = arrowcols.dictionary(stays[1].astype(np.int32), p.lists)
        route = stays[4].astype(np.int32)
        cols["route"] = arrowcols.dictionary(route, list(EXIT_ROUTES), null=route < 0)
        return pa.table(cases), pa.table(cols)
