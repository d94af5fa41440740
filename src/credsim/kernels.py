"""Is this the first run? Whether numba must compile credsim's kernels before a run starts.

Why: the first run on a machine compiles every kernel (about 40 s on a laptop); later runs
load them from numba's cache in a second or two. Without a word the first run looks hung,
so the command line prints a one-line notice when the cache is cold.

A kernel counts as cached when numba's index for it exists *and* matches the current source
(numba's own check: same file stamp). A scenario may not use every kernel (serial and parallel twins, the
fused day of points-shaped scenarios, stages a scenario lacks), so many stay cold for ever on a
given machine. So the notice follows the kernels every run calls -- those closing a day's
metrics (:data:`EVERY_RUN`) -- which are cold on a first run and after an upgrade, and warm
otherwise.
"""

from __future__ import annotations

from typing import Any

from credsim.stages import measure

COMPILE_NOTICE = "compiling kernels (first run only, ~40 s; later runs start in a few seconds)"


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
