"""Sweeps: key paths with dots, clear spec errors, one catalog, a Pareto front, resumption."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import credsim
from credsim.experiments import SpecError, SweepSpec, connect, load_spec, pareto_front, sweep
from credsim.experiments.sweep import design_points, headline
from credsim.scenario.keypath import parse as parse_path
from tests.conftest import tiny


def scenario() -> dict[str, Any]:
    s = tiny()
    s["responses"] = {"deterred": {"effect": "reduce_rate", "trigger": "own_listed", "kinds": ["infraction"],
                                   "size": 0.8, "half_life_days": 60}}
    return s


SPEC: dict[str, Any] = {
    "name": "t",
    "base": {"run.days": 30, "population.size": 2000},
    "parameters": {
        "default_rate": {"path": "behaviours[court.default].rate", "values": [0.002, 0.006]},
        "term": {"path": ["lists", "defaulters", "exit", "term_days"], "values": [10, 100]},
    },
    "replicates": 2,
}


def test_key_paths_allow_dots_in_names() -> None:
    assert parse_path("behaviours[traffic.violation].rate") == ("behaviours", "traffic.violation", "rate")
    assert parse_path(["behaviours", "traffic.violation", "rate"]) == ("behaviours", "traffic.violation", "rate")
    assert parse_path("scoring.points.rules[court.default]") == ("scoring", "points", "rules", "court.default")
    assert parse_path('scoring.points.rules["court.default"]') == ("scoring", "points", "rules", "court.default")
    assert parse_path("run.days") == ("run", "days")
    with pytest.raises(ValueError):
        parse_path("run.")


def test_spec_errors_name_the_place(tmp_path: Path) -> None:
    bad = {**SPEC, "parameters": {"x": {"path": "run.days", "values": [1], "range": [0, 1]}}, "colour": 1}
    with pytest.raises(SpecError) as err:
        load_spec(bad, SweepSpec)
    text = str(err.value)
    assert "parameters.x" in text and "either 'values'" in text and "colour" in text
    f = tmp_path / "s.yaml"
    f.write_text("parameters:\n  r:\n    path: behaviours[traffic.violaton].rate\n    values: [0.1]\n")
    spec = load_spec(f, SweepSpec)
    with pytest.raises(SpecError) as err:
        sweep(credsim.load_scenario(scenario()), spec, tmp_path / "out", file=str(f))
    assert str(f) in str(err.value) and "parameters.r.path" in str(err.value) and "traffic.violaton" in str(err.value)
    assert not (tmp_path / "out" / "runs").exists(), "nothing runs when the spec is wrong"
    # a value the scenario schema refuses is reported with its design point
    spec = load_spec({"parameters": {"r": {"path": "behaviours[court.default].rate", "values": [-1]}}}, SweepSpec)
    with pytest.raises(SpecError, match="design point 0"):
        sweep(credsim.load_scenario(scenario()), spec, tmp_path / "out2")


def test_sampled_designs_stay_in_range_and_repeat() -> None:
    for design in ("random", "lhs"):
        spec = load_spec({"design": design, "samples": 12, "parameters": {
            "a": {"path": "run.days", "range": [10, 20], "integer": True},
            "b": {"path": "behaviours[court.default].rate", "range": [1e-4, 1e-2], "log": True}}}, SweepSpec)
        pts = design_points(spec)
        assert len(pts) == 12 and pts == design_points(spec)
        assert all(10 <= p["a"] <= 20 and isinstance(p["a"], int) and 1e-4 <= p["b"] <= 1e-2 for p in pts)


def test_pareto_front_is_the_non_dominated_set() -> None:
    rows = [{"c": 0.1, "w": 0.1, "d": 1.0}, {"c": 0.2, "w": 0.1, "d": 1.0}, {"c": 0.2, "w": 0.05, "d": 2.0},
            {"c": 0.0, "w": 0.2, "d": 3.0}, {"c": None, "w": 0.0, "d": 1.0}]
    assert pareto_front(rows, ["c"], ["w", "d"]) == [False, True, True, False, False]


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("sweep") / "s"
    res = sweep(credsim.load_scenario(scenario()), load_spec(SPEC, SweepSpec), out, workers=2)
    return out, res


def test_sweep_catalog_answers_policy_questions(done: tuple[Path, dict[str, Any]]) -> None:
    out, res = done
    assert res["ran"] == res["runs"] and res["skipped"] == 0
    con = connect(out)
    try:
        n, points = con.execute("SELECT count(*), count(DISTINCT point) FROM runs").fetchone()  # type: ignore[misc]
        assert (n, points) == (8, 4)
        # each run's headline figures are its own metrics
        run_id, rdir, wrongful, denied = con.execute(
            "SELECT run_id, dir, wrongful, denied FROM runs ORDER BY denied DESC LIMIT 1").fetchone()  # type: ignore[misc]
        assert denied > 0
        direct = credsim.Run(out / rdir).sql(
            "SELECT sum(value) FROM metrics WHERE dimension='all' AND metric LIKE 'wrongful.%'")[0][0]
        assert wrongful == direct
        got = con.execute("SELECT sum(value) FROM metrics WHERE run_id = ? AND dimension = 'all' "
                          "AND metric LIKE 'wrongful.%'", [run_id]).fetchone()[0]  # type: ignore[index]
        assert got == wrongful
        # deterrence works: more listing (higher default rate, longer terms) never raises infractions
        gains = con.execute("SELECT min(compliance_gain) FROM runs").fetchone()[0]  # type: ignore[index]
        assert gains >= 0
        # "which parameters minimise wrongful sanctions at a given compliance level"
        best = con.execute("SELECT default_rate, term FROM points WHERE compliance_gain >= 0 "
                           "ORDER BY wrongful_rate, point LIMIT 1").fetchone()
        assert best is not None
        front = con.execute("SELECT count(*) FROM pareto").fetchone()[0]  # type: ignore[index]
        assert front >= 1
    finally:
        con.close()
    html = (out / "sweep.html").read_text()
    assert "Pareto" in html and "Plotly.newPlot" in html and "<script src" not in html  # plotly inline


def test_sweep_resumes_and_refuses_another_sweep(done: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = done
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    con = connect(copy)
    before = con.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
    con.close()
    shutil.rmtree(copy / "runs" / "p0001-s2")  # as if killed before this run finished
    (copy / "runs" / ".p0002-s1.partial-999").mkdir()  # a half-written run of a killed worker
    res = sweep(credsim.load_scenario(scenario()), load_spec(SPEC, SweepSpec), copy, workers=1)
    assert (res["ran"], res["skipped"]) == (1, res["runs"] - 1)
    assert not list((copy / "runs").glob(".*partial*"))
    con = connect(copy)
    assert con.execute("SELECT * FROM runs ORDER BY run_id").fetchall() == before
    con.close()
    changed = {**SPEC, "parameters": {**SPEC["parameters"],
                                      "term": {"path": "lists.defaulters.exit.term_days", "values": [11, 100]}}}
    with pytest.raises(SpecError, match="another sweep"):
        sweep(credsim.load_scenario(scenario()), load_spec(changed, SweepSpec), copy, workers=1)


def test_headline_disparity_is_a_rate_ratio(done: tuple[Path, dict[str, Any]]) -> None:
    out, _ = done
    run = next((out / "runs").iterdir())
    h = headline(run, "hukou")
    rows = credsim.Run(run).sql(
        "SELECT \"group\", sum(value) FILTER (WHERE metric LIKE 'denied.travel%'), "
        "max(value) FILTER (WHERE metric='population') FROM metrics WHERE dimension='hukou' GROUP BY 1")
    rates = [d / p for _g, d, p in rows]
    if min(rates) > 0:
        assert h["disparate_impact"] == pytest.approx(max(rates) / min(rates))


def test_cli_sweep_and_clear_errors(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from credsim.cli import app

    scen = tmp_path / "scen.yaml"
    scen.write_text(yaml.safe_dump(scenario()))
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"base": {"run.days": 10}, "baseline": False, "parameters": {
        "default_rate": {"path": "behaviours[court.default].rate", "values": [0.002, 0.004]}}}))
    res = CliRunner().invoke(app, ["sweep", str(scen), str(spec), "--out", str(tmp_path / "o"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    con = connect(tmp_path / "o")
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 2  # type: ignore[index]
    con.close()
    spec.write_text("parameters:\n  x:\n    path: run.dayz\n    values: [1]\n")
    res = CliRunner().invoke(app, ["sweep", str(scen), str(spec), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "parameters.x.path" in res.output and "dayz" in res.output
