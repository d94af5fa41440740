"""Help for the person reading a scenario error: "did you mean", and the problems behind the first ones.

- :func:`did_you_mean` suggests the key meant by a misspelt one, from the keys the schema
  allows at that place (walking the pydantic models through dicts, lists and unions).
- :func:`cross_problems_despite` lets one ``credsim validate`` list schema errors *and*
  cross-section problems (undeclared names): the entries with schema errors are removed and
  the rest, if it then validates, is cross-checked.
"""

from __future__ import annotations

import copy
import difflib
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from credsim.scenario.check import cross_check
from credsim.scenario.schema import Scenario


def dotted(loc: tuple[Any, ...]) -> str:
    """A key path as written in messages: ``behaviours.x.rate``, ``sensors.cams.observes[0]``."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def cross_problems_despite(data: dict[str, Any], locs: list[tuple[Any, ...]]) -> list[tuple[str, str]]:
    """Cross-section problems of the rest of a file that has schema errors, so one run of ``validate`` lists
    them all: every entry with an error is removed and, if what is left validates, it is cross-checked;
    problems inside a removed entry or naming a removed key are left out (they would be echoes)."""
    trimmed = copy.deepcopy(data)
    removed: list[str] = []
    names: set[str] = set()
    clean = sorted(set(locs), reverse=True,  # later list items first, so earlier indices stay valid
                   key=lambda loc: [(isinstance(x, int), x if isinstance(x, int) else 0, str(x)) for x in loc])
    for loc in clean:
        if not loc:
            return []
        parent: Any = trimmed
        for item in loc[:-1]:
            try:
                parent = parent[item]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = loc[-1]
        if isinstance(parent, dict) and last in parent:
            del parent[last]
        elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
            parent.pop(last)
        removed.append(dotted(loc))
        names |= {x for x in loc if isinstance(x, str)}
    try:
        scen = Scenario.model_validate(trimmed)
    except ValidationError:
        return []
    out = []
    for path, expected in cross_check(scen):
        if any(path == r or path.startswith((r + ".", r + "[")) for r in removed):
            continue
        if any(f"(got {n!r})" in expected for n in names):
            continue
        out.append((path, expected))
    return out


def _model_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows where ``loc`` ends (field names and aliases), following dicts and lists."""
    types: list[Any] = [Scenario]
    for item in loc:
        nxt: list[Any] = []
        for t in types:
            for u in _unwrap(t):
                if isinstance(u, type) and issubclass(u, BaseModel):
                    for name, f in u.model_fields.items():
                        if item in (name, f.alias):
                            nxt.append(f.annotation)
                elif get_origin(u) is dict and isinstance(item, str):
                    nxt.append(get_args(u)[1])
                elif get_origin(u) is list and isinstance(item, int):
                    nxt.append(get_args(u)[0])
        types = nxt
    keys: list[str] = []
    for t in types:
        for u in _unwrap(t):
            if isinstance(u, type) and issubclass(u, BaseModel):
                keys += [f.alias or name for name, f in u.model_fields.items()]
    return keys


def _unwrap(t: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated."""
    origin = get_origin(t)
    if origin is Annotated:
        return _unwrap(get_args(t)[0])
    if origin in (Union, UnionType):
        return [u for a in get_args(t) for u in _unwrap(a)]
    return [t]


def did_you_mean(loc: tuple[Any, ...]) -> str:
    """`` -- did you mean 'rate'?`` for a misspelt key, from the keys allowed at that place."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    try:
        allowed = _model_keys(loc[:-1])
    except (TypeError, IndexError):  # an annotation this walk does not know: no suggestion
        return ""
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
