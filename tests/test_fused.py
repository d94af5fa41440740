"""The fused day equals the staged day: same Day parts, state, metrics, event log and traces, bit for bit.

Runs the toy points model and a richer points-shaped scenario (groups and traits, sensors that miss or are
not shared, three grades, two lists, two responses, points that float32 rounds) through both paths, for a
few seeds, one and two threads and a block size that gives several blocks; and through the overflow path
(every block's events redrawn). Also every built-in scenario the predicate admits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pyarrow as pa
import pytest

import credsim
from credsim import checkpoint, engine, threads
from credsim.day import Day
from credsim.fused import obstacles, points_shaped
from credsim.plan import compile_plan
from tests.golden import BUILTIN

pytestmark = pytest.mark.fast

TOY = Path(__file__).parent.parent / "benchmarks" / "toy.yaml"

RICH_POINTS: dict[str, Any] = {
    "name": "rich-points",
    "population": {"size": 5000, "groups": {"region": {"city": 0.6, "rural": 0.4}, "age": {"young": 0.3, "old": 0.7}},
                   "traits": {"care": {}}},
    "behaviours": {
        "civic.infraction": {"kind": "infraction", "rate": 0.02, "by": {"region": {"rural": 1.5}},
                             "traits": {"care": -0.4}},
        "civic.good_deed": {"kind": "good_deed", "rate": 0.01},
        "civic.post": {"kind": "speech", "rate": 0.3},  # a dense stream (rate bound above DENSE)
    },
    "sensors": {
        "registry": {"observes": ["civic.infraction", "civic.good_deed"], "coverage": 0.9, "detection": 0.8,
                     "coverage_by": {"age": {"young": 0.5}}},
        "watchers": {"observes": ["civic.infraction", "civic.post"], "detection": 0.5},
        "private": {"observes": ["civic.good_deed"], "detection": 0.7},
    },
    "sharing": ["registry", "watchers"],
    "scoring": {
        "points": {"base": 1000, "expiry_days": 36500,
                   "rules": {"civic.infraction": -7.3, "civic.good_deed": 2.1, "civic.post": 0}},
        "grades": {"bands": [{"name": "A", "min": 995}, {"name": "B", "min": 985}, {"name": "C"}]},
    },
    "lists": {
        "blacklist": {"domain": "civic", "entry": {"grades": ["C"]}, "exit": {"on_grade_recovery": True}},
        "watch": {"domain": "civic", "entry": {"grades": ["B", "C"]}, "exit": {"on_grade_recovery": False}},
    },
    "responses": {
        "deterrence": {"effect": "reduce_rate", "trigger": "own_listed", "kinds": ["infraction"], "size": 0.5,
                       "half_life_days": 20, "lists": ["blacklist"]},
        "chill": {"effect": "reduce_rate", "trigger": "own_listed", "kinds": ["speech"], "size": 0.3,
                  "half_life_days": 10},
    },
    "run": {"days": 40, "seed": 3, "trace": 40},
}


@pytest.fixture
def thread_count(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run with ``request.param`` threads, every kernel parallel when two (so the parallel kernels run)."""
    before, work = numba.get_num_threads(), threads.min_parallel_work()
    k = int(request.param)
    threads.configure(k, min_parallel_work=0 if k > 1 else work)
    yield k
    threads.configure(before, min_parallel_work=work)


def _same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, np.ndarray):
        assert a.shape == b.shape and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif hasattr(a, "__dataclass_fields__"):
        for f in fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, where


def _compare(scen: credsim.Scenario, *, seed: int, block: int, parts: bool = True, overflow: bool = False) -> None:
    fast, _ = engine.prepare(scen, seed=seed, block=block, fused=True)
    slow, _ = engine.prepare(scen, seed=seed, block=block, fused=False)
    assert fast.fused is not None and slow.fused is None
    fast.fused.parts = parts
    if overflow:  # every block overflows its slot and is drawn again with room
        fast.fused.caps[:] = 1
    checked = ("events", "grades", "lists", "responses", "attempts", "score_changes", "list_exits", "model_day")
    for day in range(fast.days):
        a, b = fast.step(day), slow.step(day)
        for part in checked + (("observations", "filed") if parts else ()):
            _same(getattr(a, part), getattr(b, part), f"day {day} {part}")
    assert np.array_equal(fast.metrics.table, slow.metrics.table)
    for f in fields(fast.st):
        x, y = getattr(fast.st, f.name), getattr(slow.st, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
    assert fast.st.records.size() == slow.st.records.size() == 0
    _same_table(fast.events.to_arrow(), slow.events.to_arrow())
    _same_table(fast.tracer.to_arrow(), slow.tracer.to_arrow())


def _same_table(a: pa.Table, b: pa.Table) -> None:
    """Equal tables, NaN equal to NaN (the event log's cross and gravity are NaN on grade and list rows)."""
    assert a.schema.equals(b.schema) and a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a[name], b[name]
        if pa.types.is_floating(x.type):
            assert np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=True), name
        else:
            assert x.equals(y), name


