"""Every scenario mistake names the file, the key path and what was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

import credsim
from credsim.scenario.load import builtin_dir

from .conftest import tiny


def write(tmp_path: Path, data: dict | str) -> Path:  # type: ignore[type-arg]
    p = tmp_path / "scen.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def error_for(tmp_path: Path, data: dict | str) -> credsim.ScenarioError:  # type: ignore[type-arg]
    p = write(tmp_path, data)
    with pytest.raises(credsim.ScenarioError) as ei:
        credsim.load_scenario(p)
    err = ei.value
    assert str(p) in str(err), "the message names the file"
    return err


CASES = [
    # (what is wrong, change, expected path, words expected in the message)
    ("misspelt section", {"behaviors": {}}, "behaviors", "no such key"),
    ("misspelt nested key", {"population__sizee": 5}, "population.sizee", "no such key"),
    ("missing required key", {"population__size": None}, "population.size", "required"),
    ("rate above 1", {"behaviours__traffic.violation__rate": 1.5}, "behaviours.traffic.violation.rate",
     "less than or equal to 1"),
    ("negative population", {"population__size": -3}, "population.size", "greater than or equal to 1"),
    ("absurd population", {"population__size": 1e308}, "population.size", "int"),
    ("NaN rate", {"behaviours__traffic.violation__rate": float("nan")}, "behaviours.traffic.violation.rate",
     "finite"),
    ("text where a number is meant", {"behaviours__traffic.violation__rate": "often"},
     "behaviours.traffic.violation.rate", "valid number"),
    ("shares not summing to 1", {"population__groups__hukou": {"local": 0.7, "migrant": 0.2}},
     "population.groups", "sum to 1"),
    ("sensor observes an undeclared behaviour", {"sensors__cameras__observes": ["traffic.speeding"]},
     "sensors.cameras.observes[0]", "a behaviour declared in the scenario"),
    ("sanction names an undeclared list", {"sanctions__flight_ban__when": {"list": "debtors"}},
     "sanctions.flight_ban.when.list", "a list declared"),
    ("sanction on a behaviour that is not an attempt", {"sanctions__flight_ban__attempts": ["traffic.violation"]},
     "sanctions.flight_ban.attempts[0]", "kind 'attempt'"),
    ("grade bands not descending",
     {"scoring__grades__bands": [{"name": "A", "min": 900}, {"name": "B", "min": 960}, {"name": "C"}]},
     "scoring.grades.bands", "descending"),
    ("undeclared domain", {"behaviours__gaming.hours": {"kind": "other", "rate": 0.1}},
     "behaviours.gaming.hours", "domain"),
    ("unknown group value", {"behaviours__traffic.violation__by": {"region": {"suburb": 2.0}}},
     "behaviours.traffic.violation.by.region.suburb", "a value of group 'region'"),
    ("unknown trait", {"behaviours__traffic.violation__traits": {"greed": 0.5}},
     "behaviours.traffic.violation.traits.greed", "a trait"),
    ("points rule for an unknown record type", {"scoring__points__rules__traffic.speeding": -5},
     "scoring.points.rules.traffic.speeding", "a record type"),
    ("list without a way out", {"lists__defaulters__exit": {}}, "lists.defaulters.exit", "a way out"),
    ("wrong kind name", {"behaviours__traffic.violation__kind": "crime"}, "behaviours.traffic.violation.kind",
     "'infraction'"),
    ("bad sharing name", {"sharing": ["cameras", "satellites"]}, "sharing[1]", "a sensor"),
    ("boolean where a count is meant", {"population__size": True}, "population.size", "valid integer"),
    ("text where a count is meant", {"run__days": "12"}, "run.days", "valid integer"),
]


@pytest.mark.parametrize("what,change,path,words", CASES, ids=[c[0] for c in CASES])
def test_schema_error_names_path_and_expectation(tmp_path: Path, what: str, change: dict, path: str,  # type: ignore[type-arg]
                                                 words: str) -> None:
    err = error_for(tmp_path, tiny(**change))
    assert path in err.paths, f"{what}: expected path {path!r} in {err.paths}"
    line = [ln for ln in str(err).splitlines() if f"'{path}'" in ln]
    assert line and words in line[0], f"{what}: {words!r} not in {line}"


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, "name: x\npopulation:\n  size: [1, 2\n")
    assert "valid YAML" in str(err)
    assert ":4:" in str(err) or ":3:" in str(err)


def test_line_numbers_point_at_the_key(tmp_path: Path) -> None:
    text = yaml.safe_dump(tiny(), sort_keys=False).replace("rate: 0.01", "rate: 2.0", 1)
    p = write(tmp_path, text)
    with pytest.raises(credsim.ScenarioError) as ei:
        credsim.load_scenario(p)
    bad_line = next(i for i, ln in enumerate(text.splitlines(), 1) if "rate: 2.0" in ln)
    assert f"{p}:{bad_line}:" in str(ei.value)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = yaml.safe_dump(tiny(), sort_keys=False) + "name: again\n"
    err = error_for(tmp_path, text)
    assert "duplicate key" in str(err) and "name" in err.paths


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    err = error_for(tmp_path, tiny(population__sizee=1, behaviours__traffic=None,
                                   **{"behaviours__traffic.violation__rate": 3}))
    assert len(err.problems) >= 2


def test_yaml_tags_cannot_build_python_objects(tmp_path: Path) -> None:
    err = error_for(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\n")
    assert "valid" in str(err)


def test_extends_cannot_leave_the_folder(tmp_path: Path) -> None:
    err = error_for(tmp_path, textwrap.dedent("""\
        extends: ../../etc/passwd.yaml
        name: x
    """))
    assert "extends" in err.paths


def test_builtins_are_valid() -> None:
    names = credsim.builtin_names()
    assert {"baseline", "city-points"} <= set(names)
    for name in names:
        credsim.load_scenario(name)
    assert (builtin_dir() / "city-points.yaml").exists()


def test_overrides_are_validated_too() -> None:
    with pytest.raises(credsim.ScenarioError) as ei:
        credsim.load_scenario("city-points", {"population.size": 0})
    assert "population.size" in ei.value.paths
