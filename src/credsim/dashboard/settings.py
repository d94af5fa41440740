"""The Explore form's settings: checked control by control, and written to and read from the address.

A reader who types an impossible value must see it at the control (a red mark and a message
beside it, Run disabled), not as a schema message far away after pressing Run; and a
comparison is shared by sending the address, so the knob settings live in it
(``?scenario=city-points&population=20000&days=90&seed=0&knob.false_rate.traffic_cameras=0.005``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from credsim.dashboard import knobs as kn
from credsim.scenario.load import ScenarioError
from credsim.scenario.schema import Scenario

KNOB_PREFIX = "knob."
MAX_POPULATION = 1_000_000  # larger runs belong on the command line (credsim run / audit)
MAX_DAYS = 3650
NUMBERS: dict[str, tuple[int, int, str]] = {"population": (1, MAX_POPULATION, "citizens"),
                                            "days": (1, MAX_DAYS, "days"), "seed": (0, 2**63 - 1, "seed")}


@dataclass(frozen=True)
class Settings:
    """What a Run would use: the scenario key, each knob's value, and the population, days and seed."""

    scenario: str
    knobs: dict[str, Any]
    population: Any
    days: Any
    seed: Any

    def key(self) -> str:
        """A stable text of the settings (to tell whether shown results are stale)."""
        return to_search(self)


def number_problem(field: str, raw: Any) -> str | None:
    """Why ``raw`` is not a valid population, days or seed (None when it is)."""
    lo, hi, label = NUMBERS[field]
    text = "" if raw is None else str(raw)
    shown = repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"
    try:
        v = float(text)
    except ValueError:
        return f"a whole number of {label} (got {shown})"
    if not math.isfinite(v) or v != int(v) or not lo <= v <= hi:
        note = " in the dashboard (use credsim run for more)" if field == "population" else ""
        return f"a whole number from {lo:,} to {hi:,}{note} (got {shown})"
    return None


def knob_problems(scen: Scenario, values: dict[str, Any]) -> dict[str, str]:
    """Knob id -> message, for each knob whose value is invalid on its own (others at the scenario's values).

    Each knob is checked alone so the message lands on the control that caused it, and every
    bad control is marked at once (a combined check stops at the first problem).
    """
    out: dict[str, str] = {}
    for k in kn.knobs_for(scen):
        if k.id not in values:
            continue
        v = values[k.id]
        if v is None or v == "":
            out[k.id] = "enter a value (the field is empty or not a number)"
            continue
        try:
            kn.apply_knobs(scen, {k.id: v})
        except ScenarioError as exc:
            out[k.id] = "; ".join(p.expected for p in exc.problems)
    return out


def to_search(s: Settings) -> str:
    """The address query for ``s`` (checklists as comma-separated names)."""
    q: dict[str, str] = {"scenario": s.scenario, "population": _text(s.population), "days": _text(s.days),
                         "seed": _text(s.seed)}
    for kid, v in sorted(s.knobs.items()):
        q[KNOB_PREFIX + kid] = ",".join(map(str, v)) if isinstance(v, list) else _text(v)
    return "?" + urlencode(q)


def from_search(search: str | None, scen: Scenario) -> dict[str, Any]:
    """Knob values (typed as the controls hold them) and population/days/seed found in an address query.

    Values are not validated here: they go into the controls, which mark whatever is wrong.
    """
    q = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
    out: dict[str, Any] = {}
    for field in NUMBERS:
        if field in q:
            out[field] = _number(q[field][0])
    for k in kn.knobs_for(scen):
        name = KNOB_PREFIX + k.id
        if name not in q:
            continue
        raw = q[name][0]
        if k.kind in ("sensors", "sanctions"):
            out[k.id] = [x for x in raw.split(",") if x in k.options]
        else:
            out[k.id] = _number(raw)
    return out


def _number(raw: str) -> Any:
    try:
        v = float(raw)
    except ValueError:
        return raw[:40]
    return int(v) if math.isfinite(v) and v == int(v) and abs(v) < 2**53 else v


def _text(v: Any) -> str:
    """A number as the address writes it: 1.0 and 1 are the same setting, so both read ``1``."""
    if isinstance(v, float) and math.isfinite(v) and v == int(v) and abs(v) < 2**53:
        return str(int(v))
    return "" if v is None else str(v)
