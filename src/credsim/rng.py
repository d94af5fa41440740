"""Counter-based random streams.

Every random number in credsim is a pure function of
``(seed, stream, day, citizen[, sub])``. Nothing is drawn from a stateful generator
on the hot path, so the result of a run does not depend on how many threads, blocks,
processes or shards compute it, and two scenarios run with the same seed share their
random numbers (common random numbers) wherever they use the same named stream.

Streams are named (``"behave:traffic.violation"``, ``"detect:cameras:traffic.violation"``)
and the name is hashed to a 64-bit id, so adding a behaviour to a scenario does not
shift the numbers any other behaviour sees.

The mixer is SplitMix64's finaliser, applied in a keyed chain. It passes BigCrush as a
counter-based generator when keys and counters are mixed this way (Steele et al. 2014),
and costs about a nanosecond per draw in a Numba kernel.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
from numba import njit

MASK64 = (1 << 64) - 1
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_GOLDEN = 0x9E3779B97F4A7C15


def _mix_py(z: int) -> int:
    z &= MASK64
    z = ((z ^ (z >> 30)) * _C1) & MASK64
    z = ((z ^ (z >> 27)) * _C2) & MASK64
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=4096)
def stream_id(name: str) -> int:
    """Stable 64-bit id of a named stream (independent of Python's hash seed); cached because every
    day's keys hash the same few names again."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


@functools.lru_cache(maxsize=4096)
def run_key(seed: int, stream: str) -> int:
    """The part of :func:`day_key` that does not change with the day (a daily kernel keeps it for the run);
    cached because a day asks for the same streams again."""
    return _mix_py(_mix_py(seed + _GOLDEN) ^ stream_id(stream))


def day_key(seed: int, stream: str, day: int) -> np.uint64:
    """The key of one stream on one day: a pure function of its three arguments."""
    return key_on_day(run_key(seed, stream), day)


def key_on_day(k: int, day: int) -> np.uint64:
    """:func:`day_key` from its :func:`run_key` ``k``."""
    return np.uint64(_mix_py(k + (day + 1) * _GOLDEN))


def static_key(seed: int, stream: str) -> np.uint64:
    """Key of a stream that does not change with the day (population, coverage)."""
    return day_key(seed, stream, -1)


_U_C1 = np.uint64(_C1)
_U_C2 = np.uint64(_C2)
_U_GOLDEN = np.uint64(_GOLDEN)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


@njit(inline="always", cache=True)
def mix64(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _U_C1
    z = (z ^ (z >> _S27)) * _U_C2
    return z ^ (z >> _S31)


@njit(inline="always", cache=True)
def uniform(key: np.uint64, counter: np.uint64) -> float:
    """A uniform number in [0, 1) for ``counter`` under ``key``."""
    h = mix64(key ^ mix64(counter * _U_GOLDEN + _U_GOLDEN))
    return float(h >> _S11) * _INV53


@njit(cache=True)
def uniforms(key: np.uint64, counters: np.ndarray) -> np.ndarray:
    """Vectorised :func:`uniform` over an array of counters (citizen ids)."""
    out = np.empty(counters.shape[0], dtype=np.float64)
    for j in range(counters.shape[0]):
        out[j] = uniform(key, np.uint64(counters[j]))
    return out


@njit(cache=True)
def uniforms_range(key: np.uint64, start: int, stop: int) -> np.ndarray:
    """:func:`uniform` for every citizen id in ``[start, stop)``."""
    out = np.empty(stop - start, dtype=np.float64)
    for j in range(stop - start):
        out[j] = uniform(key, np.uint64(start + j))
    return out
