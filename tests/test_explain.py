"""Explaining one citizen: timeline, counterfactual record removals, --find wrongful with retracing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import credsim
from credsim.audit.explain import explain, find_cases, retrace
from credsim.cli import app

from .conftest import WRONGFUL_PRONE

OVERRIDES = {**WRONGFUL_PRONE, "run.trace": 50}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("explain") / "run"
    ov = {**OVERRIDES, 'behaviours["court.judgment_default"].rate': 0.00005}  # more court-list travel bans
    return credsim.run("city-points", overrides=ov, population=6000, days=240, seed=3, out=out).dir


@pytest.fixture(scope="module")
def retraced(run_dir: Path) -> tuple[Path, list[int]]:
    traced, untraced = find_cases(run_dir, "wrongful")
    ids = (traced + untraced)[:5]
    assert ids, "the test scenario should produce wrongful sanctions"
    return retrace(run_dir, ids), ids


def _score_on(ex: credsim.audit.explain.Explanation, day: int) -> float:
    return next(o for d, o, _s in ex.score_path if d == day)


def test_wrongful_denials_have_minimal_counterfactuals(retraced: tuple[Path, list[int]]) -> None:
    src, ids = retraced
    scen = credsim.store.read_manifest(src)["scenario"]
    bands = {b["name"]: b.get("min") for b in scen["scoring"]["grades"]["bands"]}
    seen_wrongful = false_only = 0
    for cid in ids:
        ex = explain(src, cid)
        assert ex.sanctions, cid
        for sn in ex.sanctions:
            if not sn.wrongful or sn.sanction != "low_grade_no_loans":
                continue
            seen_wrongful += 1
            # the timeline marks it wrongful too
            assert any(t["what"] == "denied" and t["day"] == sn.day and t.get("wrongful") for t in ex.timeline)
            score = _score_on(ex, sn.day)
            assert score < bands["A"]
            gain = -sum(r["points"] for r in sn.removal)
            assert score + gain >= bands["A"], "removing the set must lift the score out of the sanctioned grades"
            # minimal: every live loss list sorted by size; the largest len(removal) - 1 losses are not enough
            losses = sorted((-t["points"] for t in ex.timeline if t["what"] == "record" and t["points"] < 0
                             and t["view"] in ("both", "official") and t["day"] <= sn.day < t["day"] + 365),
                            reverse=True)
            assert score + sum(losses[:len(sn.removal) - 1]) < bands["A"]
            # when false records alone can avoid it, the fewest of them do
            if sn.false_only:
                assert all(not r["true"] for r in sn.false_set)
                assert score - sum(r["points"] for r in sn.false_set) >= bands["A"]
                false_only += 1
    assert seen_wrongful > 0
    assert false_only > 0  # false camera matches are what makes these sanctions wrongful


def test_retrace_reproduces_the_run(run_dir: Path, retraced: tuple[Path, list[int]]) -> None:
    src, ids = retraced
    a, b = credsim.connect(run_dir), credsim.connect(src)
    q = "SELECT citizen, n_denied, n_wrongful, n_records_false, score FROM citizens ORDER BY citizen"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()
    a.close(); b.close()


def test_list_sanction_counterfactual(run_dir: Path, tmp_path: Path) -> None:
    con = credsim.connect(run_dir)
    ids = [r[0] for r in con.execute("SELECT DISTINCT citizen FROM events WHERE kind = 'denial' AND "
                                     "sanction = 'court_travel_ban' ORDER BY citizen LIMIT 3").fetchall()]
    con.close()
    assert ids
    src = retrace(run_dir, ids, out=tmp_path / "lists")
    bans = [s for c in ids for s in explain(src, c).sanctions if s.sanction == "court_travel_ban"]
    assert bans
    for sn in bans:
        assert [r["item"] for r in sn.removal] == ["court.judgment_default"]  # one record, count 1 entry rule
        assert sn.removal[0]["day"] <= sn.day


def test_cli_explain_find_wrongful(run_dir: Path) -> None:
    r = CliRunner().invoke(app, ["explain", str(run_dir), "--find", "wrongful"])
    assert r.exit_code == 0, r.output
    assert "WRONGFUL" in r.output and "remove" in r.output and "FALSE record" in r.output
    assert "Timeline" in r.output
    bad = CliRunner().invoke(app, ["explain", str(run_dir), "999999999"])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    con = credsim.connect(run_dir)
    untraced = con.execute("SELECT min(citizen) FROM citizens WHERE NOT traced").fetchone()[0]  # type: ignore[index]
    con.close()
    r = CliRunner().invoke(app, ["explain", str(run_dir), str(untraced)])
    assert r.exit_code == 2 and "not traced" in r.output