def test_toy_and_only_the_toy_of_the_shipped_scenarios_is_points_shaped() -> None:
    assert points_shaped(compile_plan(credsim.load_scenario(TOY)), 365)
    admitted = [b for b in BUILTIN if points_shaped(compile_plan(credsim.load_scenario(b)), 40)]
    assert admitted == []  # update test_builtin_points_shaped_scenarios_equal_staged's expectations if not
    assert "a sensor delay" in obstacles(compile_plan(credsim.load_scenario("baseline")), 40)
    p = compile_plan(credsim.load_scenario(TOY))
    assert obstacles(p, 40000) == ["points expire inside the run"]


@pytest.mark.parametrize("thread_count", [1, 2], indirect=True)
@pytest.mark.parametrize("seed", [1, 2])
def test_fused_toy_equals_staged(thread_count: int, seed: int) -> None:
    scen = credsim.load_scenario(TOY, {"population.size": 30_000, "run.days": 60, "run.trace": 20})
    _compare(scen, seed=seed, block=4096)


@pytest.mark.parametrize("thread_count", [1, 2], indirect=True)
@pytest.mark.parametrize("seed", [3, 11])
def test_fused_rich_points_scenario_equals_staged(thread_count: int, seed: int) -> None:
    scen = credsim.load_scenario(RICH_POINTS)
    plan = compile_plan(scen)
    assert not obstacles(plan, 40)
    _compare(scen, seed=seed, block=2048)


@pytest.mark.parametrize("thread_count", [1, 2], indirect=True)
def test_fused_overflowing_blocks_are_drawn_again(thread_count: int) -> None:
    _compare(credsim.load_scenario(RICH_POINTS), seed=5, block=1024, overflow=True)


@pytest.mark.parametrize("thread_count", [1], indirect=True)
def test_fused_without_parts_keeps_metrics_and_state(thread_count: int) -> None:
    scen = credsim.load_scenario(RICH_POINTS, {"run.trace": 0})
    fast, _ = engine.prepare(scen, block=2048)  # chosen by the predicate
    assert fast.fused is not None and fast.fused.parts is False
    _compare(scen, seed=7, block=2048, parts=False)


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_points_shaped_scenarios_equal_staged(name: str) -> None:
    scen = credsim.load_scenario(name, {"population.size": 3000, "run.days": 20})
    if not points_shaped(compile_plan(scen), 20):
        with pytest.raises(ValueError, match="cannot take the fused day"):
            engine.prepare(scen, fused=True)  # and None (the default) takes the staged loop
        return
    _compare(scen, seed=1, block=1024)


def test_sharded_and_fused_false_runs_stay_staged() -> None:
    scen = credsim.load_scenario(TOY, {"population.size": 4096, "run.days": 2})
    loop, _ = engine.prepare(scen, cuts=[0, 4096], index=0)
    assert loop.fused is None
    loop, _ = engine.prepare(scen, fused=False)
    assert loop.fused is None
    d = Day(0)
    for _ in loop.day_rounds(0, d):
        loop.exchange.loopback()


def test_fused_run_resumes_from_a_checkpoint(tmp_path: Path) -> None:
    """The fused day keeps no state of its own (it is not in a checkpoint): a resumed run equals a straight one."""
    scen = credsim.load_scenario(TOY, {"population.size": 5000, "run.days": 30, "run.trace": 5})
    ref, _ = engine.prepare(scen)
    assert ref.fused is not None
    for day in range(30):
        ref.step(day)
    loop, _ = engine.prepare(scen)
    for day in range(12):
        loop.step(day)
    path = checkpoint.save(tmp_path, loop, 12, {})
    again, _ = engine.prepare(scen)
    checkpoint.restore(path, again, max_bytes=2**34)
    for day in range(12, 30):
        again.step(day)
    assert np.array_equal(ref.metrics.table, again.metrics.table)
    assert np.array_equal(ref.st.score, again.st.score) and np.array_equal(ref.st.resp_day, again.st.resp_day)
    _same_table(ref.events.to_arrow(), again.events.to_arrow())
