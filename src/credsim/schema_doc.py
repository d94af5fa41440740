"""The scenario language for people and editors: a JSON Schema and a Markdown reference.

Both are generated from the typed schema (:mod:`credsim.scenario.schema`: types, limits,
defaults) and the words in :mod:`credsim.scenario.keydoc` (meaning, units, example), so that
the documentation cannot describe a key the loader does not accept, or miss one it does.
``credsim schema`` prints either; ``python -m credsim.docgen`` writes them to ``docs/``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from credsim.scenario.keydoc import EXTENDS, FIELDS, MODELS, KeyDoc
from credsim.scenario.schema import Scenario

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
NAME_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_\\-]*$"
DOTTED_PATTERN = "^[a-z][a-z0-9_]*\\.[a-z0-9_.\\-]+$"
Node = dict[str, Any]


def _describe(doc: KeyDoc) -> str:
    units = f" Units: {doc.units}." if doc.units else ""
    example = f" Example: `{doc.example}`." if doc.example else ""
    meaning = doc.meaning.rstrip(".")
    return f"{meaning[0].upper()}{meaning[1:]}.{units}{example}"


def _model_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _pydantic_schema() -> Node:
    return Scenario.model_json_schema(by_alias=True, mode="validation")


def _drop_nonfinite_defaults(node: Any) -> None:
    """JSON has no infinity: a default of ``inf`` means "no limit" and is said in words instead."""
    if isinstance(node, dict):
        d = node.get("default")
        if isinstance(d, float) and not math.isfinite(d):
            del node["default"]
        for v in node.values():
            _drop_nonfinite_defaults(v)
    elif isinstance(node, list):
        for v in node:
            _drop_nonfinite_defaults(v)


OVERLAY = "Overlay"  # suffix of the models an ``extends`` file is checked against


def _overlay(node: Any) -> Any:
    """The same schema node for a file that ``extends`` another: nothing required, ``null`` anywhere.

    Such a file lists only what it changes, and a key set to ``null`` deletes the inherited one.
    """
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if k != "required"}
    if "$ref" in out:
        out["$ref"] = out["$ref"] + OVERLAY
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {k: _nullable(_overlay(v)) for k, v in out[key].items()}
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _nullable(_overlay(out["additionalProperties"]))
    if isinstance(out.get("items"), dict):
        out["items"] = _overlay(out["items"])
    for key in ("anyOf", "prefixItems"):
        if key in out:
            out[key] = [_overlay(v) for v in out[key]]
    return out


def _nullable(node: Node) -> Node:
    if node.get("type") == "null" or any(o.get("type") == "null" for o in node.get("anyOf", [])):
        return node
    out: Node = {"anyOf": [{k: v for k, v in node.items() if k not in ("description", "default")},
                           {"type": "null"}]}
    if "description" in node:
        out["description"] = node["description"]
    return out


def _close_name_maps(node: Any) -> None:
    """A mapping keyed by names (pydantic's ``patternProperties``) refuses keys that are not names.

    pydantic leaves such maps open, so an editor would accept ``Jaywalk`` as a behaviour name
    that the loader refuses.
    """
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            _close_name_maps(v)
    elif isinstance(node, list):
        for v in node:
            _close_name_maps(v)


def json_schema() -> Node:
    """The JSON Schema (draft 2020-12) of a scenario file, with a description on every key.

    A file with ``extends`` is checked as an overlay: it need not repeat what it inherits, and
    ``null`` deletes an inherited key. Everything else is checked as the loader checks it, except
    the names across sections (a sensor observing an undeclared behaviour), which only
    ``credsim validate`` checks.
    """
    raw = _pydantic_schema()
    defs: dict[str, Node] = raw.pop("$defs", {})
    defs = {"Scenario": raw, **defs}
    _close_name_maps(defs)
    for name, node in defs.items():
        node.pop("title", None)
        node["description"] = MODELS[name]
        for field, prop in node.get("properties", {}).items():
            prop["description"] = _describe(FIELDS[f"{name}.{field}"])
            prop.pop("title", None)
    extends = {"type": "string", "description": _describe(EXTENDS)}
    overlays = {name + OVERLAY: _overlay(node) for name, node in defs.items()}
    overlays["Scenario" + OVERLAY]["properties"] = {"extends": extends,
                                                    **overlays["Scenario" + OVERLAY]["properties"]}
    overlays["Scenario" + OVERLAY]["required"] = ["extends"]
    schema: Node = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "credsim scenario",
        "description": (MODELS["Scenario"] + " Generated from credsim's typed schema; "
                        "`credsim validate FILE` also checks names across sections."),
        "type": "object",
        "if": {"required": ["extends"]},
        "then": {"$ref": "#/$defs/Scenario" + OVERLAY},
        "else": {"$ref": "#/$defs/Scenario"},
        "$defs": {**defs, **overlays},
    }
    _drop_nonfinite_defaults(schema)
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


# -- the Markdown reference ------------------------------------------------------------------------


def _num(x: float) -> str:
    """Limits as people read them: 36,500 days; 1e9 rather than 1,000,000,000 (a guard, not a quantity)."""
    if abs(x) >= 1e6:
        mantissa, exp = f"{x:.1e}".split("e")
        return f"{mantissa.removesuffix('.0')}e{int(exp)}"
    return f"{int(x):,}" if float(x).is_integer() and abs(x) >= 1e4 else f"{x:g}"


def _bounds(node: Node) -> str:
    lo, hi = node.get("minimum"), node.get("maximum")
    xlo, xhi = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if lo is not None and hi is not None:
        return f" in [{_num(lo)}, {_num(hi)}]"
    parts = []
    if lo is not None:
        parts.append(f"≥ {_num(lo)}")
    if xlo is not None:
        parts.append(f"> {_num(xlo)}")
    if hi is not None:
        parts.append(f"≤ {_num(hi)}")
    if xhi is not None:
        parts.append(f"< {_num(xhi)}")
    return (", " + " and ".join(parts)) if parts else ""


def type_text(node: Node) -> str:
    """A JSON Schema node in words (``number in [0, 1]``, ``mapping: name → Trait``)."""
    if "$ref" in node:
        name = _model_name(node["$ref"])
        return f"[{name}](#{name.lower()})"
    if "anyOf" in node:
        opts = [o for o in node["anyOf"] if o.get("type") != "null"]
        text = " or ".join(type_text(o) for o in opts)
        return text + (" or `null`" if len(opts) < len(node["anyOf"]) else "")
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    t = node.get("type")
    if t == "string":
        pattern = node.get("pattern")
        if pattern == NAME_PATTERN:
            return "name (letters, digits, `_`, `-`)"
        if pattern == DOTTED_PATTERN:
            return "dotted name `<domain>.<what>`"
        return "text"
    if t == "integer":
        return "integer" + _bounds(node)
    if t == "number":
        return "number" + _bounds(node)
    if t == "boolean":
        return "`true` or `false`"
    if t == "array":
        if "prefixItems" in node:
            return "[" + ", ".join(type_text(i) for i in node["prefixItems"]) + "]"
        n = node.get("minItems")
        return "list of " + type_text(node.get("items", {})) + (f" (at least {n})" if n else "")
    if t == "object":
        values = node.get("additionalProperties")
        if not isinstance(values, dict):
            values = next(iter(node.get("patternProperties", {}).values()), {})
        return "mapping: name → " + type_text(values)
    return "any"


def _default_text(prop: Node, required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in prop:
        return "none"
    d = prop["default"]
    if d is None or (isinstance(d, float) and not math.isfinite(d)):
        return "none"
    if "$ref" in prop:
        return "its keys' defaults"
    return f"`{json.dumps(d, ensure_ascii=False)}`"


def _child_models(node: Node) -> list[tuple[str, str]]:
    """Models a property leads to, with the key-path suffix to reach them (``""``, ``.<name>``, ``[i]``)."""
    if "$ref" in node:
        return [("", _model_name(node["$ref"]))]
    out: list[tuple[str, str]] = []
    for opt in node.get("anyOf", []):
        out += _child_models(opt)
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        out += [("[i]" + s, m) for s, m in _child_models(node["items"])]
    if node.get("type") == "object":
        values = [node["additionalProperties"]] if isinstance(node.get("additionalProperties"), dict) else []
        values += list(node.get("patternProperties", {}).values())
        for v in values:
            out += [(".<name>" + s, m) for s, m in _child_models(v)]
    return out


@dataclass(frozen=True)
class Section:
    """One model of the schema, at the key path where a scenario file first reaches it."""

    model: str
    path: str
    node: Node


def sections() -> list[Section]:
    """Every model of the schema, in the order a reader meets them from the top of a file."""
    raw = _pydantic_schema()
    defs: dict[str, Node] = raw.get("$defs", {})
    out: list[Section] = []
    seen: set[str] = set()

    def visit(model: str, path: str, node: Node) -> None:
        seen.add(model)
        out.append(Section(model, path, node))
        for field, prop in node.get("properties", {}).items():
            for suffix, child in _child_models(prop):
                if child not in seen:
                    visit(child, (f"{path}.{field}" if path else field) + suffix, defs[child])

    visit("Scenario", "", raw)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown() -> str:
    """The scenario-language reference: every key with its type, default, meaning, units and example."""
    lines = [
        "# Scenario language reference",
        "",
        "<!-- Generated by `credsim schema --format markdown` (python -m credsim.docgen); do not edit. -->",
        "",
        "A scenario is a YAML file. Every key below is checked when the file is loaded: an unknown or",
        "misspelt key is an error, and so is a value outside its type and limits. Key paths are written",
        "with dots; `<name>` stands for a name you choose (a behaviour, sensor, list...), `[i]` for an",
        "item of a list. Names used across sections (a sensor observing a behaviour, a sanction naming a",
        "list) must be declared; `credsim validate FILE` reports every problem with its file, line and",
        "key path. Nothing in a scenario is ever evaluated as code.",
        "",
        "The same language as a JSON Schema, for editors: [scenario-schema.json](scenario-schema.json)",
        "(or `credsim schema`). A complete, commented example is the built-in `city-points`",
        "(`src/credsim/scenario/builtin/city-points.yaml`); [the tutorial](tutorial.md) builds a scenario",
        "from scratch.",
        "",
        "Contents: " + ", ".join(f"[{s.path or 'top level'}](#{s.model.lower()})" for s in sections()),
        "",
    ]
    for sec in sections():
        title = f"`{sec.path}`" if sec.path else "Top level"
        lines += [f'<a id="{sec.model.lower()}"></a>', "", f"## {title} ({sec.model})", "", MODELS[sec.model], ""]
        lines += ["| key | type and limits | default | meaning | units | example |",
                  "|---|---|---|---|---|---|"]
        props: dict[str, Node] = dict(sec.node.get("properties", {}))
        required = set(sec.node.get("required", []))
        rows: list[tuple[str, str, str, KeyDoc]] = []
        if sec.model == "Scenario":
            rows.append(("extends", "text", "none", EXTENDS))
        for field, prop in props.items():
            rows.append((field, type_text(prop), _default_text(prop, field in required),
                         FIELDS[f"{sec.model}.{field}"]))
        for key, typ, default, doc in rows:
            full = f"{sec.path}.{key}" if sec.path else key
            example = f"`{doc.example}`" if doc.example else ""
            lines.append(f"| `{_cell(full)}` | {_cell(typ)} | {_cell(default)} | {_cell(doc.meaning)} | "
                         f"{_cell(doc.units)} | {_cell(example)} |")
        lines.append("")
    return "\n".join(lines)
