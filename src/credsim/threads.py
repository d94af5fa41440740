"""Worker threads that behave on a busy machine: one place that decides how many, and when.

Why this module exists: credsim's day is a string of short parallel kernels. On a quiet
machine a parallel region costs tens of microseconds to start; on a busy one (a laptop doing
other things, an oversubscribed cluster node, Ray shards that each bring threads of their
own) a worker that is not running must first be scheduled, and a region waits for its
slowest thread -- a points toy model at 100,000 citizens ran 2-40x slower with two threads
than with one. Three rules follow, all applied here:

1. **Waiting yields the core.** The environment below is set when credsim is imported,
   before numba loads its threading layer: the OpenMP layer (what numba picks here; TBB is
   not installed) with ``OMP_WAIT_POLICY=passive``, so an idle worker sleeps instead of
   spinning on a core another process needs. Values the user already set are kept.
   Set before numba is imported (``credsim/__init__.py`` imports this module first); if
   numba was imported earlier, ``numba.config.THREADING_LAYER`` is set instead, which still
   counts until the first parallel region runs.
2. **No parallel region where the work is too small to pay for it.** Each kernel with a
   parallel version also has a serial one; :func:`parallel_for` says which to call from the
   work a call will do (candidate draws, contact edges). Below :data:`MIN_PARALLEL_WORK`
   units the serial kernel runs and no thread is woken. The cut-off was measured
   (``benchmarks/threads.py``): below it one thread was as fast or faster even on a quiet
   machine.
3. **A sensible default count:** the cores this process may run on (its CPU affinity, which
   container limits and ``taskset`` narrow), never more than numba's pool. A shard under Ray
   calls :func:`configure` with 1 (one thread per shard; the shards are the parallelism).

Results never depend on any of this: every random draw is a pure function of (seed, stream,
day, citizen), and the parallel kernels write disjoint, deterministically ordered blocks.
"""

from __future__ import annotations

import os

# Rule 1 -- must run before numba is imported (see the module docstring).
THREAD_ENV = {
    "NUMBA_THREADING_LAYER": "omp",
    "OMP_WAIT_POLICY": "passive",
}
for _key, _value in THREAD_ENV.items():
    os.environ.setdefault(_key, _value)

import numba  # noqa: E402  (after the environment above, on purpose)
from numba.np.ufunc import parallel as _numba_parallel  # noqa: E402

if not _numba_parallel._is_initialized:  # numba imported before credsim: the layer is still open
    numba.config.THREADING_LAYER = os.environ["NUMBA_THREADING_LAYER"]  # type: ignore[attr-defined]

# Units of work (one candidate draw, one contact edge) below which a kernel runs serially.
# Measured by benchmarks/threads.py (benchmarks/results/threads.md): on this 2-core machine,
# shared and loaded, the parallel event sampler was never faster than the serial one up to
# 50,000 units (3 million citizens at 1.5% events a day) without a neighbour, and lost up to
# 4x below 2,000; so the cut-off sits above every measured size: parallel kernels only
# for work that certainly repays waking a thread.
MIN_PARALLEL_WORK = 100_000

_min_work = MIN_PARALLEL_WORK


def available_cores() -> int:
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Threads when none are asked for: the available cores, capped by numba's pool size."""
    return max(1, min(available_cores(), int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]


def configure(threads: int | None = None, *, min_parallel_work: int | None = None) -> int:
    """Set the worker threads credsim's kernels use from now on in this thread; return the count.

    ``threads=None`` means :func:`default_threads`; a count above numba's pool is capped to it.
    ``min_parallel_work`` changes the serial/parallel cut-off (0 makes every kernel call
    parallel, which tests use to exercise the parallel kernels at small sizes); ``None``
    keeps the current one. Other code (a Ray shard, a calibration worker) calls this rather
    than ``numba.set_num_threads`` so the rules of this module hold everywhere.
    """
    global _min_work
    n = default_threads() if threads is None else max(1, min(int(threads), int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    numba.set_num_threads(n)
    if min_parallel_work is not None:
        _min_work = max(0, int(min_parallel_work))
    return n


def current() -> int:
    """The worker threads set now (:func:`configure`): also how many Parquet parts are encoded at once."""
    return int(numba.get_num_threads())


def min_parallel_work() -> int:
    """The current serial/parallel cut-off in work units (see :func:`configure`)."""
    return _min_work


def parallel_for(work: float) -> bool:
    """Whether a kernel call doing ``work`` units should run its parallel version.

    Only when there is more than one thread to run it and the work pays for waking them."""
    return numba.get_num_threads() > 1 and work >= _min_work


def layer() -> str:
    """The threading layer numba uses (after the first parallel region), or the one it will use."""
    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel region has run yet
        return str(numba.config.THREADING_LAYER)  # type: ignore[attr-defined]


# a kernel call of at least this much work is worth measuring both ways (below it the serial one always runs)
MIN_PROBE_WORK = 20_000


class Choice:
    """Serial or parallel for one kernel called once a day, chosen by timing both.

    Why: whether a parallel region pays depends on the machine *now*. The fused day of a points toy
    model at 10^6 citizens runs 1.6x faster on two threads of a quiet machine, but 4% slower than on
    one when another process holds a core (``benchmarks/threads.py``); no fixed cut-off in work
    units gets both. So the first calls alternate serial and parallel, then the faster (by mean
    seconds a call, an exponentially weighted average) runs, and now and then a call runs the other
    to notice a change of load: :attr:`EXPLORE` calls after a switch, then twice as long after each
    check that changes nothing, up to :attr:`EXPLORE_MAX` (a check of the slower version costs its
    extra time once). Results never depend on the choice: both versions compute the same thing in
    the same order of blocks."""

    EXPLORE = 16  # calls from a switch to the first check of the version not chosen
    EXPLORE_MAX = 256
    WEIGHT = 0.25  # of the newest timing in the running average

    def __init__(self, work: float) -> None:
        self.work = work
        self.calls = 0
        self.mean: dict[bool, float] = {}
        self.interval = self.EXPLORE
        self.check = 4 + self.EXPLORE  # the call that next runs the version not chosen

    def _best(self) -> bool:
        return self.mean[True] < self.mean[False]

    def parallel(self) -> bool:
        """Whether the next call should run the parallel version."""
        if _min_work == 0:  # every kernel parallel (tests)
            return numba.get_num_threads() > 1
        # the cut-off scales with the configured one (tests lower it to exercise both versions at small sizes)
        if numba.get_num_threads() < 2 or self.work < _min_work * (MIN_PROBE_WORK / MIN_PARALLEL_WORK):
            return False
        if len(self.mean) < 2 or self.calls < 4:  # the first calls: each version twice, in turn
            return self.calls % 2 == 1
        return (not self._best()) if self.calls == self.check else self._best()

    def record(self, parallel: bool, seconds: float) -> None:
        """The wall seconds of a call just made with ``parallel``."""
        before = self._best() if len(self.mean) == 2 else None
        old = self.mean.get(parallel)
        self.mean[parallel] = seconds if old is None else (1 - self.WEIGHT) * old + self.WEIGHT * seconds
        if before is not None and self._best() != before:  # switched: check the other again soon
            self.interval = self.EXPLORE
            self.check = self.calls + 1 + self.interval
        elif self.calls == self.check:  # a check that changed nothing: check less often
            self.interval = min(2 * self.interval, self.EXPLORE_MAX)
            self.check = self.calls + self.interval
        self.calls += 1
