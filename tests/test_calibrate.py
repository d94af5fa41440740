"""Calibration: targets files are checked, the fit recovers a known parameter, the CLI writes
a loadable fitted scenario, and the shipped court-defaulters scenario lands within each target's
tolerance at seeds the fit never used.
"""

from __future__ import annotations

import math
from pathlib import Path

import numba
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from credsim.calibrate import (
    TargetsFile,
    TargetSpec,
    check_paths,
    evaluate,
    fit,
    load_targets,
    measure_targets,
    render_yaml,
    scaled_targets,
)
from credsim.cli import app
from credsim.scenario.keypath import dump
from credsim.scenario.load import ScenarioError, load_scenario

TARGETS = Path(__file__).resolve().parents[1] / "src" / "credsim" / "scenario" / "targets" / "court-defaulters.yaml"
WELFARE = TARGETS.with_name("welfare-risk.yaml")
FLIGHT_EARLY = ["behaviours", "travel.flight_attempt", "schedule", 0, "multiplier"]


def test_shipped_targets_load_and_point_into_the_scenario() -> None:
    tf = load_targets(TARGETS)
    check_paths(tf, dump(load_scenario("court-defaulters")), str(TARGETS))
    assert tf.real_population == 1.4e9 and tf.tolerance == 0.10
    # the published figures, with their source ids
    values = {k: (t.value, t.source) for k, t in tf.targets.items()}
    assert values["listed_cumulative_end_2015"] == (3080200, "B1")
    assert values["flight_blocks_cumulative_end_2017"] == (9360000, "B3")
    assert values["flight_blocks_cumulative_end_2018"] == (17460000, "B4")
    assert values["newly_listed_2024"] == (2460000, "B8") and values["removed_2024"] == (2820000, "B8")
    # the stock on the list is a target read on one day (B7); 2025 flows and compliance are held out
    assert {k: (t.metric, t.kind, t.source) for k, t in tf.targets.items() if k.startswith("stock")} == {
        "stock_early_2020": ("listed.court_defaulters", "at", "B7"),
        "stock_late_2023": ("listed.court_defaulters", "at", "B7")}
    assert {t.source for t in tf.checks.values()} >= {"B1", "B2", "B3", "B5", "D6", "D7"}
    # list sizes are cumulative: compared with summed entries from day 0, never with the stock
    for k, t in tf.targets.items():
        if k.startswith("listed_cumulative"):
            assert t.metric == "entries.court_defaulters" and t.kind == "sum" and t.from_day == 0


def test_welfare_targets_fit_and_validate_on_seeds_of_their_own() -> None:
    """The welfare-risk fit averages three seeds at 200,000 (the smallest E6 count, 65 per 100,000,
    has a Poisson sd of ~9% a seed there), and its validation seeds are new people: neither the
    fit's seeds nor any an earlier fit or validation used (2017, 2018, 2020-2022)."""
    tf = load_targets(WELFARE)
    check_paths(tf, dump(load_scenario("welfare-risk")), str(WELFARE))
    assert tf.simulate.population == 200_000 and len(tf.simulate.fit_seeds) == 3
    assert tf.validation is not None and tf.validation.population == 200_000
    assert len(tf.validation.seeds) == 3
    assert not set(tf.validation.seeds) & ({2017, 2018, 2020, 2021, 2022} | set(tf.simulate.fit_seeds))
    assert {t.source for t in tf.targets.values()} == {"E3", "E4", "E6"}


def test_bad_targets_file_names_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text(yaml.safe_dump({
        "real_population": 1e6, "simulate": {"population": 1000, "days": 10},
        "targets": {"x": {"metric": "entries.l", "from_day": 5, "to_day": 2, "value": 3, "colour": 1}},
        "parameters": {"p": {"path": ["a"], "low": 2, "high": 1}},
    }))
    with pytest.raises(ScenarioError) as exc:
        load_targets(bad)
    msg = str(exc.value)
    assert msg.startswith(f"invalid targets file {bad}")
    assert set(exc.value.paths) == {"targets.x.colour", "parameters.p"}
    bad.write_text(yaml.safe_dump({
        "real_population": 1e6, "simulate": {"population": 1000, "days": 10},
        "targets": {"x": {"metric": "entries.l", "from_day": 5, "to_day": 2, "value": 3}},
    }))
    with pytest.raises(ScenarioError) as exc:
        load_targets(bad)
    assert exc.value.paths == ["targets.x"] and "to_day" in str(exc.value)


