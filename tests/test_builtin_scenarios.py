"""The built-in scenarios: each loads, cites its sources, and shows the mechanism it is about.

Mechanism tests capture every sanction check of a run (the stage function is wrapped, the
run itself is unchanged) and assert the rule on every attempt, not on an average.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from credsim.day import Attempts
from credsim.engine import simulate
from credsim.scenario.load import ScenarioError, builtin_dir, builtin_names, load_scenario
from credsim.stages import sanction as sanction_mod
from credsim.state import C

SCENARIOS = ["baseline", "city-points", "commercial-score", "court-defaulters", "integrated"]


def test_all_builtins_load_and_cite_sources() -> None:
    assert set(SCENARIOS) <= set(builtin_names())
    for name in SCENARIOS:
        scen = load_scenario(name)
        assert scen.population.size == 100_000 and scen.run.days == 365, name
        text = (builtin_dir() / f"{name}.yaml").read_text()
        if name != "baseline":
            assert "Sources" in text and "ssumption" in text, f"{name}: header must cite sources and assumptions"
            assert scen.sources, name


def test_integrated_is_the_composite_the_reporting_describes() -> None:
    s = load_scenario("integrated")
    assert s.graph.contacts == 16
    assert {"super_app", "e_commerce", "search_engine", "carrier_location", "face_cameras", "courts",
            "banks", "keyword_filter"} <= set(s.shared_sensors())
    kf = s.sensors["keyword_filter"]
    assert kf.false_rate > 0 and "speech.post_critical" in kf.observes
    assert kf.surveillance["occupation"]["journalist"] > 1 and kf.surveillance["occupation"]["lawyer"] > 1
    assert any(lst.association_points < 0 for lst in s.lists.values())
    assert "composite" in (builtin_dir() / "integrated.yaml").read_text().lower()


# --- the rate schedule (policy eras), the one engine addition these scenarios need -------------

def _schedule_scenario(schedule: list[dict[str, Any]] | None) -> dict[str, Any]:
    beh: dict[str, Any] = {"kind": "other", "rate": 0.5}
    if schedule is not None:
        beh["schedule"] = schedule
    return {"name": "sched", "population": {"size": 20_000, "groups": {"g": {"a": 1.0}}},
            "behaviours": {"civic.act": beh}, "sensors": {"registry": {"observes": ["civic.act"]}},
            "run": {"days": 20, "seed": 5, "trace": 0}}


def test_schedule_thins_events_to_the_multiplier_and_keeps_a_subset() -> None:
    on = simulate(load_scenario(_schedule_scenario([{"from_day": 10, "multiplier": 0.2}])))
    off = simulate(load_scenario(_schedule_scenario(None)))
    ev_on = on.state.counters[C["events"]].astype(np.int64)
    ev_off = off.state.counters[C["events"]].astype(np.int64)
    assert (ev_on <= ev_off).all()  # common random numbers: a lower era keeps a subset
    # days 0-9 at p = 0.5, days 10-19 at p = 0.1: total is a sum of binomials
    n = 20_000
    mean = n * 10 * 0.5 + n * 10 * 0.1
    sd = math.sqrt(n * 10 * 0.25 + n * 10 * 0.09)
    assert abs(int(ev_on.sum()) - mean) < 5 * sd
    # the first 10 days are identical in both runs, so the difference is the thinning alone
    removed = int(ev_off.sum() - ev_on.sum())
    m2 = n * 10 * 0.5 * 0.8
    assert abs(removed - m2) < 5 * math.sqrt(n * 10 * 0.5 * 0.5 + n * 10 * 0.4 * 0.6)


def test_schedule_must_ascend() -> None:
    bad = _schedule_scenario([{"from_day": 10, "multiplier": 0.2}, {"from_day": 5, "multiplier": 0.5}])
    with pytest.raises(ScenarioError) as exc:
        load_scenario(bad)
    assert "behaviours.civic.act.schedule" in exc.value.paths


def test_schedule_multiplier_above_one_is_an_error() -> None:
    with pytest.raises(ScenarioError) as exc:
        load_scenario(_schedule_scenario([{"from_day": 0, "multiplier": 1.5}]))
    assert any(p.startswith("behaviours.civic.act.schedule") for p in exc.value.paths)


# --- mechanisms ----------------------------------------------------------------------------------

@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, np.ndarray]]]:
    """Every sanction check of the run: attempts, outcomes, and the grade/list state seen."""
    seen: list[dict[str, np.ndarray]] = []
    real = sanction_mod.sanction

    def wrapped(plan: Any, st: Any, cit: np.ndarray, beh: np.ndarray) -> Attempts:
        out = real(plan, st, cit, beh)
        a = out.cit
        seen.append({"cit": a, "beh": out.beh, "den": out.denied[:, 0].copy(), "rew": out.rewarded[:, 0].copy(),
                     "grade": st.grade[0, a].copy(),
                     "listed": st.listed[0][:, a].copy() if st.listed.shape[1] else np.zeros((0, a.shape[0]))})
        return out

    monkeypatch.setattr(sanction_mod, "sanction", wrapped)
    yield seen


def _cat(seen: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = {k: np.concatenate([s[k] for s in seen], axis=-1 if k == "listed" else 0) for k in seen[0]}
    return out


def test_city_points_aaa_citizens_get_the_heating_discount(checks: list[dict[str, np.ndarray]]) -> None:
    scen = load_scenario("city-points", {"population.size": 20_000, "run.trace": 0})
    res = simulate(scen)
    a = _cat(checks)
    heat = a["beh"] == res.plan.beh.index("civic.heating_payment")
    aaa = a["grade"] == res.plan.grades.index("AAA")
    assert (heat & aaa).sum() > 20  # some AAA citizens paid for heating
    assert (a["rew"][heat & aaa] == 1).all()  # every one of them got the discount
    assert (a["rew"][heat & ~aaa] == 0).all()  # and nobody else did


def test_court_defaulters_listed_citizens_are_barred(checks: list[dict[str, np.ndarray]]) -> None:
    scen = load_scenario("court-defaulters", {"population.size": 50_000, "run.days": 730, "run.trace": 0})
    res = simulate(scen)
    p = res.plan
    a = _cat(checks)
    on_list = a["listed"][p.lists.index("court_defaulters")] == 1
    barred = [p.beh.index(b) for b in ("travel.flight_attempt", "travel.hsr_attempt", "lodging.luxury_hotel",
                                       "family.private_school", "employment.senior_post",
                                       "finance.loan_application")]
    covered = np.isin(a["beh"], barred)
    flights = a["beh"] == p.beh.index("travel.flight_attempt")
    assert (flights & on_list).sum() > 0
    assert (a["den"][covered & on_list] == 1).all()  # every attempt by a listed citizen is denied
    assert (a["den"][~on_list] == 0).all()  # nobody off the list is denied anything


def _model_scores(zero_rate: str | None) -> np.ndarray:
    ov: dict[str, Any] = {"population.size": 20_000, "run.days": 200, "run.trace": 0}
    if zero_rate is not None:
        ov[f'behaviours["{zero_rate}"].rate'] = 0.0
    return simulate(load_scenario("commercial-score", ov)).state.mscore[0].astype(np.float64)


def test_commercial_score_purchase_proxies_move_the_score() -> None:
    base = _model_scores(None)
    no_games = _model_scores("commerce.video_games")
    no_diapers = _model_scores("family.diapers")
    # same seed, same citizens, same other events: buying games only ever lowers the score ...
    assert (base <= no_games + 1e-3).all()
    assert (base < no_games - 1e-3).sum() > 100
    # ... and buying diapers only ever raises it
    assert (base >= no_diapers - 1e-3).all()
    assert (base > no_diapers + 1e-3).sum() > 100


def test_commercial_score_distribution_is_as_stated_in_the_header() -> None:
    s = simulate(load_scenario("commercial-score", {"population.size": 20_000, "run.trace": 0}))
    m = s.state.mscore[0].astype(np.float64)
    assert m.min() >= 350 and m.max() <= 950  # S1
    assert 620 < m.mean() < 680 and 45 < m.std() < 90  # the stated assumption: mean ~650, sd ~60-70


def _integrated(false_rate: float) -> Any:
    ov = {"population.size": 20_000, "run.trace": 0,
          "sensors.face_cameras.false_rate": false_rate, "sensors.keyword_filter.false_rate": 0.0,
          "sensors.anticorruption_watch.false_rate": 0.0, "sensors.streaming_monitor.false_rate": 0.0,
          "sensors.campus_forum.false_rate": 0.0}
    return simulate(load_scenario("integrated", ov))


def test_integrated_false_camera_match_lists_an_innocent_citizen() -> None:
    with_false = _integrated(0.0002)
    without = _integrated(0.0)
    li = with_false.plan.lists.index("key_persons")

    def official_only(res: Any) -> np.ndarray:
        return np.flatnonzero((res.state.listed[0, li] == 1) & (res.state.listed[1, li] == 0))

    extra = np.setdiff1d(official_only(with_false), official_only(without))
    assert extra.shape[0] > 0  # on the official list, not on the true-records (shadow) one ...
    # ... and each of them has false records in the dossier: the camera's false matches
    assert (with_false.state.counters[C["records_false"], extra] > 0).all()
    assert without.state.counters[C["records_false"]].sum() == 0
