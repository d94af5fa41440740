"""Scenario key paths: one syntax to name a place in a scenario, one way to read and write it.

Behaviour, record and points-rule names contain dots (``traffic.violation``), so a plain
dotted path cannot say where a name ends. A key path is therefore one of:

- ``population.size``: plain keys separated by dots;
- ``behaviours["traffic.violation"].rate``: a quoted key in brackets (either quote; a
  backslash makes the next character literal);
- ``scoring.points.rules[traffic.jaywalk]``: an unquoted bracket holds one key verbatim
  (the form sweep files have always used); ``scoring.grades.bands[0].min`` indexes a list;
- ``[behaviours, traffic.violation, rate]``: a list (YAML or Python) with one key per item.

Reading and writing go through the scenario schema, so a misspelt key is refused where it
is made, with the closest real keys offered, instead of creating a stray mapping that
validation later reports far away from the typo. Every command (``--set``, sweeps,
sensitivity, calibration, the dashboard, the Python API) uses this module, and a scenario
is turned into plain data by :func:`dump` only, always with the schema's aliases
(``when.list``, never the Python name ``list_``), so a path read from a dump can be written
back and a manifest can be loaded again.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from credsim.scenario.schema import Scenario

Key = str | int
Keys = tuple[Key, ...]

MAX_KEYS = 64  # far deeper than any scenario; a longer path is a mistake or hostile
MAX_CHARS = 2000
_PLAIN = re.compile(r"[A-Za-z0-9_\-]+")


class KeyPathError(ValueError):
    """A key path that is malformed or leads nowhere: ``path`` (as far as it got) and what was expected."""

    def __init__(self, path: str, expected: str) -> None:
        super().__init__(f"at '{path or '<top>'}': {expected}")
        self.path = path
        self.expected = expected


# -- syntax -------------------------------------------------------------------------------------
def parse(path: str | Sequence[Key]) -> Keys:
    """A key path (string in any of the forms above, or a list of keys) as a tuple of keys."""
    if isinstance(path, str):
        keys = _parse_text(path)
    elif isinstance(path, Sequence):
        keys = tuple(path)
        if not all(isinstance(k, int | str) and not isinstance(k, bool) and k != "" for k in keys):
            raise KeyPathError("", f"a key path list of non-empty names or list indexes (got {_short(path)})")
    else:
        raise KeyPathError("", f"a key path: a string or a list of keys (got {type(path).__name__})")
    if not keys:
        raise KeyPathError("", "a non-empty key path")
    if len(keys) > MAX_KEYS:
        raise KeyPathError("", f"a key path of at most {MAX_KEYS} keys (got {len(keys)})")
    return keys


def _parse_text(text: str) -> Keys:
    s = text.strip()
    if len(s) > MAX_CHARS:
        raise KeyPathError("", f"a key path of at most {MAX_CHARS} characters (got {len(s)})")
    keys: list[Key] = []
    pos = 0
    while pos < len(s):
        if s[pos] == "[":
            key, pos = _bracket(s, pos)
            keys.append(key)
        else:
            if keys:  # after the first key, a plain key follows a dot
                if s[pos] != ".":
                    raise KeyPathError(show(keys), f"'.' or '[' after a key (character {pos} of {text!r})")
                pos += 1
                if pos < len(s) and s[pos] == "[":  # a.["b.c"] reads as a["b.c"]
                    continue
            end = pos
            while end < len(s) and s[end] not in ".[]\"'":
                end += 1
            name = s[pos:end].strip()
            if not name:
                raise KeyPathError(show(keys), f"a key name at character {pos} of {text!r}")
            keys.append(name)
            pos = end
        if len(keys) > MAX_KEYS:
            raise KeyPathError("", f"a key path of at most {MAX_KEYS} keys")
    return tuple(keys)


def _bracket(s: str, pos: int) -> tuple[Key, int]:
    """The key in ``[...]`` starting at ``s[pos]``, and the position after the ``]``."""
    i = pos + 1
    if i < len(s) and s[i] in "\"'":
        quote, out, i = s[i], [], i + 1
        while i < len(s) and s[i] != quote:
            if s[i] == "\\" and i + 1 < len(s):
                i += 1
            out.append(s[i])
            i += 1
        if i >= len(s):
            raise KeyPathError("", f"a closing {quote} for the key opened at character {pos} of {s!r}")
        if i + 1 >= len(s) or s[i + 1] != "]":
            raise KeyPathError("", f"']' after the quoted key at character {pos} of {s!r}")
        if not out:
            raise KeyPathError("", f"a non-empty key at character {pos} of {s!r}")
        return "".join(out), i + 2
    end = s.find("]", i)
    if end < 0:
        raise KeyPathError("", f"a ']' closing the '[' at character {pos} of {s!r}")
    raw = s[i:end].strip()
    if not raw or "[" in raw:
        raise KeyPathError("", f"one key inside '[...]' at character {pos} of {s!r}")
    return (int(raw) if raw.isascii() and raw.isdigit() else raw), end + 1


def show(keys: Sequence[Key]) -> str:
    """The canonical text of a key path: plain names dotted, other names quoted, indexes bracketed."""
    out = []
    for i, k in enumerate(keys):
        if isinstance(k, int):
            out.append(f"[{k}]")
        elif _PLAIN.fullmatch(k):
            out.append(f".{k}" if i else k)
        else:
            out.append('["' + k.replace("\\", "\\\\").replace('"', '\\"') + '"]')
    return "".join(out)


def dotted(keys: Sequence[Key]) -> str:
    """A path as scenario *validation* errors spell it (``behaviours.traffic.violation.rate``).

    Validation errors name places by joining keys with dots; overrides are matched to those
    errors through this spelling, so it must stay the loader's spelling, not :func:`show`.
    """
    out = ""
    for k in keys:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else k)
    return out


def dump(scen: Scenario) -> dict[str, Any]:
    """The scenario as plain JSON-able data: with the schema's aliases, without unset (None) values.

    This is the only way credsim turns a scenario into data (manifests, hashes, sweeps,
    calibration, the dashboard, YAML downloads), so what one part writes another can read
    and load back to the same scenario.
    """
    return scen.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- the schema, as far as paths need it ---------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """What the schema allows at a place: a model's fixed keys, user-named entries, a list, or a value."""

    kind: Literal["model", "names", "items", "value", "any"]
    model: type[BaseModel] | None = None
    item: Any = None  # the annotation of a names-mapping's values or a list's items
    or_value: bool = False  # a plain value is allowed too (a points rule: -5 or {points: -5, ...})

    def child(self, key: str) -> Shape:
        """The shape one key further in (``key`` must be a field when this is a model)."""
        if self.kind == "model" and self.model is not None:
            field = fields(self.model)[key]
            return shape_of(field.annotation)
        if self.kind in ("names", "items"):
            return shape_of(self.item)
        return Shape("any")


def fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the name a scenario file uses (the alias when there is one)."""
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def shape_of(ann: Any) -> Shape:
    """The shape of a field's type: optional parts dropped, since an absent section may be created."""
    origin = get_origin(ann)
    if origin is Annotated:
        return shape_of(get_args(ann)[0])
    if origin in (Union, types.UnionType):
        shapes = [shape_of(a) for a in get_args(ann) if a is not type(None)]
        inner = [s for s in shapes if s.kind != "value"]
        if not inner:
            return Shape("value")
        first = inner[0]
        return Shape(first.kind, first.model, first.item, or_value=len(inner) < len(shapes))
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return Shape("model", ann)
    if origin is dict:
        return Shape("names", item=get_args(ann)[1])
    if origin in (list, tuple):
        return Shape("items", item=get_args(ann)[0])
    if ann is Any:
        return Shape("any")
    return Shape("value")


ROOT = Shape("model", Scenario)


def known_keys(keys: Sequence[Key]) -> list[str] | None:
    """The keys the schema allows inside ``keys`` (a section's fields), or None where names are free."""
    here = ROOT
    for k in keys:
        if here.kind == "model" and here.model is not None and (not isinstance(k, str) or k not in fields(here.model)):
            return None
        here = here.child(str(k))
    return list(fields(here.model)) if here.kind == "model" and here.model is not None else None


def _creatable(s: Shape) -> bool:
    """May a missing mapping be created on the way to a deeper key? Only when nothing in it is required.

    A new behaviour needs a kind and a rate, so ``behaviours["trafic.violation"].rate`` is a
    typo to report, not an entry to create; a group table's new dimension or an absent
    ``cap`` (all defaults) may be created.
    """
    if s.kind in ("names", "any"):
        return True
    if s.kind == "model" and s.model is not None:
        return not any(f.is_required() for f in s.model.model_fields.values())
    return False


def suggest(word: str, candidates: Sequence[str]) -> str:
    """``did you mean 'x'?`` for the closest candidates, else the candidates themselves."""
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    close += [c for c in candidates if c not in close and c.startswith(word + ".")][:3]
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close[:3]) + "?"
    shown = sorted(candidates)[:12]
    more = f", ... ({len(candidates)} in all)" if len(candidates) > 12 else ""
    return f"there: {', '.join(shown) or 'nothing'}{more}"


def _dotted_name_hint(keys: Keys, i: int, have: Sequence[str]) -> str | None:
    """When ``a.b.c`` was written for the key ``"b.c"``, the path as it should be quoted."""
    for j in range(i + 2, len(keys) + 1):
        if not all(isinstance(k, str) for k in keys[i:j]):
            break
        joined = ".".join(str(k) for k in keys[i:j])
        if joined in have:
            return show((*keys[:i], joined, *keys[j:]))
    return None


