"""Sensitivity indices: a parameter an output does not depend on gets an index of zero."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import credsim
from credsim.experiments import SensitivitySpec, SpecError, connect, load_spec
from credsim.experiments.sensitivity import sensitivity
from tests.conftest import tiny

# With common random numbers, infractions do not move at all when only the flight rate
# changes (attempts are another random stream and nothing responds to sanctions here),
# so the flight rate's index for infractions is exactly zero, while the court-default
# rate drives both outputs.
PARAMS: dict[str, Any] = {
    "default_rate": {"path": "behaviours[court.default].rate", "range": [0.001, 0.01], "log": True},
    "flight_rate": {"path": "behaviours[travel.flight].rate", "range": [0.01, 0.1]},
}


def run(method: str, tmp: Path, **kw: Any) -> dict[str, Any]:
    spec = load_spec({"name": method, "method": method, "parameters": PARAMS, "base": {"run.days": 20},
                      "outputs": ["infraction_rate", "denied"], **kw}, SensitivitySpec)
    return sensitivity(credsim.load_scenario(tiny()), spec, tmp / method, workers=2)


def test_morris_separates_relevant_from_irrelevant(tmp_path: Path) -> None:
    res = run("morris", tmp_path, samples=3, levels=4)
    assert res["samples"] == 3 * (2 + 1)
    idx = {(r["output"], r["parameter"]): r for r in res["indices"]}
    assert idx[("infraction_rate", "flight_rate")]["mu_star"] == 0.0
    assert idx[("infraction_rate", "default_rate")]["mu_star"] > 0.0
    assert idx[("denied", "flight_rate")]["mu_star"] > 0.0
    con = connect(tmp_path / "morris")
    assert con.execute("SELECT count(*) FROM indices").fetchone()[0] == 4  # type: ignore[index]
    con.close()
    html = (tmp_path / "morris" / "sensitivity.html").read_text()
    assert "Plotly.newPlot" in html and "<script src" not in html


def test_sobol_total_index_of_an_irrelevant_parameter_is_zero(tmp_path: Path) -> None:
    res = run("sobol", tmp_path, samples=4)
    assert res["samples"] == 4 * (2 + 2)
    idx = {(r["output"], r["parameter"]): r for r in res["indices"]}
    assert idx[("infraction_rate", "flight_rate")]["ST"] == pytest.approx(0.0, abs=1e-12)
    assert idx[("infraction_rate", "default_rate")]["ST"] > 0.0


def test_sensitivity_spec_errors() -> None:
    with pytest.raises(SpecError, match="needs a 'range'"):
        load_spec({"parameters": {"a": {"path": "run.days", "values": [1, 2]},
                                  "b": {"path": "run.seed", "range": [1, 2]}}}, SensitivitySpec)
    with pytest.raises(SpecError, match="at least two parameters"):
        load_spec({"parameters": {"b": {"path": "run.seed", "range": [1, 2]}}}, SensitivitySpec)
