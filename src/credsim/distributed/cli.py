"""``credsim run SCENARIO --shards K [--ray] [--ray-address HOST:PORT]``: the sharded path of ``run``.

``credsim.cli.run`` hands over here when ``--shards`` or ``--ray`` is given, so the
single-process command keeps its own code. Without ``--ray`` the shards run in this
process (same results, useful to check a layout); with ``--ray`` each shard is a Ray actor
on the cluster at ``--ray-address`` (or ``RAY_ADDRESS``), else on a local one started here.
"""

from __future__ import annotations

import shutil
import time
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.console import Console

from credsim.api import default_out
from credsim.checkpoint import CheckpointError
from credsim.distributed.run import ShardFailure, run_sharded
from credsim.memory import MemoryRefused, check_memory
from credsim.scenario.load import load_scenario, run_overrides
from credsim.scenario.schema import Scenario

console = Console(stderr=True)


def run_sharded_cmd(scen: Scenario, *, shards: int, ray: bool, ray_address: str | None, population: int | None,
                    days: int | None, seed: int | None, out: Path | None, threads: int | None, block_size: int,
                    max_memory: float | None, overwrite: bool, quiet: bool, checkpoint_every: int | None) -> Path:
    """Run ``scen`` on ``shards`` shards and write the run directory; exit 2 with a message on bad input."""
    scen = load_scenario(scen, run_overrides(population=population, days=days, seed=seed))
    target = out if out is not None else default_out(scen, scen.run.seed)
    t0 = time.perf_counter()
    try:
        check_memory(scen, max_memory)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; choose another --out or pass --overwrite")
        work = target.parent / f".{target.name}.shards" if checkpoint_every else None
        with console.status(f"{scen.name}: {scen.population.size:,} citizens on {shards} shard(s)",
                            spinner="dots") if not quiet else nullcontext():
            run_dir, stats = run_sharded(scen, target, max(shards, 1), ray=ray, address=ray_address,
                                         block=block_size, threads=threads, overwrite=overwrite,
                                         checkpoint_every=checkpoint_every or 0, work_dir=work, wall_start=t0)
    except (ValueError, MemoryRefused, FileExistsError, CheckpointError, ShardFailure) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)  # shard checkpoints are only needed while running
    if not quiet:
        console.print(f"{shards} shard(s) on {stats['backend']}: exchanged {stats['exchange_bytes']:,} bytes "
                      f"({stats['exchange_bytes_per_day']:,.0f}/day), {stats['restarts']} restart(s)")
    return run_dir