def test_parameter_path_must_lead_to_a_number(tmp_path: Path) -> None:
    tf = load_targets(TARGETS)
    tf.parameters["default_2024"].path = ["behaviours", "court.judgment_default", "kind"]
    with pytest.raises(ScenarioError) as exc:
        check_paths(tf, dump(load_scenario("court-defaulters")), "t.yaml")
    assert exc.value.paths == ["parameters.default_2024.path"]


def _tiny_targets(tmp_path: Path, value: float) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump({
        "scenario": "court-defaulters", "real_population": 1.0e6,
        "simulate": {"population": 5000, "days": 120, "seed": 3},
        "targets": {"flights": {"metric": "events.travel.flight_attempt", "to_day": 119, "value": value,
                                "source": "synthetic"}},
        "parameters": {"flight_early": {"path": FLIGHT_EARLY, "low": 0.01, "high": 1.0}},
    }, sort_keys=False))
    return p


def test_fit_recovers_a_known_multiplier(tmp_path: Path) -> None:
    scen = load_scenario("court-defaulters")
    truth = 0.5
    probe = load_targets(_tiny_targets(tmp_path, 1.0))
    sim = evaluate(scen, probe, {"flight_early": truth}).simulated["flights"]
    tf = load_targets(_tiny_targets(tmp_path, sim * 1.0e6 / 5000))  # the count at the truth, unscaled
    res = fit(scen, tf, max_evals=16)
    assert res.start.ratios["flights"] < 0.8  # the scenario's own value (0.2574) is far off
    assert abs(res.best.ratios["flights"] - 1) < 0.02
    assert res.best.params["flight_early"] == pytest.approx(truth, rel=0.05)
    text = render_yaml(res, tf, "tiny.yaml")
    out = tmp_path / "fitted.yaml"
    out.write_text(text)
    fitted = load_scenario(out)
    assert fitted.behaviours["travel.flight_attempt"].schedule[0].multiplier == res.best.params["flight_early"]
    assert text.startswith("# court-defaulters: fitted by")


