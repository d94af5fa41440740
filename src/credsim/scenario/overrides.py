"""Overrides: changes to a scenario given outside its file, each remembering where it came from.

``credsim run --set``, ``credsim audit --set``, sweep and sensitivity files, calibration
parameters, the dashboard and the Python API (``load_scenario(name, overrides)``,
``credsim.run(..., overrides=...)``) all hand the loader a list of :class:`Override`, and the
loader applies them one way (:func:`apply_overrides`, through :mod:`credsim.scenario.keypath`). An
override that cannot be applied, or a value the schema refuses, is reported against the
override's ``origin`` -- the ``--set`` as typed, the API argument, the sweep file and line --
because that is where the user has to fix it, not in the built-in file being overridden.

The text of a ``--set`` value is YAML read with the scenario file's guards; that reader
lives in :mod:`credsim.scenario.load` (:func:`credsim.scenario.load.parse_set`), which
builds on :func:`split_assignment` here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from credsim.scenario import keypath
from credsim.scenario.keypath import KeyPathError, Keys

API_ORIGIN = "overrides argument"
DELETE: Any = object()  # an override value that removes the key (a sanction switched off on the dashboard)


@dataclass(frozen=True)
class Override:
    """Set ``keys`` to ``value``; ``origin`` says where the user wrote it (named in every error)."""

    keys: Keys
    value: Any
    origin: str


class Misapplied(NamedTuple):
    """An override that could not be applied: where it came from, the key path reached, what was expected."""

    origin: str
    path: str
    expected: str


class OverrideError(ValueError):
    """Overrides that cannot be applied (the loader reports them as a ScenarioError)."""

    def __init__(self, problems: list[Misapplied]) -> None:
        super().__init__("; ".join(f"{p.origin}: at '{p.path}': {p.expected}" for p in problems))
        self.problems = problems


def split_assignment(text: str) -> tuple[str, str]:
    """``KEY.PATH=VALUE`` at the first ``=`` outside brackets and quotes (a quoted key may hold one)."""
    depth, quote = 0, ""
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'" and depth:
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth = max(depth - 1, 0)
        elif c == "=" and not depth:
            return text[:i].strip(), text[i + 1:]
        i += 1
    raise KeyPathError("", f"KEY.PATH=VALUE, e.g. 'behaviours[\"traffic.violation\"].rate=0.01' (got {text[:80]!r})")


def from_mapping(overrides: Mapping[Any, Any], origin: str = API_ORIGIN) -> list[Override]:
    """``{key path: value}`` (string or tuple keys) as overrides, each named ``origin 'path'`` in errors."""
    out: list[Override] = []
    problems: list[Misapplied] = []
    for path, value in overrides.items():
        label = f"{origin} {path!r}" if isinstance(path, str) else f"{origin} {list(path)!r}"
        try:
            out.append(Override(keypath.parse(path), value, label))
        except KeyPathError as exc:
            problems.append(Misapplied(label, exc.path, exc.expected))
    if problems:
        raise OverrideError(problems)
    return out


def normalize(overrides: Mapping[Any, Any] | Sequence[Override] | None, origin: str = API_ORIGIN) -> list[Override]:
    """Overrides as given to the API (a mapping, a list of :class:`Override`, or None) as a list."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return from_mapping(overrides, origin)
    if isinstance(overrides, Sequence) and all(isinstance(o, Override) for o in overrides):
        return list(overrides)
    raise OverrideError([Misapplied(origin, "", "a mapping of key paths to values (or a list of Override)"
                                                f" (got {type(overrides).__name__})")])


def apply_overrides(data: dict[str, Any], overrides: Sequence[Override]) -> list[Override]:
    """Apply ``overrides`` in order to scenario ``data``; return them with their paths as resolved.

    Every override is tried, so one error message lists every bad one.
    """
    done: list[Override] = []
    problems: list[Misapplied] = []
    for o in overrides:
        try:
            if o.value is DELETE:
                keypath.delete_value(data, o.keys)
                keys = o.keys
            else:
                keys = keypath.set_value(data, o.keys, o.value)
        except KeyPathError as exc:
            problems.append(Misapplied(o.origin, exc.path, exc.expected))
            continue
        done.append(Override(keys, o.value, o.origin))
    if problems:
        raise OverrideError(problems)
    return done


def blame(path: str, applied: Sequence[Override]) -> str | None:
    """The origin of the last override that wrote at, inside or around the invalid place ``path``.

    ``path`` is spelt as validation errors spell it (see :func:`keypath.dotted`). An override
    is blamed when the problem lies in what it wrote (``--set behaviours["x"].rate=-1`` and
    ``behaviours.x.rate``), or when it wrote inside the place found wrong (a group share
    set so that the shares no longer sum to one). A problem at the top level is the file's.
    """
    if not path:
        return None
    for o in reversed(applied):
        mine = keypath.dotted(o.keys)
        if path == mine or path.startswith((mine + ".", mine + "[")) or mine.startswith((path + ".", path + "[")):
            return o.origin
    return None
