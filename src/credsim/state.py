"""The state of a run: columns of length N (struct of arrays) plus sparse queues.

Dense per-citizen state lives in NumPy arrays indexed ``[mode, ..., citizen]`` where
mode 0 is the **official** view (what the authority's dossier holds, false records
included) and mode 1 the **shadow** view (true behaviour only, as a perfectly informed
and error-free system would see it). Comparing the two is what the audit measures.

Things that happen on a future day (records arriving after a sensor's delay, records
expiring, list entries after a grace period, fixed list terms) sit in :class:`Queue`
buckets keyed by day, so each day touches only what is due.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from credsim.allocator import unreserved_zeros
from credsim.graph import Graph
from credsim.plan import Plan
from credsim.population import Population

# per-citizen cumulative counters written to citizens.parquet
COUNTERS = (
    "events",
    "infractions",
    "speech",
    "records_true",
    "records_false",
    "records_adverse",  # official records that count against the citizen (plan.rtype_adverse), true or false
    "attempts",
    "denied",
    "rewarded",
    "wrongful",
    "missed",
    "association_only",
    "times_listed",
    "days_listed",
)
C = {name: i for i, name in enumerate(COUNTERS)}


@dataclass
class Records:
    """A batch of dossier records (one row per record), in a deterministic order."""

    cit: np.ndarray
    rtype: np.ndarray
    sensor: np.ndarray  # -1: shadow-only record (a true event as the shadow sees it)
    eday: np.ndarray  # day of the underlying event
    official: np.ndarray  # uint8: enters the authority's dossier
    shadow: np.ndarray  # uint8: enters the shadow (true-behaviour) view
    true: np.ndarray  # uint8: an event really happened

    @staticmethod
    def empty() -> Records:
        z = np.zeros(0, dtype=np.int64)
        u = np.zeros(0, dtype=np.uint8)
        return Records(z, z, z, z, u, u, u)

    def __len__(self) -> int:
        return int(self.cit.shape[0])

    @staticmethod
    def concat(parts: list[Records]) -> Records:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Records.empty()
        if len(parts) == 1:
            return parts[0]
        return Records(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Records)))

    def take(self, idx: np.ndarray) -> Records:
        return Records(*(getattr(self, f.name)[idx] for f in fields(Records)))


class ExpiryItems(NamedTuple):
    """Points and feature counts to take back on a day; ``code`` packs item index, kind and view (see dossier)."""

    cit: np.ndarray
    code: np.ndarray
    amount: np.ndarray


class ListExpiryItems(NamedTuple):
    """List-window counts to drop on a day, with the filing sequence (compared with cures)."""

    cit: np.ndarray
    code: np.ndarray
    seq: np.ndarray


class PendingEntries(NamedTuple):
    """List entries falling due on a day (after their grace days)."""

    cit: np.ndarray
    mode: np.ndarray
    lst: np.ndarray


class Terms(NamedTuple):
    """Fixed list terms ending on a day; ``since`` must still match the stay's entry day."""

    cit: np.ndarray
    mode: np.ndarray
    lst: np.ndarray
    since: np.ndarray


def term_rows(cit: np.ndarray, mode: np.ndarray, lst: np.ndarray, since: np.ndarray) -> tuple[np.ndarray, ...]:
    """A batch of :class:`Terms` rows as the queue holds them: int32 citizens (populations stop at 2e9) and entry
    days, int8 views and int16 lists, 11 B a term rather than 32. A year of ``integrated`` holds a term for a
    third of its citizens at its end (12 B a citizen as int64); the list pass widens them again when they fall
    due."""
    return cit.astype(np.int32), mode.astype(np.int8), lst.astype(np.int16), since.astype(np.int32)


R = TypeVar("R")


def _width(row: type) -> int:
    return len(fields(row)) if is_dataclass(row) else len(row._fields)  # type: ignore[attr-defined]


