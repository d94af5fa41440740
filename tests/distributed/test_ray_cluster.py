"""Sharded runs on a two-node Ray cluster started here: more shards than CPUs, and a node lost mid-run.

The cluster (``multi_node``) has two nodes of one CPU each. Three shards asking for a whole CPU
each could never all be placed (nor could three asking 2/3 of one); the run must still run.
In its middle a node is removed: the shards on it die, the driver restarts every shard from the
newest checkpoint they all hold (a replacement node has joined), and the result is the same as
that of an uninterrupted single-process run. One run for both, to keep the suite short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import credsim
from credsim.distributed import run_sharded
from tests.golden import digest

N, DAYS = 4096, 12
OUTPUTS = ("metrics.parquet", "citizens.parquet")
OVERRIDES = {"population.size": N, "run.days": DAYS}


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scen = credsim.load_scenario("city-points", OVERRIDES)
    return credsim.run(scen, out=tmp_path_factory.mktemp("single") / "run", threads=1).dir


def test_more_shards_than_cpus_and_a_node_removed_mid_run(multi_node: Any, single: Path, tmp_path: Path) -> None:
    scen = credsim.load_scenario("city-points", OVERRIDES)
    lost: list[str] = []
    shares: list[float] = []

    def remove_worker_node(day: int, backend: Any) -> None:
        shares.append(backend.num_cpus)
        if day == 6 and not lost:
            node = next(iter(multi_node.worker_nodes))
            multi_node.remove_node(node, allow_graceful=False)
            lost.append(node.node_id)
            multi_node.add_node(**multi_node.small_node_args)  # a replacement joins, as on a real cluster
            multi_node.wait_for_nodes()

    # three shards on two one-CPU nodes: each asks for half a CPU (a whole one, or 2/3, would never fit)
    out, stats = run_sharded(scen, tmp_path / "recovered", 3, ray=True, threads=1, checkpoint_every=4,
                             work_dir=tmp_path / "work", on_day=remove_worker_node)
    assert lost, "the worker node was never removed"
    assert set(shares) == {0.5}, shares  # before and after the restart
    assert stats["restarts"] == 1, stats
    assert sorted(p.name for p in (tmp_path / "work" / "checkpoint").iterdir()) == ["shard-0", "shard-1", "shard-2"]
    assert digest(out, OUTPUTS) == digest(single, OUTPUTS)
