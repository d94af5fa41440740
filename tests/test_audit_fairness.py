"""Disparate-impact figures cross-checked against Fairlearn's MetricFrame on the same citizen table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import credsim
from credsim.audit import run_figures
from credsim.audit.fairness import OUTCOMES, citizen_table_sql

from .conftest import WRONGFUL_PRONE

fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
MetricFrame, selection_rate = fairlearn_metrics.MetricFrame, fairlearn_metrics.selection_rate



pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fair") / "run"
    return credsim.run("city-points", population=6000, days=200, seed=5, out=out, overrides=WRONGFUL_PRONE).dir


def _mean(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_pred))


def test_rate_ratios_match_fairlearn(run_dir: Path) -> None:
    figs = run_figures(run_dir)
    fair = figs["fairness"]
    con = credsim.connect(run_dir)
    df = con.execute(citizen_table_sql(has_events=True)).fetchdf()
    con.close()
    checked = 0
    for outcome, (col, per_capita, _label) in OUTCOMES.items():
        y = df[col].to_numpy()
        metric = _mean if per_capita else selection_rate
        for dim in fair["dimensions"]:
            mf = MetricFrame(metrics=metric, y_true=np.zeros(len(y)), y_pred=y, sensitive_features=df[dim])
            rates = mf.by_group
            ours = {r["group"]: r for r in fair["single"] if r["dimension"] == dim and r["outcome"] == outcome}
            assert ours, (dim, outcome)
            ref = next(iter(ours.values()))["reference"]
            assert ref == df[dim].value_counts().idxmax()  # the largest group
            for g, r in ours.items():
                assert r["rate"] == pytest.approx(rates[g]), (dim, g, outcome)
                if rates[ref] > 0:
                    assert r["ratio"] == pytest.approx(rates[g] / rates[ref]), (dim, g, outcome)
                    checked += 1
            # Fairlearn's between-group ratio is min/max over groups
            if min(rates) > 0 and len(ours) == len(rates):
                ratios = [r["ratio"] for r in ours.values()]
                assert min(ratios) / max(ratios) == pytest.approx(mf.ratio(method="between_groups"))
    assert checked > 50


def test_intersectional_rates_match_fairlearn(run_dir: Path) -> None:
    fair = run_figures(run_dir, intersections=[("region", "hukou")])["fairness"]
    con = credsim.connect(run_dir)
    df = con.execute(citizen_table_sql(has_events=True)).fetchdf()
    con.close()
    mf = MetricFrame(metrics=selection_rate, y_true=np.zeros(len(df)), y_pred=df["sanctioned"].to_numpy(),
                     sensitive_features=df[["region", "hukou"]])
    rows = {r["group"]: r for r in fair["intersectional"] if r["outcome"] == "sanctioned"}
    assert "rural × migrant" in rows
    for (region, hukou), rate in mf.by_group.items():
        r = rows[f"{region} × {hukou}"]
        assert r["rate"] == pytest.approx(rate)
        ref_region, ref_hukou = r["reference"].split(" × ")
        assert r["ratio"] == pytest.approx(rate / mf.by_group[(ref_region, ref_hukou)])


def test_four_fifths_flags(run_dir: Path) -> None:
    for r in run_figures(run_dir)["fairness"]["single"]:
        assert r["flag"] == (r["ratio"] < 0.8 or r["ratio"] > 1.25)
        if r["significant"]:
            assert r["flag"] and (r["lo"] > 1 or r["hi"] < 1)