@dataclass
class Queue(Generic[R]):
    """Rows to process on a given future day; ``pop(day)`` returns them as one ``row`` in push order.

    Buckets hold plain tuples of arrays (what a checkpoint stores); the named row type is
    applied when a day is popped."""

    row: type[R]
    buckets: dict[int, list[tuple[np.ndarray, ...]]] = field(default_factory=lambda: defaultdict(list))

    def push(self, day: int, *arrays: np.ndarray) -> None:
        if arrays[0].shape[0]:
            self.buckets[day].append(arrays)

    def push_by_day(self, days: np.ndarray, *arrays: np.ndarray) -> None:
        """Push rows to the bucket of their own day, keeping row order within a day."""
        if days.shape[0] == 0:
            return
        if days[0] == days[-1] and days.min() == days.max():
            self.buckets[int(days[0])].append(tuple(arrays))
            return
        order = np.argsort(days, kind="stable")
        d = days[order]
        cuts = np.flatnonzero(np.diff(d)) + 1
        for seg in np.split(np.arange(d.shape[0]), cuts):
            rows = order[seg]
            self.buckets[int(d[seg[0]])].append(tuple(a[rows] for a in arrays))

    def pop(self, day: int) -> R:
        width = _width(self.row)
        parts = self.buckets.pop(day, [])
        ctor: Any = self.row
        if not parts:
            return ctor(*(np.zeros(0, dtype=np.int64) for _ in range(width)))  # type: ignore[no-any-return]
        return ctor(*(np.concatenate([p[k] for p in parts]) for k in range(width)))  # type: ignore[no-any-return]

    def size(self) -> int:
        return sum(p[0].shape[0] for b in self.buckets.values() for p in b)


class Retractions(NamedTuple):
    """Records to retract on a day: record id, views (bit 0 official, bit 1 shadow), reason code."""

    rid: np.ndarray
    views: np.ndarray
    reason: np.ndarray


LEDGER_RECORD_BYTES = 15  # citizen int32, record type int16, flags uint8, points applied float32 x 2

# ledger flags of a record: the views it was filed in, whether it was true, whether it was retracted
F_OFFICIAL, F_SHADOW, F_TRUE, F_RETRACTED_OFFICIAL, F_RETRACTED_SHADOW = 1, 2, 4, 8, 16


@dataclass
class Ledger:
    """Every filed record that can still matter, by file day: what retraction needs to undo it.

    A record's id is ``day << 32 | row``: its file day and its position in that day's filing
    (the same number orders records against cures, see ``cured_seq``). Ids are unique within a
    loop; a shard numbers its own range's records. Per record the ledger keeps 15 bytes
    (citizen int32, record type int16, flags uint8, points applied float32 x 2 views) and
    drops a day once nothing filed that day can be live any more (its longest expiry, feature
    or list window has passed).

    Only a run that can retract keeps it (``keep``): retractions come from won appeals, so a
    scenario without a ``redress`` section never looks a record up, and at 10^7 citizens the
    ledger would hold 15 bytes for every record of the longest lifetime (about 170 bytes a
    citizen for a year of ``integrated``) for nothing.
    """

    buckets: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict)
    keep: bool = True

    def add(self, day: int, rec: Records, applied: np.ndarray) -> None:
        if len(rec) == 0 or not self.keep:
            return
        flags = (rec.official.astype(np.uint8) * F_OFFICIAL + rec.shadow.astype(np.uint8) * F_SHADOW
                 + rec.true.astype(np.uint8) * F_TRUE).astype(np.uint8)
        self.buckets[day] = (rec.cit.astype(np.int32), rec.rtype.astype(np.int16), flags,
                             applied[:, 0].astype(np.float32), applied[:, 1].astype(np.float32))

    def prune(self, before: int) -> None:
        """Forget records filed before ``before`` (none of their effects is live any more)."""
        for d in [d for d in self.buckets if d < before]:
            del self.buckets[d]

    def lookup(self, rid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, file day, row) of each id; an id of a forgotten or unknown record is not found."""
        day = (rid >> 32).astype(np.int64)
        row = (rid & 0xFFFFFFFF).astype(np.int64)
        found = np.array([int(d) in self.buckets and int(r) < self.buckets[int(d)][0].shape[0]
                          for d, r in zip(day.tolist(), row.tolist(), strict=True)], dtype=np.bool_)
        return found, day, row

    def column(self, k: int, day: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Column ``k`` (0 cit, 1 rtype, 2 flags, 3-4 applied) of the records at (day, row), all found."""
        return np.array([self.buckets[int(d)][k][int(r)] for d, r in zip(day.tolist(), row.tolist(), strict=True)],
                        dtype=self.buckets[int(day[0])][k].dtype) if day.shape[0] else np.zeros(0)

    def set_flags(self, day: np.ndarray, row: np.ndarray, bits: int) -> None:
        for d, r in zip(day.tolist(), row.tolist(), strict=True):
            self.buckets[int(d)][2][int(r)] |= np.uint8(bits)

    def size(self) -> int:
        return sum(b[0].shape[0] for b in self.buckets.values())


