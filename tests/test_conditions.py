"""Compound sanction conditions (all/any of lists, grades and score ranges) and per-group thresholds
and starting points, checked from the days of a real run against the rules written out in Python.

One small run (module-scoped) is stepped day by day through every stage; after each day the state
the sanction stage read (lists, grades and scores after classify: nothing after sanction changes
them in this scenario, which has no responses and no redress) is compared with each attempt's
outcome, in both views.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import credsim
from credsim import engine
from credsim.day import Day
from credsim.distributed import run_sharded
from credsim.state import State
from credsim.store import read_table
from tests.conftest import tiny
from tests.test_scenario_errors import error_for

pytestmark = pytest.mark.usefixtures("one_thread")

DAYS = 40
SANCTIONS = {
    # on the list AND below 990 points
    "flight_ban": {"when": {"all": [{"list": "defaulters"}, {"score": {"below": 990}}]},
                   "attempts": ["travel.flight"]},
    # grade C, OR (on the list AND 900 <= points < 1000)
    "train_ban": {"when": {"any": [{"grades": ["C"]},
                                   {"all": [{"list": "defaulters"}, {"score": {"min": 900, "below": 1000}}]}]},
                  "attempts": ["travel.train"]},
    # a score range alone
    "hotel_ban": {"when": {"score": {"min": 950, "below": 995}}, "attempts": ["lodging.hotel"]},
}


def scenario(**extra: Any) -> dict[str, Any]:
    return tiny(**{"population__size": 3000, "behaviours__court.default__rate": 0.006,
                   "behaviours__travel.train": {"kind": "attempt", "rate": 0.05},
                   "behaviours__lodging.hotel": {"kind": "attempt", "rate": 0.05},
                   "scoring__points__rules__court.default": -60,
                   "scoring__points__base_by": {"region": {"rural": 980}},
                   "lists__defaulters__entry__count": 2,
                   "lists__defaulters__entry__count_by": {"hukou": {"migrant": 1}},
                   "sanctions": SANCTIONS, **extra})


def expected(name: str, st: State, m: int, cit: np.ndarray) -> np.ndarray:
    """The sanction's rule, written out directly."""
    on = st.listed[m, 0, cit] == 1
    pts = st.score[m, cit]
    grade_c = st.grade[m, cit] == 2
    if name == "flight_ban":
        return on & (pts < 990)
    if name == "train_ban":
        return grade_c | (on & (pts >= 900) & (pts < 1000))
    return (pts >= 950) & (pts < 995)


@pytest.fixture(scope="module")
def days() -> dict[str, Any]:
    """Step the run; after each day keep each attempt's outcome next to the rule's answer, and the list
    invariant of per-group thresholds."""
    scen = credsim.load_scenario(scenario())
    loop, _ = engine.prepare(scen, population=3000, days=DAYS)
    st, plan = loop.st, loop.plan
    start = st.score.copy()
    rural = st.groups[plan.dims.index("region")] == plan.dim_values[plan.dims.index("region")].index("rural")
    migrant = st.groups[plan.dims.index("hukou")] == plan.dim_values[plan.dims.index("hukou")].index("migrant")
    need = np.where(migrant, 1, 2)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("beh", "got0", "want0", "got1", "want1")}
    bad_lists = 0
    listed_by = {"migrant": [], "local": []}  # list_count at listing, by hukou
    for day in range(DAYS):
        d = Day(day)
        for s in loop.stages:
            s.run(st, d, loop.exchange)
        a = d.attempts
        want = [np.zeros(a.cit.shape[0], np.bool_) for _ in range(2)]
        for k, name in enumerate(plan.sanctions):
            cov = plan.san_attempts[k, a.beh]
            for m in (0, 1):
                want[m] |= cov & expected(name, st, m, a.cit)
        rows["beh"].append(a.beh)
        rows["got0"].append(a.denied[:, 0] == 1)
        rows["got1"].append(a.denied[:, 1] == 1)
        rows["want0"].append(want[0])
        rows["want1"].append(want[1])
        for m in (0, 1):
            # no term or grace can end or delay a stay within DAYS: a cure clears the count and the stay
            bad_lists += int(np.count_nonzero((st.listed[m, 0] == 1) != (st.list_count[m, 0] >= need)))
        ent = (d.lists.direction == 1) & (d.lists.mode == 0)
        for c in d.lists.cit[ent]:
            listed_by["migrant" if migrant[c] else "local"].append(int(st.list_count[0, 0, c]))
    out = {k: np.concatenate(v) for k, v in rows.items()}
    out.update(plan=plan, start=start, rural=rural, bad_lists=bad_lists, listed_by=listed_by)
    return out


def test_all_any_and_score_ranges_deny_exactly_whom_the_rule_names(days: dict[str, Any]) -> None:
    plan = days["plan"]
    for m in ("0", "1"):
        assert np.array_equal(days[f"got{m}"], days[f"want{m}"]), f"view {m}: denials differ from the rule"
    for b in ("travel.flight", "travel.train", "lodging.hotel"):
        sel = days["beh"] == plan.beh.index(b)
        hits = int(days["want0"][sel].sum())
        assert 0 < hits < int(sel.sum()), f"{b}: the rule must both hold and fail in this run ({hits})"


