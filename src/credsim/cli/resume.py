"""``credsim resume RUN_DIR``: continue an interrupted, failed or killed run (see :mod:`credsim.resumable`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from credsim.checkpoint import CheckpointError
from credsim.cli.common import MaxMemoryOpt, ThreadsOpt, TimeBudgetOpt, compile_notice, day_progress, fail, summary
from credsim.memory import MemoryRefused
from credsim.resumable import Limits, RunStopped, resume
from credsim.scenario.load import ScenarioError
from credsim.store import read_manifest

app = typer.Typer()


@app.command("resume")
def resume_cmd(
    run_dir: Annotated[Path, typer.Argument(help="the run directory of an interrupted run")],
    threads: ThreadsOpt = None,
    checkpoint_every: Annotated[int | None, typer.Option(min=1, help="checkpoint every D days "
                                                         "(default: as the run was started)")] = None,
    max_days: Annotated[int | None, typer.Option(min=1, help="stop after D more days with a checkpoint")] = None,
    time_budget: TimeBudgetOpt = None,
    max_memory: MaxMemoryOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Continue a run from its newest checkpoint; the results equal those of an uninterrupted run."""
    given = any(v is not None for v in (checkpoint_every, max_days, time_budget))
    limits = Limits(checkpoint_every, max_days, time_budget) if given else None
    compile_notice(quiet)
    t0 = time.perf_counter()
    with day_progress(quiet) as prog:
        # the number of days is known only once the manifest is read (on_start): the bar shows "?" until then
        task = prog.add_task(f"resuming {run_dir.name}", total=None)
        try:
            resume(run_dir, threads=threads, limits=limits, max_memory=max_memory,
                   on_start=lambda d, n: prog.update(task, completed=d, total=n),
                   on_day=lambda d, _n: prog.update(task, completed=d + 1))
        except RunStopped as exc:
            prog.stop()
            fail(exc, 130 if exc.by_signal else 3)
        except (CheckpointError, ScenarioError, MemoryRefused, ValueError) as exc:  # ValueError: bad settings
            prog.stop()
            fail(exc)
    wall = time.perf_counter() - t0
    man = read_manifest(run_dir)
    summary(run_dir, float(man.get("timings_s", {}).get("wall", wall)), quiet)
