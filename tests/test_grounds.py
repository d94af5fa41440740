"""Listing grounds (D1: a term extended by 1-3 years on some grounds, no fixed term on another) and
per-list notice rules, from the days of a real run."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

import credsim
from credsim import engine
from credsim.day import Day
from credsim.stages.redress import Redress
from tests.conftest import tiny
from tests.test_redress import BODY

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]

TERM, EXT, DAYS, LAST_ENTRY = 10, (5, 8), 70, 45
SHARES = {"refuses": 0.3, "serious": 0.2}
GROUNDS = {"refuses": {"share": SHARES["refuses"], "no_term": True},
           "serious": {"share": SHARES["serious"], "extend_days": list(EXT)}}


def step_all(scen: dict[str, Any], n: int, days: int) -> tuple[engine.Loop, list[Day]]:
    loop, _ = engine.prepare(credsim.load_scenario(scen), population=n, days=days)
    return loop, [loop.step(day) for day in range(days)]


def test_grounds_extend_or_remove_the_term_in_their_shares() -> None:
    """With no cure, a stay ends only by its term: after TERM days (no ground), after TERM + 5..8 days
    (serious) or never (refuses). Each entry falls in exactly one class; the class shares are within
    4.5 binomial standard deviations of the declared shares."""
    scen = tiny(**{"behaviours__court.comply__rate": 0.0, "behaviours__court.default__rate": 0.004,
                   "lists__defaulters__exit__term_days": TERM, "lists__defaulters__exit__grounds": GROUNDS,
                   "run__days": DAYS})
    _, days = step_all(scen, 3000, DAYS)
    entered: dict[tuple[int, int], int] = {}  # (citizen, entry day) -> exit day (-1: still listed)
    for d in days:
        lc = d.lists
        for c, m, direction, since in zip(lc.cit.tolist(), lc.mode.tolist(), lc.direction.tolist(),
                                          lc.since.tolist(), strict=True):
            if m != 0:
                continue
            if direction == 1:
                entered[(c, d.day)] = -1
            else:
                entered[(c, since)] = d.day
    early = {k: v for k, v in entered.items() if k[1] <= LAST_ENTRY}
    n = len(early)
    assert n > 200, n
    counts = {"none": 0, "refuses": 0, "serious": 0}
    for (_, e), x in early.items():
        if x < 0:
            counts["refuses"] += 1
        elif x - e == TERM:
            counts["none"] += 1
        else:
            assert TERM + EXT[0] <= x - e <= TERM + EXT[1], f"a stay of {x - e} days"
            counts["serious"] += 1
    for k, p in (("refuses", SHARES["refuses"]), ("serious", SHARES["serious"]),
                 ("none", 1 - sum(SHARES.values()))):
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(counts[k] / n - p) <= 4.5 * sd, (k, counts[k], n)


def test_each_list_serves_notice_by_its_own_rule() -> None:
    """Two heard lists: defaulters with the common notice (3 days after listing), traffic with its own
    (9 days after listing). Every notice comes exactly its list's delay after an official entry."""
    delay = {"defaulters": 3, "traffic": 9}
    body = {**copy.deepcopy(BODY), "lists": ["defaulters", "traffic"]}
    scen = tiny(**{"lists__traffic": {"domain": "traffic", "entry": {"records": ["traffic.violation"], "count": 2},
                                      "exit": {"term_days": 200}},
                   "redress": {"notice": {"at": "listing", "delay_days": delay["defaulters"], "learn_on_denial": False},
                               "notice_by_list": {"traffic": {"at": "listing", "delay_days": delay["traffic"],
                                                              "learn_on_denial": False}},
                               "appeals": {"court": body}}, "run__days": 40})
    loop, days = step_all(scen, 3000, 40)
    lists = loop.plan.lists
    assert isinstance(next(s for s in loop.stages if isinstance(s, Redress)), Redress)
    entries = {(c, li, d.day) for d in days for c, li, m, direction in
               zip(d.lists.cit.tolist(), d.lists.lst.tolist(), d.lists.mode.tolist(), d.lists.direction.tolist(),
                   strict=True) if m == 0 and direction == 1}
    seen = dict.fromkeys(delay, 0)
    for d in days:
        assert d.redress is not None
        for c, li in zip(d.redress.notice_cit.tolist(), d.redress.notice_lst.tolist(), strict=True):
            name = lists[li]
            assert (c, li, d.day - delay[name]) in entries, f"notice of {name} on day {d.day} without its entry"
            seen[name] += 1
    assert seen["defaulters"] > 10 and seen["traffic"] > 10, seen


@pytest.mark.parametrize("change,path,words", [
    ({"lists__defaulters__exit__grounds": {"g": {"share": 0.7, "no_term": True}, "h": {"share": 0.4, "no_term": True}}},
     "lists.defaulters.exit.grounds", "sum to at most 1"),
    ({"lists__defaulters__exit__grounds": {"g": {"share": 0.1}}}, "lists.defaulters.exit.grounds.g",
     "exactly one of extend_days or no_term"),
    ({"lists__defaulters__exit__grounds": {"g": {"share": 0.1, "extend_days": [9, 3]}}},
     "lists.defaulters.exit.grounds.g", "[shortest, longest]"),
    ({"lists__defaulters__exit": {"cure": ["court.comply"], "grounds": {"g": {"share": 0.1, "extend_days": [3, 9]}}}},
     "lists.defaulters.exit.grounds.g.extend_days", "term_days is not set"),
    ({"lists__defaulters__exit": {"term_days": 30, "grounds": {"g": {"share": 0.1, "no_term": True}}}},
     "lists.defaulters.exit.grounds.g.no_term", "a cure"),
    ({"redress": {"notice_by_list": {"debtors": {"at": "filing"}}}}, "redress.notice_by_list.debtors", "a list"),
])
def test_bad_grounds_and_notice_rules_name_path_and_expectation(tmp_path: Path, change: dict[str, Any], path: str,
                                                                words: str) -> None:
    f = tmp_path / "scen.yaml"
    f.write_text(yaml.safe_dump(tiny(**change)))
    with pytest.raises(credsim.ScenarioError) as ei:
        credsim.load_scenario(f)
    assert path in ei.value.paths and words in str(ei.value), str(ei.value)


def test_the_due_process_example_validates_and_uses_the_new_keys() -> None:
    scen = credsim.load_scenario(Path(__file__).resolve().parents[1] / "examples" / "court-defaulters-due-process.yaml")
    assert scen.redress is not None and scen.redress.appeals["court_objection"].reconsideration == "next_court"
    assert scen.lists["court_defaulters"].exit.grounds and scen.population.dependants is not None
    assert scen.sanctions["court_school_ban"].reaches == "dependants"