def test_compound_conditions_compile_to_two_levels(days: dict[str, Any]) -> None:
    c = days["plan"].san_cond
    assert days["plan"].san_list.tolist() == [-2, -2, -2]
    assert c.top_any.tolist() == [False, True, False]
    assert c.clause_off.tolist() == [0, 2, 4, 5]  # flight: 2 one-atom clauses; train: 2 clauses; hotel: 1
    assert c.clause_any.tolist() == [False, False, False, False, False]
    assert c.atom_off.tolist() == [0, 1, 2, 3, 5, 6]


def test_per_group_thresholds_list_exactly_those_over_their_groups_count(days: dict[str, Any]) -> None:
    assert days["bad_lists"] == 0
    # migrants enter with one record, locals only with two
    assert days["listed_by"]["migrant"] and set(days["listed_by"]["migrant"]) == {1}
    assert days["listed_by"]["local"] and min(days["listed_by"]["local"]) == 2


def test_per_group_starting_points(days: dict[str, Any]) -> None:
    start, rural = days["start"], days["rural"]
    assert rural.any() and (~rural).any()
    assert np.all(start[:, rural] == 980) and np.all(start[:, ~rural] == 1000)


def test_simple_conditions_keep_their_direct_test() -> None:
    plan = engine.compile_plan(credsim.load_scenario(tiny()))
    assert plan.san_list.tolist() == [0] and plan.san_cond.clause_off.tolist() == [0, 0]


BAD = [
    ("two tests where one is meant", {"sanctions__flight_ban__when": {"list": "defaulters", "grades": ["C"]}},
     "sanctions.flight_ban.when", "exactly one of list, grades, score, all, any"),
    ("nested two levels deep", {"sanctions__flight_ban__when": {"all": [{"any": [{"all": [{"grades": ["C"]}]}]}]}},
     "sanctions.flight_ban.when.all[0].any[0].all", "no such key (unknown keys are errors; there: grades, list, "
                                                     "score)"),
    ("a score range with nothing in it", {"sanctions__flight_ban__when": {"score": {"min": 900, "below": 800}}},
     "sanctions.flight_ban.when.score", "min < below"),
    ("a model score that is not defined", {"sanctions__flight_ban__when": {"any": [{"score": {"of": "model",
                                                                                              "below": 600}}]}},
     "sanctions.flight_ban.when.any[0].score.of", "scoring.model is missing"),
    ("an unknown list inside all", {"sanctions__flight_ban__when": {"all": [{"list": "debtors"}]}},
     "sanctions.flight_ban.when.all[0].list", "a list declared"),
    ("an unknown grade nested", {"sanctions__flight_ban__when": {"any": [{"all": [{"grades": ["Z"]}]}]}},
     "sanctions.flight_ban.when.any[0].all[0].grades[0]", "a grade"),
    ("count_by over two dimensions", {"lists__defaulters__entry__count_by": {"hukou": {"migrant": 1},
                                                                            "region": {"rural": 1}}},
     "lists.defaulters.entry.count_by", "one group dimension"),
    ("count_by on an unknown group", {"lists__defaulters__entry__count_by": {"hukou": {"alien": 1}}},
     "lists.defaulters.entry.count_by.hukou.alien", "a value of group 'hukou'"),
    ("base_by on an unknown dimension", {"scoring__points__base_by": {"caste": {"x": 900}}},
     "scoring.points.base_by.caste", "a group dimension"),
]


@pytest.mark.parametrize("what,change,path,words", BAD, ids=[c[0] for c in BAD])
def test_bad_conditions_and_thresholds_name_path_and_expectation(tmp_path: Path, what: str, change: dict[str, Any],
                                                                  path: str, words: str) -> None:
    err = error_for(tmp_path, tiny(**change))
    assert any(path in p for p in err.paths), f"{what}: expected path {path!r} in {err.paths}"
    assert words in str(err), f"{what}: {words!r} not in {err}"


def test_new_constructs_give_the_same_bytes_in_two_local_shards(tmp_path: Path) -> None:
    """Compound conditions, per-group counts and starting points, listing grounds and family ties read only
    the citizen's own state and counter-based draws: two shards write what one process writes."""
    scen = credsim.load_scenario(scenario(**{
        "population__size": 3000, "run__days": 30, "population__dependants": {"shares": [0.6, 0.4]},
        "sanctions__flight_ban__reaches": "dependants",
        "lists__defaulters__exit__grounds": {"serious": {"share": 0.3, "extend_days": [5, 9]}}}))
    one = credsim.run(scen, out=tmp_path / "one", threads=1).dir
    two, _ = run_sharded(scen, tmp_path / "two", 2, threads=1)
    assert (one / "metrics.parquet").read_bytes() == (two / "metrics.parquet").read_bytes()
    # a sharded run writes its citizens as one part per shard: the parts, in order, are the same rows
    assert read_table(one, "citizens.parquet").equals(read_table(two, "citizens.parquet"))
    assert "n_dependants_denied" in credsim.Run(one).citizens().column_names
