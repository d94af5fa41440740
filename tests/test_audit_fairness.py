"""Disparate impact: rates cross-checked against Fairlearn, declared reference groups fixed across
replicates, pooled ratios independent of replicate order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import credsim
from credsim.audit import fairness, run_figures
from credsim.audit.fairness import OUTCOMES, citizen_table_sql

from .conftest import WRONGFUL_PRONE

fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
MetricFrame, selection_rate = fairlearn_metrics.MetricFrame, fairlearn_metrics.selection_rate


pytestmark = pytest.mark.usefixtures("one_thread")

# income has five equal declared shares; with no declared reference the default must not follow the draw
NO_REFERENCE = {**WRONGFUL_PRONE, "population.reference": {}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("fair")
    return [credsim.run("city-points", population=6000, days=200, seed=s, out=tmp / f"run{s}",
                        overrides=NO_REFERENCE).dir for s in (5, 6, 7)]


def _mean(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_pred))


def test_rate_ratios_match_fairlearn(runs: list[Path]) -> None:
    run_dir = runs[0]
    fair = run_figures(run_dir)["fairness"]
    con = credsim.connect(run_dir)
    df = con.execute(citizen_table_sql(has_events=True, has_harms=False)).fetchdf()
    con.close()
    checked = 0
    for outcome, o in OUTCOMES.items():
        col = {"adverse_records": "n_records_adverse", "sanctioned": "n_denied", "rewarded": "n_rewarded"}.get(
            outcome, outcome)
        y = df[col].to_numpy()
        if not o.per_capita:
            y = (y > 0).astype(np.int64)
        metric = _mean if o.per_capita else selection_rate
        for dim in fair["dimensions"]:
            mf = MetricFrame(metrics=metric, y_true=np.zeros(len(y)), y_pred=y, sensitive_features=df[dim])
            rates = mf.by_group
            ours = {r["group"]: r for r in fair["single"] if r["dimension"] == dim and r["outcome"] == outcome}
            ref = fair["reference"][dim]
            for g, r in ours.items():
                assert r["reference"] == ref
                assert r["rate"] == pytest.approx(rates[g]), (dim, g, outcome)
                assert r["reference_rate"] == pytest.approx(rates[ref])
                if rates[ref] > 0:
                    assert r["ratio"] == pytest.approx(rates[g] / rates[ref]), (dim, g, outcome)
                    checked += 1
    assert checked > 50


def test_intersectional_rates_match_fairlearn(runs: list[Path]) -> None:
    run_dir = runs[0]
    fair = run_figures(run_dir, intersections=[("region", "hukou")])["fairness"]
    con = credsim.connect(run_dir)
    df = con.execute(citizen_table_sql(has_events=True, has_harms=False)).fetchdf()
    con.close()
    mf = MetricFrame(metrics=selection_rate, y_true=np.zeros(len(df)), y_pred=(df["n_denied"] > 0).to_numpy(),
                     sensitive_features=df[["region", "hukou"]])
    rows = {r["group"]: r for r in fair["intersectional"] if r["outcome"] == "sanctioned"}
    assert "rural × migrant" in rows
    ref = f"{fair['reference']['region']} × {fair['reference']['hukou']}"
    for (region, hukou), rate in mf.by_group.items():
        key = f"{region} × {hukou}"
        if key == ref:
            continue
        r = rows[key]
        assert r["reference"] == ref
        assert r["rate"] == pytest.approx(rate)
        assert r["ratio"] == pytest.approx(rate / mf.by_group[tuple(ref.split(" × "))])


def test_reference_is_declared_or_the_first_largest_declared_share(runs: list[Path]) -> None:
    """Equal income shares: the reference is q1 (first declared) in every replicate, whichever group the draw
    made largest; a declared reference wins; an unknown one is an error naming the dimension."""
    scen = credsim.load_scenario("city-points", NO_REFERENCE).model_dump(mode="json")
    assert fairness.reference_groups(scen)["income"] == "q1"
    assert fairness.reference_groups(scen)["region"] == "other_city"  # the largest declared share
    assert fairness.reference_groups(scen, {"income": "q3"})["income"] == "q3"
    declared = credsim.load_scenario("city-points").model_dump(mode="json")
    assert fairness.reference_groups(declared)["income"] == "q3"  # city-points declares it
    with pytest.raises(ValueError, match=r"reference.income: no group 'q9'"):
        fairness.reference_groups(scen, {"income": "q9"})
    for d in runs:  # the same reference in every replicate, whatever the draw
        assert run_figures(d)["fairness"]["reference"]["income"] == "q1"


def test_pooled_ratio_is_ratio_of_pooled_rates_and_independent_of_replicate_order(runs: list[Path]) -> None:
    hists = [fairness.histograms(d, pairs=[]) for d in runs]
    seeds = [5, 6, 7]
    scen = credsim.load_scenario("city-points", NO_REFERENCE).model_dump(mode="json")
    ref = fairness.reference_groups(scen)
    a = fairness.pooled(hists, seeds, ref)
    b = fairness.pooled(hists[::-1], seeds[::-1], ref)
    ra = {(r["dimension"], r["group"], r["outcome"]): r for r in a["single"]}
    rb = {(r["dimension"], r["group"], r["outcome"]): r for r in b["single"]}
    assert ra.keys() == rb.keys()
    for key, r in ra.items():
        assert rb[key]["ratio"] == r["ratio"] and rb[key]["reference"] == r["reference"]
        assert (rb[key]["lo"], rb[key]["hi"]) == (r["lo"], r["hi"]) or not np.isfinite(r["lo"])
        assert rb[key]["replicates"] == r["replicates"][::-1]
    # the ratio of pooled rates, by hand, for income=q5 records against q1
    r = ra[("income", "q5", "adverse_records")]
    tot = {g: [0.0, 0.0] for g in ("q1", "q5")}
    for d in runs:
        con = credsim.connect(d)
        for g, n, s in con.execute("SELECT income::VARCHAR, count(*), sum(n_records_adverse) FROM citizens "
                                   "GROUP BY 1").fetchall():
            if g in tot:
                tot[g][0] += n
                tot[g][1] += s
        con.close()
    assert r["ratio"] == pytest.approx((tot["q5"][1] / tot["q5"][0]) / (tot["q1"][1] / tot["q1"][0]), rel=1e-12)
    assert r["lo"] < r["ratio"] < r["hi"]


def test_too_few_events_are_never_flagged(runs: list[Path]) -> None:
    fair = run_figures(runs[0])["fairness"]
    few = [r for r in fair["single"] + fair["intersectional"] if r["too_few"]]
    assert few, "journalists and lawyers (0.5% each) should have too few sanctions at 6,000 citizens"
    for r in few:
        assert min(r["count"], r["reference_count"]) < fair["min_events"]
        assert not r["flag"] and not r["significant"]
