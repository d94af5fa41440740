"""Policy knobs: the few settings a teacher or journalist wants to move, as scenario edits.

Each :class:`Knob` names the key paths of the chosen scenario it writes, so the page can
show exactly what a slider changes and the edited scenario can be downloaded as YAML.
Knobs are derived from the scenario itself (:func:`knobs_for`), so a knob is only shown
when the thing it edits exists there: a points multiplier only for points scoring, an
entry threshold only for blacklists entered by records, a false-match rate only for
cameras (and other sensors with false records), a journalist multiplier only for sensors
that already watch journalists more closely.

:func:`apply_knobs` starts again from the scenario as loaded each time (knobs never
compound) and validates the result with the scenario schema, so every bad value surfaces
as a :class:`credsim.ScenarioError` naming the key path, exactly as in a file.

Key paths are tuples, not dotted strings, because record-type names contain dots; they are
read, written and shown for people (``scoring.points.rules["traffic.violation"]``) by
:mod:`credsim.scenario.keypath`, the same as ``--set`` and sweep files, so a path the page
shows can be pasted into either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from credsim.report.labels import Labels, from_scenario
from credsim.scenario import keypath
from credsim.scenario.load import Problem, ScenarioError, load_scenario
from credsim.scenario.overrides import DELETE, Override
from credsim.scenario.schema import Scenario

KeyPath = tuple[str, ...]
Kind = Literal["number", "multiplier", "int", "sensors", "sanctions"]


@dataclass
class Knob:
    """One control on the page and the scenario keys it writes."""

    id: str
    label: str
    kind: Kind
    value: Any  # the scenario's own value (for a multiplier: 1.0)
    paths: list[KeyPath]
    help: str = ""
    step: float | None = None
    options: list[str] = field(default_factory=list)  # for the checklists (sensors, sanctions)
    base: list[Any] = field(default_factory=list)  # per path, the scenario's value (multipliers scale these)

    @property
    def key(self) -> str:
        """The key path an error names (the common parent for a multiplier)."""
        return "scoring.points.rules" if self.kind == "multiplier" else dotted(self.paths[0])

    @property
    def where(self) -> str:
        """The key paths, for the page (``sensors.face_cameras.false_rate``)."""
        if self.kind == "multiplier":
            return f"{len(self.paths)} rules under scoring.points.rules (each x this factor)"
        return ", ".join(dotted(p) for p in self.paths)


def dotted(path: KeyPath) -> str:
    """A key path as people type it (``--set``, sweep files): :func:`credsim.scenario.keypath.show`."""
    return keypath.show(path)


def _rule_points(rule: Any) -> float:
    return float(rule["points"] if isinstance(rule, dict) else rule)


def knobs_for(scen: Scenario) -> list[Knob]:
    """The knobs that exist in ``scen``, in the order the page shows them."""
    d = keypath.dump(scen)
    words = Labels(from_scenario(d)).name  # the scenario's own words for its names, else made-up ones
    out: list[Knob] = []
    behaviours = d["behaviours"]
    points = (d.get("scoring") or {}).get("points")
    if points:
        rules = points.get("rules") or {}
        neg = [r for r, v in rules.items() if r in behaviours and _rule_points(v) < 0]
        if neg:
            paths = [("scoring", "points", "rules", r) + (("points",) if isinstance(rules[r], dict) else ())
                     for r in neg]
            out.append(Knob("points_per_infraction", "Points lost per infraction (x the scenario's deductions)",
                            "multiplier", 1.0, paths, step=0.25, base=[_rule_points(rules[r]) for r in neg],
                            help="2 doubles every deduction (traffic -5 becomes -10); 0 removes them."))
    for name, spec in (d.get("lists") or {}).items():
        entry = spec.get("entry") or {}
        if spec.get("kind", "black") == "black" and entry.get("records"):
            out.append(Knob(f"entry_count.{name}", f"Records needed to enter the list {words(name)}", "int",
                            int(entry.get("count", 1)), [("lists", name, "entry", "count")], step=1,
                            help=f"within {entry.get('window_days', 365)} days; counted records: "
                                 + ", ".join(words(r) for r in entry["records"])))
    sensors = d.get("sensors") or {}
    for name, s in sensors.items():
        if "camera" in name or float(s.get("false_rate") or 0) > 0:
            what = "false-match rate" if "camera" in name else "false-positive rate"
            out.append(Knob(f"false_rate.{name}", f"{words(name)}: {what}", "number", float(s.get("false_rate") or 0),
                            [("sensors", name, "false_rate")], step=None,
                            help="false records per covered citizen, day and observed behaviour "
                                 f"({', '.join(words(b) for b in s['observes'])})"))
    for name, s in sensors.items():
        j = ((s.get("surveillance") or {}).get("occupation") or {}).get("journalist")
        if j is not None:
            out.append(Knob(f"journalist.{name}", f"{words(name)}: surveillance multiplier for journalists", "number",
                            float(j), [("sensors", name, "surveillance", "occupation", "journalist")], step=0.5,
                            help="how much more likely this sensor is to catch (and falsely flag) a journalist"))
    if sensors:
        shared = d.get("sharing")
        out.append(Knob("sharing", "Sensors that share records with the authority", "sensors",
                        list(sensors) if shared is None else list(shared), [("sharing",)], options=list(sensors),
                        help="an unshared sensor still watches, but its records never reach the dossier"))
    if points:
        rules = points.get("rules") or {}
        for name, spec in (d.get("lists") or {}).items():
            rkey = f"association.{name}"
            v = _rule_points(rules[rkey]) if rkey in rules else float(spec.get("association_points") or 0)
            out.append(Knob(f"association.{name}", f"Association penalty: points each contact of a new member of "
                            f"{words(name)} loses", "number", v,
                            [("lists", name, "association_points"), ("scoring", "points", "rules", rkey)], step=5,
                            help="0 switches guilt by association off; negative values take points"))
    sanctions = d.get("sanctions") or {}
    if sanctions:
        out.append(Knob("sanctions", "Sanctions in force", "sanctions", list(sanctions),
                        [("sanctions", n) for n in sanctions], options=list(sanctions),
                        help="an unticked sanction is removed from the scenario"))
    return out


def _number(knob: Knob, raw: Any, problems: list[Problem]) -> float | None:
    """A finite number from a form field (None, text or NaN are problems naming the knob's path)."""
    try:
        v = float(raw)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        problems.append(Problem(knob.key, f"a number for '{knob.label}' (got {str(raw)[:40]!r})"))
        return None
    return v


def edits(knobs: list[Knob], values: dict[str, Any]) -> tuple[list[Override], list[Problem]]:
    """The overrides that ``values`` (knob id -> form value) make, each named by its knob, and form problems."""
    out: list[Override] = []
    problems: list[Problem] = []
    for k in knobs:
        if k.id not in values:
            continue
        raw = values[k.id]
        if k.kind == "multiplier":
            v = _number(k, raw, problems)
            if v is None:
                continue
            if v < 0:
                problems.append(Problem(k.key, f"a factor of at least 0 for '{k.label}' (got {v:g}); a negative "
                                                 "factor would turn deductions into rewards"))
                continue
            out += [Override(p, b * v, _origin(k, v)) for p, b in zip(k.paths, k.base, strict=True)]
        elif k.kind in ("number", "int"):
            v = _number(k, raw, problems)
            if v is None:
                continue
            if k.kind == "int":
                if v != int(v):
                    problems.append(Problem(k.key, f"a whole number for '{k.label}' (got {v:g})"))
                    continue
                v = int(v)
            out += [Override(p, v, _origin(k, v)) for p in k.paths]
        elif k.kind == "sensors":
            chosen = [s for s in k.options if s in set(raw or [])]
            out.append(Override(k.paths[0], chosen, _origin(k, chosen)))
        elif k.kind == "sanctions":
            keep = set(raw or [])
            out += [Override(p, DELETE, _origin(k, f"({name} off)"))
                    for p, name in zip(k.paths, k.options, strict=True) if name not in keep]
    return out, problems


def apply_knobs(scen: Scenario, values: dict[str, Any], extra: dict[KeyPath, Any] | None = None) -> Scenario:
    """``scen`` with the knob ``values`` (and ``extra`` edits: size, days, seed) applied, validated.

    Raises :class:`credsim.ScenarioError` naming every problem (form values and schema).
    """
    knobs = knobs_for(scen)
    changes, problems = edits(knobs, values)
    name = f"{scen.name} (dashboard)"
    if problems:
        raise ScenarioError(name, problems)
    fields = [Override(path, v, f"dashboard field {keypath.show(path)} = {v!r}") for path, v in (extra or {}).items()]
    try:
        return load_scenario(scen, [*changes, *fields])
    except ScenarioError as exc:
        exc.file = name
        raise


def _origin(knob: Knob, value: Any) -> str:
    """How an error names a knob's edit: the control as the page labels it, and the value chosen."""
    shown = value if isinstance(value, str) else f"= {value!r}"
    return f"dashboard knob '{knob.label}' {shown}"


def changed(scen: Scenario, values: dict[str, Any]) -> list[str]:
    """Human-readable list of what differs from the scenario's own settings (for the page and the YAML header)."""
    out = []
    for k in knobs_for(scen):
        if k.id not in values:
            continue
        v = values[k.id]
        if k.kind in ("sensors", "sanctions"):
            if set(v or []) != set(k.value):
                off = [o for o in k.options if o in k.value and o not in (v or [])]
                on = [o for o in k.options if o not in k.value and o in (v or [])]
                out.append(f"{k.label}: " + "; ".join(([f"off {', '.join(off)}"] if off else [])
                                                       + ([f"on {', '.join(on)}"] if on else [])))
        else:
            try:
                same = float(v) == float(k.value)
            except (TypeError, ValueError):
                same = False
            if not same:
                out.append(f"{k.label}: {k.value:g} -> {v}")
    return out
