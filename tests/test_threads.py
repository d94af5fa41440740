"""Threads: the configuration credsim applies, and results that do not depend on it.

Timings are never tested here (benchmarks/threads.py measures them); what is tested is that the
settings are applied and that the serial and the parallel kernels give the same run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numba
import numpy as np
import pytest

import credsim
from credsim import threads
from credsim.engine import Result, simulate
from credsim.stages.score import contacts_share
from tests.test_determinism import RICH

POOL = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
SIZE = {**RICH, "population.size": 4096, "run.days": 30}


@pytest.fixture
def restore() -> Iterator[None]:
    before = numba.get_num_threads()
    yield
    threads.configure(before, min_parallel_work=threads.MIN_PARALLEL_WORK)


def test_configure_applies_the_count_and_the_cut_off(restore: None) -> None:
    assert threads.configure(1) == 1 and numba.get_num_threads() == 1
    assert not threads.parallel_for(10**12), "one thread never runs a parallel kernel"
    pool = POOL
    assert threads.configure(10**6) == pool, "a count above numba's pool is capped to it"
    assert threads.configure(None) == threads.default_threads() == min(pool, threads.available_cores())
    if pool >= 2:
        threads.configure(2, min_parallel_work=1000)
        assert threads.parallel_for(1000) and not threads.parallel_for(999)


@pytest.mark.skipif(POOL < 2, reason="needs two threads")
def test_a_choice_runs_the_version_measured_faster_and_keeps_checking(restore: None) -> None:
    """The fused day's serial/parallel choice (threads.Choice), fed timings rather than measured: it tries each
    version twice, then runs the faster, checking the other EXPLORE calls later and then ever less often;
    when the load changes and the other becomes faster, it follows. Small work and one thread never run
    the parallel version."""
    threads.configure(2)
    c = threads.Choice(10**6)
    cost = {True: 1.0, False: 2.0}  # parallel twice as fast
    ran = []
    for _ in range(200):
        par = c.parallel()
        ran.append(par)
        c.record(par, cost[par])
    assert ran[:4] == [False, True, False, True]
    checks = [k for k in range(4, 200) if not ran[k]]
    e = c.EXPLORE
    assert checks == [4 + e, 4 + 3 * e, 4 + 7 * e], checks  # after 16, then 32, then 64 calls
    cost = {True: 3.0, False: 2.0}  # a neighbour arrives: parallel now slower
    ran = []
    for _ in range(100):
        par = c.parallel()
        ran.append(par)
        c.record(par, cost[par])
    switched = ran.index(False)
    assert switched <= 3, "the running average crossed within a few calls"
    assert sum(ran[switched:]) <= 3, "then serial, checking parallel after 16, 32 and 64 calls at most"
    assert not threads.Choice(threads.MIN_PROBE_WORK - 1).parallel(), "too little work is never parallel"
    threads.configure(1)
    assert not c.parallel(), "one thread never runs the parallel version"


def test_the_threading_environment_is_in_place_when_a_parallel_region_runs(restore: None) -> None:
    """Importing credsim put the threading variables in the environment (its own values, or the
    user's), and numba's parallel regions run on the layer named there; the allocator was tuned
    unless the user chose glibc's threshold."""
    assert all(k in os.environ for k in threads.THREAD_ENV)
    threads.configure(2, min_parallel_work=0)
    contacts_share(np.array([0, 1, 1]), np.array([1]), np.zeros(1, np.uint8), np.ones(2, np.uint8))
    assert numba.threading_layer() == os.environ["NUMBA_THREADING_LAYER"]
    assert credsim.allocator.applied() == ("MALLOC_MMAP_THRESHOLD_" not in os.environ)


def _run(nthreads: int, min_work: int) -> Result:
    threads.configure(nthreads, min_parallel_work=min_work)
    return simulate(credsim.load_scenario("city-points", SIZE))


@pytest.mark.skipif(POOL < 2, reason="needs a pool of two threads")
def test_serial_and_parallel_kernels_give_the_same_run(restore: None, tmp_path: Path) -> None:
    """One thread (serial kernels only) and two threads with every kernel forced parallel (cut-off 0):
    the same final state, metrics and event log, value for value (a model score on contacts included)."""
    serial = _run(1, threads.MIN_PARALLEL_WORK)
    forced = _run(2, 0)
    assert serial.state.listed.sum() > 0 and serial.plan.has_model
    for col in ("score", "mscore", "grade", "listed", "counters"):
        np.testing.assert_array_equal(getattr(forced.state, col), getattr(serial.state, col), err_msg=col)
    np.testing.assert_array_equal(forced.metrics.table, serial.metrics.table)
    assert serial.events is not None and forced.events is not None
    serial.events.write_parquet(tmp_path / "serial.parquet")
    forced.events.write_parquet(tmp_path / "forced.parquet")  # byte for byte (NaN != NaN in Table.equals)
    assert (tmp_path / "forced.parquet").read_bytes() == (tmp_path / "serial.parquet").read_bytes()
