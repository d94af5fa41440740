"""Capacity-limited investigation, from traces: exactly k a day, the k riskiest of the eligible, no
repeat within the declared days, findings and false findings within binomial bounds, records filed
after the delay in the right views."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

import credsim
from credsim import engine
from credsim import names as nm
from credsim.audit.redress import investigation_figures
from credsim.day import Day
from credsim.resumable import RunStopped
from credsim.stages.investigate import Investigate
from tests.conftest import tiny
from tests.terminal import typed

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]

N, DAYS, K = 4000, 40, 25
FOUND, FALSE, MIGRANT_BIAS = 0.9, 0.1, 2.0
INV = {"records": "finance.claim_error", "capacity_per_day": K, "rank_by": "model", "riskiest": "high",
       "truth": {"trait": "claim_error", "above": 0.5}, "found": FOUND, "false_finding": FALSE,
       "false_finding_by": {"hukou": {"migrant": MIGRANT_BIAS}}, "repeat_after_days": 30, "delay_days": 3}
MODEL = {"every_days": 1, "center": 0.0, "scale": 1.0, "range": [-100.0, 100.0],
         "features": {"migrant": {"group": {"hukou": {"migrant": 1.0}}}, "noise": {"trait": "care"}},
         "dimensions": {"risk": {"weight": 1.0, "features": {"migrant": 1.0, "noise": 0.5}}}}


def scenario(**changes: object) -> credsim.Scenario:
    base: dict[str, object] = {
        "population__traits__claim_error": {"shift": {"hukou": {"migrant": 0.4}}},
        "behaviours__finance.claim_error": {"kind": "infraction", "rate": 0.0},
        "scoring__model": MODEL, "investigations": {"fraud_unit": dict(INV)}, "run__days": DAYS}
    return credsim.load_scenario(tiny(**{**base, **changes}))


@dataclass
class Played:
    loop: engine.Loop
    days: list[Day]
    scores: list[np.ndarray]  # official model score seen by the investigation, each day
    last_before: list[np.ndarray]  # the book before the stage ran, each day


def play(scen: credsim.Scenario) -> Played:
    loop, _ = engine.prepare(scen, population=N, days=DAYS)
    inv = next(s for s in loop.stages if isinstance(s, Investigate))
    days, scores, before = [], [], []
    for day in range(DAYS):
        d = Day(day)
        for s in loop.stages:
            if s is inv:
                before.append(inv.book.last[0].copy())
                scores.append(loop.st.mscore[0].copy())
            rounds = s.run(loop.st, d, loop.exchange)
            for _ in rounds or ():
                loop.exchange.loopback()
        for obs in loop.observers:
            obs.observe(loop.st, d)
        days.append(d)
    return Played(loop, days, scores, before)


@pytest.fixture(scope="module")
def model() -> Played:
    return play(scenario())


def test_exactly_k_a_day_the_riskiest_of_the_eligible_and_no_repeat(model: Played) -> None:
    repeat = INV["repeat_after_days"]
    for d, score, last in zip(model.days, model.scores, model.last_before, strict=True):
        iv = d.investigated
        eligible = (last < 0) | (d.day - last >= repeat)
        assert iv.cit.shape[0] == min(K, int(eligible.sum()))
        assert eligible[iv.cit].all(), f"day {d.day}: someone investigated again within {repeat} days"
        rest = np.flatnonzero(eligible)
        rest = rest[~np.isin(rest, iv.cit)]
        if rest.shape[0]:
            assert score[iv.cit].min() >= score[rest].max(), f"day {d.day}: a riskier citizen was passed over"


def _bound(k: int, n: int, p: float) -> None:
    """Binomial: within 4 standard errors (a false alarm about 6 in 100,000 per check)."""
    assert n > 0
    se = math.sqrt(p * (1 - p) / n)
    assert abs(k / n - p) <= 4 * se + 1e-12, f"{k}/{n} = {k / n:.3f}, expected {p} +- {4 * se:.3f}"


def test_findings_and_false_findings_within_binomial_bounds() -> None:
    p = play(scenario(investigations__fraud_unit__repeat_after_days=1000, investigations__fraud_unit__rank_by="random"))
    hukou = p.loop.plan.dims.index("hukou")
    mig_code = p.loop.plan.dim_values[hukou].index("migrant")
    cit = np.concatenate([d.investigated.cit for d in p.days])
    found = np.concatenate([d.investigated.found for d in p.days])
    has = np.concatenate([d.investigated.has for d in p.days])
    assert cit.shape[0] == K * DAYS and np.unique(cit).shape[0] == cit.shape[0]
    mig = p.loop.st.groups[hukou][cit] == mig_code
    _bound(int(found[has == 1].sum()), int((has == 1).sum()), FOUND)
    _bound(int(found[(has == 0) & ~mig].sum()), int(((has == 0) & ~mig).sum()), FALSE)
    _bound(int(found[(has == 0) & mig].sum()), int(((has == 0) & mig).sum()), FALSE * MIGRANT_BIAS)
    # random checks are a random sample: the share who have it is the population's
    truth = p.loop.st.traits[p.loop.plan.traits.index("claim_error")] > 0.5
    _bound(int(has.sum()), int(has.shape[0]), float(truth.mean()))


def test_findings_are_filed_after_the_delay_true_ones_in_both_views(model: Played) -> None:
    rtype = model.loop.plan.rtypes.index("finance.claim_error")
    delay = INV["delay_days"]
    for d in model.days[delay:]:
        src = model.days[d.day - delay].investigated
        rec = d.filed.records
        mine = rec.rtype == rtype
        hit = src.found == 1
        assert sorted(rec.cit[mine].tolist()) == sorted(src.cit[hit].tolist())
        assert (rec.official[mine] == 1).all()
        truth = dict(zip(src.cit[hit].tolist(), src.has[hit].tolist(), strict=True))
        for c, sh, tr in zip(rec.cit[mine].tolist(), rec.shadow[mine].tolist(), rec.true[mine].tolist(), strict=True):
            assert sh == tr == truth[c]


def test_the_model_picks_more_true_findings_than_random_checks_here(model: Played) -> None:
    """The model ranks migrants first, and migrants have the error more often (trait shift 0.4): its
    precision beats random checks of the same size (same seed), a test of the mechanism, not of E3."""
    rnd = play(scenario(investigations__fraud_unit__rank_by="random"))

    def precision(p: Played) -> float:
        has = np.concatenate([d.investigated.has for d in p.days])
        return float(has.mean())

    assert precision(model) > precision(rnd)


BAD = [
    ({"investigations__fraud_unit__truth": {"trait": "greed", "above": 0.0}}, "investigations.fraud_unit.truth.trait",
     "a trait"),
    ({"investigations__fraud_unit__records": "finance.fraud"}, "investigations.fraud_unit.records", "a behaviour"),
    ({"scoring__model": None}, "investigations.fraud_unit.rank_by", "scoring.model is missing"),
    ({"investigations__fraud_unit__delay_days": 0}, "investigations.fraud_unit.delay_days", "greater than"),
]


@pytest.mark.parametrize("change,path,words", BAD, ids=[b[1] for b in BAD])
def test_bad_investigation_keys_name_file_path_and_expectation(tmp_path: Path, change: dict, path: str,  # type: ignore[type-arg]
                                                              words: str) -> None:
    base: dict[str, object] = {
        "population__traits__claim_error": {}, "behaviours__finance.claim_error": {"kind": "infraction", "rate": 0.0},
        "scoring__model": MODEL, "investigations": {"fraud_unit": dict(INV)}}
    f = tmp_path / "scen.yaml"
    f.write_text(yaml.safe_dump(tiny(**{**base, **change})))
    with pytest.raises(credsim.ScenarioError) as ei:
        credsim.load_scenario(f)
    err = ei.value
    assert str(f) in str(err) and path in err.paths, err.paths
    line = [ln for ln in str(err).splitlines() if f"'{path}'" in ln]
    assert line and words in line[0], str(err)


def test_a_run_with_investigations_counts_them(tmp_path: Path) -> None:
    run = credsim.run(scenario(), out=tmp_path / "r", population=2000, threads=1)
    con = credsim.connect(run.dir)
    got = con.execute("SELECT sum(value) FROM metrics WHERE metric = ? AND dimension = 'all'",
                      [nm.INVESTIGATED("fraud_unit")]).fetchone()
    assert got is not None and got[0] == K * DAYS


def test_welfare_risk_figures_read_back_the_counts_and_show_as_typed(tmp_path: Path) -> None:
    """The investigation figures of a small welfare-risk run: precision and flag rates are the metric
    counts over the citizens without an error (from the truth trait); `credsim redress RUN` prints them."""
    run = credsim.run("welfare-risk", out=tmp_path / "w", population=20_000, days=120, threads=1)
    fig = investigation_figures(run.dir)
    con = credsim.connect(run.dir)
    for name in ("model_checks", "random_checks"):
        f = fig[name]
        n = con.execute("SELECT sum(value) FROM metrics WHERE metric = ? AND dimension = 'all'",
                        [nm.INVESTIGATED(name)]).fetchone()
        assert n is not None and f["investigated"] == n[0] == f["precision"]["decided"] > 0
        women = f["groups"]["gender"]["by"]["women"]["flag_rate_without"]
        without = con.execute("SELECT count(*) FROM citizens WHERE gender = 'women' AND trait_claim_error <= 0.536"
                              ).fetchone()
        assert without is not None and women["decided"] == without[0]
        assert f["groups"]["gender"]["by"]["men"]["flag_ratio_to_reference"] == 1.0
    shown = typed("redress", str(run.dir), cwd=tmp_path)
    assert shown.rc == 0 and "model_checks (model)" in shown.out and "flag rate of those WITHOUT it" in shown.out


def test_stopped_and_resumed_welfare_risk_is_byte_identical(tmp_path: Path) -> None:
    """The investigation and redress books are checkpointed: stopped on day 50 and resumed, the files equal
    one run straight through."""
    ref = credsim.run("welfare-risk", out=tmp_path / "ref", population=5000, days=90, threads=1)
    with pytest.raises(RunStopped):
        credsim.run("welfare-risk", out=tmp_path / "cut", population=5000, days=90, threads=1, max_days=50)
    resumed = credsim.api.resume(tmp_path / "cut")
    for f in ("metrics.parquet", "citizens.parquet", "events.parquet", "cases.parquet", "stays.parquet"):
        assert (ref.dir / f).read_bytes() == (resumed.dir / f).read_bytes(), f
