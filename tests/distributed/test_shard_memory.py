"""A shard's memory grows with its own citizens, not with the population.

Why: at country scale a shard holds 1/K of the citizens; anything it keeps for *everyone*
(row pointers, group codes, traits, metric cells, a mask) makes its memory O(N) and K shards
no cheaper than one process. Per-citizen columns keep global indexing (the stage kernels index
them by citizen id) but must be written only in the shard's range: unwritten pages are zero
pages the operating system never backs. So a shard's *held* bytes are every array it can reach,
counting a per-citizen column only for its range, and we require (1) nothing outside the range
is ever written and (2) held bytes do not grow when the population grows around the same range,
beyond a small allowance per citizen of the population (the per-RNG-chunk rate bounds of each
event stream: 8 bytes per stream per 1,024 citizens).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import credsim
from credsim import engine
from credsim.distributed import Shard
from credsim.engine import Loop
from credsim.exchange import deliver
from credsim.memory import EVENT_WRITE_BYTES, estimate_memory
from credsim.plan import compile_plan
from credsim.state import bytes_per_citizen

SHARD = (8192, 16384)  # the same citizens in both populations
ALLOWANCE = 0.5  # bytes per citizen of the population


def _arrays(obj: Any, path: str, seen: set[int]) -> Iterator[tuple[str, np.ndarray]]:
    """Every ndarray reachable from ``obj`` (credsim objects, dicts, lists, tuples), each once."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield path, obj
        return
    if isinstance(obj, dict):
        items = [(f"{path}[{k!r}]", v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(obj)]
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("credsim"):
        items = [(f"{path}.{k}", v) for k, v in vars(obj).items()]
    else:
        return
    for p, v in items:
        yield from _arrays(v, p, seen)


def held(loop: Loop, lo: int, hi: int) -> tuple[int, list[str]]:
    """(bytes the shard holds, per-citizen columns written outside ``[lo, hi)``)."""
    n = loop.st.n
    total, leaks = 0, []
    for path, a in _arrays(loop, "loop", set()):
        if a.ndim and a.shape[-1] == n and a.strides[-1] != 0:
            total += a.nbytes // n * (hi - lo)
            if a[..., :lo].any() or a[..., hi:].any():
                leaks.append(path)
        elif a.strides != (0,) * a.ndim:  # a broadcast constant holds one element
            total += a.nbytes
    return total, leaks


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[int, list[str], int, int]]:
    """Shard ``SHARD`` of a small and a four times larger population, after set-up and three days: held
    bytes, columns written outside the range, ties, and the bytes of a checkpoint restored into a fresh shard
    (which must then hold the same columns, and nothing outside its range)."""
    out = {}
    for n in (40_000, 160_000):
        scen = credsim.load_scenario("city-points", {
            "population.size": n, "run.days": 3, "lists.court_defaulters.association_points": -10,
            "lists.court_defaulters.entry.grace_days": 0,
            "responses.cut_ties": {"effect": "cut_ties", "trigger": "contact_listed", "probability": 0.3}})
        shard = Shard(scen, 1, [0, *SHARD, n], threads=1)
        for day in range(3):  # the shard alone: what it sends to other shards is dropped
            box = shard.begin_day(day)
            for _ in range(engine.rounds_per_day(shard.loop.plan) - 1):
                box = shard.next_round(deliver([box], 1))
            shard.end_day(deliver([box], 1))
        total, leaks = held(shard.loop, *SHARD)
        path = Path(shard.save_checkpoint(str(tmp_path_factory.mktemp(f"ckpt{n}")), 3))
        again = Shard(scen, 1, [0, *SHARD, n], threads=1)
        assert again.load_checkpoint(str(path))["day"] == 3
        for name, a in vars(shard.loop.st).items():
            if isinstance(a, np.ndarray):
                assert np.array_equal(getattr(again.loop.st, name), a), name
        _t, leaks_again = held(again.loop, *SHARD)
        out[n] = (total, leaks + leaks_again, shard.loop.st.graph.n_edges, path.stat().st_size)
    return out


def test_nothing_outside_the_range_is_written(shards: dict[int, tuple[int, list[str], int, int]]) -> None:
    for n, (_total, leaks, _e, _c) in shards.items():
        assert not leaks, f"N={n}: written outside the shard's citizens: {leaks}"


