"""Sharded runs on a two-node Ray cluster started here: more shards than CPUs, and a node lost mid-run.

The cluster (``multi_node``) has two nodes of one CPU each. Three shards asking for a whole CPU
each could never all be placed (nor could three asking 2/3 of one); the run must still finish,
typed as a person types it. Then a node is removed in the middle of a run: its shard dies, the
driver restarts every shard from the newest checkpoint they all hold, and the result is the
same as that of an uninterrupted single-process run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import credsim
from tests.golden import digest
from tests.terminal import typed

N, DAYS = 4096, 12
OUTPUTS = ("metrics.parquet", "citizens.parquet")
OVERRIDES = {"population.size": N, "run.days": DAYS}  # what `credsim run city-points -n N -d DAYS` runs


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scen = credsim.load_scenario("city-points", OVERRIDES)
    return credsim.run(scen, out=tmp_path_factory.mktemp("single") / "run", threads=1).dir


def test_more_shards_than_cpus_typed(multi_node: Any, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "three"
    res = typed("run", "city-points", "-n", str(N), "-d", str(DAYS), "--shards", "3",
                "--ray-address", multi_node.address, "--out", str(out), "--threads", "1", cwd=tmp_path,
                timeout=240, extra_env={"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"})  # see conftest: loopback
    assert res.rc == 0, res.out
    assert "3 shard(s) on ray" in res.out, res.out
    assert not res.traceback, res.out
    assert digest(out, OUTPUTS) == digest(single, OUTPUTS)


def test_node_removed_mid_run_resumes_from_checkpoints(multi_node: Any, single: Path, tmp_path: Path) -> None:
    from credsim.distributed import run_sharded

    scen = credsim.load_scenario("city-points", OVERRIDES)
    lost: list[str] = []

    def remove_worker_node(day: int, backend: Any) -> None:
        if day == 6 and not lost:
            node = next(iter(multi_node.worker_nodes))
            multi_node.remove_node(node, allow_graceful=False)
            lost.append(node.node_id)
            multi_node.add_node(**multi_node.small_node_args)  # a replacement joins, as on a real cluster
            multi_node.wait_for_nodes()

    out, stats = run_sharded(scen, tmp_path / "recovered", 2, ray=True, threads=1, checkpoint_every=4,
                             work_dir=tmp_path / "work", on_day=remove_worker_node)
    assert lost, "the worker node was never removed"
    assert stats["restarts"] == 1, stats
    assert sorted(p.name for p in (tmp_path / "work" / "checkpoint").iterdir()) == ["shard-0", "shard-1"]
    assert digest(out, OUTPUTS) == digest(single, OUTPUTS)
