"""Reconsideration (D4: a rejected objection goes to the next court, filed within 10 days of the
rejection, decided in 15), from the days of a real run: every reconsideration case follows a
rejection of the same record inside the filing window, the second body decides within its own
capacity and in filing order, its enforced deadline holds, and an upheld reconsideration retracts
the record like any upheld objection.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

import credsim
from credsim.resumable import RunStopped
from credsim.state import F_RETRACTED_OFFICIAL
from tests.conftest import tiny
from tests.test_redress import BODY, RED, Played, cases, play, scenario

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]

NEXT_CAP, FILE_WITHIN, DECIDE_WITHIN = 1, 10, 15
NEXT = {"lists": [], "capacity_per_day": NEXT_CAP, "file_probability": 0.4, "file_within_days": FILE_WITHIN,
        "decide_within_days": DECIDE_WITHIN, "deadline_enforced": True, "success_false": 0.9,
        "success_true": 0.05, "correction_days": 3}


def with_reconsideration(**changes: object) -> credsim.Scenario:
    return scenario(**{"redress__appeals__court__success_false": 0.3, "redress__appeals__court__reconsideration":
                       "next_court", "redress__appeals__next_court": NEXT, **changes})


@pytest.fixture(scope="module")
def played() -> Played:
    return play(with_reconsideration())


def test_reconsideration_follows_a_rejection_within_the_filing_window(played: Played) -> None:
    c = cases(played)
    bodies = played.stage.rules.bodies
    court, nxt = bodies.index("court"), bodies.index("next_court")
    second = np.flatnonzero(c["body"] == nxt)
    assert second.shape[0] > 20, "the run should produce reconsiderations"
    for k in second.tolist():
        prior = np.flatnonzero((c["body"] == court) & (c["cit"] == c["cit"][k]) & (c["rid"] == c["rid"][k])
                               & (c["upheld"] == 0))
        assert prior.shape[0] == 1, f"case {k}: one rejected first-instance case of the same record"
        gap = c["filed"][k] - c["decided"][prior[0]]
        assert 1 <= gap <= FILE_WITHIN, f"case {k} filed {gap} days after the rejection"
        assert c["notice"][k] == c["notice"][prior[0]]
    # an upheld first-instance case is never reconsidered
    won = (c["body"] == court) & (c["upheld"] == 1)
    assert not set(zip(c["cit"][won].tolist(), c["rid"][won].tolist(), strict=True)) & set(
        zip(c["cit"][second].tolist(), c["rid"][second].tolist(), strict=True))


def test_second_body_keeps_its_capacity_order_and_deadline(played: Played) -> None:
    c = cases(played)
    nxt = played.stage.rules.bodies.index("next_court")
    mine = (c["body"] == nxt) & (c["decided"] >= 0)
    assert np.all(c["decided"][mine] - c["filed"][mine] <= DECIDE_WITHIN)
    for d in played.days:
        assert d.redress is not None
        dec = d.redress.decided[c["body"][d.redress.decided] == nxt]
        beyond = dec[NEXT_CAP:]  # only cases at their deadline may exceed the capacity
        assert np.all(d.day - c["filed"][beyond] >= DECIDE_WITHIN)
        if dec.shape[0]:
            waiting = np.flatnonzero((c["body"] == nxt) & (c["filed"] <= d.day)
                                     & ((c["decided"] > d.day) | (c["decided"] < 0)))
            if waiting.shape[0]:
                assert c["filed"][dec[:NEXT_CAP]].max() <= c["filed"][waiting].min(), "first filed, first served"


def test_upheld_reconsideration_retracts_the_record(played: Played) -> None:
    c = cases(played)
    nxt = played.stage.rules.bodies.index("next_court")
    won = np.flatnonzero((c["body"] == nxt) & (c["upheld"] == 1) & (c["decided"] + 3 < len(played.days)))
    assert won.shape[0] > 5
    led = played.loop.st.ledger
    found, day, row = led.lookup(c["rid"][won])
    assert found.all()
    assert np.all(led.column(2, day, row) & F_RETRACTED_OFFICIAL)


def test_resumed_run_with_reconsideration_is_byte_identical(tmp_path: Path) -> None:
    scen = with_reconsideration()
    ref = credsim.run(scen, out=tmp_path / "ref", population=2000, threads=1)
    with pytest.raises(RunStopped):
        credsim.run(scen, out=tmp_path / "cut", population=2000, threads=1, max_days=31)
    resumed = credsim.api.resume(tmp_path / "cut")
    for f in ("cases.parquet", "stays.parquet", "metrics.parquet"):
        assert (ref.dir / f).read_bytes() == (resumed.dir / f).read_bytes(), f


@pytest.mark.parametrize("change,path,words", [
    ({"court": {**BODY, "reconsideration": "court"}}, "redress.appeals.court.reconsideration",
     "the cycle court -> court"),
    ({"court": {**BODY, "reconsideration": "a"}, "a": {**NEXT, "reconsideration": "court"}},
     "redress.appeals.court.reconsideration", "the cycle court -> a -> court"),
    ({"court": BODY, "orphan": NEXT}, "redress.appeals.orphan.lists", "another body's reconsideration"),
    ({"court": {**BODY, "reconsideration": "supreme"}}, "redress.appeals.court.reconsideration", "an appeal body"),
])
def test_bad_reconsideration_names_path_and_expectation(tmp_path: Path, change: dict[str, object], path: str,
                                                        words: str) -> None:
    red = copy.deepcopy(RED)
    red["appeals"] = change
    f = tmp_path / "scen.yaml"
    f.write_text(yaml.safe_dump(tiny(redress=red)))
    with pytest.raises(credsim.ScenarioError) as ei:
        credsim.load_scenario(f)
    assert path in ei.value.paths and words in str(ei.value), str(ei.value)