def test_cli_calibrate_writes_the_fitted_scenario(tmp_path: Path) -> None:
    targets = _tiny_targets(tmp_path, 1.0)
    scen = load_scenario("court-defaulters")
    sim = evaluate(scen, load_targets(targets), {"flight_early": 0.25}).simulated["flights"]
    targets = _tiny_targets(tmp_path, sim * 1.0e6 / 5000)
    out = tmp_path / "fitted.yaml"
    r = CliRunner().invoke(app, ["calibrate", "court-defaulters", str(targets), "--out", str(out),
                                 "--max-evals", "12", "--posterior", "none", "--cache", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    assert "ok " in r.output and out.exists()
    fitted = load_scenario(out).behaviours["travel.flight_attempt"].schedule[0].multiplier
    assert fitted == pytest.approx(0.25, rel=0.05)
    r = CliRunner().invoke(app, ["calibrate", "court-defaulters", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "missing.yaml" in r.output


def test_calibrated_court_defaulters_holds_at_seeds_the_fit_never_saw() -> None:
    """The shipped scenario at the targets file's validation seeds (2015, 2016, 2019; the fit
    used 2014, 2017, 2018) and N = 200,000 for 2014-2024, vs the published figures scaled by
    N / 1.4bn.

    - The mean over the three seeds is within each target's tolerance (10%; rail 25%; the B7
      stocks 15%): the
      tolerance is about what the model produces, as ``credsim calibrate`` judges it.
    - Each single seed is within the tolerance plus 3 Poisson sd of its own count
      (3 / sqrt(count)): the smallest scaled target is 2.46M / 7,000 = 351 new listings in
      2024, sd ~5.3% per seed, so one seed of three at 0.89 is noise, not a miss.
    The held-out checks are reported by ``credsim calibrate --check``, not asserted here.
    """
    tf = load_targets(TARGETS)
    assert tf.validation is not None and tf.validation.population == 200_000
    scen = load_scenario("court-defaulters")
    before = numba.get_num_threads()
    # every target lies in 2014-2024: the year 2025 of the file's run (held-out D6/D7 checks only) is
    # not simulated here, which keeps this test within its CI time
    days = max(t.to_day for t in tf.targets.values()) + 1
    assert days == 4018 < tf.simulate.days
    try:  # one thread: results do not depend on it, and 4,018 short days waste little on thread start-up
        evs = [evaluate(scen, tf, population=tf.validation.population, days=days, seed=s, threads=1)
               for s in tf.validation.seeds]
    finally:
        numba.set_num_threads(before)
    assert min(evs[0].scaled.values()) > 300
    mean = {k: sum(e.ratios[k] for e in evs) / len(evs) for k in tf.targets}
    off = {k: round(r, 3) for k, r in mean.items() if abs(r - 1) > tf.tolerance_of(k)}
    assert not off, f"mean over the validation seeds outside the tolerance: {off}"
    noisy = {(k, e.seeds[0]): round(r, 3) for e in evs for k, r in e.ratios.items()
             if abs(r - 1) > tf.tolerance_of(k) + 3 / math.sqrt(max(e.simulated[k], 1.0))}
    assert not noisy, f"a seed further out than the tolerance plus 3 sd: {noisy}"
    assert math.isclose(evs[0].scaled["listed_cumulative_end_2015"], 3080200 * 200_000 / 1.4e9)


def test_integer_parameters_are_fitted_as_integers(tmp_path: Path) -> None:
    """A day count (strict integer in the schema) is tried and written as an int, never 3027.0."""
    p = tmp_path / "int.yaml"
    p.write_text(yaml.safe_dump({
        "scenario": "court-defaulters", "real_population": 1.0e6,
        "simulate": {"population": 2000, "days": 60, "seed": 3},
        "targets": {"flights": {"metric": "events.travel.flight_attempt", "to_day": 59, "value": 1.0e4,
                                "source": "synthetic"}},
        "parameters": {"term": {"path": ["lists", "court_defaulters", "exit", "term_days"], "low": 30,
                                "high": 3650, "integer": True}},
    }, sort_keys=False))
    tf = load_targets(p)
    res = fit(load_scenario("court-defaulters"), tf, max_evals=2)
    assert all(isinstance(ev.params["term"], int) for ev in res.history)
    out = tmp_path / "fitted.yaml"
    out.write_text(render_yaml(res, tf, str(p)))
    assert load_scenario(out).lists["court_defaulters"].exit.term_days == res.best.params["term"]


def test_group_difference_and_rate_figures_read_the_right_rows(tmp_path: Path) -> None:
    """A figure of a group, a difference of two metrics and a rate (per, per_group) are read from the
    long metrics table as their words say; a rate is compared unscaled, a count is scaled by N."""
    rows = []  # (day, dimension, group, metric, value): 2 days, everyone and two origin groups
    counts = {("investigated", "swedish"): (6, 4), ("investigated", "foreign"): (3, 1),
              ("investigated_true", "swedish"): (2, 1), ("investigated_true", "foreign"): (2, 1)}
    for (metric, grp), per_day in counts.items():
        for day, v in enumerate(per_day):
            rows.append((day, "origin", grp, metric, float(v)))
    for metric in ("investigated", "investigated_true"):
        for day in (0, 1):
            rows.append((day, "all", "all", metric, sum(counts[(metric, g)][day] for g in ("swedish", "foreign"))))

    def coded(i: int) -> pa.DictionaryArray:
        return pc.dictionary_encode(pa.array([r[i] for r in rows]))

    table = pa.table({"day": pa.array([r[0] for r in rows], pa.int32()), "dimension": coded(1), "group": coded(2),
                      "metric": coded(3), "value": pa.array([r[4] for r in rows])})
    spec = {"metric": "investigated", "to_day": 1, "value": 1.0}
    tf = TargetsFile.model_validate({"real_population": 1000, "simulate": {"population": 100, "days": 2}, "targets": {
        "all": spec,
        "foreign": {**spec, "group": "origin:foreign"},
        "flagged_false_swedish": {**spec, "group": "origin:swedish", "minus": "investigated_true"},
        "share_foreign": {**spec, "group": "origin:foreign", "per": "investigated"},
        "precision_foreign": {**spec, "metric": "investigated_true", "group": "origin:foreign",
                              "per": "investigated", "per_group": "origin:foreign", "value": 0.5},
    }})
    got = measure_targets(table, tf.targets)
    assert got == {"all": 14.0, "foreign": 4.0, "flagged_false_swedish": 7.0, "share_foreign": 4 / 14,
                   "precision_foreign": 3 / 4}
    assert scaled_targets(tf) == {"all": 0.1, "foreign": 0.1, "flagged_false_swedish": 0.1, "share_foreign": 1.0,
                                  "precision_foreign": 0.5}
    with pytest.raises(KeyError, match="no group 'nordic' of dimension 'origin'"):
        measure_targets(table, {"x": TargetSpec.model_validate({**spec, "group": "origin:nordic"})})
    with pytest.raises(ValidationError, match="per_group"):
        TargetSpec.model_validate({**spec, "per_group": "origin:foreign"})
