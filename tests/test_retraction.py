"""Retraction is exact: from the day a record is retracted, the dossier is as if it had never been filed.

Each test files hand-made records into a small population and runs only the stages that
hold the dossier (file, classify) day by day, twice: once with a record that is retracted on
day ``d`` (A) and once without that record at all (B). From ``d`` on, points, feature counts,
list counts, pending entries and list membership must be equal in A and B, every day, while
A's days before ``d`` are kept as they were (the record counted then).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import credsim
from credsim import checkpoint, engine
from credsim import names as nm
from credsim.day import Day
from credsim.stages import retraction
from credsim.stages.measure import SCALE
from credsim.state import State
from tests.conftest import tiny

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]

CIT = 3
DAYS = 80
MODEL = {"every_days": 1, "features": {"defaults": {"records": ["court.default"], "expiry_days": 15}},
         "dimensions": {"history": {"weight": 1.0, "features": {"defaults": -1.0}}}}


@dataclass
class Filing:
    day: int
    rtype: str
    official: int = 1
    shadow: int = 1


def snapshot(st: State) -> dict[str, np.ndarray]:
    return {k: getattr(st, k).copy() for k in
            ("score", "feat_count", "list_count", "pending", "listed", "neg_by_domain", "cap_used")}


def play(filings: list[Filing], retract: list[tuple[int, int, int]] | None = None, **changes: object
         ) -> tuple[list[dict[str, np.ndarray]], list[Day]]:
    """Run file and classify for DAYS days with only these records; retract (day filed, on day, views)."""
    scen = credsim.load_scenario(tiny(**changes))
    loop, _ = engine.prepare(scen, population=20, days=DAYS)
    st, plan = loop.st, loop.plan
    st.ledger.keep = True  # no redress section: retraction is driven by hand here
    stages = [s for s in loop.stages if s.name in ("file", "classify")]
    for f in filings:
        one = np.ones(1, np.uint8)
        st.records.push(f.day, np.array([CIT]), np.array([plan.rtypes.index(f.rtype)]), np.array([0]),
                        np.array([f.day]), one * f.official, one * f.shadow, one)
    for filed_day, on_day, views in retract or []:
        retraction.request(st, on_day, np.array([filed_day << 32]), "appeal", views)
    snaps, days = [], []
    for day in range(DAYS):
        d = Day(day)
        for s in stages:
            s.run(st, d, loop.exchange)
        snaps.append(snapshot(st))
        days.append(d)
    return snaps, days


def assert_same_from(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]], start: int) -> None:
    for day in range(start, DAYS):
        for k in a[day]:
            assert np.array_equal(a[day][k], b[day][k]), f"{k} differs on day {day}"


def test_retracted_entry_record_is_as_if_never_filed() -> None:
    """Points (expiring on day 32), a model feature (expiring on day 17), a list-window count (day 22),
    the listing it caused and its fixed term: all equal to never having filed it, from day 10."""
    kw = dict(scoring__points__expiry_days=30, lists__defaulters__entry__window_days=20, scoring__model=MODEL)
    a, days = play([Filing(2, "court.default"), Filing(4, "traffic.violation")], [(2, 10, 3)], **kw)
    b, _ = play([Filing(4, "traffic.violation")], **kw)
    assert_same_from(a, b, 10)
    # the past is kept: A was listed and held the points before the retraction
    assert a[5]["listed"][0, 0, CIT] == 1 and a[5]["score"][0, CIT] == 1000 - 50 - 5
    assert a[5]["feat_count"][0, 0, CIT] == 1 and a[5]["list_count"][0, 0, CIT] == 1
    assert b[5]["listed"][0, 0, CIT] == 0
    lists = days[10].lists
    assert list(zip(lists.cit, lists.mode, lists.direction, strict=True)) == [(CIT, 0, -1), (CIT, 1, -1)]
    assert days[10].retracted.rid.tolist() == [2 << 32]


def test_retraction_cancels_a_pending_entry_and_a_later_crossing_still_lists() -> None:
    kw = dict(lists__defaulters__entry__count=2, lists__defaulters__entry__grace_days=10)
    filings = [Filing(2, "court.default"), Filing(5, "court.default"), Filing(30, "court.default")]
    a, _ = play(filings, [(2, 8, 3)], **kw)
    b, _ = play(filings[1:], **kw)
    assert_same_from(a, b, 8)
    assert a[20]["listed"][0, 0, CIT] == 0, "the entry pending for day 15 needed the retracted record"
    assert a[45]["listed"][0, 0, CIT] == 1, "records 2 and 3 reach the count on day 30: listed on day 40"


def test_a_stay_that_did_not_need_the_record_is_kept() -> None:
    filings = [Filing(2, "court.default"), Filing(5, "court.default")]
    a, days = play(filings, [(5, 10, 3)])
    b, _ = play(filings[:1])
    assert_same_from(a, b, 10)
    assert a[20]["listed"][0, 0, CIT] == 1 and days[10].lists.cit.shape[0] == 0


def test_official_retraction_leaves_the_shadow_view() -> None:
    a, _ = play([Filing(2, "court.default")], [(2, 10, 1)])
    assert a[20]["listed"][:, 0, CIT].tolist() == [0, 1]
    assert a[20]["score"][:, CIT].tolist() == [1000, 950]


def test_retracting_twice_or_an_unknown_record_changes_nothing_more() -> None:
    a, _ = play([Filing(2, "court.default")], [(2, 10, 3), (2, 12, 3), (7, 12, 3)])
    b, _ = play([Filing(2, "court.default")], [(2, 10, 3)])
    assert_same_from(a, b, 0)


def test_metrics_follow_retractions_in_a_full_run() -> None:
    """Stocks are kept from deltas: after retracting every record filed on day 20 (on day 25),
    the score sum, grade counts and list sizes in the metrics still equal the state's."""
    scen = credsim.load_scenario(tiny(lists__defaulters__entry__window_days=20))
    loop, _ = engine.prepare(scen, population=3000, days=60)
    loop.st.ledger.keep = True  # no redress section: retraction is driven by hand here
    for day in range(60):
        if day == 25:
            rows = loop.st.ledger.buckets[20][0].shape[0]
            assert rows > 0
            retraction.request(loop.st, 25, (np.int64(20) << 32) + np.arange(rows, dtype=np.int64), "correction", 3)
        loop.step(day)
    m, st = loop.metrics, loop.st
    last = m.table[59, :, -1] / SCALE
    assert last[m.idx[nm.SCORE_SUM]] == pytest.approx(float(st.score[0].astype(np.float64).sum()), abs=1e-6)
    assert last[m.idx[nm.SHADOW_SCORE_SUM]] == pytest.approx(float(st.score[1].astype(np.float64).sum()), abs=1e-6)
    assert last[m.idx[nm.LISTED("defaulters")]] == st.listed[0, 0].sum()
    for g, name in enumerate(loop.plan.grades):
        assert last[m.idx[nm.GRADE(name)]] == (st.grade[0] == g).sum()


