"""Give freed memory back to the system: glibc's malloc set so large arrays do not fragment its heap.

Why: a run allocates and frees many arrays of a few hundred kilobytes to tens of megabytes a
day (today's events, records, expiry items). glibc serves blocks above its *mmap threshold*
with their own mappings, returned to the system when freed; but by default the threshold
rises (up to 32 MiB) every time such a block is freed, after which the same sizes come from
the heap, where long-lived queue buckets pinned between them keep freed space from being
returned. Fixing the threshold (``mallopt``) stops the rise. Measured peak RSS at 10^6 citizens
x 365 days, one thread (glibc default / fixed at 1 MiB / 256 KiB / 64 KiB): ``integrated`` 1.90 /
1.25 / - / 1.25 GB; ``commercial-score`` - / 1.15 / 0.83 / 0.81 GB, with 4.7 / 5.8 / 14.3 s of
system time for the page faults of fresh mappings. 256 KiB keeps nearly all of the saving at a
fraction of the cost of 64 KiB.

Applied once, when credsim is imported; a threshold the user chose with glibc's own
``MALLOC_MMAP_THRESHOLD_`` is kept. On other C libraries nothing happens. Results never
depend on it.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import sys
from typing import Any

import numpy as np

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 1 << 18  # blocks of 256 KiB and more get their own mapping
_applied = False


def tune() -> bool:
    """Fix glibc's mmap threshold (see the module docstring); return whether it was set."""
    global _applied
    if _applied or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return _applied
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return _applied


def applied() -> bool:
    """Whether :func:`tune` changed the threshold in this process."""
    return _applied


def give_back() -> bool:
    """Return the free pages inside glibc's heap to the system (``malloc_trim``); whether glibc did.

    Why: freeing many small blocks (the event log's daily parts, a few kilobytes each) leaves free space
    between blocks still in use, which glibc keeps. After a run has written its event log and dropped it,
    trimming gives back its memory (21 MB of 611 at 10^6 citizens x 365 days of ``integrated``; nothing
    without the trim) before the citizens are written, where the run peaks."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))


# a whole-population column of a shard smaller than this is allocated as usual
UNRESERVED_MIN = 1 << 20
# Linux's MAP_NORESERVE (Python's mmap names it from 3.12 on); its value on x86-64 and ARM64
_NORESERVE: int | None = getattr(mmap, "MAP_NORESERVE", None)
if _NORESERVE is None and sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64"):
    _NORESERVE = 0x4000


def unreserved_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Zeros in an anonymous mapping the kernel reserves no memory for (``MAP_NORESERVE``), for a shard's
    columns: indexed by every citizen of the population, written only in the shard's range.

    Why: Linux's default overcommit heuristic refuses any one mapping larger than RAM and swap, written or
    not. A shard of 1.4e9 citizens holds event counters of 37 GiB of address space (int16), of which
    its own range writes 28 MB: ``np.zeros`` is refused on a 64 GB node (and on this 24 GB machine at far
    fewer citizens). Pages are backed when first written, as with ``np.zeros``; no huge pages are
    asked for (a range's ends would back 2 MiB each). Small columns, and systems without
    ``MAP_NORESERVE``, get ``np.zeros``."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if nbytes < UNRESERVED_MIN or _NORESERVE is None:
        return np.zeros(shape, dtype=dt)
    mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _NORESERVE)
    return np.frombuffer(mapping, dtype=dt).reshape(shape)  # the array keeps the mapping alive
