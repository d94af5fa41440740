"""The generated documentation: complete, current, and true to the loader.

The scenario reference and the JSON Schema are generated from the typed schema plus the words
in ``scenario/keydoc.py``; the metrics page from ``credsim.names``. These tests check that the
words cover every key and metric (and nothing that no longer exists), that the committed files
are what the code generates, and that the JSON Schema accepts and refuses what the loader does.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from credsim import docgen, metrics_doc, names, schema_doc
from credsim.scenario import schema
from credsim.scenario.keydoc import FIELDS, MODELS
from credsim.scenario.load import ScenarioError, builtin_dir, load_scenario
from tests.terminal import run_in_terminal

ROOT = Path(__file__).resolve().parents[1]
CREDSIM = str(Path(sys.executable).with_name("credsim"))


def schema_models() -> dict[str, type[BaseModel]]:
    return {name: obj for name, obj in vars(schema).items()
            if isinstance(obj, type) and issubclass(obj, schema.Strict) and obj is not schema.Strict}


def test_every_key_has_words_and_no_words_are_stale() -> None:
    models = schema_models()
    wanted = {f"{m}.{f.alias or name}" for m, cls in models.items() for name, f in cls.model_fields.items()}
    assert wanted - set(FIELDS) == set(), "keys without a meaning in scenario/keydoc.py"
    assert set(FIELDS) - wanted == set(), "keydoc.py describes keys the schema no longer has"
    assert set(MODELS) == set(models)
    for key, doc in FIELDS.items():
        assert doc.meaning and doc.example, f"{key}: needs a meaning and an example"


def test_reference_lists_every_key_path() -> None:
    ref = schema_doc.reference_markdown()
    secs = schema_doc.sections()
    assert {s.model for s in secs} == set(schema_models())
    for sec in secs:
        for field in sec.node.get("properties", {}):
            path = f"{sec.path}.{field}" if sec.path else field
            assert f"| `{path}` |" in ref, path
    assert "| `behaviours.<name>.rate` | number in [0, 1] | **required** |" in ref
    assert "| `scoring.points.cap.max_loss` | number in [0, 1e9] | none |" in ref


def test_generated_docs_are_current() -> None:
    assert docgen.stale(ROOT) == [], "run: .venv/bin/python -m credsim.docgen"


def test_metrics_page_covers_every_metric() -> None:
    page = metrics_doc.glossary_markdown()
    assert set(metrics_doc.MEMBER) == {f.prefix for f in names.FAMILIES}
    for fam in names.FAMILIES:
        assert f"| `{fam.prefix}.<" in page and fam.meaning in page
    for metric, meaning in names.SINGLE_METRICS.items():
        assert f"| `{metric}` |" in page and meaning in page
    assert set(names.SINGLE_METRICS) >= names.SINGLE_STOCKS
    assert "| `population` | stock (end of day) |" in page
    assert "| `ties_cut` | flow (per day) |" in page


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    sch = schema_doc.json_schema()
    jsonschema.Draft202012Validator.check_schema(sch)
    return jsonschema.Draft202012Validator(sch)


def raw(name: str) -> dict[str, Any]:
    return yaml.safe_load((builtin_dir() / f"{name}.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(p.stem for p in builtin_dir().glob("*.yaml")))
def test_json_schema_accepts_every_builtin_file(validator: jsonschema.Draft202012Validator, name: str) -> None:
    """Built-ins as written: full files and ``extends`` overlays (partial, with null deletions)."""
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(raw(name))]
    assert errors == []


def _breakages() -> list[tuple[str, dict[str, Any]]]:
    base = raw("city-points")
    cases = []

    def case(label: str, change: Any) -> None:
        d = copy.deepcopy(base)
        change(d)
        cases.append((label, d))

    case("misspelt key", lambda d: d["population"].update(sizee=3))
    case("rate above 1", lambda d: d["behaviours"]["traffic.jaywalk"].update(rate=1.5))
    case("unknown kind", lambda d: d["behaviours"]["traffic.jaywalk"].update(kind="crime"))
    case("float count", lambda d: d["graph"].update(contacts=2.5))
    case("missing population", lambda d: d.pop("population"))
    case("bad behaviour name", lambda d: d["behaviours"].update({"Jaywalk": {"kind": "other", "rate": 0.1}}))
    case("negative delay", lambda d: d["sensors"]["banks"].update(delay_days=-1))
    case("unknown effect", lambda d: d["responses"][next(iter(d["responses"]))].update(effect="jail"))
    return cases


@pytest.mark.parametrize(("label", "data"), _breakages(), ids=[c[0] for c in _breakages()])
def test_json_schema_refuses_what_the_loader_refuses(validator: jsonschema.Draft202012Validator, label: str,
                                                     data: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ScenarioError):
        load_scenario(str(path))
    assert list(validator.iter_errors(data)), f"the JSON Schema accepts a scenario with a {label}"


def test_json_schema_refuses_a_broken_overlay(validator: jsonschema.Draft202012Validator) -> None:
    assert not list(validator.iter_errors({"extends": "city-points", "behaviours": {"traffic.jaywalk": None}}))
    assert list(validator.iter_errors({"extends": "city-points", "behaviours": {"traffic.jaywalk": {"rate": 2}}}))
    assert list(validator.iter_errors({"extends": "city-points", "runn": {"days": 3}}))


def test_credsim_schema_as_typed(tmp_path: Path) -> None:
    res = run_in_terminal(f"{CREDSIM} schema --out editor-schema.json", cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.describe()
    assert "wrote editor-schema.json" in res.text
    assert json.loads((tmp_path / "editor-schema.json").read_text()) == schema_doc.json_schema()
    res = run_in_terminal(f"{CREDSIM} schema --format markdown", cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.describe()
    assert "## `behaviours.<name>` (Behaviour)" in res.text
    res = run_in_terminal(f"{CREDSIM} schema --out /proc/no/such/dir/x.json", cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "cannot write /proc/no/such/dir/x.json" in res.text, res.describe()
    assert "Traceback" not in res.text
