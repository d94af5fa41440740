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
from dataclasses import dataclass, field, fields

import numpy as np

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


@dataclass
class Queue:
    """Arrays to process on a given future day; ``pop(day)`` returns them in push order."""

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

    def pop(self, day: int, width: int) -> tuple[np.ndarray, ...]:
        parts = self.buckets.pop(day, [])
        if not parts:
            return tuple(np.zeros(0, dtype=np.int64) for _ in range(width))
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(width))

    def size(self) -> int:
        return sum(p[0].shape[0] for b in self.buckets.values() for p in b)


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
    listed_since: np.ndarray  # (2, L, N) int32
    list_count: np.ndarray  # (2, L, N) int32: live entry records
    cured_seq: np.ndarray  # (2, L, N) int64: records filed up to this sequence number no longer count
    pending: np.ndarray  # (2, L, N) int32: day a pending entry falls due, or -1
    cap_used: np.ndarray  # (2, 2, N) float32: points lost / gained this cap period
    resp_day: np.ndarray  # (Q, N) int32: day a response was last triggered, or -1
    feat_count: np.ndarray  # (2, F, N) int32: live records counted by each model feature
    neg_by_domain: np.ndarray  # (domains, N) float32: official points lost, by domain
    assoc_pts: np.ndarray  # (2, N) float32: points from association records
    counters: np.ndarray  # (len(COUNTERS), N) int32
    records: Queue = field(default_factory=Queue)  # Records due to be filed, by file day
    expiry: Queue = field(default_factory=Queue)  # points and features: (cit, code, amount); see dossier
    list_expiry: Queue = field(default_factory=Queue)  # list-window counts: (cit, code, filing sequence)
    entries: Queue = field(default_factory=Queue)  # (cit, mode, list) pending entries
    terms: Queue = field(default_factory=Queue)  # (cit, mode, list, entry day) fixed terms
    traced: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def initial_state(plan: Plan, pop: Population, graph: Graph) -> State:
    n, L, Q, F = pop.n, len(plan.lists), len(plan.responses), len(plan.features)
    score = np.full((2, n), np.float32(plan.points_base), dtype=np.float32)
    model = plan.scen.scoring.model
    mscore = np.full((2, n if model else 0), np.float32(model.center if model else 0), dtype=np.float32)
    return State(
        n=n,
        groups=pop.groups,
        traits=pop.traits,
        graph=graph,
        score=score,
        mscore=mscore,
        grade=np.zeros((2, n), dtype=np.int8),
        listed=np.zeros((2, L, n), dtype=np.uint8),
        listed_since=np.full((2, L, n), -1, dtype=np.int32),
        list_count=np.zeros((2, L, n), dtype=np.int32),
        cured_seq=np.full((2, L, n), -1, dtype=np.int64),
        pending=np.full((2, L, n), -1, dtype=np.int32),
        # optional columns are allocated only when the scenario uses them (100M-citizen runs)
        cap_used=np.zeros((2, 2, n if plan.cap_period else 0), dtype=np.float32),
        resp_day=np.full((Q, n), -1, dtype=np.int32),
        feat_count=np.zeros((2, F, n), dtype=np.int32),
        neg_by_domain=np.zeros((len(plan.domains) if plan.has_points else 0, n), dtype=np.float32),
        assoc_pts=np.zeros((2, n if (plan.assoc_points != 0).any() else 0), dtype=np.float32),
        counters=np.zeros((len(COUNTERS), n), dtype=np.int32),
    )


def bytes_per_citizen(plan: Plan) -> int:
    """Dense state bytes per citizen (the graph and queues are estimated separately)."""
    L, Q, F = len(plan.lists), len(plan.responses), len(plan.features)
    return (
        len(plan.dims)
        + 4 * len(plan.traits)
        + 8  # score
        + 2  # grade
        + 2 * L * (1 + 4 + 4 + 8 + 4)
        + (16 if plan.cap_period else 0)
        + 4 * Q
        + 2 * F * 4
        + (4 * len(plan.domains) if plan.has_points else 0)
        + (8 if (plan.assoc_points != 0).any() else 0)
        + 4  # metrics cell
        + (8 if plan.has_model else 0)
        + 4 * len(COUNTERS)
    )
