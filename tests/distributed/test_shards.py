"""Sharded runs give byte-identical results to the single-process engine, on a real Ray cluster."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import credsim
from credsim.distributed import ShardFailure, boundaries, run_sharded
from tests.golden import digest
from tests.test_determinism import RICH

OUTPUTS = ("metrics.parquet", "citizens.parquet")


@pytest.fixture(scope="module")
def scen() -> credsim.Scenario:
    # every cross-shard path: contacts chilled, ties cut, association records, model feature on contacts
    return credsim.load_scenario("city-points", {**RICH, "population.size": 10_000, "run.days": 30})


@pytest.fixture(scope="module")
def single(scen: credsim.Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return credsim.run(scen, out=tmp_path_factory.mktemp("single") / "run").dir


def same_bytes(a: Path, b: Path) -> None:
    """Byte-identical ``metrics.parquet``; ``citizens`` the same rows (a sharded run's parts, concatenated in
    citizen order and written as one file, give the single-process file's bytes)."""
    assert digest(a, OUTPUTS) == digest(b, OUTPUTS), f"outputs differ between {a.name} and {b.name}"


def kill(ray: Any, actor: Any) -> None:
    """Kill a shard's worker and wait until it is really gone (``ray.kill`` is asynchronous)."""
    ray.kill(actor)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ray.get(actor.pid.remote(), timeout=10)
        except ray.exceptions.RayActorError:
            return
        except ray.exceptions.GetTimeoutError:
            continue
        time.sleep(0.05)
    raise AssertionError("the killed actor still answers after 60 s")


def test_boundaries_are_chunk_aligned() -> None:
    assert boundaries(10_000, 1) == [0, 10_000]
    cuts = boundaries(10_000, 4)
    assert cuts[0] == 0 and cuts[-1] == 10_000 and all(c % 1024 == 0 for c in cuts[:-1])
    with pytest.raises(ValueError, match="at most one shard per 1024"):
        boundaries(3000, 4)


@pytest.mark.parametrize("k", [1, 2, 8])
def test_local_shards_match_single_process(scen: credsim.Scenario, single: Path, tmp_path: Path, k: int) -> None:
    out, stats = run_sharded(scen, tmp_path / f"k{k}", k)
    same_bytes(single, out)
    if k > 1:  # the test is only meaningful if something crossed shards
        rows = stats["exchange_rows"]
        assert rows.get("assoc", 0) > 0 and rows.get("listed", 0) > 0 and rows.get("resp", 0) > 0, rows
    cit = credsim.Run(out).citizens()
    assert cit.num_rows == 10_000


def test_ray_shards_match_single_process(ray_cluster: Any, scen: credsim.Scenario, single: Path,
                                         tmp_path: Path) -> None:
    for k in (2, 4):
        out, stats = run_sharded(scen, tmp_path / f"ray{k}", k, ray=True, num_cpus=0.5)
        assert stats["backend"] == "ray"
        same_bytes(single, out)
        assert credsim.Run(out).manifest["sharded"]["shards"] == k


def test_killed_worker_recovers_from_checkpoint(ray_cluster: Any, scen: credsim.Scenario, single: Path,
                                                tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_once(day: int, backend: Any) -> None:
        if day == 16 and not killed:
            kill(ray_cluster, backend.actors[1])
            killed.append(day)

    out, stats = run_sharded(scen, tmp_path / "recovered", 2, ray=True, num_cpus=0.5, checkpoint_every=10,
                             work_dir=tmp_path / "work", on_day=kill_once)
    assert killed and stats["restarts"] == 1
    same_bytes(single, out)


def test_killed_worker_without_checkpoint_fails_clearly(ray_cluster: Any, scen: credsim.Scenario,
                                                        tmp_path: Path) -> None:
    def kill_at_3(day: int, backend: Any) -> None:
        if day == 3:
            kill(ray_cluster, backend.actors[0])

    with pytest.raises(ShardFailure, match="worker died on day 4.*no checkpoints"):
        run_sharded(scen, tmp_path / "lost", 2, ray=True, num_cpus=0.5, days=8, on_day=kill_at_3)
    assert not (tmp_path / "lost").exists(), "nothing is half-written"
