"""What one simulated day hands from stage to stage: a typed :class:`Day` of named columns.

Why named columns rather than tuples: a stage added later (redress, appeals) reads what an
earlier stage produced by name, and a checker (mypy, a reader) can follow every column from
the stage that writes it to the observers that read it. Every part is a small dataclass of
parallel arrays, one row per event, record, change or attempt; views are coded 0 = official,
1 = shadow (see :mod:`credsim.state`).

The parts hold arrays, so they are compared column by column, never with ``==`` (``eq=False``).
The stage and observer protocols live here too, so :mod:`credsim.engine` only iterates them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from credsim.exchange import Exchange
from credsim.state import Records, State


def _i64() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _f64() -> np.ndarray:
    return np.zeros(0, dtype=np.float64)


@dataclass(eq=False)
class Events:
    """True events of the day (what citizens did), sorted by citizen."""

    cit: np.ndarray = field(default_factory=_i64)
    beh: np.ndarray = field(default_factory=_i64)
    # (E, C) which state conditions the citizen of each event met at the start of the day (economy.py);
    # (0, 0) when the scenario has none
    cond: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.bool_))


@dataclass(eq=False)
class Observations:
    """Who each sensor saw: ``seen[event, sensor]`` for true events, and the false records made."""

    seen: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.uint8))
    false_cit: np.ndarray = field(default_factory=_i64)
    false_sensor: np.ndarray = field(default_factory=_i64)


@dataclass(eq=False)
class Filed:
    """Records that entered the dossier today and the points each applied, per view ``(R, 2)``."""

    records: Records = field(default_factory=Records.empty)
    applied: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.float32))


@dataclass(eq=False)
class ScoreChanges:
    """Points taken off a score today other than by filing (expiry, retraction), per view."""

    cit: np.ndarray = field(default_factory=_i64)
    mode: np.ndarray = field(default_factory=_i64)
    amount: np.ndarray = field(default_factory=_f64)  # added to the score (negative takes points back)


@dataclass(eq=False)
class ListExits:
    """Exits the dossier asks for (a cure filed, a record retracted): the list pass applies them."""

    cit: np.ndarray = field(default_factory=_i64)
    mode: np.ndarray = field(default_factory=_i64)
    lst: np.ndarray = field(default_factory=_i64)


@dataclass(eq=False)
class Retracted:
    """Records retracted today (ids, see the dossier's ledger) and the reason of each."""

    rid: np.ndarray = field(default_factory=_i64)
    reason: np.ndarray = field(default_factory=_i64)


@dataclass(eq=False)
class GradeChanges:
    cit: np.ndarray = field(default_factory=_i64)
    mode: np.ndarray = field(default_factory=_i64)
    old: np.ndarray = field(default_factory=_i64)
    new: np.ndarray = field(default_factory=_i64)


@dataclass(eq=False)
class ListChanges:
    """Accepted list entries (+1) and exits (-1); ``since`` is the entry day of the stay."""

    cit: np.ndarray = field(default_factory=_i64)
    mode: np.ndarray = field(default_factory=_i64)
    lst: np.ndarray = field(default_factory=_i64)
    direction: np.ndarray = field(default_factory=_i64)
    since: np.ndarray = field(default_factory=_i64)


@dataclass(eq=False)
class Attempts:
    """Today's attempts (flights, loans) and their outcome in both views (``(A, 2)`` flags)."""

    cit: np.ndarray = field(default_factory=_i64)
    beh: np.ndarray = field(default_factory=_i64)
    denied: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.uint8))
    rewarded: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.uint8))
    first: np.ndarray = field(default_factory=_i64)  # first official sanction that denied, or -1
    cross: np.ndarray = field(default_factory=_f64)  # cross-context share of an official denial
    assoc_only: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))


@dataclass(eq=False)
class Responses:
    """Citizens in whom each response started, ties cut, association records sent."""

    triggered: dict[str, np.ndarray] = field(default_factory=dict)
    ties_cut: int = 0
    assoc: int = 0