def _missing(keys: Keys, i: int, have: Sequence[str], what: str) -> KeyPathError:
    key = str(keys[i])
    hint = _dotted_name_hint(keys, i, have)
    if hint is not None:
        return KeyPathError(show(keys[:i + 1]), f"{what} (names with dots are quoted: {hint})")
    return KeyPathError(show(keys[:i + 1]), f"{what} ({suggest(key, have)})")


def _index(cur: list[Any], keys: Keys, i: int) -> int:
    k = keys[i]
    if isinstance(k, str) and k.isascii() and k.isdigit():
        k = int(k)
    if not isinstance(k, int) or not 0 <= k < len(cur):
        raise KeyPathError(show(keys[:i + 1]), f"an index of an existing item, 0 to {len(cur) - 1} (got {k!r})")
    return k


def _step(cur: Any, here: Shape, keys: Keys, i: int, *, writing: bool) -> tuple[Key, Shape]:
    """Check ``keys[i]`` against the schema and the data at ``cur``; return it resolved and its shape."""
    at = show(keys[:i]) or "<top>"
    key = keys[i]
    if here.kind == "model" and here.model is not None:
        allowed = fields(here.model)
        if not isinstance(key, str) or key not in allowed:
            raise _missing(keys, i, list(allowed), f"no key {key!r} in {at}")
        if not isinstance(cur, dict):
            raise KeyPathError(at, f"a mapping (it holds {_short(cur)}); set {at} as a whole")
        return key, here.child(key)
    if here.kind == "items":
        if not isinstance(cur, list):
            raise KeyPathError(at, f"a list (it holds {_short(cur)})")
        return _index(cur, keys, i), here.child("")
    if here.kind == "value":
        raise KeyPathError(at, f"a place that holds a value ({_short(cur)}), so nothing below it")
    if isinstance(cur, list):  # "any": follow the data
        return _index(cur, keys, i), here.child("")
    if not isinstance(cur, dict):
        raise KeyPathError(at, f"a mapping (it holds {_short(cur)}); set {at} as a whole")
    key = str(key)
    last = i == len(keys) - 1
    if key not in cur and not (writing and (last or _creatable(here.child(key)))):
        what = f"no entry {key!r} in {at}" if here.kind == "names" else f"no key {key!r} in {at}"
        raise _missing(keys, i, [str(k) for k in cur], what)
    return key, here.child(key)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "..."


# -- reading and writing -------------------------------------------------------------------------
def get_value(data: Any, path: str | Sequence[Key]) -> Any:
    """The value at ``path`` in scenario data; :class:`KeyPathError` (with the closest keys) if none."""
    keys = parse(path)
    cur, here = data, ROOT
    for i in range(len(keys)):
        key, here = _step(cur, here, keys, i, writing=False)
        if isinstance(cur, dict) and key not in cur:
            raise KeyPathError(show(keys[:i + 1]), f"a value; {key!r} is not set in this scenario (its default"
                                                   " applies; an override may set it)")
        cur = cur[key]
    return cur


def set_value(data: dict[str, Any], path: str | Sequence[Key], value: Any) -> Keys:
    """Set ``path`` to ``value`` in scenario data, creating absent optional sections on the way.

    Returns the path as resolved (list indexes as integers). The value itself is not checked
    here: the scenario schema validates the result like any file.
    """
    keys = parse(path)
    resolved: list[Key] = []
    cur: Any = data
    here = ROOT
    for i in range(len(keys)):
        key, here = _step(cur, here, keys, i, writing=True)
        resolved.append(key)
        if i == len(keys) - 1:
            cur[key] = value
            break
        nxt = cur.get(key) if isinstance(cur, dict) else cur[int(key)]
        if nxt is None:
            if here.kind == "value":
                raise KeyPathError(show(resolved), "a place that holds a value, so nothing below it")
            if here.kind == "items":
                raise KeyPathError(show(resolved), "an existing list (set the whole list instead)")
            nxt = cur[key] = {}
        cur = nxt
    return tuple(resolved)


def delete_value(data: dict[str, Any], path: str | Sequence[Key]) -> None:
    """Remove the key at ``path`` (a sanction switched off); absent keys are left alone."""
    keys = parse(path)
    cur: Any = data
    here = ROOT
    for i in range(len(keys) - 1):
        key, here = _step(cur, here, keys, i, writing=False)
        if isinstance(cur, dict) and key not in cur:
            return
        cur = cur[key] if isinstance(cur, dict) else cur[int(key)]
    key, _ = _step(cur, here, keys, len(keys) - 1, writing=True)
    if isinstance(cur, dict):
        cur.pop(key, None)
    else:
        raise KeyPathError(show(keys), "a key in a mapping (list items cannot be removed by path)")


def check_settable(data: dict[str, Any], path: str | Sequence[Key]) -> Keys:
    """What :func:`set_value` would resolve ``path`` to, without changing ``data`` (KeyPathError if it cannot)."""
    return set_value(copy.deepcopy(data), path, None)
