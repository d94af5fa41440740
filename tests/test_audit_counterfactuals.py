"""The harms' counterfactual scenarios: what each transform changes, and the own-domain engine rule."""

from __future__ import annotations

import pytest

import credsim
from credsim.audit.counterfactuals import BY_HARM, PERFECT_SUFFIX, apply, lawful_behaviours

from .conftest import tiny

pytestmark = pytest.mark.usefixtures("one_thread")


def test_no_false_records_zeroes_every_false_rate_and_nothing_else() -> None:
    scen = credsim.load_scenario("integrated")
    cf = apply(BY_HARM["wrongful"], scen)
    assert cf is not None
    assert all(s.false_rate == 0 for s in cf.sensors.values())
    a, b = scen.model_dump(mode="json"), cf.model_dump(mode="json")
    for name in a["sensors"]:
        a["sensors"][name]["false_rate"] = 0.0
    for key in ("name", "description"):
        a.pop(key)
        b.pop(key)
    assert a == b
    # a scenario without false records needs no counterfactual run: the harm is exactly 0
    assert apply(BY_HARM["wrongful"], cf) is None


def test_perfect_observation_sees_every_infraction_and_leaves_lawful_acts_as_they_were() -> None:
    scen = credsim.load_scenario("integrated")
    cf = apply(BY_HARM["missed"], scen)
    assert cf is not None
    lawful = set(lawful_behaviours(scen))
    assert {"speech.post_critical", "speech.search_sensitive", "commerce.video_games"} <= lawful
    assert "civic.protest" not in lawful
    shared = cf.shared_sensors()
    for name, sen in cf.sensors.items():
        assert sen.false_rate == 0
        unlawful = [b for b in sen.observes if b not in lawful]
        if name in shared and unlawful:
            assert sen.coverage == sen.detection == 1 and not sen.coverage_by and not sen.surveillance
            assert not [b for b in sen.observes if b in lawful]
        elif name in scen.sensors:  # the lawful part keeps its own coverage and detection (and draws)
            orig = scen.sensors[name]
            assert (sen.coverage, sen.detection, sen.coverage_by) == (orig.coverage, orig.detection, orig.coverage_by)
    # super_app observes late bills (infraction) and good deeds (lawful): split in two, next to each other
    assert "super_app" + PERFECT_SUFFIX in cf.sensors
    assert shared.index("super_app" + PERFECT_SUFFIX) == shared.index("super_app") + 1
    assert cf.sensors["keyword_filter"].detection == scen.sensors["keyword_filter"].detection  # speech: lawful


def test_lawful_free_removes_points_lists_and_negative_features_of_lawful_acts() -> None:
    scen = credsim.load_scenario("integrated")
    cf = apply(BY_HARM["lawful"], scen)
    assert cf is not None and cf.scoring.points is not None
    for b in ("speech.post_critical", "speech.search_sensitive", "commerce.video_games"):
        assert b not in cf.scoring.points.rules
    assert cf.lists["key_persons"].entry.records == ["civic.protest"]
    assert cf.scoring.points.rules["civic.protest"] == -50  # unlawful: still punished
    cs = apply(BY_HARM["lawful"], credsim.load_scenario("commercial-score"))
    assert cs is not None and cs.scoring.model is not None
    assert cs.scoring.model.features["video_games"].records == []  # a negative feature for a lawful purchase
    assert cs.scoring.model.features["diapers"].records == ["family.diapers"]  # positive weight: kept


def test_no_association_removes_association_points_and_contact_features() -> None:
    cf = apply(BY_HARM["association"], credsim.load_scenario("integrated"))
    assert cf is not None and all(li.association_points == 0 for li in cf.lists.values())
    cs = apply(BY_HARM["association"], credsim.load_scenario("commercial-score"))
    assert cs is not None and cs.scoring.model is not None
    assert "contacts_listed" not in cs.scoring.model.features
    assert all("contacts_listed" not in d.features for d in cs.scoring.model.dimensions.values())


def test_own_domain_sanctions_use_only_records_of_the_attempts_domain(run_tiny) -> None:  # type: ignore[no-untyped-def]
    """A court list bans flights (travel) and a court filing (court); a points grade bans loans (finance).
    Own-domain: the list still bans the court filing exactly as before, never the flight; the loan ban
    follows the grade of the base score less the finance points lost only."""
    scen = tiny(population__size=4000, run__days=120, **{
        "behaviours__court.filing": {"kind": "attempt", "rate": 0.05},
        "behaviours__finance.loan": {"kind": "attempt", "rate": 0.05},
        "behaviours__finance.arrears": {"kind": "infraction", "rate": 0.01},
        "behaviours__court.default__rate": 0.01,
        "sensors__banks": {"observes": ["finance.arrears"]},
        "scoring__points__rules": {"traffic.violation": -20, "court.default": -50, "finance.arrears": -20},
        "sanctions": {
            "flight_ban": {"when": {"list": "defaulters"}, "attempts": ["travel.flight", "court.filing"]},
            "loan_ban": {"when": {"grades": ["B", "C"]}, "attempts": ["finance.loan"]},
        },
        "responses": {},
    })
    sys_run = run_tiny(scen, seed=3)
    cf = apply(BY_HARM["cross_context"], credsim.load_scenario(scen))
    assert cf is not None and all(s.own_domain for s in cf.sanctions.values())
    cf_run = run_tiny(cf, seed=3)

    def denied(run: credsim.Run, item: str) -> int:
        return int(run.sql("SELECT sum(value) FROM metrics WHERE dimension = 'all' AND metric = ?",
                           [f"denied.{item}"])[0][0] or 0)

    assert denied(sys_run, "travel.flight") > 0 and denied(cf_run, "travel.flight") == 0
    assert denied(cf_run, "court.filing") == denied(sys_run, "court.filing") > 0
    # loans: only finance points count; traffic and court losses no longer lower the grade that denies them
    assert 0 < denied(cf_run, "finance.loan") < denied(sys_run, "finance.loan")
