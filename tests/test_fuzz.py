"""Hostile scenario files: every malformed input is refused with a ScenarioError naming the place.

Two parts: a table of named attacks and out-of-range numbers, each with the key path and
the expectation the message must name; and a Hypothesis fuzz test with a fixed budget
(derandomised, so CI is reproducible) over mutated valid scenarios, asserting the loader
returns a Scenario or raises ScenarioError -- never another exception, a hang (a timer
turns one into a failure) or a crash. The long run is ``python -m benchmarks.fuzz``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import credsim
from credsim.scenario.load import ScenarioError
from tests.conftest import tiny
from tests.fuzzing import BILLION_LAUGHS, QUADRATIC, Tally, one_case, time_limit

TALLY = Tally()


def _yaml(**changes: Any) -> str:
    return yaml.safe_dump(tiny(**changes), sort_keys=False, allow_unicode=True)


def _with_rate(rate: Any) -> str:
    d = tiny()
    d["behaviours"]["traffic.violation"]["rate"] = rate
    return yaml.safe_dump(d, sort_keys=False)


def _with(section_path: list[str], value: Any) -> str:
    d = tiny()
    cur = d
    for k in section_path[:-1]:
        cur = cur.setdefault(k, {})
    cur[section_path[-1]] = value
    return yaml.safe_dump(d, sort_keys=False, allow_unicode=True)


# (case id, file text, key path the message must name (None: wherever the expansion stopped), words it must contain)
ATTACKS: list[tuple[str, str, str | None, str]] = [
    ("population 1e308", _yaml(population__size=1e308), "population.size", "1e+308"),
    ("population NaN", _yaml(population__size=float("nan")), "population.size", "valid integer"),
    ("population negative", _yaml(population__size=-5), "population.size", "greater than or equal to 1"),
    ("population fractional", _yaml(population__size=2.5), "population.size", "integer"),
    ("population 3e9", _yaml(population__size=3_000_000_000), "population.size", "less than or equal"),
    ("days huge", _yaml(run__days=10**12), "run.days", "less than or equal to 36500"),
    ("days zero", _yaml(run__days=0), "run.days", "greater than or equal to 1"),
    ("days inf", _yaml(run__days=float("inf")), "run.days", "valid integer"),
    ("seed negative", _yaml(run__seed=-1), "run.seed", "greater than or equal to 0"),
    ("seed 2**64", _yaml(run__seed=2**64), "run.seed", "less than or equal"),
    ("trace negative", _yaml(run__trace=-1), "run.trace", "greater than or equal to 0"),
    ("rate above 1", _with_rate(1.5), "behaviours.traffic.violation.rate", "less than or equal to 1"),
    ("rate negative", _with_rate(-0.01), "behaviours.traffic.violation.rate", "greater than or equal to 0"),
    ("rate inf", _with_rate(float("inf")), "behaviours.traffic.violation.rate", "finite"),
    ("rate NaN", _with_rate(float("nan")), "behaviours.traffic.violation.rate", "finite"),
    ("rate string", _with_rate("often"), "behaviours.traffic.violation.rate", "number"),
    ("detection above 1", _with(["sensors", "cameras", "detection"], 2.0), "sensors.cameras.detection",
     "less than or equal to 1"),
    ("false rate above 1", _with(["sensors", "cameras", "false_rate"], 1.01), "sensors.cameras.false_rate",
     "less than or equal to 1"),
    ("delay negative", _with(["sensors", "cameras", "delay_days"], -2), "sensors.cameras.delay_days",
     "greater than or equal to 0"),
    ("contacts negative", _with(["graph"], {"contacts": -3}), "graph.contacts", "greater than or equal to 0"),
    ("list count negative", _with(["lists", "defaulters", "entry", "count"], -1), "lists.defaulters.entry.count",
     "greater than or equal to 1"),
    ("points inf", _with(["scoring", "points", "base"], float("-inf")), "scoring.points.base", "finite"),
    ("points 1e308", _with(["scoring", "points", "rules", "court.default"], 1e308),
     "scoring.points.rules.court.default", "less than or equal"),
    ("shares NaN", _with(["population", "groups", "region", "city"], float("nan")), "population.groups.region.city",
     "finite"),
    ("shares do not sum", _with(["population", "groups", "region", "city"], 0.9), "population.groups",
     "sum to 1"),
    ("multiplier huge", _with(["behaviours", "court.default", "by"], {"region": {"city": 1e300}}),
     "behaviours.court.default.by.region.city", "less than or equal"),
    ("name too long", _yaml(name="x" * 10_000), "name", "at most 80 characters"),
    ("name unicode", _yaml(name="名前"), "name", "pattern"),
    ("name path", _yaml(name="../../etc"), "name", "pattern"),
    ("name NUL", _yaml(name="a\x00b"), "name", "pattern"),
    ("key unknown", _yaml(junk=1), "junk", "no such key"),
    ("section wrong type", _yaml(behaviours=["x"]), "behaviours", "dictionary"),
    ("billion laughs", "name: x\n" + BILLION_LAUGHS, None, "YAML nodes"),
    ("alias size bomb", "name: x\n" + QUADRATIC.replace("5000", "50000").replace("y" * 5000, "y" * 50_000), None,
     "characters"),
    ("python object tag", "name: !!python/object/apply:os.system ['touch /tmp/credsim-pwned']\n", "",
     "tag"),
    ("python name tag", "name: !!python/name:os.system\n", "", "tag"),
    ("custom tag", "name: !custom x\n", "", "tag"),
    ("deep flow nesting", "name: " + "[" * 100_000 + "]" * 100_000 + "\n", "", "nesting"),
    ("deep block nesting", "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v\n", "",
     "nesting"),
    ("recursive alias", "name: &r [*r]\n", None, "nesting"),
    ("file too big", "description: " + "x" * 1_100_000 + "\n", "", "at most 1000000 bytes"),
    ("duplicate key", "name: a\nname: b\n", "name", "duplicate"),
    ("not YAML", "name: [unclosed\n", "", "valid YAML"),
    ("control bytes", "name: a\x07b\n", "", "valid YAML"),
    ("top-level list", "- name\n", "", "mapping"),
    ("extends traversal", "extends: ../../../../etc/passwd\n", "extends", "built-in names"),
    ("extends absolute", "extends: /etc/passwd.yaml\n", "extends", "a file inside"),
    ("extends parent yaml", "extends: ../outside.yaml\n", "extends", "a file inside"),
    ("extends NUL", "extends: \"a\\0b.yaml\"\n", "extends", "file name"),
    ("extends self loop", "extends: scenario.yaml\n", "extends", "at most 4 levels"),
]


@pytest.mark.parametrize("text,path,words", [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attack_is_refused_with_its_place(tmp_path: Path, text: str, path: str | None, words: str) -> None:
    (tmp_path / "outside.yaml").write_text(_yaml())
    folder = tmp_path / "inner"
    folder.mkdir()
    f = folder / "scenario.yaml"
    f.write_text(text, encoding="utf-8")
    with time_limit(10), pytest.raises(ScenarioError) as info:
        credsim.load_scenario(f)
    TALLY.tried += 1
    TALLY.refused += 1
    msg = str(info.value)
    assert str(f) in msg
    assert path is None or any(p.path == path for p in info.value.problems), (path, info.value.paths)
    assert words.lower() in msg.lower(), msg
    assert len(msg) < 5000  # a 1 MB value is not echoed back


def test_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for target in (fifo, tmp_path, Path("/dev/zero")):
        with time_limit(10), pytest.raises(ScenarioError, match="regular file|readable"):
            credsim.load_scenario(target)
        TALLY.tried += 1
        TALLY.refused += 1


def test_non_utf8_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ScenarioError, match="UTF-8"):
        credsim.load_scenario(f)
    TALLY.tried += 1
    TALLY.refused += 1


def test_set_override_values_are_guarded() -> None:
    from credsim.scenario.load import parse_set

    for bad in ("run.days=" + "[" * 10_000, "run.days=!!python/name:os.system", "run.days=[unclosed"):
        with pytest.raises(ScenarioError):
            parse_set([bad])
        TALLY.tried += 1
        TALLY.refused += 1
    assert [(o.keys, o.value) for o in parse_set(["run.days=12", "name=x"])] == [(("run", "days"), 12),
                                                                                 (("name",), "x")]


class _HypothesisChooser:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def choice(self, options: list[Any]) -> Any:
        return self.data.draw(st.sampled_from(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_scenarios_load_or_fail_cleanly(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d, time_limit(20):
        one_case(_HypothesisChooser(data), Path(d), TALLY)


def test_fuzz_report() -> None:
    """Not a check of its own: prints how many malformed inputs the tests above tried."""
    print("\n" + TALLY.line())
    assert TALLY.other == 0