@dataclass(eq=False)
class Investigated:
    """Citizens investigated today (stage investigate): by which investigation, whether something was
    found (a record follows) and whether the citizen really had it."""

    cit: np.ndarray = field(default_factory=_i64)
    inv: np.ndarray = field(default_factory=_i64)
    found: np.ndarray = field(default_factory=_i64)
    has: np.ndarray = field(default_factory=_i64)


@dataclass(eq=False)
class RedressDay:
    """Today's notices, objections filed and decided, and official exits by route (stage redress).

    ``decided`` are case ids (rows of the redress stage's case table); the ``decided_*`` columns
    are read from it for the observers. ``exit_route`` indexes :data:`credsim.names.EXIT_ROUTES`.
    """

    notice_cit: np.ndarray = field(default_factory=_i64)
    notice_lst: np.ndarray = field(default_factory=_i64)
    filed_cit: np.ndarray = field(default_factory=_i64)
    filed_body: np.ndarray = field(default_factory=_i64)
    decided: np.ndarray = field(default_factory=_i64)
    decided_cit: np.ndarray = field(default_factory=_i64)
    decided_body: np.ndarray = field(default_factory=_i64)
    decided_upheld: np.ndarray = field(default_factory=_i64)
    decided_false: np.ndarray = field(default_factory=_i64)
    decided_overdue: np.ndarray = field(default_factory=_i64)
    exit_cit: np.ndarray = field(default_factory=_i64)
    exit_lst: np.ndarray = field(default_factory=_i64)
    exit_route: np.ndarray = field(default_factory=_i64)


@dataclass(eq=False)
class MoneyDay:
    """Outcomes of today's allowed attempts, clawbacks taken and refunded, and every money movement.

    ``out_*``: one row per attempt that had an outcome (index into the plan's ``econ.out_names``);
    ``claw_*``: clawbacks taken today (sanction index into ``econ.claw_names``); ``refund_*``: clawbacks
    refunded today because the record behind them was retracted; ``move_*``: every amount added to a
    money column today (column index into ``econ.money``), in the order they were applied.
    """

    out_cit: np.ndarray = field(default_factory=_i64)
    out_idx: np.ndarray = field(default_factory=_i64)
    claw_cit: np.ndarray = field(default_factory=_i64)
    claw_san: np.ndarray = field(default_factory=_i64)
    claw_amount: np.ndarray = field(default_factory=_f64)
    refund_cit: np.ndarray = field(default_factory=_i64)
    refund_amount: np.ndarray = field(default_factory=_f64)
    move_cit: np.ndarray = field(default_factory=_i64)
    move_col: np.ndarray = field(default_factory=_i64)
    move_amount: np.ndarray = field(default_factory=_f64)


@dataclass(eq=False)
class Day:
    """Everything that happened on ``day``, filled in stage by stage (see ``describe_loop``)."""

    day: int
    events: Events = field(default_factory=Events)
    observations: Observations = field(default_factory=Observations)
    filed: Filed = field(default_factory=Filed)
    list_exits: ListExits = field(default_factory=ListExits)
    score_changes: ScoreChanges = field(default_factory=ScoreChanges)
    retracted: Retracted = field(default_factory=Retracted)
    model_day: bool = False
    investigated: Investigated = field(default_factory=Investigated)
    grades: GradeChanges = field(default_factory=GradeChanges)
    lists: ListChanges = field(default_factory=ListChanges)
    attempts: Attempts = field(default_factory=Attempts)
    responses: Responses = field(default_factory=Responses)
    redress: RedressDay | None = None  # only when the scenario has a redress section
    money: MoneyDay | None = None  # only when the scenario has money, outcomes or clawbacks


class Stage(Protocol):
    """One step of the day. ``reads``/``writes`` name :class:`Day` parts and :class:`State` columns
    (``day.x`` / ``state.x``) so the loop can print its plan; ``run`` may yield to wait at a
    barrier of the exchange (only ``respond`` does), the loop drives it to the end."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]

    def run(self, st: State, d: Day, x: Exchange) -> Iterator[None] | None: ...


class DayObserver(Protocol):
    """Sees each completed day (metrics, traces, the event log); never changes the state."""

    def observe(self, st: State, d: Day) -> None: ...
