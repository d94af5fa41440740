"""``credsim run``: one scenario into one run directory (sharded runs go through :mod:`credsim.cli.sharded`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from credsim.api import run as run_api
from credsim.checkpoint import CheckpointError
from credsim.cli.common import (
    MaxMemoryOpt,
    ThreadsOpt,
    TimeBudgetOpt,
    compile_notice,
    day_progress,
    fail,
    parse_set,
    summary,
)
from credsim.cli.sharded import run_sharded_cmd
from credsim.memory import MemoryRefused
from credsim.resumable import RunStopped
from credsim.scenario.load import ScenarioError, load_scenario

app = typer.Typer()


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="built-in name or YAML file")] = "default",
    population: Annotated[int | None, typer.Option("--population", "-n", help="citizens")] = None,
    days: Annotated[int | None, typer.Option("--days", "-d")] = None,
    seed: Annotated[int | None, typer.Option("--seed", "-s")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory")] = None,
    threads: ThreadsOpt = None,
    block_size: Annotated[int, typer.Option(min=1, max=1 << 30,
                                          help="citizens per block (results do not depend on it)")] = 1 << 16,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override KEY.PATH=VALUE, e.g. "
                                                   "'behaviours[\"traffic.violation\"].rate=0.01'")] = None,
    max_memory: MaxMemoryOpt = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out directory")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    checkpoint_every: Annotated[int | None, typer.Option(min=1, help="checkpoint every D days (resumable)")] = None,
    max_days: Annotated[int | None, typer.Option(min=1, help="stop after D days with a checkpoint")] = None,
    time_budget: TimeBudgetOpt = None,
    shards: Annotated[int | None, typer.Option(min=1, help="split citizens over K shards (same results)")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="shards as Ray actors (RAY_ADDRESS or a local cluster)")] = False,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address HOST:PORT (implies --ray)")] = None,
) -> None:
    """Run a scenario and write a run directory (see `credsim resume` for interrupted runs)."""
    try:
        scen = load_scenario(scenario, parse_set(set_))
    except ScenarioError as exc:
        fail(exc)
    if shards is not None or ray or ray_address:
        compile_notice(quiet)
        t_sh = time.perf_counter()
        d = run_sharded_cmd(scen, shards=shards or 1, ray=ray or bool(ray_address), ray_address=ray_address,
                            population=population, days=days, seed=seed, out=out, threads=threads,
                            block_size=block_size, max_memory=max_memory, overwrite=overwrite, quiet=quiet,
                            checkpoint_every=checkpoint_every, max_days=max_days, time_budget=time_budget)
        summary(d, time.perf_counter() - t_sh, quiet)
        return
    n = population or scen.population.size
    total = days or scen.run.days
    compile_notice(quiet)
    t0 = time.perf_counter()
    with day_progress(quiet) as prog:
        task = prog.add_task(f"{scen.name} · {n:,} citizens", total=total)
        try:
            result = run_api(scen, out=out, population=population, days=days, seed=seed, threads=threads,
                             block_size=block_size, max_memory=max_memory, overwrite=overwrite,
                             on_day=lambda d, _t: prog.update(task, completed=d + 1),
                             checkpoint_every=checkpoint_every, max_days=max_days, time_budget=time_budget)
        except ScenarioError as exc:
            prog.stop()
            fail(exc)
        except RunStopped as exc:  # resumable stop (checkpoint.py, resumable.py)
            prog.stop()
            fail(exc, 130 if exc.by_signal else 3)
        except (MemoryRefused, FileExistsError, CheckpointError, ValueError) as exc:  # ValueError: bad settings, --out
            prog.stop()
            fail(exc)
        except OSError as exc:  # the disk, not the user: say what could not be written
            prog.stop()
            fail(f"cannot write the run directory: {exc}")
    summary(result.dir, time.perf_counter() - t0, quiet)
