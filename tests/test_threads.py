"""Threads: the configuration credsim applies, and results that do not depend on it.

Timings are never tested here (benchmarks/threads.py measures them); what is tested is that the
settings are applied and that the serial and the parallel kernels give the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numba
import numpy as np
import pytest

import credsim
from credsim import threads
from credsim.engine import Result, simulate
from tests.test_determinism import RICH

SRC = Path(__file__).resolve().parents[1] / "src"
SIZE = {**RICH, "population.size": 4096, "run.days": 30}


@pytest.fixture
def restore() -> Iterator[None]:
    before = numba.get_num_threads()
    yield
    threads.configure(before, min_parallel_work=threads.MIN_PARALLEL_WORK)


def test_configure_applies_the_count_and_the_cut_off(restore: None) -> None:
    assert threads.configure(1) == 1 and numba.get_num_threads() == 1
    assert not threads.parallel_for(10**12), "one thread never runs a parallel kernel"
    pool = int(numba.config.NUMBA_NUM_THREADS)
    assert threads.configure(10**6) == pool, "a count above numba's pool is capped to it"
    assert threads.configure(None) == threads.default_threads() == min(pool, threads.available_cores())
    if pool >= 2:
        threads.configure(2, min_parallel_work=1000)
        assert threads.parallel_for(1000) and not threads.parallel_for(999)


def test_the_environment_is_set_before_numba_loads_its_threading_layer() -> None:
    """A fresh interpreter without the variables: credsim sets them, and numba's first parallel region
    uses the OpenMP layer with passive waiting, and the allocator's threshold is fixed."""
    code = ("import os, credsim, numba, numpy as np; from credsim.stages.score import _contacts_share_parallel as k; "
            "k(np.array([0, 1, 1]), np.array([1]), np.ones(1, np.uint8), np.ones(2, np.uint8)); "
            "print(numba.threading_layer(), os.environ['OMP_WAIT_POLICY'], credsim.allocator.applied())")
    env = {k: v for k, v in os.environ.items() if k not in threads.THREAD_ENV and not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(SRC)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["omp", "passive", "True"]


def _run(nthreads: int, min_work: int) -> Result:
    threads.configure(nthreads, min_parallel_work=min_work)
    return simulate(credsim.load_scenario("city-points", SIZE))


@pytest.mark.skipif(int(numba.config.NUMBA_NUM_THREADS) < 2, reason="needs a pool of two threads")
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
