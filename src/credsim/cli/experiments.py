"""``credsim sweep`` and ``credsim sensitivity``: many runs over a design, one catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from credsim.experiments.spec import SensitivitySpec, SpecError, SweepSpec, load_spec
from credsim.scenario.load import ScenarioError, load_scenario

app = typer.Typer()
console = Console(stderr=True)

ScenarioArg = Annotated[str, typer.Argument(help="built-in name or scenario YAML")]
SpecArg = Annotated[Path, typer.Argument(help="sweep / sensitivity spec YAML")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="output folder (default runs/sweep-NAME)")]
WorkersOpt = Annotated[int, typer.Option(min=1, help="local worker processes")]
RayOpt = Annotated[bool, typer.Option("--ray", help="run on Ray (RAY_ADDRESS or a local cluster)")]
AddrOpt = Annotated[str | None, typer.Option(help="Ray cluster address HOST:PORT (implies --ray)")]


def _progress(total: int):  # type: ignore[no-untyped-def]
    count = {"n": 0}

    def done(task, wall: float) -> None:  # type: ignore[no-untyped-def]
        count["n"] += 1
        of = f"/{total}" if total else ""
        console.print(f"[{count['n']}{of}] {task.run_id} ({task.kind}) {wall:.1f} s")

    return done


@app.command("sweep")
def sweep_cmd(scenario: ScenarioArg, spec_file: SpecArg, out: OutOpt = None, workers: WorkersOpt = 2,
              ray: RayOpt = False, ray_address: AddrOpt = None,
              threads: Annotated[int, typer.Option(min=1, help="threads per run")] = 1) -> None:
    """Run a grid or sampled design x replicates; resumable; one DuckDB catalog (sweep.duckdb)."""
    from credsim.experiments.sweep import plan_tasks, sweep

    try:
        spec = load_spec(spec_file, SweepSpec)
        scen = load_scenario(scenario)
        target = out or Path("runs") / f"sweep-{spec.name}"
        n = len(plan_tasks(scen, spec, target, str(spec_file)))
        res = sweep(scen, spec, target, file=str(spec_file), workers=workers, ray=ray or bool(ray_address),
                    address=ray_address, threads=threads, on_done=_progress(n))
    except (SpecError, ScenarioError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    console.print(f"{res['runs']} runs ({res['skipped']} already done, {res['ran']} ran) in {res['wall_s']:.1f} s")
    typer.echo(f"catalog: {res['catalog']}\nreport: {res['report']}")


@app.command("sensitivity")
def sensitivity_cmd(scenario: ScenarioArg, spec_file: SpecArg, out: OutOpt = None, workers: WorkersOpt = 2,
                    ray: RayOpt = False, ray_address: AddrOpt = None,
                    threads: Annotated[int, typer.Option(min=1, help="threads per run")] = 1) -> None:
    """Sobol or Morris sensitivity indices of chosen outputs (SALib), with a chart."""
    from credsim.experiments.sensitivity import sensitivity

    try:
        spec = load_spec(spec_file, SensitivitySpec)
        scen = load_scenario(scenario)
        target = out or Path("runs") / f"sensitivity-{spec.name}"
        res = sensitivity(scen, spec, target, file=str(spec_file), workers=workers, ray=ray or bool(ray_address),
                          address=ray_address, threads=threads, on_done=_progress(0))
    except (SpecError, ScenarioError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    for r in res["indices"]:
        vals = ", ".join(f"{k}={v:.3f}" for k, v in r.items() if isinstance(v, float))
        typer.echo(f"{r['output']:>18} {r['parameter']:>20}: {vals}")
    if res["skipped"]:
        typer.echo(f"skipped (undefined for some sample): {res['skipped']}", err=True)
    typer.echo(f"catalog: {res['catalog']}\nreport: {res['report']}")
