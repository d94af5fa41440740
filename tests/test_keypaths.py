"""Key paths: one syntax (quoted names with dots), schema-checked reads and writes, one dump."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import credsim
from credsim.scenario import keypath
from credsim.scenario.keypath import KeyPathError, dump, get_value, parse, set_value, show
from credsim.scenario.load import builtin_names, load_scenario, parse_set

JAYWALK = ("scoring", "points", "rules", "traffic.jaywalk")


@pytest.mark.parametrize("text", [
    'scoring.points.rules["traffic.jaywalk"]',
    "scoring.points.rules['traffic.jaywalk']",
    "scoring.points.rules[traffic.jaywalk]",  # the bracket form sweep files have used
    'scoring.points.rules.["traffic.jaywalk"]',
    '  scoring.points.rules["traffic.jaywalk"] ',
])
def test_every_spelling_of_a_dotted_name_reads_the_same_keys(text: str) -> None:
    assert parse(text) == JAYWALK


def test_list_form_indexes_and_escapes() -> None:
    assert parse(["behaviours", "traffic.violation", "rate"]) == ("behaviours", "traffic.violation", "rate")
    assert parse("scoring.grades.bands[0].min") == ("scoring", "grades", "bands", 0, "min")
    assert parse('a["say \\"hi\\"\\\\"].b') == ("a", 'say "hi"\\', "b")
    assert show(("behaviours", "traffic.violation", "rate")) == 'behaviours["traffic.violation"].rate'
    assert show(("scoring", "grades", "bands", 0, "min")) == "scoring.grades.bands[0].min"
    assert parse("a[\u00b2]") == ("a", "\u00b2")  # a superscript two is a digit to Python, not an index


@pytest.mark.parametrize("text", ["", "a..b", "a.", ".a", 'a["b', 'a["b"', "a[b", "a[]", 'a[""]', "a]b", "a[b]c",
                                  ".".join(["a"] * 100), "a" * 3000])
def test_malformed_paths_are_key_path_errors(text: str) -> None:
    with pytest.raises(KeyPathError):
        parse(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 99), st.text(st.characters(blacklist_categories=("Cs",)), min_size=1,
                                                      max_size=12)), min_size=1, max_size=8))
def test_show_then_parse_gives_the_keys_back(keys: list[str | int]) -> None:
    """Whatever a name holds (dots, quotes, brackets, backslashes), the shown path reads back as the same keys."""
    assert parse(show(keys)) == tuple(keys)


@pytest.mark.parametrize("name", builtin_names())
def test_dump_is_the_one_loadable_form_with_aliases(name: str) -> None:
    scen = load_scenario(name)
    data = dump(scen)
    assert load_scenario(data) == scen
    for sanction in data.get("sanctions", {}).values():
        assert "list_" not in sanction["when"]
    for path in (("run", "days"), ("population", "size")):
        assert get_value(data, path) == get_value(dump(load_scenario(data)), path)


def test_manifest_scenario_uses_the_alias(run_tiny) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import tiny

    run = run_tiny(tiny(population__size=300, run__days=2))
    when = run.manifest["scenario"]["sanctions"]["flight_ban"]["when"]
    assert when == {"list": "defaulters"}
    assert load_scenario(run.manifest["scenario"]) == load_scenario(tiny(population__size=300, run__days=2))


def test_reads_and_writes_check_the_schema() -> None:
    data = dump(load_scenario("city-points"))
    assert get_value(data, "sanctions.court_travel_ban.when.list") == "court_defaulters"
    with pytest.raises(KeyPathError, match=r"did you mean 'list'\?"):
        get_value(data, "sanctions.court_travel_ban.when.lst")
    with pytest.raises(KeyPathError, match=r"did you mean 'list'\?"):
        set_value(data, "sanctions.court_travel_ban.when.list_", "x")  # the Python name is not a key
    with pytest.raises(KeyPathError, match=r"did you mean 'traffic.violation'\?"):
        set_value(data, 'behaviours["traffic.violaton"].rate', 0.1)  # a typo does not create a behaviour
    with pytest.raises(KeyPathError, match=r'quoted: behaviours\["traffic.violation"\].rate'):
        set_value(data, "behaviours.traffic.violation.rate", 0.1)
    with pytest.raises(KeyPathError, match="holds a value"):
        set_value(data, "population.size.x", 1)
    # absent optional sections are created on the way; a whole new entry may be set
    assert set_value(data, "scoring.points.cap.max_loss", 50) == ("scoring", "points", "cap", "max_loss")
    set_value(data, 'behaviours["civic.new"]', {"kind": "good_deed", "rate": 0.01})
    assert set_value(data, "scoring.grades.bands.1.min", 1031) == ("scoring", "grades", "bands", 1, "min")
    scen = load_scenario(data)
    assert scen.scoring.points is not None and scen.scoring.points.cap is not None
    assert scen.scoring.points.cap.max_loss == 50 and scen.behaviours["civic.new"].rate == 0.01
    keypath.delete_value(data, "sanctions.court_travel_ban")
    assert "court_travel_ban" not in load_scenario(data).sanctions


def test_a_deep_set_is_a_clean_error_not_a_recursion() -> None:
    deep = "x=" + "[" * 50_000 + "]" * 50_000
    with pytest.raises(credsim.ScenarioError) as err:
        parse_set([deep, "population." * 100 + "size=1"])
    text = str(err.value)
    assert ("nesting at most" in text or "maximum nesting depth" in text) and "at most 64 keys" in text
    assert "Traceback" not in text and len(text) < 2000


def test_errors_name_the_override_not_the_builtin_file() -> None:
    with pytest.raises(credsim.ScenarioError) as err:
        load_scenario("city-points", parse_set(['behaviours["traffic.violation"].rate=-1']))
    text = str(err.value)
    assert "--set 'behaviours[\"traffic.violation\"].rate=-1': at 'behaviours.traffic.violation.rate'" in text
    assert "greater than or equal to 0" in text and "city-points.yaml" not in text
    with pytest.raises(credsim.ScenarioError) as err:
        load_scenario("city-points", {'behaviours["traffic.violation"].rate': 2})
    assert "overrides argument 'behaviours[\"traffic.violation\"].rate'" in str(err.value)
    assert "city-points.yaml" not in str(err.value)
    with pytest.raises(credsim.ScenarioError) as err:
        credsim.run("city-points", population=-5, out="never")
    assert "the population argument (-5)" in str(err.value)
    # a share set so that a dimension no longer sums to one: the override that wrote inside it
    with pytest.raises(credsim.ScenarioError) as err:
        load_scenario("city-points", parse_set(["population.groups.hukou.local=0.9"]))
    assert "--set population.groups.hukou.local=0.9: at 'population.groups'" in str(err.value)


def test_python_api_reaches_dotted_names() -> None:
    scen = load_scenario("city-points", {'behaviours["traffic.violation"].rate': 0.01,
                                         ("scoring", "points", "rules", "traffic.jaywalk"): -7,
                                         "scoring.points.rules[civic.volunteer]": 6})
    assert scen.behaviours["traffic.violation"].rate == 0.01
    assert scen.scoring.points is not None
    assert scen.scoring.points.rules["traffic.jaywalk"] == -7 and scen.scoring.points.rules["civic.volunteer"] == 6


def test_unknown_keys_in_a_file_or_value_suggest_the_closest() -> None:
    from tests.conftest import tiny

    with pytest.raises(credsim.ScenarioError, match=r"at 'behaviors': no such key .*did you mean 'behaviours'\?"):
        load_scenario(tiny(behaviors={}))
    with pytest.raises(credsim.ScenarioError) as err:  # a whole mapping set by an override, checked inside
        load_scenario("city-points", {'behaviours["traffic.violation"]': {"kind": "infraction", "rat": 0.1}})
    assert "overrides argument 'behaviours[\"traffic.violation\"]': at 'behaviours.traffic.violation.rat': " \
        "no such key (unknown keys are errors; did you mean 'rate'" in str(err.value)


TOKENS = [*'.[]"\'\\= 0_-', "behaviours", "traffic.violation", "rate", "population", "size", "run", "when", "list"]
SYNTAX = st.lists(st.sampled_from(TOKENS), max_size=12).map("".join)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.one_of(SYNTAX, st.text(max_size=40)), st.one_of(SYNTAX, st.text(max_size=20)))
def test_any_typed_set_is_applied_or_a_clean_error(path: str, value: str) -> None:
    """Whatever is typed after --set, the loader returns a scenario or a ScenarioError: never another exception."""
    from tests.conftest import tiny

    try:
        load_scenario(tiny(), parse_set([f"{path}={value}"]))
    except credsim.ScenarioError as exc:
        assert str(exc).startswith("invalid override")


def test_dashboard_knobs_are_overrides_named_by_their_control() -> None:
    from credsim.dashboard import knobs as kn

    base = load_scenario("city-points")
    with pytest.raises(credsim.ScenarioError) as err:
        kn.apply_knobs(base, {"entry_count.court_defaulters": 0})
    assert "dashboard knob 'Records needed to enter the list court defaulters' = 0: " \
        "at 'lists.court_defaulters.entry.count'" in str(err.value)
    rules = {k.id: k for k in kn.knobs_for(base)}["points_per_infraction"]
    assert 'scoring.points.rules["traffic.violation"]' in [kn.dotted(p) for p in rules.paths]
    scen = kn.apply_knobs(base, {"sanctions": ["court_travel_ban"]}, {("population", "size"): 1000})
    assert list(scen.sanctions) == ["court_travel_ban"] and scen.population.size == 1000
