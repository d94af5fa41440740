"""Real Ray clusters for the distributed tests, loopback only.

``ray_cluster``: one local single-node cluster for the session. ``multi_node``: a cluster of
two nodes on this machine (``ray.cluster_utils.Cluster``) for one module; while it is up the
test process is connected to it, and afterwards the session cluster comes back if it was up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

# fast failure detection, so that a removed node is noticed in about a second rather than 30 s
FAST_HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 200, "health_check_failure_threshold": 3}


def _quiet_env() -> None:
    # quiet, local, no usage reporting, no dashboard; the cluster binds to 127.0.0.1
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DISABLE_DOCKER_CPU_WARNING", "1")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def _start_local(ray: Any) -> None:
    # address="local": always a cluster of our own, never one another process (or test worker) started
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1", object_store_memory=200 * 1024 * 1024)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    _quiet_env()
    if ray.is_initialized():
        ray.shutdown()
    _start_local(ray)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def multi_node() -> Iterator[Any]:
    """A head and one worker node, one CPU each, with fast node-failure detection; shut down afterwards."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster  # the optional extra: imported only when Ray is there

    _quiet_env()
    was_up = ray.is_initialized()
    if was_up:
        ray.shutdown()
    # Ray turns a loopback cluster address into the machine's outward address before connecting,
    # where a cluster bound to 127.0.0.1 does not listen; this switch keeps it on the loopback
    # (read when connecting; a child process gets the same through RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0)
    constants = pytest.importorskip("ray._private.ray_constants")
    mp = pytest.MonkeyPatch()
    mp.setattr(constants, "ENABLE_RAY_CLUSTER", False)
    small = {"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024, "node_ip_address": "127.0.0.1",
             "include_dashboard": False}
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={**small, "_system_config": FAST_HEALTH})
        cluster.add_node(**small)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        cluster.small_node_args = small
        yield cluster
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        mp.undo()
        if was_up:
            _start_local(ray)
