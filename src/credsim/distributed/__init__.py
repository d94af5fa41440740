"""Beyond one machine: a population split into shards (Ray actors), with the same results.

- :mod:`credsim.distributed.shard`: one shard's day, on the same stage code as the engine;
- :mod:`credsim.distributed.run`: the driver (local or Ray), recovery, merging into a run directory.
"""

from credsim.distributed.run import ShardFailure, run_sharded, simulate_sharded
from credsim.distributed.shard import Shard, boundaries

__all__ = ["Shard", "ShardFailure", "boundaries", "run_sharded", "simulate_sharded"]