def test_the_ledger_and_a_queued_retraction_survive_a_checkpoint(tmp_path: Path) -> None:
    """Stop on day 20 with a retraction queued for day 25, restore into a fresh loop, finish: the same
    state as without the stop (the ledger and the undo queues are part of the checkpoint)."""
    scen = credsim.load_scenario(tiny(lists__defaulters__entry__window_days=20))

    def start() -> engine.Loop:
        loop, _ = engine.prepare(scen, population=3000, days=40)
        loop.st.ledger.keep = True  # no redress section: retraction is driven by hand here
        return loop

    def request(loop: engine.Loop) -> None:
        rows = loop.st.ledger.buckets[12][0].shape[0]
        retraction.request(loop.st, 25, (np.int64(12) << 32) + np.arange(rows, dtype=np.int64), "appeal", 3)

    whole = start()
    for day in range(40):
        if day == 15:
            request(whole)
        whole.step(day)
    first = start()
    for day in range(20):
        if day == 15:
            request(first)
        first.step(day)
    checkpoint.save(tmp_path, first, 20, {})
    resumed = start()
    checkpoint.restore(checkpoint.list_checkpoints(tmp_path)[0].path, resumed, max_bytes=1 << 30)
    for day in range(20, 40):
        resumed.step(day)
    for k in ("score", "list_count", "listed", "pending", "counters"):
        assert np.array_equal(getattr(whole.st, k), getattr(resumed.st, k)), k
    assert np.array_equal(whole.metrics.table, resumed.metrics.table)
    assert whole.st.ledger.size() == resumed.st.ledger.size() > 0
