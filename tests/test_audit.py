"""The audit's figures: they match SQL over the run directories, and its statistics behave as the math says."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats as sps

import credsim
from credsim.audit import audit, counterfactual
from credsim.audit.stats import gini, interval, kaplan_meier, km_quantile

# integrated, made to produce false-record harm at a small size: false camera
# matches 100x more often, and the low-grade restrictions reaching grade B
SCENARIO = "integrated"
OVERRIDES: dict[str, object] = {
    "sensors.face_cameras.false_rate": 0.002,
    "sanctions.low_grade_restrictions.when.grades": ["B", "C", "D"],
}
SEED, K, N, DAYS = 11, 2, 5000, 150


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "a"
    return audit(SCENARIO, replicates=K, population=N, days=DAYS, seed=SEED, out=out, overrides=OVERRIDES)


def _sql(run: Path, q: str) -> float:
    con = credsim.connect(run)
    try:
        v = con.execute(q).fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    return float(v or 0.0)


def _html_figures(html: str) -> dict[str, float]:
    pat = re.compile(r'data-figure="([^"]+)" data-value="([^"]+)"')
    return {k: float(v) for k, v in pat.findall(html)}


SQL = {
    "citizens.sanctioned": "SELECT count(*) FROM citizens WHERE n_denied > 0",
    "citizens.wrongfully_sanctioned": "SELECT count(*) FROM citizens WHERE n_wrongful > 0",
    "denied.total": "SELECT sum(value) FROM metrics WHERE dimension = 'all' AND metric LIKE 'denied.%' "
                    "AND metric NOT IN ('denied.cross_context_sum', 'denied.association_only')",
    "wrongful.total": "SELECT sum(value) FROM metrics WHERE dimension = 'all' AND metric LIKE 'wrongful.%'",
    "missed.total": "SELECT sum(value) FROM metrics WHERE dimension = 'all' AND metric LIKE 'missed.%'",
    "association_only.citizens": "SELECT count(*) FROM citizens WHERE n_association_only > 0",
    "association_only.denials": "SELECT sum(n_association_only) FROM citizens",
}


def test_report_numbers_match_sql(audited: Path) -> None:
    res = json.loads((audited / "audit.json").read_text())
    html = (audited / "report.html").read_text()
    shown = _html_figures(html)
    systems = [audited / a for a, _ in res["meta"]["pairs"]]
    bases = [audited / b for _, b in res["meta"]["pairs"]]
    assert len(systems) == 2 and all((d / "results.duckdb").exists() for d in systems + bases)
    for name, q in SQL.items():
        per_rep = [_sql(d, q) for d in systems]
        assert res["intervals"][name]["mean"] == pytest.approx(np.mean(per_rep)), name
        for rep, v in zip(res["replicates"], per_rep, strict=True):
            assert rep["system"][name] == pytest.approx(v), name
        if name in shown:
            assert shown[name] == pytest.approx(np.mean(per_rep)), name
    for name in ("citizens.sanctioned", "denied.total", "wrongful.total", "missed.total"):
        assert name in shown, f"headline figure {name} missing from the report"
    assert shown["denied.total"] > 0 and shown["wrongful.total"] + shown["missed.total"] > 0

    # cross-context share: sum of per-denial shares over denials, per replicate
    cross = [_sql(d, "SELECT sum(value) FROM metrics WHERE dimension='all' AND metric='denied.cross_context_sum'")
             / _sql(d, SQL["denied.total"]) for d in systems]
    assert res["intervals"]["cross_context.mean_share"]["mean"] == pytest.approx(np.mean(cross))

    # Gini from the final scores, by the mean-absolute-difference definition
    def gini_lorenz(x: np.ndarray) -> float:  # 1 - 2 x (area under the Lorenz curve), trapezoids
        x = np.sort(x.astype(np.float64) - min(0.0, float(x.min())))
        lorenz = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
        return float(1 - np.sum(lorenz[1:] + lorenz[:-1]) / x.shape[0])

    col = res["first"]["score_column"]
    g = []
    for d in systems:
        con = credsim.connect(d)
        x = con.execute(f"SELECT {col} FROM citizens USING SAMPLE 100 PERCENT").fetchnumpy()[col]
        con.close()
        g.append(gini_lorenz(np.asarray(x)))
    assert shown["gini.score"] == pytest.approx(np.mean(g), rel=1e-6)

    # paired effect on infractions: system minus counterfactual, mean over replicates
    kinds = res["first"]["kinds"]
    names = ", ".join(f"'events.{b}'" for b in kinds["infraction"])
    q = f"SELECT sum(value) FROM metrics WHERE dimension = 'all' AND metric IN ({names})"
    diffs = [_sql(s, q) - _sql(b, q) for s, b in zip(systems, bases, strict=True)]
    assert shown["effect.events.infraction.total.diff"] == pytest.approx(np.mean(diffs))


def test_event_log_agrees_with_metrics(audited: Path) -> None:
    res = json.loads((audited / "audit.json").read_text())
    run = audited / res["meta"]["pairs"][0][0]
    con = credsim.connect(run)
    try:
        def one(q: str, params: list[object]) -> float:
            return float(con.execute(q, params).fetchone()[0] or 0)  # type: ignore[index]

        total = "SELECT sum(value) FROM metrics WHERE dimension='all' AND metric=?"
        for a in res["first"]["attempts"]:
            assert one(total, [f"denied.{a}"]) == one(
                "SELECT count(*) FROM events WHERE kind='denial' AND item=? AND view IN ('both','official')", [a])
            assert one(total, [f"wrongful.{a}"]) == one(
                "SELECT count(*) FROM events WHERE kind='denial' AND item=? AND view='official'", [a])
            assert one(total, [f"missed.{a}"]) == one(
                "SELECT count(*) FROM events WHERE kind='denial' AND item=? AND view='shadow'", [a])
        for li in res["first"]["lists"]:
            assert one(total, [f"entries.{li}"]) == one(
                "SELECT count(*) FROM events WHERE kind='list' AND item=? AND view='official' AND value>0", [li])
        # grade changes of traced citizens are the same in traces and in the event log
        assert one("SELECT count(*) FROM traces WHERE stage='grade'", []) == one(
            "SELECT count(*) FROM events WHERE kind='grade' AND citizen IN (SELECT citizen FROM citizens WHERE traced)",
            [])
    finally:
        con.close()


def test_counterfactual_of_city_points_is_the_builtin_baseline() -> None:
    a = counterfactual(credsim.load_scenario("city-points")).model_dump(mode="json")
    b = credsim.load_scenario("baseline").model_dump(mode="json")
    for k in ("name", "description", "sources"):
        a.pop(k); b.pop(k)
    assert a == b


def _infractions(run: Path) -> float:
    man = json.loads((run / "manifest.json").read_text())
    names = [f"events.{n}" for n, b in man["scenario"]["behaviours"].items() if b["kind"] == "infraction"]
    con = duckdb.connect()
    v = con.execute("SELECT sum(value) FROM read_parquet(?) WHERE dimension='all' AND metric IN (SELECT unnest(?))",
                    [str(run / "metrics.parquet"), names]).fetchone()[0]  # type: ignore[index]
    return float(v)


@pytest.fixture(scope="module")
def replicate_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[float]]:
    """Infractions of 6 system runs, their 6 same-seed counterfactuals and 18 more counterfactual seeds."""
    tmp = tmp_path_factory.mktemp("reps")
    scen = credsim.load_scenario("city-points", {"population.size": 1500, "run.days": 90, "run.trace": 0})
    base = counterfactual(scen)
    out: dict[str, list[float]] = {"system": [], "paired_base": [], "other_base": []}
    for i in range(6):
        out["system"].append(_infractions(credsim.run(scen, seed=100 + i, out=tmp / f"s{i}").dir))
        out["paired_base"].append(_infractions(credsim.run(base, seed=100 + i, out=tmp / f"b{i}").dir))
    for i in range(18):
        out["other_base"].append(_infractions(credsim.run(base, seed=500 + i, out=tmp / f"u{i}").dir))
    return out


def test_paired_differences_have_far_smaller_variance_than_unpaired(replicate_runs: dict[str, list[float]]) -> None:
    """Var(sys_s - base_s) against Var(sys_s - base_s'): a one-sided F test at alpha = 0.001.

    With common random numbers the paired difference is only the system's effect on the few
    citizens it touches; unpaired, it also carries two independent samples of behaviour noise.
    """
    sys_v, base_v, other = replicate_runs["system"], replicate_runs["paired_base"], replicate_runs["other_base"]
    k = len(sys_v)
    paired = [a - b for a, b in zip(sys_v, base_v, strict=True)]
    unpaired = [a - b for a, b in zip(sys_v, other[:k], strict=True)]
    v_p, v_u = np.var(paired, ddof=1), np.var(unpaired, ddof=1)
    crit = sps.f.ppf(0.999, k - 1, k - 1)
    assert v_u > 0
    assert v_p == 0 or v_u / v_p > crit, (v_u, v_p, crit)
    assert interval(paired).half_width < interval(unpaired).half_width


def test_intervals_shrink_as_one_over_root_k(replicate_runs: dict[str, list[float]]) -> None:
    """Half-widths from k=3 and k=12 replicates: their ratio must match t_2/sqrt(3) : t_11/sqrt(12) within F bounds.

    The audit's interval is hw_k = t_{k-1} s_k / sqrt(k) over replicate seeds. Pooling s^2 over
    4 disjoint groups of 3 (8 df) against one group of 12 (11 df), the ratio of the scaled
    variances is F(8, 11) distributed; we accept its central 99.9%. The expected ratio of
    half-widths is about 3.9; the lower bound (about 1.4) shows that they do shrink.
    """
    vals = replicate_runs["paired_base"] + replicate_runs["other_base"]  # 24 independent seeds
    groups = [interval(vals[3 * g:3 * g + 3]) for g in range(4)]
    big = interval(vals[12:24])
    hw3 = math.sqrt(np.mean([iv.half_width ** 2 for iv in groups]))
    ratio = hw3 / big.half_width
    expected = (sps.t.ppf(0.975, 2) / math.sqrt(3)) / (sps.t.ppf(0.975, 11) / math.sqrt(12))
    lo, hi = math.sqrt(sps.f.ppf(0.0005, 8, 11)), math.sqrt(sps.f.ppf(0.9995, 8, 11))
    assert expected * lo < ratio < expected * hi, (ratio, expected * lo, expected * hi)
    assert expected * lo > 1.0  # the bound itself asserts shrinking


def test_statistics_by_hand() -> None:
    assert gini(np.array([1.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 1.0])) == pytest.approx(2 / 3)
    t, s = kaplan_meier(np.array([1, 2, 2, 3, 4]), np.array([1, 1, 1, 1, 1]))
    assert list(t) == [1, 2, 3, 4] and list(s) == pytest.approx([0.8, 0.4, 0.2, 0.0])
    # censoring at 2 removes one from the risk set after time 2
    t, s = kaplan_meier(np.array([1, 2, 3, 3]), np.array([1, 0, 1, 1]))
    assert list(s) == pytest.approx([0.75, 0.0])
    assert km_quantile(t, s, 0.5) == 3
    iv = interval([1.0, 2.0, 3.0])
    assert iv.mean == 2.0 and iv.half_width == pytest.approx(sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))


def test_wrongful_equals_the_citizen_difference_with_a_separate_false_rates_0_run(
        audited: Path, tmp_path: Path) -> None:
    """The audit's wrongful figures are exactly the citizen-by-citizen difference against a run with every
    false-record rate 0, made here independently of the audit (same scenario, overrides and seed)."""
    res = json.loads((audited / "audit.json").read_text())
    scen = credsim.load_scenario(SCENARIO, {**OVERRIDES, "population.size": N, "run.days": DAYS})
    no_false = {f"sensors.{s}.false_rate": 0.0 for s in scen.sensors}
    checked = 0
    for rep, (sys_rel, _b) in zip(res["replicates"], res["meta"]["pairs"], strict=True):
        sys_dir = audited / sys_rel
        cf = credsim.run(SCENARIO, population=N, days=DAYS, seed=rep["seed"], out=tmp_path / f"cf{rep['seed']}",
                         overrides={**OVERRIDES, **no_false})
        con = duckdb.connect()
        extra, only_sys, only_cf = con.execute(
            "SELECT sum(s.n_denied - c.n_denied), count(*) FILTER (WHERE s.n_denied > 0 AND c.n_denied = 0), "
            "count(*) FILTER (WHERE c.n_denied > 0 AND s.n_denied = 0) FROM read_parquet(?) s "
            "JOIN read_parquet(?) c USING (citizen)",
            [str(sys_dir / "citizens.parquet"), str(cf.dir / "citizens.parquet")]).fetchone()  # type: ignore[misc]
        con.close()
        assert rep["system"]["harm.wrongful.denials"] == extra
        assert rep["system"]["harm.wrongful.citizens"] == only_sys
        assert rep["system"]["harm.wrongful.reversed"] == only_cf
        # the per-citizen table in the run's catalog gives the same figures
        assert _sql(sys_dir, "SELECT sum(wrongful_denials) FROM harms") == extra
        assert _sql(sys_dir, "SELECT sum(wrongful_sanctioned) FROM harms") == only_sys
        checked += int(only_sys > 0)
    assert checked == K, "false records should sanction someone in every replicate at these settings"
    iv = res["intervals"]["harm.wrongful.citizens"]
    assert iv["mean"] == pytest.approx(np.mean([r["system"]["harm.wrongful.citizens"] for r in res["replicates"]]))
    html = (audited / "report.html").read_text()
    assert _html_figures(html)["harm.wrongful.citizens"] == pytest.approx(iv["mean"])
    assert "against the same scenario with every false-record rate 0" in html.lower()


def test_every_harm_run_is_a_paired_counterfactual(audited: Path) -> None:
    """Each harm's counterfactual ran with the system's seed and citizens; its harm columns are in the catalog."""
    res = json.loads((audited / "audit.json").read_text())
    for run in res["meta"]["runs"]:
        sys_man = json.loads((audited / run["system"] / "manifest.json").read_text())
        for harm, rel in run["counterfactuals"].items():
            assert rel is not None, harm  # integrated has false records, infractions, speech points, joint lists
            man = json.loads((audited / rel / "manifest.json").read_text())
            assert man["seed"] == sys_man["seed"] == run["seed"]
            assert man["population"] == sys_man["population"]
            total = _sql(audited / run["system"], f"SELECT sum({harm}_denials) FROM harms")
            side = run["counterfactuals"]["wrongful"] if harm == "missed" else run["system"]
            con = duckdb.connect()
            by_hand = con.execute("SELECT sum(s.n_denied - c.n_denied) FROM read_parquet(?) s JOIN read_parquet(?) c "
                                  "USING (citizen)", [str(audited / side / "citizens.parquet"),
                                                      str(audited / rel / "citizens.parquet")]).fetchone()[0]
            con.close()
            # missed runs the other way (what perfect observation would add), against the run without false records
            assert total == (-by_hand if harm == "missed" else by_hand), harm
            assert total == res["replicates"][res["meta"]["seeds"].index(run["seed"])]["system"][
                f"harm.{harm}.denials"]


def test_intervals_are_never_clipped_and_warn_for_two_replicates() -> None:
    iv = interval([0.0, 0.0, 3.0])
    assert iv.lo < 0 < iv.hi and iv.mean == 1.0  # a count's interval may reach below 0: shown as computed
    assert interval([1.0, 5.0]).warning.startswith("2 replicates")
    assert interval([1.0, 2.0, 3.0, 4.0, 5.0]).warning == ""


def test_two_replicate_audit_warns_and_shows_replicate_values(audited: Path) -> None:
    res = json.loads((audited / "audit.json").read_text())
    assert any(w.startswith("2 replicates") for w in res["meta"]["warnings"])
    html = (audited / "report.html").read_text()
    assert "Warning: 2 replicates" in html and "replicates " in html


def test_disparate_impact_counts_wrongful_from_the_counterfactual_and_adverse_records_apart(audited: Path) -> None:
    """'Sanctioned only because of false records' per group sums to the harm figure over all replicates; adverse
    records per group sum to the citizens' adverse-record counters (rewards are not in them)."""
    res = json.loads((audited / "audit.json").read_text())
    fair = res["fairness"]
    systems = [audited / a for a, _ in res["meta"]["pairs"]]
    for outcome, total in (
            ("wrongfully_sanctioned", sum(r["system"]["harm.wrongful.citizens"] for r in res["replicates"])),
            ("adverse_records", sum(_sql(d, "SELECT sum(n_records_adverse) FROM citizens") for d in systems))):
        rows = [r for r in fair["single"] if r["dimension"] == "hukou" and r["outcome"] == outcome]
        assert len(rows) == 1 and rows[0]["reference"] == "local"  # declared by the scenario
        assert rows[0]["count"] + rows[0]["reference_count"] == total, outcome
    records = sum(_sql(d, "SELECT sum(n_records_true + n_records_false) FROM citizens") for d in systems)
    assert total < records  # good deeds (volunteering, blood donation) are records too, but not adverse ones
