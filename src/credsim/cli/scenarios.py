"""``credsim scenarios`` and ``credsim validate``: what scenarios exist and whether a file is usable."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from credsim.cli.common import fail, out_console
from credsim.scenario.load import DEFAULT_SCENARIO, ScenarioError, builtin_names, load_scenario

app = typer.Typer()


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
        fail(exc)
    out_console.print(f"[green]ok[/green]: {file} ({scen.name}: {len(scen.behaviours)} behaviours, "
                      f"{len(scen.sensors)} sensors, {len(scen.lists)} lists, {len(scen.sanctions)} sanctions)")
