"""What every ``credsim`` command shares: consoles, the day progress bar, ``--set`` parsing, the run summary.

Kept apart from :mod:`credsim.cli` (which only assembles the app) so that command modules
import it without importing each other.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from credsim import names
from credsim.kernels import COMPILE_NOTICE, needs_compiling
from credsim.report.labels import for_run
from credsim.scenario.load import parse_set as parse_set  # every command parses --set the same way
from credsim.store import connect, read_manifest

console = Console(stderr=True)
out_console = Console()


def fail(message: object, code: int = 2) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``: how every command reports a user error."""
    typer.echo(str(message), err=True)
    raise typer.Exit(code)


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} days/s" if speed else "-- days/s", style="progress.data.speed")


class DayColumn(ProgressColumn):
    """``day done/total``; the total may be unknown until a resumed run has read its checkpoint."""

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{task.total:.0f}"
        return Text(f"day {task.completed:.0f}/{total}")


def day_progress(quiet: bool) -> Progress:
    """The progress bar of a run: days done, days/s, elapsed time and ETA (on stderr)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DayColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, disable=quiet, transient=False)


def finite_positive(value: float | None) -> float | None:
    """Typer callback: a number of GiB or seconds must be finite and above zero (``nan`` passes a range check)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"expected a finite number above 0, got {value}")
    return value


# options shared by run and resume (typer reads the annotations; the aliases keep both commands alike)
ThreadsOpt = Annotated[int | None, typer.Option(min=1, help="worker threads (results do not depend on it)")]
MaxMemoryOpt = Annotated[float | None, typer.Option(callback=finite_positive,
                                                    help="refuse runs estimated above this many GiB")]
TimeBudgetOpt = Annotated[float | None, typer.Option(min=0.001, callback=finite_positive,
                                                     help="stop after S seconds, checkpointed")]


def compile_notice(quiet: bool) -> None:
    """Say so when the run will first compile its kernels (a cold cache), so a 40 s pause does not look hung."""
    if not quiet and needs_compiling():
        console.print(f"[dim]{COMPILE_NOTICE}[/dim]")


def summary(run_dir: Path, wall: float, quiet: bool) -> None:
    """The table printed at the end of ``run`` and ``resume`` (just the directory with ``-q``)."""
    man = read_manifest(run_dir)
    if quiet:
        out_console.print(str(run_dir))
        return
    con = connect(run_dir)
    try:
        last = con.execute("SELECT max(day) FROM metrics").fetchone()[0]  # type: ignore[index]
        rows = con.execute(
            "SELECT metric, value FROM metrics WHERE dimension='all' AND day=? AND "
            "(metric LIKE 'listed.%' OR metric LIKE 'grade.%' OR metric='population')", [last]).fetchall()
        flows = con.execute(
            "SELECT split_part(metric, '.', 1) AS m, sum(value) FROM metrics WHERE dimension='all' AND "
            "(metric LIKE 'denied.%' OR metric LIKE 'wrongful.%' OR metric LIKE 'missed.%' "
            " OR metric LIKE 'attempts.%' OR metric LIKE 'records.%') "
            "AND metric NOT IN ('denied.cross_context_sum', 'denied.association_only') GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    n = man["population"]
    t = Table(title=f"{man['scenario_name']}: {n:,} citizens x {man['days']} days, seed {man['seed']}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    lab = for_run(run_dir)  # readers' words, never internal metric names
    meaning = {f.prefix: f.meaning for f in names.FAMILIES}
    for metric, value in rows:
        if metric != "population":
            t.add_row(f"{lab.metric(metric)} (end of run)", f"{value:,.0f} ({100 * value / n:.2f}%)")
    for metric, value in flows:
        t.add_row(f"{meaning.get(metric, 'records filed' if metric == 'records' else metric)} (all days)",
                  f"{value:,.0f}")
    rate = n * man["days"] / max(wall, 1e-9)
    t.add_row("wall time", f"{wall:.1f} s ({rate:,.0f} citizen-days/s)")
    out_console.print(t)
    out_console.print(f"run directory: [bold]{run_dir}[/bold]  (SQL: credsim sql {run_dir} \"...\")")
