"""Lists entered by grade follow the rules from day 0: membership equals the grade rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import credsim
from credsim.audit import run_figures
from credsim.engine import prepare
from credsim.stages.classify import grade_rule_violations

pytestmark = pytest.mark.usefixtures("one_thread")

N = 20_000


def test_commercial_score_day0_membership_equals_the_grade_rule() -> None:
    """featured_profiles is entered by grade 'excellent' (exit on grade recovery, no term): on day 0, before
    any grade changes, exactly the citizens who start 'excellent' are on it, in both views."""
    scen = credsim.load_scenario("commercial-score", {"population.size": N})
    loop, _ = prepare(scen, days=30, seed=2015, threads=1)
    p, st = loop.plan, loop.st
    li = p.lists.index("featured_profiles")
    excellent = p.grades.index("excellent")
    for m in range(2):
        starts = st.grade[m] == excellent
        assert starts.sum() > 1000  # about a tenth of the population starts excellent
        assert np.array_equal(st.listed[m, li] == 1, starts)
        assert (st.listed_since[m, li][starts] == 0).all()
    assert grade_rule_violations(p, st) == {"featured_profiles": 0}


def test_commercial_score_run_keeps_the_grade_rule(tmp_path: Path) -> None:
    """Over a run: list stocks start from the starting grades and the rule holds at the end (the audit's check)."""
    run = credsim.run("commercial-score", population=N, days=90, seed=2015, out=tmp_path / "cs")
    rows = dict(run.sql("SELECT metric, value FROM metrics WHERE dimension = 'all' AND day = 0 "
                        "AND metric IN ('listed.featured_profiles', 'grade.excellent')"))
    assert rows["listed.featured_profiles"] == rows["grade.excellent"] > 1000
    end = run.sql("SELECT count(*) FILTER (WHERE on_featured_profiles), count(*) FILTER (WHERE grade = 'excellent'), "
                  "count(*) FILTER (WHERE on_featured_profiles <> (grade = 'excellent')) FROM citizens")[0]
    assert end[0] == end[1] and end[2] == 0
    figs = run_figures(run.dir)
    assert figs["scalars"]["check.grade_rule.featured_profiles"] == 0
    # day-0 stays that never ended are censored at the end, not dropped, in the recovery curve
    rec = figs["recovery"]["lists"]["featured_profiles"]
    assert rec["n"] >= rows["listed.featured_profiles"]
