"""Calibration you can trust: targets and checks kept apart, the fit averaged over seeds,
validation at seeds the fit never used, and ``credsim calibrate`` as typed — posterior,
HTML report, and a resumed run that re-runs nothing and gives the same answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from credsim.calib_pipeline import spreads
from credsim.calib_runs import Runner
from credsim.calibrate import fit, load_targets, mean_of
from credsim.scenario.load import ScenarioError, load_scenario
from tests.terminal import typed

TARGETS = Path(__file__).resolve().parents[1] / "src" / "credsim" / "scenario" / "targets" / "court-defaulters.yaml"
FLIGHT_EARLY = 'behaviours["travel.flight_attempt"].schedule[0].multiplier'


def _tiny(tmp_path: Path, **extra: object) -> Path:
    doc: dict[str, object] = {
        "scenario": "court-defaulters", "real_population": 1.0e6,
        "simulate": {"population": 2000, "days": 40, "seeds": [3, 4]},
        "validation": {"seeds": [7, 8], "population": 3000},
        "targets": {"flights": {"metric": "events.travel.flight_attempt", "to_day": 39, "value": 4.0e5,
                                "source": "synthetic"}},
        "checks": {"hsr": {"metric": "events.travel.hsr_attempt", "to_day": 39, "value": 4.0e5,
                           "source": "synthetic", "tolerance": 0.25}},
        "parameters": {"flight_early": {"path": FLIGHT_EARLY, "low": 0.01, "high": 1.0}},
    }
    doc.update(extra)
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_shipped_targets_keep_fitted_and_held_out_figures_apart() -> None:
    tf = load_targets(TARGETS)
    assert tf.targets["hsr_blocks_cumulative_end_2018"].source == "B4"
    assert tf.targets["hsr_blocks_cumulative_end_2018"].value == 5470000
    assert tf.tolerance_of("hsr_blocks_cumulative_end_2018") == 0.25
    held_out = {t.source for t in tf.checks.values()}
    assert {"B1", "B2", "B3", "B5", "D6", "D7"} <= held_out
    # the stock on the list is fitted (only it pins the exits by routes other than payment), to 15%
    stocks = [k for k, t in tf.targets.items() if t.source == "B7"]
    assert len(stocks) == 2 and all(tf.tolerance_of(k) == 0.15 for k in stocks)
    assert len(tf.simulate.fit_seeds) >= 3 and tf.validation is not None
    assert not set(tf.validation.seeds) & set(tf.simulate.fit_seeds)
    assert "hsr_rate" in tf.parameters


def test_a_figure_cannot_be_both_target_and_check_nor_validate_at_a_fit_seed(tmp_path: Path) -> None:
    both = _tiny(tmp_path, checks={"flights": {"metric": "x", "to_day": 1, "value": 1}})
    with pytest.raises(ScenarioError, match="either a target .fitted. or a check"):
        load_targets(both)
    reused = _tiny(tmp_path, validation={"seeds": [4, 9]})
    with pytest.raises(ScenarioError, match=r"validation.seeds \[4\] are fit seeds"):
        load_targets(reused)


def test_fit_objective_is_the_mean_over_seeds(tmp_path: Path) -> None:
    tf = load_targets(_tiny(tmp_path))
    scen = load_scenario("court-defaulters")
    with Runner(scen, tf) as run:
        res = fit(scen, tf, max_evals=1, run=run)
    assert [e.seeds for e in res.best_by_seed] == [(3,), (4,)]
    a, b = (e.simulated["flights"] for e in res.best_by_seed)
    assert a != b  # two seeds, two samples of the noise
    assert res.best.simulated["flights"] == (a + b) / 2 == mean_of(res.best_by_seed).simulated["flights"]
    sp = spreads(res.best_by_seed)["flights"]
    assert sp.low <= sp.mean_ratio <= sp.high and sp.seeds == (3, 4)


def _numbers(text: str) -> list[str]:
    return re.findall(r"^(?:ok |OFF|  flight_early).*$", text, flags=re.M)


def test_calibrate_as_typed_writes_report_and_resumes_without_rerunning(tmp_path: Path) -> None:
    targets = _tiny(tmp_path)
    args = ["calibrate", "court-defaulters", str(targets), "--out", "fitted.yaml", "--max-evals", "4",
            "--posterior", "abc-smc", "--particles", "6", "--generations", "2", "--threads", "1"]
    first = typed(*args, "--workers", "2", cwd=tmp_path)
    assert first.rc in (0, 1) and not first.traceback, first.out
    assert "validation seeds (never fitted), 3,000 citizens" in first.out
    assert re.search(r"check  hsr .*within ±25%", first.out)
    assert re.search(r"flight_early +\S+ +\S+ \[\S+, \S+\]", first.out)  # fitted, median [90% interval]
    page = (tmp_path / "fitted-report.html").read_text()
    for section in ("Targets (fitted)", "Checks (held out, never fitted)", "Parameters", "Fit diagnostics",
                    "Posterior (ABC-SMC)", "posterior predictive 90%"):
        assert section in page
    fitted = (tmp_path / "fitted.yaml").read_text()
    assert "seeds 3, 4 (values below: mean over the seeds)" in fitted
    load_scenario(tmp_path / "fitted.yaml")
    runs = int(re.search(r"(\d+) runs, (\d+) from the cache", first.out).group(1))  # type: ignore[union-attr]
    assert runs > 10
    again = typed(*args, "--workers", "2", cwd=tmp_path)
    assert re.search(r"\b0 runs, \d+ from the cache", again.out), again.out
    assert _numbers(again.out) == _numbers(first.out)
    assert (tmp_path / "fitted.yaml").read_text() == fitted
    # the number of workers changes nothing: a fresh cache, one process
    one = typed(*args, "--workers", "1", "--cache", "other-cache", cwd=tmp_path)
    assert _numbers(one.out) == _numbers(first.out)


def test_laplace_posterior_as_typed(tmp_path: Path) -> None:
    """``--posterior laplace``: the fitted point at the fit seeds and fresh noise seeds, one step of
    the parameter at each fit seed, two check runs at posterior draws; intervals for the parameter
    and a predictive interval for every figure, in the terminal and in the report."""
    targets = _tiny(tmp_path)
    args = ["calibrate", "court-defaulters", str(targets), "--out", "fitted.yaml", "--max-evals", "1",
            "--posterior", "laplace", "--particles", "2", "--threads", "1", "--workers", "2"]
    r = typed(*args, cwd=tmp_path)
    assert r.rc in (0, 1) and not r.traceback, r.out
    assert "posterior: Laplace at the fit, 1 parameter steps x 2 seeds, noise from 6 seeds, 2 check runs" in r.out
    # one target, one parameter: the step fits it exactly, so there is no misfit to widen by
    assert re.search(r"Laplace posterior: misfit not estimable \(no more targets than parameters\), no widening; "
                     r"6 noise seeds \(t, 5 df\); check runs: \d of 4 figures inside", r.out), r.out
    assert re.search(r"flight_early +\S+ +\S+ \[\S+, \S+\]", r.out)
    # run: 1 fit point x 2 seeds, 4 fresh noise seeds, 1 step x 2 seeds, 2 check runs, 2 validation
    # seeds; the noise's runs at the 2 fit seeds are the fit's own, read back from the cache
    assert re.search(r"\b12 runs, 2 from the cache", r.out), r.out
    page = (tmp_path / "fitted-report.html").read_text()
    assert "Posterior (Laplace)" in page and "sandwich variance" in page
    assert re.search(r"<td>\d\.\d{3}–\d\.\d{3}</td>", page)  # a predictive interval, not '-'
    bad = typed(*args[:3], "--posterior", "mcmc", cwd=tmp_path)
    assert bad.rc == 2 and not bad.traceback and "'mcmc': expected one of laplace, abc-smc, none" in bad.out, bad.out
    few = typed("calibrate", "court-defaulters", str(TARGETS), "--noise-seeds", "5", cwd=tmp_path)
    assert few.rc == 2 and not few.traceback and "need at least 13 noise seeds" in few.out, few.out


def test_bad_targets_file_is_a_clear_error_as_typed(tmp_path: Path) -> None:
    bad = _tiny(tmp_path, validation={"seeds": [3]})
    r = typed("calibrate", "court-defaulters", str(bad), cwd=tmp_path)
    assert r.clean_error, r.out
    assert str(bad) in r.out and "validation" in r.out


def test_check_as_typed_judges_the_validation_seeds(tmp_path: Path) -> None:
    """``--check`` runs the scenario as it is at the fit seeds and at the validation seeds; the
    exit code follows the targets at the validation seeds (checks are reported, not judged)."""
    loose = _tiny(tmp_path, tolerance=1.0)  # flights at the scenario's own value, within 100%
    r = typed("calibrate", "court-defaulters", str(loose), "--check", "--threads", "1", cwd=tmp_path)
    assert r.rc == 0 and not r.traceback, r.out
    assert re.search(r"fit seeds: .*over seeds \[3, 4\]", r.out)
    assert re.search(r"validation seeds \(never fitted\), 3,000 citizens: .*over seeds \[7, 8\]", r.out)
    tight = _tiny(tmp_path, tolerance=0.001)
    r = typed("calibrate", "court-defaulters", str(tight), "--check", "--threads", "1", cwd=tmp_path)
    assert r.rc == 1 and "OFF target flights" in r.out, r.out
