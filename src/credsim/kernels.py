"""Is this the first run? Whether numba must compile credsim's kernels before a run starts.

Why: the first run on a machine compiles every kernel (about 40 s on a laptop); later runs
load them from numba's cache in a second or two. Without a word the first run looks hung,
so the command line prints a one-line notice when the cache is cold.

A kernel counts as cached when numba's index for it exists *and* matches the current source
(numba's own check: same file stamp). Kernels inlined into others are never cached on their
own and are not counted. A scenario may not use every kernel, so some stay cold for ever on
a given machine: the notice is given only when at least half are cold, which is the case on
a first run and after an upgrade, and not otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

COMPILE_NOTICE = "compiling kernels (first run only, ~40 s; later runs start in a few seconds)"


def _cached_kernels() -> list[tuple[str, Any]]:
    """(name, dispatcher) of every imported credsim kernel compiled with ``cache=True`` and not inlined."""
    found: dict[int, tuple[str, Any]] = {}
    for modname, mod in list(sys.modules.items()):
        if not modname.startswith("credsim") or mod is None:
            continue
        for attr, obj in list(vars(mod).items()):
            cache = getattr(obj, "_cache", None)
            if cache is None or not hasattr(cache, "_cache_file"):
                continue
            if getattr(obj, "targetoptions", {}).get("inline") == "always":
                continue
            found.setdefault(id(obj), (f"{modname}.{attr}", obj))
    return list(found.values())


def cold_kernels() -> tuple[int, int]:
    """(kernels without a usable cache entry, kernels checked)."""
    kernels = _cached_kernels()
    cold = 0
    for _name, disp in kernels:
        try:
            warm = bool(disp._cache._cache_file._load_index())
        except Exception:  # numba internals moved, or an unreadable index: count as cold, never fail a run
            warm = False
        cold += not warm
    return cold, len(kernels)


def needs_compiling() -> bool:
    """True when a run will first spend a while compiling (see the module docstring)."""
    cold, total = cold_kernels()
    return total > 0 and 2 * cold >= total
