"""``credsim calibrate``: fit a scenario's parameters to published targets (see :mod:`credsim.calibrate`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from credsim.calibrate import Evaluation, TargetsFile, evaluate, fit, load_targets, render_yaml
from credsim.cli.common import fail
from credsim.scenario.load import ScenarioError, load_scenario

app = typer.Typer()

@app.command("calibrate")
def calibrate_cmd(
    scenario: Annotated[str, typer.Argument(help="built-in name or YAML file")],
    targets: Annotated[Path, typer.Argument(help="targets YAML (see src/credsim/scenario/targets/)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the fitted scenario here")] = None,
    max_evals: Annotated[int, typer.Option(min=1, help="simulation runs at most (about)")] = 60,
    population: Annotated[int | None, typer.Option("--population", "-n", help="override simulate.population")] = None,
    threads: Annotated[int | None, typer.Option(help="worker threads (results do not depend on it)")] = None,
    check: Annotated[bool, typer.Option("--check", help="only evaluate the scenario as it is against the targets")]
    = False,
) -> None:
    """Fit scenario parameters to published targets (scaled to N) and write the fitted scenario."""
    try:
        scen = load_scenario(scenario)
        tf = load_targets(targets)
        if population is not None:
            tf.simulate.population = population
        if check:
            ev = evaluate(scen, tf, threads=threads)
            _print(ev, tf)
            raise typer.Exit(0 if ev.within(tf.tolerance) else 1)
        res = fit(scen, tf, max_evals=max_evals, threads=threads,
                  on_eval=lambda e: typer.echo(f"  run {e.seconds:5.1f}s  worst |log ratio| "
                                               f"{max(abs(math.log(max(r, 1e-9))) for r in e.ratios.values()):.3f}  "
                                               f"{ {k: f'{v:.4g}' for k, v in e.params.items()} }", err=True))
    except ScenarioError as exc:
        fail(exc)
    _print(res.best, tf)
    text = render_yaml(res, tf, str(targets))
    target = out or Path(f"{res.scenario.name}-calibrated.yaml")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    typer.echo(f"fitted scenario written to {target}")
    if not res.best.within(tf.tolerance):
        raise typer.Exit(1)


def _print(ev: Evaluation, tf: TargetsFile) -> None:
    for k, spec in tf.targets.items():
        r = ev.ratios[k]
        mark = "ok " if abs(r - 1) <= tf.tolerance else "OFF"
        typer.echo(f"{mark} {k:32s} simulated {ev.simulated[k]:12,.0f}  target {ev.scaled[k]:12,.1f}"
                   f"  ratio {r:.3f}  [{spec.source}]")
    for k, spec in tf.checks.items():
        typer.echo(f"chk {k:32s} simulated {ev.checked[k]:12,.0f}  figure {ev.check_scaled[k]:12,.1f}"
                   f"  ratio {ev.checked[k] / ev.check_scaled[k]:.3f}  [{spec.source}] (not fitted)")
