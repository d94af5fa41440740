"""A small shard built, run and written, a step at a time (for :mod:`benchmarks.worker_memory`).

A module of its own so that :mod:`benchmarks.worker_memory` can measure the worker before credsim
is imported: importing this module is the shard's import.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable

import credsim
from credsim import engine
from credsim.distributed import Shard, boundaries
from credsim.exchange import deliver

# city-points with every cross-shard path (as benchmarks.scale.CROSS)
CROSS = {"lists.court_defaulters.association_points": -10, "lists.court_defaulters.entry.grace_days": 0,
         "responses.cut_ties": {"effect": "cut_ties", "trigger": "contact_listed", "probability": 0.3}}


def tiny_shard(n: int, days: int, mark: Callable[..., None]) -> None:
    """Shard 1 of 4 of city-points at ``n`` citizens: set-up, ``days`` days alone, its parts written."""
    scen = credsim.load_scenario("city-points", {**CROSS, "population.size": n, "run.days": days})
    cuts = boundaries(n, 4)
    shard = Shard(scen, 1, cuts, threads=1)
    mark("shard set up")
    rounds = engine.rounds_per_day(shard.loop.plan)
    for day in range(days):  # alone: what it sends to other shards is dropped
        box = shard.begin_day(day)
        for _ in range(rounds - 1):
            box = shard.next_round(deliver([box], 1))
        shard.end_day(deliver([box], 1))
    mark(f"{days} days")
    with tempfile.TemporaryDirectory() as tmp:
        shard.write_parts(tmp)
    mark("parts written", smaps=True)