@dataclass
class State:
    n: int
    groups: np.ndarray
    traits: np.ndarray
    graph: Graph
    score: np.ndarray  # (2, N) float32: points score
    mscore: np.ndarray  # (2, N or 0) float32: model score, when the scenario has one
    grade: np.ndarray  # (2, N) int8
    listed: np.ndarray  # (2, L, N) uint8
    listed_since: np.ndarray  # (2, L, N) day_dtype: the first day of the stay, read only while listed (0 before a
    # first stay, that stay's first day after it ends)
    list_count: np.ndarray  # (2, L, N) int16 or int32 (list_count_dtype): live entry records
    cured_seq: np.ndarray  # (2, lists with a cure, N) int64: records filed before this sequence number (the cure's
    # own number plus 1; 0: never cured, so a citizen never cured leaves zero pages) no longer count (the list's row:
    # plan.cure_slot)
    pending: np.ndarray  # (2, L, N) day_dtype: the day a pending entry falls due plus 1, or 0 (none): so a list that
    # never has a pending entry (entered by grade) leaves its rows zero pages, not resident
    cap_used: np.ndarray  # (2, 2, N) float32: points lost / gained this cap period
    resp_day: np.ndarray  # (Q, N) day_dtype: the day a response was last triggered plus 1, or 0 (never): zero pages
    # for whom no response reaches
    feat_count: np.ndarray  # (2, F, N) int16 or int32 (feat_dtype): live records counted by each model feature
    neg_by_domain: np.ndarray  # (neg_rows, N) float32: official points lost, by domain (row: plan.neg_row)
    assoc_pts: np.ndarray  # (2, N) float32: points from association records
    counters: np.ndarray  # (len(COUNTERS), N) int16 or int32 (counter_dtype): lifetime counts
    records: Queue[Records] = field(default_factory=lambda: Queue(Records))  # due to be filed, by file day
    expiry: Queue[ExpiryItems] = field(default_factory=lambda: Queue(ExpiryItems))
    list_expiry: Queue[ListExpiryItems] = field(default_factory=lambda: Queue(ListExpiryItems))
    entries: Queue[PendingEntries] = field(default_factory=lambda: Queue(PendingEntries))
    terms: Queue[Terms] = field(default_factory=lambda: Queue(Terms))
    ledger: Ledger = field(default_factory=Ledger)  # filed records by id, for retraction
    retractions: Queue[Retractions] = field(default_factory=lambda: Queue(Retractions))
    expiry_undo: Queue[ExpiryItems] = field(default_factory=lambda: Queue(ExpiryItems))  # cancel a take-back
    list_undo: Queue[ListExpiryItems] = field(default_factory=lambda: Queue(ListExpiryItems))
    money: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (M, N) float64 balances (economy.py)
    # family ties, only when declared (else length 0): dependants of each citizen, and official denials by
    # sanctions that reach dependants
    dependants: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    dep_denied: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))


# NumPy asks the kernel for transparent huge pages (2 MiB) for every large array, private API to switch that
# off for one allocation (absent from a NumPy without it: then every array keeps them)
_set_huge: Any = getattr(getattr(np, "_core", None), "multiarray", None)
_set_huge = getattr(_set_huge, "_set_madvise_hugepage", None)


