"""Is this the first run? Whether numba must compile credsim's kernels before a run starts.

Why: the first run on a machine compiles every kernel (about 40 s on a laptop); later runs
load them from numba's cache in a second or two. Without a word the first run looks hung,
so the command line prints a one-line notice when the cache is cold.

A kernel counts as cached when numba's index for it exists *and* matches the current source
(numba's own check: same file stamp). Kernels inlined into others are never cached on their
own and are not counted. A scenario may not use every kernel (serial and parallel twins, the
fused day of points-shaped scenarios, stages a scenario lacks), so many stay cold for ever on a
given machine. So the notice follows the kernels every run calls -- those closing a day's
metrics (:data:`EVERY_RUN`) -- which are cold on a first run and after an upgrade, and warm
otherwise.
"""

from __future__ import annotations

import sys
from typing import Any

from credsim.stages import measure

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
        cold += not _warm(disp)
    return cold, len(kernels)


# every run, staged or fused, closes each day's metrics with these
EVERY_RUN = (measure._close_flows, measure._project_stocks)


def _warm(disp: Any) -> bool:
    try:
        return bool(disp._cache._cache_file._load_index())
    except Exception:  # numba internals moved, or an unreadable index: count as cold, never fail a run
        return False


def needs_compiling() -> bool:
    """True when a run will first spend a while compiling (see the module docstring)."""
    return not all(_warm(k) for k in EVERY_RUN)
