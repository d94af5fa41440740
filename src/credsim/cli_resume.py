"""``credsim resume RUN_DIR``: continue an interrupted, failed or killed run (see :mod:`credsim.resumable`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from credsim.checkpoint import CheckpointError
from credsim.memory import MemoryRefused
from credsim.resumable import Limits, RunStopped, resume
from credsim.scenario.load import ScenarioError


def resume_cmd(
    run_dir: Annotated[Path, typer.Argument(help="the run directory of an interrupted run")],
    threads: Annotated[int | None, typer.Option(help="worker threads (results do not depend on it)")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(min=1, help="checkpoint every D days "
                                                         "(default: as the run was started)")] = None,
    max_days: Annotated[int | None, typer.Option(min=1, help="stop after D more days with a checkpoint")] = None,
    time_budget: Annotated[float | None, typer.Option(min=0.001, help="stop after S seconds, checkpointed")] = None,
    max_memory: Annotated[float | None, typer.Option(help="refuse runs estimated above this many GiB")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Continue a run from its newest checkpoint; the results equal those of an uninterrupted run."""

    from credsim.cli import _summary, day_progress
    from credsim.store import read_manifest

    given = any(v is not None for v in (checkpoint_every, max_days, time_budget))
    limits = Limits(checkpoint_every, max_days, time_budget) if given else None
    t0 = time.perf_counter()
    with day_progress(quiet) as prog:
        task = prog.add_task(f"resuming {run_dir.name}", total=0)  # known once the checkpoint is read
        try:
            resume(run_dir, threads=threads, limits=limits, max_memory=max_memory,
                   on_start=lambda d, n: prog.update(task, completed=d, total=n),
                   on_day=lambda d, _n: prog.update(task, completed=d + 1))
        except RunStopped as exc:
            prog.stop()
            typer.echo(str(exc), err=True)
            raise typer.Exit(130 if exc.by_signal else 3) from None
        except (CheckpointError, ScenarioError, MemoryRefused) as exc:
            prog.stop()
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    wall = time.perf_counter() - t0
    man = read_manifest(run_dir)
    _summary(run_dir, float(man.get("timings_s", {}).get("wall", wall)), quiet)
