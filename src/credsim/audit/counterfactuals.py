"""The counterfactual scenarios every harm is measured against.

A harm is only meaningful against a named alternative: "wrongful" is what false records
cause, so it is the difference between the scenario and *the same scenario with every
false-record rate 0*, run with the same seed. Because every random draw is keyed by
(seed, named stream, day, citizen), the two runs share every citizen, contact, behaviour
and detection draw that the change does not touch (common random numbers), and the
difference is compared citizen by citizen (:mod:`credsim.audit.harms`).

Each counterfactual is a pure transform of the resolved scenario:

=================  =====================================================================
``no_false_records``  every sensor's false-record rate 0 and every investigation's false-finding rate 0
``perfect_observation``  every infraction a shared sensor observes is recorded (coverage =
                      detection = 1, no surveillance multiplier), same delays, and no
                      false records anywhere; lawful behaviours are observed as before
``lawful_free``       lawful behaviours (``lawful: true``, or any kind but infraction) carry
                      no negative points, feed no list and no negative model feature
``own_domain``        every sanction uses only records of the attempt's own domain
``no_association``    no association points, no contacts-listed model feature
``system_off``        no sharing, scoring, lists, sanctions, responses, redress or investigations (the baseline)
=================  =====================================================================

A transform that leaves the scenario unchanged (no false rates to zero, no association
penalty to remove) is detected, and its harm is exactly 0 without a run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from credsim.names import KINDS
from credsim.scenario.keypath import dump
from credsim.scenario.load import load_scenario
from credsim.scenario.schema import Scenario

SYSTEM_SECTIONS = ("scoring", "lists", "sanctions", "responses", "redress", "investigations")
PERFECT_SUFFIX = "-all_seeing"
CURE = KINDS[KINDS.index("cure")]  # a kind spelled in credsim.names

Data = dict[str, Any]


@dataclass(frozen=True)
class Counterfactual:
    """A named alternative scenario and the harm measured against it.

    ``sign`` says which way the harm runs: +1 when the harm is what the scenario adds
    (system minus counterfactual: false records, punishment of lawful acts), -1 when it is
    what the scenario fails to do (counterfactual minus system: infractions that escape).
    ``versus`` names another harm whose counterfactual run stands in for the system run:
    perfect observation has no false records, so escapes are counted against the run
    without false records too -- otherwise citizens sanctioned only by false records would
    cancel escapes in the net figure.
    """

    key: str
    harm: str
    sign: int
    against: str
    means: str
    transform: Callable[[Scenario, Data], None]
    versus: str | None = None


def _lawful(scen: Scenario) -> set[str]:
    return {name for name, b in scen.behaviours.items() if b.is_lawful}


def _shared(data: Data) -> list[str]:
    sharing = data.get("sharing")
    return list(data["sensors"]) if sharing is None else list(sharing)


def _no_false_records(scen: Scenario, data: Data) -> None:
    for sen in data["sensors"].values():
        sen["false_rate"] = 0.0
    for inv in (data.get("investigations") or {}).values():  # an investigation's false findings are false records
        inv["false_finding"] = 0.0


def _perfect_observation(scen: Scenario, data: Data) -> None:
    _no_false_records(scen, data)
    lawful = _lawful(scen)
    shared = _shared(data)
    sensors: Data = {}
    sharing: list[str] = []
    for name, sen in data["sensors"].items():
        unlawful = [b for b in sen["observes"] if b not in lawful]
        if name not in shared or not unlawful:
            sensors[name] = sen
            if name in shared:
                sharing.append(name)
            continue
        perfect = {**copy.deepcopy(sen), "observes": unlawful, "coverage": 1.0, "coverage_by": {},
                   "detection": 1.0, "surveillance": {}, "false_rate": 0.0}
        kept = [b for b in sen["observes"] if b in lawful]
        if kept:  # the lawful part keeps its name, so its draws stay the scenario's own
            sensors[name] = {**sen, "observes": kept}
            sharing.append(name)
            sensors[name + PERFECT_SUFFIX] = perfect
            sharing.append(name + PERFECT_SUFFIX)
        else:
            sensors[name] = perfect
            sharing.append(name)
    data["sensors"] = sensors
    if data.get("sharing") is not None:
        data["sharing"] = sharing


def _feature_weights(model: Data) -> dict[str, float]:
    w: dict[str, float] = {}
    for dim in model["dimensions"].values():
        for f, c in dim["features"].items():
            w[f] = w.get(f, 0.0) + dim["weight"] * c
    return w


def _lawful_free(scen: Scenario, data: Data) -> None:
    lawful = _lawful(scen)
    scoring = data.get("scoring") or {}
    points = scoring.get("points")
    if points:
        def lost(rule: Any) -> bool:
            return (rule if isinstance(rule, int | float) else rule["points"]) < 0
        points["rules"] = {r: v for r, v in points["rules"].items() if not (r in lawful and lost(v))}
    model = scoring.get("model")
    if model:
        w = _feature_weights(model)
        for f, spec in model["features"].items():
            if spec.get("records") and w.get(f, 0.0) < 0:
                spec["records"] = [r for r in spec["records"] if r not in lawful]
    for lst in (data.get("lists") or {}).values():
        if lst["entry"].get("records") is not None:
            lst["entry"]["records"] = [r for r in lst["entry"]["records"] if r not in lawful]


def _own_domain(scen: Scenario, data: Data) -> None:
    for san in (data.get("sanctions") or {}).values():
        san["own_domain"] = True


def _no_association(scen: Scenario, data: Data) -> None:
    for lst in (data.get("lists") or {}).values():
        lst["association_points"] = 0.0
    model = (data.get("scoring") or {}).get("model")
    if model:
        gone = {f for f, spec in model["features"].items() if spec.get("contacts_listed") is not None}
        for dim in model["dimensions"].values():
            dim["features"] = {f: c for f, c in dim["features"].items() if f not in gone}
        model["features"] = {f: s for f, s in model["features"].items() if f not in gone}


def _system_off(scen: Scenario, data: Data) -> None:
    data["sharing"] = []
    for key in SYSTEM_SECTIONS:
        data.pop(key, None)
    for name, b in scen.behaviours.items():
        if b.kind == CURE or b.only_listed:  # with no list, nobody could do them
            data["behaviours"][name]["rate"] = 0.0
            data["behaviours"][name]["only_listed"] = None


HARMS: tuple[Counterfactual, ...] = (
    Counterfactual("no_false_records", "wrongful", +1, "the same scenario with every false-record rate 0 "
                   "(sensors' false rates and investigations' false findings)",
                   "caused by false records", _no_false_records),
    Counterfactual("perfect_observation", "missed", -1,
                   "the same scenario observing every infraction (coverage = detection = 1, same delays), "
                   "compared with it as it is, both with every false-record rate 0",
                   "escaped because surveillance of infractions is imperfect", _perfect_observation,
                   versus="wrongful"),
    Counterfactual("lawful_free", "lawful", +1,
                   "the same scenario in which lawful behaviours carry no points lost and feed no list",
                   "punishment for lawful acts", _lawful_free),
    Counterfactual("own_domain", "cross_context", +1,
                   "the same scenario in which each sanction uses only records of the attempt's own domain",
                   "cross-context detriment (EU AI Act Art. 5(1)(c)(i))", _own_domain),
    Counterfactual("no_association", "association", +1,
                   "the same scenario with no association penalties", "guilt by association", _no_association),
)
SYSTEM_OFF = Counterfactual("baseline", "system", +1, "the same scenario with the system switched off",
                            "the system's whole effect", _system_off)
BY_HARM = {c.harm: c for c in HARMS}


def apply(cf: Counterfactual, scen: Scenario) -> Scenario | None:
    """``scen`` transformed by ``cf``; None when the transform changes nothing (the harm is 0)."""
    data = dump(scen)
    before = copy.deepcopy(data)
    cf.transform(scen, data)
    if data == before:
        return None
    data["name"] = f"{scen.name}-{cf.key}"
    data["description"] = f"{scen.name}: {cf.against} (paired counterfactual)"
    return load_scenario(data)


def counterfactual(scen: Scenario) -> Scenario:
    """``scen`` with the system switched off: same population, graph, behaviours and sensors.

    For ``city-points`` this is exactly the built-in ``baseline``.
    """
    data = dump(scen)
    _system_off(scen, data)
    data["name"] = f"{scen.name}-baseline"
    data["description"] = f"{scen.name} with no scoring, lists, sanctions or responses (paired counterfactual)"
    return load_scenario(data)


def lawful_behaviours(scen: Scenario) -> list[str]:
    """The behaviours the scenario treats as lawful (declared, or by kind)."""
    return sorted(_lawful(scen))
