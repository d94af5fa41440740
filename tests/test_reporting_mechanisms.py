"""The mechanisms the reporting names, each checked citizen by citizen in a small run of the
built-in scenario that holds it (docs/mechanisms.md maps them).

One traced run of ``integrated`` (every citizen traced) serves most tests; the rates of the
mechanisms under test are raised by ``--set``-style overrides so that a few thousand citizens
over two months show each of them many times. Every check is on every record, listing or
denial, not on an average, except where a test says which identity it checks exactly.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import credsim
from credsim import names as nm
from credsim.scenario.load import ScenarioError, load_scenario
from tests.terminal import typed

pytestmark = pytest.mark.usefixtures("one_thread")

N, DAYS = 3000, 60
EDU = ("education.library_flagged", "education.survey_dissent", "education.campus_post")
EDU_SOURCES = {"education.library_flagged": "university_library", "education.survey_dissent": "ideology_survey",
               "education.campus_post": "campus_forum"}
BOOST: dict[str, Any] = {
    "population.size": N, "run.days": DAYS, "run.trace": N,
    'behaviours["education.library_flagged"].rate': 0.02,
    'behaviours["education.survey_dissent"].rate': 0.005,
    'behaviours["education.campus_post"].rate': 0.02,
    'behaviours["media.banned_tv"].rate': 0.1,
    "sensors.streaming_monitor.detection": 0.5,
    'behaviours["speech.post_critical"].rate': 0.02,
    'behaviours["family.elder_visit_missed"].rate': 0.02,
    'behaviours["commerce.luxury_spending"].rate': 0.02,
    "sensors.anticorruption_watch.false_rate": 0.002,
    'behaviours["court.judgment_default"].rate': 0.01,
    'behaviours["finance.property_purchase"].rate': 0.01,
    'behaviours["finance.insurance_application"].rate': 0.02,
    'behaviours["employment.public_job"].rate': 0.05,
    # the censor leaves first-tier cities alone in this run, so their posts must lose no reach
    "sensors.regional_censor.coverage_by.region.tier1_city": 0.0,
}


def _run(tmp: Path, name: str, extra: dict[str, Any] | None = None, scenario: str = "integrated") -> Path:
    scen = load_scenario(scenario, {**BOOST, **(extra or {})} if scenario == "integrated" else extra)
    return credsim.run(scen, out=tmp / name, threads=1).dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("integrated"), "run")


def _traces(d: Path, stage: str) -> list[dict[str, Any]]:
    t = pq.read_table(d / "traces.parquet")
    return t.filter(pc.equal(t.column("stage"), stage)).to_pylist()


def _official_records(d: Path) -> list[dict[str, Any]]:
    return [r for r in _traces(d, "record") if r["view"] in ("official", "both")]


def _citizens(d: Path, column: str) -> np.ndarray:
    return pq.read_table(d / "citizens.parquet", columns=[column]).column(column).to_numpy(zero_copy_only=False)


def _metric_by_group(d: Path, metric: str, dimension: str) -> dict[str, float]:
    rows = duckdb.execute(
        f"SELECT \"group\", sum(value) FROM read_parquet('{d / 'metrics.parquet'}') "
        "WHERE metric = ? AND dimension = ? GROUP BY 1", [metric, dimension]).fetchall()
    return {g: float(v) for g, v in rows}


def _listing_spans(d: Path, lst: str) -> dict[int, list[tuple[int, int]]]:
    """Official (entry day, exit day) spans per citizen on list ``lst``, from the list traces."""
    spans: dict[int, list[tuple[int, int]]] = defaultdict(list)
    open_: dict[int, int] = {}
    for r in sorted(_traces(d, "list"), key=lambda r: (r["day"], r["value"])):
        if r["item"] != lst or r["view"] not in ("official", "both"):
            continue
        if r["value"] > 0:
            open_[r["citizen"]] = r["day"]
        else:
            spans[r["citizen"]].append((open_.pop(r["citizen"]), r["day"]))
    for c, day in open_.items():
        spans[c].append((day, 10**9))
    return spans


def _entries_follow_records(d: Path, lst: str, types: set[str], count: int, window: int) -> int:
    """Every official entry to ``lst`` follows ``count`` official records of ``types`` within ``window``."""
    recs: dict[int, list[int]] = defaultdict(list)
    for r in _official_records(d):
        if r["item"] in types:
            recs[r["citizen"]].append(r["day"])
    entries = 0
    for c, spans in _listing_spans(d, lst).items():
        for a, _b in spans:
            n = sum(1 for day in recs[c] if a - window < day <= a)
            assert n >= count, f"citizen {c} entered {lst} on day {a} with {n} qualifying records"
            entries += 1
    return entries


def test_students_political_file_grows_only_from_the_declared_sources(run_dir: Path) -> None:
    occupation = _citizens(run_dir, "occupation")
    edu = [r for r in _official_records(run_dir) if r["item"] in EDU]
    assert len(edu) > 100
    for r in edu:
        assert occupation[r["citizen"]] == "student", r
        assert r["source"] == EDU_SOURCES[r["item"]], r
    entered = _entries_follow_records(run_dir, "student_political_file", set(EDU), 3, 730)
    assert entered > 10
    on_list = _citizens(run_dir, "on_student_political_file")
    assert set(occupation[on_list.astype(bool)]) == {"student"}


def test_a_post_suppressed_by_region_reaches_fewer_contacts_but_makes_no_record(
        run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # the same run with a censor that hides nothing: same citizens, events and sensors
    open_dir = _run(tmp_path_factory.mktemp("open"), "run", {"sensors.regional_censor.suppress": 0.0})
    q = ("SELECT day, dimension, \"group\", metric, value FROM read_parquet('{}') "
         "WHERE metric NOT LIKE 'reach%' ORDER BY ALL")
    censored = duckdb.execute(q.format(run_dir / "metrics.parquet")).fetchall()
    assert censored == duckdb.execute(q.format(open_dir / "metrics.parquet")).fetchall()
    for f in ("citizens.parquet", "events.parquet"):
        # pandas equality: NaN (no cross-context share) in the same places counts as equal
        assert pq.read_table(run_dir / f).to_pandas().equals(pq.read_table(open_dir / f).to_pandas()), f
    assert not [r for r in _traces(run_dir, "record") if r["source"] == "regional_censor"]

    post = "speech.post_critical"
    reach = _metric_by_group(run_dir, nm.REACH(post), "region")
    lost = _metric_by_group(run_dir, nm.REACH_LOST(post), "region")
    full = _metric_by_group(open_dir, nm.REACH(post), "region")
    assert _metric_by_group(open_dir, nm.REACH_LOST(post), "region") == {g: 0.0 for g in full}
    for g in full:  # every contact a post had is either reached or lost (fixed point: 2^-20 per post)
        assert reach[g] + lost[g] == pytest.approx(full[g], abs=1e-3), g
    assert lost["tier1_city"] == 0.0 and lost["rural"] > 0 and lost["other_city"] > 0
    assert reach["rural"] < full["rural"]
    # a caught post is hidden from 80% of the poster's contacts, never more
    assert lost["rural"] <= 0.8 * full["rural"]


def test_censors_cannot_share_and_watch_only_speech() -> None:
    with pytest.raises(ScenarioError) as exc:
        load_scenario("integrated", {"sharing[0]": "regional_censor"})
    assert "sharing[0]" in str(exc.value) and "suppress" in str(exc.value)
    with pytest.raises(ScenarioError) as exc:
        load_scenario("integrated", {"sensors.regional_censor.observes": ["traffic.jaywalk"]})
    assert "sensors.regional_censor.observes[0]" in str(exc.value) and "speech" in str(exc.value)
    with pytest.raises(ScenarioError) as exc:
        load_scenario("integrated", {"sensors.regional_censor.suppress": 1.5})
    assert "sensors.regional_censor.suppress" in str(exc.value)
    # with no sharing list, every sensor but the censor shares
    scen = load_scenario("integrated", {"sharing": None})
    assert "regional_censor" not in scen.shared_sensors() and "keyword_filter" in scen.shared_sensors()


def test_elder_care_fines_fall_only_on_children_of_parents_over_60(run_dir: Path) -> None:
    fines = _metric_by_group(run_dir, nm.OBSERVED("elder_care_complaints"), "parents_over_60")
    missed = _metric_by_group(run_dir, nm.EVENTS("family.elder_visit_missed"), "parents_over_60")
    assert missed["no"] == 0 and fines["no"] == 0
    assert missed["yes"] > 1000 and fines["yes"] > 50
    parents = _citizens(run_dir, "parents_over_60")
    for r in _official_records(run_dir):
        if r["item"] == "family.elder_visit_missed":
            assert r["source"] == "elder_care_complaints" and parents[r["citizen"]] == "yes", r


def test_the_anticorruption_sensor_watches_officials_only(run_dir: Path) -> None:
    seen = _metric_by_group(run_dir, nm.OBSERVED("anticorruption_watch"), "occupation")
    false = _metric_by_group(run_dir, nm.FALSE_OBSERVED("anticorruption_watch"), "occupation")
    bought = _metric_by_group(run_dir, nm.EVENTS("commerce.luxury_spending"), "occupation")
    assert seen["civil_servant"] > 0 and false["civil_servant"] > 0 and bought["civil_servant"] > seen["civil_servant"]
    others = [g for g in seen if g != "civil_servant"]
    assert all(seen[g] == 0 and false[g] == 0 and bought[g] == 0 for g in others)
    _entries_follow_records(run_dir, "corruption_probe", {"commerce.luxury_spending"}, 2, 180)


@pytest.mark.parametrize(("sanction", "lst", "minimum"), [
    ("media_travel_ban", "media_watch", 20),
    ("court_property_insurance_ban", "court_defaulters", 50),
    ("probe_travel_ban", "corruption_probe", 1),
    ("student_file_exclusion", "student_political_file", 10),
])
def test_list_sanctions_deny_only_while_listed(run_dir: Path, sanction: str, lst: str, minimum: int) -> None:
    spans = _listing_spans(run_dir, lst)
    ev = pq.read_table(run_dir / "events.parquet").to_pylist()
    denials = [r for r in ev if r["kind"] == "denial" and r["sanction"] == sanction
               and r["view"] in ("official", "both")]
    assert len(denials) >= minimum
    for r in denials:  # entries and exits take effect in classify, before the day's sanctions
        assert any(a <= r["day"] < b for a, b in spans.get(r["citizen"], [])), r


def test_banned_tv_and_posts_put_citizens_on_the_travel_ban_list(run_dir: Path) -> None:
    n = _entries_follow_records(run_dir, "media_watch", {"media.banned_tv", "speech.post_critical"}, 4, 365)
    assert n > 20
    false_tv = [r for r in _official_records(run_dir) if r["item"] == "media.banned_tv" and r["true"] == 0]
    assert false_tv and all(r["source"] == "streaming_monitor" for r in false_tv)


def test_a_foreign_platform_hands_posts_over_after_the_request_delay(run_dir: Path) -> None:
    posts = {(r["citizen"], r["day"]) for r in _traces(run_dir, "event") if r["item"] == "speech.post_critical"}
    handed = [r for r in _official_records(run_dir) if r["source"] == "foreign_platform"]
    assert len(handed) > 5
    for r in handed:
        assert r["day"] >= 30 and (r["citizen"], r["day"] - 30) in posts, r


def test_opt_in_enrolment_records_only_those_who_consented(tmp_path: Path) -> None:
    small = {"population.size": N, "run.days": 40}
    auto = _run(tmp_path, "auto", small, scenario="commercial-score")
    opt_in = _run(tmp_path, "opt_in", small, scenario="commercial-score-opt-in")
    for sensor in ("payments", "e_commerce"):
        a = _metric_by_group(auto, nm.OBSERVED(sensor), "score_consent")
        o = _metric_by_group(opt_in, nm.OBSERVED(sensor), "score_consent")
        assert a["not_given"] > 0 and o["not_given"] == 0, sensor
        # the same citizens, draws and coverage for those who consented: the very same records
        assert a["given"] == o["given"] > 0, sensor


# --- as a person types it: the what-if audit and a censor misplaced in sharing ----------------

def test_the_opt_in_what_if_audits_as_typed(tmp_path: Path) -> None:
    aud = tmp_path / "aud"
    res = typed("audit", "commercial-score", "--against", "commercial-score-opt-in", "-n", "3000", "-d", "40",
                "-k", "2", "--out", str(aud), cwd=tmp_path)
    assert res.rc == 0 and not res.traceback, res.out
    fig = json.loads((aud / "audit.json").read_text())
    assert fig["meta"]["baseline_scenario"] == "commercial-score-opt-in"
    for rep in fig["replicates"]:  # automatic enrolment records more than enrolment by consent
        assert rep["system"][nm.OBSERVED("payments")] > rep["baseline"][nm.OBSERVED("payments")] > 0
    assert fig["intervals"][nm.OBSERVED("payments")]["k"] == 2


def test_a_censor_in_sharing_is_a_clean_error_as_typed(tmp_path: Path) -> None:
    res = typed("run", "integrated", "-n", "500", "-d", "5", "--set", "sharing[0]=regional_censor",
                "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert res.clean_error, res.out
    assert "sharing[0]" in res.out and "suppress" in res.out


def test_the_audit_reports_fines_by_group_with_intervals(tmp_path: Path) -> None:
    from credsim.audit.paired import audit

    ov = {k: v for k, v in BOOST.items() if k != "run.trace"}
    aud = audit("integrated", replicates=2, population=2000, days=30, trace=0, out=tmp_path / "aud",
                overrides=ov, report=False, threads=1)
    res = json.loads((aud / "audit.json").read_text())
    rows = {(r["dimension"], r["group"]): r for r in res["observed_by_group"]
            if r["metric"] == nm.OBSERVED("elder_care_complaints")}
    assert rows[("parents_over_60", "no")]["count"]["mean"] == 0
    yes = rows[("parents_over_60", "yes")]
    assert yes["count"]["k"] == 2 and yes["count"]["lo"] <= yes["count"]["mean"] <= yes["count"]["hi"]
    # the interval's mean is the mean of what each replicate's metrics table says
    per_run = [_metric_by_group(aud / pair[0], nm.OBSERVED("elder_care_complaints"), "parents_over_60")["yes"]
               for pair in res["meta"]["pairs"]]
    assert yes["count"]["mean"] == pytest.approx(sum(per_run) / 2) and min(per_run) > 0
    population = [_metric_by_group(aud / pair[0], nm.POPULATION, "parents_over_60")["yes"] / 30
                  for pair in res["meta"]["pairs"]]  # the population stock, summed over 30 days
    assert yes["per_1000"]["mean"] == pytest.approx(
        sum(1000 * f / p for f, p in zip(per_run, population, strict=True)) / 2)
