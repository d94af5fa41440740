"""``credsim run SCENARIO --shards K [--ray] [--ray-address HOST:PORT]``: the sharded path of ``run``.

:func:`credsim.cli.run.run` hands over here when ``--shards`` or ``--ray`` is given, so the
single-process command keeps its own code. Without ``--ray`` the shards run in this
process (same results, useful to check a layout); with ``--ray`` each shard is a Ray actor
on the cluster at ``--ray-address`` (or ``RAY_ADDRESS``), else on a local one started here.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer
from rich.console import Console

from credsim.api import check_run_args, default_out
from credsim.checkpoint import CheckpointError
from credsim.distributed.run import Layout, ShardFailure
from credsim.memory import MemoryRefused, check_memory
from credsim.resumable import Limits, RunStopped, execute
from credsim.scenario.load import load_scenario, run_overrides
from credsim.scenario.schema import Scenario
from credsim.store import read_manifest

console = Console(stderr=True)


def run_sharded_cmd(scen: Scenario, *, shards: int, ray: bool, ray_address: str | None, population: int | None,
                    days: int | None, seed: int | None, out: Path | None, threads: int | None, block_size: int,
                    max_memory: float | None, overwrite: bool, quiet: bool, checkpoint_every: int | None,
                    max_days: int | None = None, time_budget: float | None = None) -> Path:
    """Run ``scen`` on ``shards`` shards and write the run directory; exit 2 with a message on bad input.

    Checkpoints, ``--max-days``, ``--time-budget``, Ctrl-C and ``credsim resume`` work as for a
    single-process run (:mod:`credsim.resumable` drives both)."""
    scen = load_scenario(scen, run_overrides(population=population, days=days, seed=seed))
    target = out if out is not None else default_out(scen, scen.run.seed)
    try:
        check_run_args(block_size=block_size, threads=threads)
        layout = Layout(max(shards, 1), ray, ray_address)
        # every shard on this machine (with a cluster address, the single-process check as before)
        check_memory(scen, max_memory, layout.shards if ray_address is None else 1)
        limits = Limits(checkpoint_every, max_days, time_budget)
        with console.status(f"{scen.name}: {scen.population.size:,} citizens on {layout.shards} shard(s)",
                            spinner="dots") if not quiet else nullcontext():
            run_dir = execute(scen, target, block=block_size, threads=threads, overwrite=overwrite, limits=limits,
                              extra={"block_size": block_size, "threads": threads}, layout=layout)
    except RunStopped as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(130 if exc.by_signal else 3) from None
    except (ValueError, MemoryRefused, FileExistsError, CheckpointError, ShardFailure) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    stats = read_manifest(run_dir)["sharded"]
    if not quiet:
        console.print(f"{layout.shards} shard(s) on {stats['backend']}: exchanged {stats['exchange_bytes']:,} bytes "
                      f"({stats['exchange_bytes_per_day']:,.0f}/day), {stats['restarts']} restart(s)")
    return run_dir