def sparse_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Zeros for a column written for few citizens (a cure, a pending entry: ~5,000 of 10^7 a view in
    ``integrated``'s year), in 4 KiB pages: with a 2 MiB page each write would back the 262,144 citizens
    around it, and a few thousand scattered writes every page of the column."""
    prev = _set_huge(False) if _set_huge is not None else None
    try:
        return np.zeros(shape, dtype=dtype)
    finally:
        if _set_huge is not None:
            _set_huge(prev)


def initial_state(plan: Plan, pop: Population, graph: Graph, lo: int = 0, hi: int | None = None,
                  days: int | None = None) -> State:
    """The state before day 0 for the citizens ``[lo, hi)`` (default: everyone), for a run of ``days`` days
    (default: the scenario's).

    Columns keep global citizen indexing (the stage kernels index them by citizen id), but for a
    range only the range is written: every column starts as zero pages, which the operating
    system backs with memory only where they are written, so a shard's resident state is
    proportional to its own citizens."""
    n, L, Q, F = pop.n, len(plan.lists), len(plan.responses), len(plan.features)
    hi = n if hi is None else hi
    model = plan.scen.scoring.model
    whole = (lo, hi) == (0, n)
    run_days = plan.scen.run.days if days is None else days

    # a range's columns are indexed by every citizen but written only in the range: mappings the kernel
    # reserves nothing for (allocator.unreserved_zeros), or a shard of a large population could not allocate them
    zeros: Callable[..., np.ndarray] = np.zeros if whole else unreserved_zeros
    sparse: Callable[..., np.ndarray] = sparse_zeros if whole else unreserved_zeros

    def column(shape: tuple[int, ...], value: Any, dtype: Any) -> np.ndarray:
        if whole and value != 0:  # a column of zeros stays zero pages until a citizen's entry is written
            return np.full(shape, value, dtype=dtype)
        out: np.ndarray = zeros(shape, dtype=dtype)
        if value != 0 and shape[-1]:
            out[..., lo:hi] = value
        return out

    return State(
        n=n,
        groups=pop.groups,
        traits=pop.traits,
        graph=graph,
        score=starting_points(plan, pop, lo, hi, zeros),
        mscore=column((2, n if model else 0), np.float32(model.center if model else 0), np.float32),
        grade=zeros((2, n), dtype=np.int8),
        listed=zeros((2, L, n), dtype=np.uint8),
        listed_since=zeros((2, L, n), dtype=day_dtype(plan, run_days)),
        list_count=zeros((2, L, n), dtype=list_count_dtype(plan, run_days)),
        cured_seq=sparse((2, plan.n_cured, n), np.int64),
        pending=sparse((2, L, n), day_dtype(plan, run_days)),
        # optional columns are allocated only when the scenario uses them (100M-citizen runs)
        cap_used=zeros((2, 2, n if plan.cap_period else 0), dtype=np.float32),
        resp_day=zeros((Q, n), dtype=day_dtype(plan, run_days)),
        feat_count=zeros((2, F, n), dtype=feat_dtype(plan, run_days)),
        neg_by_domain=zeros((neg_rows(plan), n), dtype=np.float32),
        assoc_pts=zeros((2, n if (plan.assoc_points != 0).any() else 0), dtype=np.float32),
        counters=zeros((len(COUNTERS), n), dtype=counter_dtype(plan, run_days)),
        money=zeros((len(plan.econ.money) if plan.econ is not None else 0, n), dtype=np.float64),
        dependants=pop.dependants,
        dep_denied=np.zeros(pop.dependants.shape[0], dtype=np.int32),
        ledger=Ledger(keep=keeps_ledger(plan)),
    )


def starting_points(plan: Plan, pop: Population, lo: int, hi: int,
                    zeros: Callable[..., np.ndarray] = np.zeros) -> np.ndarray:
    """Official and shadow points before day 0: each citizen's group's base where ``base_by`` says,
    written only for ``[lo, hi)`` (the rest stays zero pages, as in :func:`initial_state`). A base of 0 (every
    scenario without points) is zero pages throughout: such a column is never written, and ``np.full`` would
    have made all of it resident (8 B a citizen)."""
    if plan.points_base_dim < 0 and plan.points_base == 0 and not np.signbit(plan.points_base):
        return zeros((2, pop.n), np.float32)
    if plan.points_base_dim < 0 and (lo, hi) == (0, pop.n):
        return np.full((2, pop.n), np.float32(plan.points_base), np.float32)
    out: np.ndarray = zeros((2, pop.n), np.float32)
    out[:, lo:hi] = plan.points_base_of(pop.groups[:, lo:hi])
    return out


def count_dtype(plan: Plan, types: np.ndarray, life: np.ndarray, days: int) -> type[np.signedinteger[Any]]:
    """int16 for counts of live records (``types``: (R, K) record types counted by each of K counts, each living
    ``life`` days) when no citizen can hold more than 32,767 of one count in ``days`` days, else int32.

    The bound, per view and count: a citizen does a behaviour at most once a day (one draw a stream), which files
    at most one true record in each view, and each sensor observing it files at most one false record a day (its
    own stream); records count for their ``life`` days, and never longer than the run. A count of association
    records (one per listed contact) has no such bound. Filing refuses to wrap a count all the same."""
    limit = int(np.iinfo(np.int16).max)
    for k in range(types.shape[1]):
        kinds = np.flatnonzero(types[:, k])
        if (kinds >= plan.n_beh).any():
            return np.int32
        per_day = sum(1 + int(plan.sen_obs[:, t].sum()) for t in kinds)
        if per_day * min(days, int(life[k])) > limit:
            return np.int32
    return np.int16


def feat_dtype(plan: Plan, days: int) -> type[np.signedinteger[Any]]:
    """The type of the model features' counts (:func:`count_dtype`): half the bytes of the widest column of a model
    score's state when int16 (commercial-score: 64 B a citizen, ~45 of them resident)."""
    return count_dtype(plan, plan.feat_types, plan.feat_expiry, days)


def list_count_dtype(plan: Plan, days: int) -> type[np.signedinteger[Any]]:
    """The type of the lists' entry counts (:func:`count_dtype`: the records of a list's entry rule within its
    window): 2 B a list and view when int16, not 4."""
    return count_dtype(plan, plan.entry_types, plan.entry_window, days)


def neg_rows(plan: Plan) -> int:
    """Rows of ``neg_by_domain``: with a points score, one for each domain some rule takes points in and one of
    zeros for all the others (:attr:`credsim.plan.Plan.neg_row`); none without points."""
    return int(plan.neg_row.max()) + 1 if plan.has_points and plan.neg_row.shape[0] else 0


def counter_dtype(plan: Plan, days: int) -> type[np.signedinteger[Any]]:
    """The type of the lifetime counters (``counters``, the ``n_*`` columns of ``citizens.parquet``): int16 when
    none can pass 32,767 in ``days`` days, else int32. Written out as int32 either way.

    The bound, per citizen and day: a behaviour is drawn at most once a day (one draw a stream), so events,
    infractions, speech and attempts (and the denials, rewards, wrongful denials, misses and association-only
    denials of those attempts) are at most ``n_beh`` a day; official records of behaviours are at most one true
    record an event, one false record a sensor observing it and one finding an investigation a day; a list is
    entered and left at most once a day each in one list pass, and a citizen spends at most one day a day on
    it, so ``times_listed`` and ``days_listed`` are at most ``2 L`` a day. Over ``days`` days and the start (the
    lists entered by starting grades) that is ``days + 1`` such days. :func:`check_counters` refuses a run whose
    counters wrapped all the same. ``integrated``'s year: 61 x 366 = 22,326; 28 B a citizen, not 56."""
    per_day = max(plan.n_beh + int(plan.sen_obs.sum()) + len(plan.scen.investigations), 2 * len(plan.lists), 1)
    return np.int16 if per_day * (days + 1) <= int(np.iinfo(np.int16).max) else np.int32


def check_counters(st: State, lo: int, hi: int) -> None:
    """Raise if a counter of ``[lo, hi)`` is negative: counts only grow from 0, so a negative one has wrapped
    past its type's largest value (:func:`counter_dtype`'s bound was wrong), and its column must not be
    written as if it were a count."""
    if hi > lo and st.counters.shape[0] and int(st.counters[:, lo:hi].min()) < 0:
        row = int(np.flatnonzero(st.counters[:, lo:hi].min(axis=1) < 0)[0])
        raise OverflowError(f"the counter n_{COUNTERS[row]} passed the largest value of its type "
                            f"({st.counters.dtype}); credsim's bound on it (state.counter_dtype) is wrong")


def day_dtype(plan: Plan, days: int) -> type[np.integer[Any]]:
    """The type of the day columns (``listed_since``, ``pending``, ``resp_day``): uint16 when the largest value they
    can hold fits, else int32. That value is a pending entry's due day plus 1: the last day, ``days - 1``, plus the
    longest grace, plus 1. Every scenario the schema accepts fits (36,500 days and 3,650 grace days): 2 B a
    column, not 4, and zero (not -1) for "none", so a column nobody writes stays zero pages."""
    grace = int(plan.entry_grace.max()) if plan.entry_grace.shape[0] else 0
    return np.uint16 if days + grace <= int(np.iinfo(np.uint16).max) else np.int32


def keeps_ledger(plan: Plan) -> bool:
    """Whether a run keeps the record ledger: only retraction reads it, and only redress retracts."""
    return plan.scen.redress is not None


def bytes_per_citizen(plan: Plan, days: int | None = None) -> int:
    """Dense state bytes per citizen for a run of ``days`` days (default: the scenario's; the graph and queues are
    estimated separately)."""
    L, Q, F = len(plan.lists), len(plan.responses), len(plan.features)
    run_days = plan.scen.run.days if days is None else days
    day = np.dtype(day_dtype(plan, run_days)).itemsize
    return (
        len(plan.dims)
        + 4 * len(plan.traits)
        + 8  # score
        + 2  # grade
        + 2 * L * (1 + np.dtype(list_count_dtype(plan, run_days)).itemsize + 2 * day)  # listed, count; since, pending
        + 2 * 8 * plan.n_cured  # cured_seq
        + (16 if plan.cap_period else 0)
        + day * Q  # resp_day
        + 2 * F * np.dtype(feat_dtype(plan, run_days)).itemsize
        + 4 * neg_rows(plan)
        + (8 if (plan.assoc_points != 0).any() else 0)
        + 4  # metrics cell
        + (8 if plan.has_model else 0)
        + np.dtype(counter_dtype(plan, run_days)).itemsize * len(COUNTERS)
        + 8 * (len(plan.econ.money) if plan.econ is not None else 0)
        + (5 if plan.scen.population.dependants is not None else 0)  # dependants, dep_denied
    )
