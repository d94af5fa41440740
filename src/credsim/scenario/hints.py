"""Help for the person reading a scenario error: the problems behind the first ones.

("Did you mean" for a misspelt key comes from :func:`credsim.scenario.keypath.suggest`.)
:func:`cross_problems_despite` lets one ``credsim validate`` list schema errors *and*
  cross-section problems (undeclared names): the entries with schema errors are removed and
  the rest, if it then validates, is cross-checked.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import ValidationError

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