def test_held_bytes_do_not_grow_with_the_population(shards: dict[int, tuple[int, list[str], int, int]]) -> None:
    (small, _l1, e1, _c1), (big, _l2, e2, _c2) = shards[40_000], shards[160_000]
    assert e1 == e2 or abs(e1 - e2) < 0.01 * e1  # the shard's own ties (a few picks land differently)
    growth = big - small
    assert growth <= ALLOWANCE * (160_000 - 40_000) + 8 * abs(e2 - e1), (
        f"{growth / 120_000:.2f} bytes per added citizen of the population (held {small:,} -> {big:,})")
    assert big < 2_000 * (SHARD[1] - SHARD[0]), "the shard's own bytes per citizen are out of bounds"


def test_estimate_of_shards_on_one_machine() -> None:
    """What ``credsim run --shards K`` checks: K interpreters, the citizens once (each shard its own),
    and a shard's peak the larger of building its graph rows and running (not both at once). With association
    points the graph is read (court-defaulters alone builds none: its estimate charges no graph)."""
    plain = credsim.load_scenario("court-defaulters", {"population.size": 10**8, "run.days": 30, "redress": None})
    assert estimate_memory(plain, 4).parts["graph"] == estimate_memory(plain, 4).parts["graph build (temporary)"] == 0
    scen = credsim.load_scenario("court-defaulters", {"population.size": 10**8, "run.days": 30, "redress": None,
                                                      "lists.court_defaulters.association_points": -10})
    one, four = estimate_memory(scen), estimate_memory(scen, 4)
    assert four.parts["interpreter"] == 4 * one.parts["interpreter"]
    assert abs(four.parts["state"] - one.parts["state"]) <= 4 * bytes_per_citizen(compile_plan(scen))
    assert four.total < sum(four.parts.values()), "the graph build and the run do not peak together"
    assert one.total < sum(one.parts.values()), "nor in one process"
    # both peak while running: the shards hold the citizens once, and each its own interpreter, metric table
    # and event log writing buffer
    extra = 3 * (one.parts["interpreter"] + one.parts["metrics"] + EVENT_WRITE_BYTES)
    assert abs(four.total - (one.total + extra)) < 2**20


def test_checkpoints_hold_the_shards_citizens_only(shards: dict[int, tuple[int, list[str], int, int]]) -> None:
    """A shard's checkpoint stores its per-citizen columns for its range (restored above, column for column)."""
    (*_a, e1, c1), (*_b, e2, c2) = shards[40_000], shards[160_000]
    assert c2 - c1 <= ALLOWANCE * (160_000 - 40_000) + 8 * abs(e2 - e1), f"checkpoint {c1:,} -> {c2:,} bytes"


def _rss() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))


@pytest.mark.skipif(not Path("/proc/sys/vm/overcommit_memory").exists()
                    or Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "2",
                    reason="Linux with its default overcommit heuristic (strict accounting refuses any large mapping)")
def test_a_shard_of_more_citizens_than_memory_can_index_them_all() -> None:
    """A shard's columns are indexed by every citizen of the population (the kernels index by id) but written
    only in its range. At 1.4e9 citizens its event counters alone are 37 GiB of address space: more than this
    machine's memory, which Linux's default heuristic refuses for one mapping however little of it is
    written. So such columns are mappings the kernel reserves nothing for, and the shard's resident memory
    stays that of its own 65,536 citizens."""
    n = 1_400_000_000
    scen = credsim.load_scenario("court-defaulters", {"redress": None})
    before = _rss()
    shard = Shard(scen, 0, [0, 1 << 16, n], population=n, days=3, threads=1)
    st = shard.loop.st
    assert st.counters.nbytes > 36 * 2**30  # 37 GiB of address space for one column (int16)
    for day in range(3):
        shard.begin_day(day)
        for _ in range(engine.rounds_per_day(shard.loop.plan) - 1):
            shard.next_round({})
        shard.end_day({})
    assert int(st.counters[:, : 1 << 16].sum()) > 0, "the range's citizens acted"
    assert not st.counters[:, 1 << 16:(1 << 16) + (1 << 20)].any()
    assert _rss() - before < 512 * 2**20, "resident memory grew with the population, not the range"
