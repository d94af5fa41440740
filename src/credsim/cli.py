"""The ``credsim`` command line."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from credsim.checkpoint import CheckpointError
from credsim.memory import MemoryRefused
from credsim.resumable import RunStopped
from credsim.scenario.load import DEFAULT_SCENARIO, ScenarioError, builtin_names, load_scenario, parse_value

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="credsim: simulate social-credit systems on synthetic populations.")
console = Console(stderr=True)
out_console = Console()


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} days/s" if speed else "-- days/s", style="progress.data.speed")


def day_progress(quiet: bool) -> Progress:
    """The progress bar of a run: days done, days/s, elapsed time and ETA (on stderr)."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("day {task.completed:.0f}/{task.total:.0f}"))
    return Progress(*columns, RateColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, disable=quiet, transient=False)


def _parse_set(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise typer.BadParameter(f"--set expects KEY.PATH=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_value(v, f"--set {k.strip()}")  # guarded YAML (scenario/load.py)
    return out


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="built-in name or YAML file")] = "default",
    population: Annotated[int | None, typer.Option("--population", "-n", help="citizens")] = None,
    days: Annotated[int | None, typer.Option("--days", "-d")] = None,
    seed: Annotated[int | None, typer.Option("--seed", "-s")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory")] = None,
    threads: Annotated[int | None, typer.Option(help="worker threads (results do not depend on it)")] = None,
    block_size: Annotated[int, typer.Option(help="citizens per block (results do not depend on it)")] = 1 << 16,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override KEY.PATH=VALUE")] = None,
    max_memory: Annotated[float | None, typer.Option(help="refuse runs estimated above this many GiB")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out directory")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    checkpoint_every: Annotated[int | None, typer.Option(min=1, help="checkpoint every D days (resumable)")] = None,
    max_days: Annotated[int | None, typer.Option(min=1, help="stop after D days with a checkpoint")] = None,
    time_budget: Annotated[float | None, typer.Option(min=0.001, help="stop after S seconds, checkpointed")] = None,
    # issue 7 (credsim/distributed/cli.py): a population split over shards, optionally on Ray
    shards: Annotated[int | None, typer.Option(min=1, help="split citizens over K shards (same results)")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="shards as Ray actors (RAY_ADDRESS or a local cluster)")] = False,
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address HOST:PORT (implies --ray)")] = None,
) -> None:
    """Run a scenario and write a run directory (see `credsim resume` for interrupted runs)."""
    from credsim.api import run as run_api

    try:
        scen = load_scenario(scenario, _parse_set(set_))
    except ScenarioError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if shards is not None or ray or ray_address:  # issue 7: sharded run (credsim/distributed/cli.py)
        from credsim.distributed.cli import run_sharded_cmd

        t_sh = time.perf_counter()
        d = run_sharded_cmd(scen, shards=shards or 1, ray=ray or bool(ray_address), ray_address=ray_address,
                            population=population, days=days, seed=seed, out=out, threads=threads,
                            block_size=block_size, max_memory=max_memory, overwrite=overwrite, quiet=quiet,
                            checkpoint_every=checkpoint_every)
        _summary(d, time.perf_counter() - t_sh, quiet)
        return
    n = population or scen.population.size
    total = days or scen.run.days
    t0 = time.perf_counter()
    with day_progress(quiet) as prog:
        task = prog.add_task(f"{scen.name} · {n:,} citizens", total=total)
        try:
            result = run_api(scen, out=out, population=population, days=days, seed=seed, threads=threads,
                             block_size=block_size, max_memory=max_memory, overwrite=overwrite,
                             on_day=lambda d, _t: prog.update(task, completed=d + 1),
                             checkpoint_every=checkpoint_every, max_days=max_days, time_budget=time_budget)
        except ScenarioError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        except RunStopped as exc:  # resumable stop (checkpoint.py, resumable.py)
            prog.stop()
            typer.echo(str(exc), err=True)
            raise typer.Exit(130 if exc.by_signal else 3) from None
        except (MemoryRefused, FileExistsError, CheckpointError) as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    wall = time.perf_counter() - t0
    _summary(result.dir, wall, quiet)


def _summary(run_dir: Path, wall: float, quiet: bool) -> None:
    from credsim.store import connect, read_manifest

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
    for metric, value in rows:
        if metric != "population":
            t.add_row(f"{metric} (end)", f"{value:,.0f} ({100 * value / n:.2f}%)")
    for metric, value in flows:
        t.add_row(f"{metric} (total)", f"{value:,.0f}")
    rate = n * man["days"] / wall
    t.add_row("wall time", f"{wall:.1f} s ({rate:,.0f} citizen-days/s)")
    out_console.print(t)
    out_console.print(f"run directory: [bold]{run_dir}[/bold]  (SQL: credsim sql {run_dir} \"...\")")


@app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    t = Table(title="built-in scenarios")
    t.add_column("name")
    t.add_column("description")
    for name in builtin_names():
        desc = load_scenario(name).description.strip().splitlines()[0]
        mark = " (default)" if name == DEFAULT_SCENARIO else ""
        t.add_row(name + mark, desc)
    out_console.print(t)


@app.command()
def validate(file: Annotated[str, typer.Argument(help="scenario YAML or built-in name")]) -> None:
    """Check a scenario file; print every problem with its key path."""
    try:
        scen = load_scenario(file)
    except ScenarioError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    out_console.print(f"[green]ok[/green]: {file} ({scen.name}: {len(scen.behaviours)} behaviours, "
                      f"{len(scen.sensors)} sensors, {len(scen.lists)} lists, {len(scen.sanctions)} sanctions)")


@app.command()
def sql(run_dir: Path, query: str) -> None:
    """Run a SQL query over a run's DuckDB catalog (views: metrics, citizens, traces, daily)."""
    from credsim.store import RunIncomplete, connect

    try:
        con = connect(run_dir)
    except RunIncomplete as exc:  # running, interrupted or failed run (resumable.py)
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    try:
        cur = con.execute(query)
        cols = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
    finally:
        con.close()
    t = Table()
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in r))
    out_console.print(t)


from credsim.cli_resume import resume_cmd  # noqa: E402  (resumable runs: cli_resume.py)

app.command("resume")(resume_cmd)
app.command("calibrate")(__import__("credsim.calibrate", fromlist=["calibrate_cmd"]).calibrate_cmd)  # issue 3


from credsim.audit.cli import register as _register_audit  # noqa: E402  (issue 4: audit, explain, report, compare)

_register_audit(app)


from credsim.experiments.cli import sensitivity_cmd, sweep_cmd  # noqa: E402  (issue 7: experiments)

app.command("sweep")(sweep_cmd)
app.command("sensitivity")(sensitivity_cmd)
app.command("dashboard")(__import__("credsim.dashboard.cli", fromlist=["dashboard_cmd"]).dashboard_cmd)  # issue 8


from credsim.schema_cmd import register as _register_schema  # noqa: E402  (the scenario language: schema_cmd.py)

_register_schema(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
    sys.exit(0)
