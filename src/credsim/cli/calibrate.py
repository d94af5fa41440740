"""``credsim calibrate``: fit a scenario's parameters to published targets across seeds, give
their uncertainty (ABC-SMC or a Laplace approximation), validate at seeds the fit never used, and write the fitted
scenario and an HTML report (see :mod:`credsim.calib_pipeline`).

Every run is cached under ``--cache`` as it finishes, keyed by the configured scenario's
hash (seed included): the same command started again after an interruption re-runs nothing
it already has.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from credsim.abc_smc import Generation
from credsim.calib_pipeline import (
    POSTERIOR_METHODS,
    Calibration,
    Spread,
    run_calibration,
    spreads,
    verdict,
    write_text,
)
from credsim.calib_runs import Runner
from credsim.calibrate import Evaluation, TargetsFile, load_targets, render_yaml
from credsim.cli.common import fail
from credsim.laplace import Laplace, min_noise_seeds
from credsim.scenario.load import ScenarioError, load_scenario

app = typer.Typer()
DEFAULT_PARTICLES = {"laplace": 8, "abc-smc": 24, "none": 0}  # check runs / particles when --particles is not given


@app.command("calibrate")
def calibrate_cmd(
    scenario: Annotated[str, typer.Argument(help="built-in name or YAML file")],
    targets: Annotated[Path, typer.Argument(help="targets YAML (see src/credsim/scenario/targets/)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the fitted scenario here")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="write the HTML calibration report here "
                                                "(default: next to the fitted scenario)")] = None,
    max_evals: Annotated[int, typer.Option(min=1, help="simulation runs of the point fit at most (about), "
                                           "per fit seed")] = 60,
    population: Annotated[int | None, typer.Option("--population", "-n", help="override simulate.population "
                                                   "and validation.population")] = None,
    days: Annotated[int | None, typer.Option("--days", "-d", min=1, help="override simulate.days")] = None,
    threads: Annotated[int | None, typer.Option(help="threads per run (results do not depend on it)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="runs in parallel (processes)")] = 1,
    ray: Annotated[bool, typer.Option("--ray", help="run as tasks on a local Ray (half a CPU each, --workers "
                                      "at a time) instead of processes; same results")] = False,
    posterior: Annotated[str, typer.Option(help=f"how the parameters' uncertainty is found: "
                                           f"{' or '.join(POSTERIOR_METHODS)} (see docs/calibration.md)")]
    = "laplace",
    particles: Annotated[int | None, typer.Option(min=0, help="laplace: runs at posterior draws that check its "
                                                  "linear model (default 8); abc-smc: particles (default 24, "
                                                  "0: no posterior)")] = None,
    generations: Annotated[int, typer.Option(min=1, help="ABC-SMC generations")] = 3,
    noise_seeds: Annotated[int | None, typer.Option(min=3, help="laplace: seeds of the fitted point's runs "
                                                    "for the run-to-run noise, fit seeds included "
                                                    "(default: parameters + 5)")] = None,
    abc_seed: Annotated[int, typer.Option(min=0, help="seed of the sampler's draws")] = 0,
    cache: Annotated[Path | None, typer.Option(help="directory of finished runs (default: "
                                               "<scenario>-calibration-runs)")] = None,
    check: Annotated[bool, typer.Option("--check", help="only evaluate the scenario as it is, at the fit "
                                        "and validation seeds")] = False,
) -> None:
    """Fit scenario parameters to published targets (scaled to N), with intervals and out-of-sample checks."""
    if posterior not in POSTERIOR_METHODS:
        raise typer.BadParameter(f"{posterior!r}: expected one of {', '.join(POSTERIOR_METHODS)}",
                                 param_hint="--posterior")
    try:
        scen = load_scenario(scenario)
        tf = load_targets(targets)
        if population is not None:  # a trial at a small size: the validation at that size too
            tf.simulate.population = population
            if tf.validation is not None:
                tf.validation.population = population
        if days is not None:
            tf.simulate.days = days
        least = min_noise_seeds(len(tf.parameters))
        if posterior == "laplace" and noise_seeds is not None and noise_seeds < least:
            raise typer.BadParameter(f"{noise_seeds}: the {len(tf.parameters)} parameters of {targets} need at "
                                     f"least {least} noise seeds", param_hint="--noise-seeds")
        runner = Runner(scen, tf, threads=threads, workers=workers, ray=ray,
                        cache=cache or Path(f"{scen.name}-calibration-runs"),
                        on_result=_echo_result)
        with runner:
            if check:
                _check(runner, tf)
                return
            n_particles = particles if particles is not None else DEFAULT_PARTICLES[posterior]
            cal = run_calibration(scen, tf, str(targets), runner, max_evals=max_evals, particles=n_particles,
                                  generations=generations, abc_seed=abc_seed, method=posterior,
                                  noise_seeds=noise_seeds, on_eval=_echo_point,
                                  on_generation=_echo_generation, on_stage=lambda s: typer.echo(s, err=True))
    except ScenarioError as exc:
        fail(exc)
    _print(cal)
    target = out or Path(f"{cal.scenario}-calibrated.yaml")
    write_text(target, render_yaml(cal.fit, tf, str(targets)))
    page = report or target.with_name(target.stem + "-report.html")
    # plotly is loaded only to render, so every other command starts even where it is broken or absent
    from credsim.report.calibration import calibration_html

    write_text(page, calibration_html(cal))
    typer.echo(f"fitted scenario written to {target}")
    typer.echo(f"calibration report written to {page}")
    typer.echo(f"{cal.runs} runs, {cal.cached} from the cache, {cal.wall_seconds:,.0f} s wall, "
               f"{cal.workers} worker(s)")
    if not verdict(cal):
        raise typer.Exit(1)


def _echo_result(ev: Evaluation, cached: bool) -> None:
    if not cached:
        typer.echo(f"  run seed {ev.seeds[0]}: {ev.seconds:5.1f}s", err=True)


def _echo_point(ev: Evaluation) -> None:
    worst = max(abs(r - 1) for r in ev.ratios.values())
    typer.echo(f"  point {ev.params}: worst |ratio - 1| {worst:.3f} (mean over seeds)", err=True)


def _echo_generation(g: int, gen: Generation) -> None:
    typer.echo(f"  ABC generation {g}: eps {gen.eps:.4g}, {gen.proposed} runs, {gen.accepted} accepted"
               + (" (eps raised)" if gen.relaxed else ""), err=True)


def _check(runner: Runner, tf: TargetsFile) -> None:
    fit_sp = spreads(runner([({}, s) for s in tf.simulate.fit_seeds]))
    _print_spreads("fit seeds", tf, fit_sp)
    judged = fit_sp
    if tf.validation is not None:
        n = tf.validation.population or tf.simulate.population
        with Runner(runner.scen, tf, population=n, threads=runner.threads, workers=runner.workers,
                    cache=runner.cache, on_result=_echo_result) as held:
            judged = spreads(held([({}, s) for s in tf.validation.seeds]))
        _print_spreads(f"validation seeds (never fitted), {n:,} citizens", tf, judged)
    if not all(judged[k].within(tf.tolerance_of(k)) for k in tf.targets):
        raise typer.Exit(1)


def _print_spreads(title: str, tf: TargetsFile, sp: dict[str, Spread]) -> None:
    seeds = list(next(iter(sp.values())).seeds)
    typer.echo(f"{title}: simulated / scaled figure, mean (min-max over seeds {seeds}); ok = mean within")
    for group, specs in (("target", tf.targets), ("check", tf.checks)):
        for k, spec in specs.items():
            s = sp[k]
            tol = tf.tolerance_of(k)
            mark = "ok " if s.within(tol) else "OFF"
            out = s.seeds_outside(tol)
            typer.echo(f"{mark} {group:6s} {k:36s} {s.mean_ratio:6.3f} ({s.low:.3f}-{s.high:.3f})"
                       f"  within ±{tol:.0%}{f' (outside at {out} seed(s))' if out else ''}  [{spec.source}]")


def _print(cal: Calibration) -> None:
    _print_spreads("fit seeds", cal.tf, cal.fit_spread)
    if cal.validation:
        _print_spreads(f"validation seeds (never fitted), {cal.validation_population:,} citizens", cal.tf,
                       cal.validation)
    if isinstance(cal.posterior, Laplace):
        post = cal.posterior
        inside, total = post.check_coverage()
        misfit = (f"misfit chi2 {post.chi2:.3g} against {post.chi2_expected:.3g} from the runs' noise, intervals "
                  f"widened x{math.sqrt(post.inflation):.2f}" if post.misfit_estimable
                  else "misfit not estimable (no more targets than parameters), no widening")
        seeds = len(post.noise_seeds)
        typer.echo(f"Laplace posterior: {misfit}; {seeds} noise seeds (t, {seeds - 1} df)"
                   + (f"; stepped again: {', '.join(dict.fromkeys(post.refined))}" if post.refined else "")
                   + (f"; check runs: {inside} of {total} figures inside their 90% predictive interval"
                      if total else ""))
    if cal.posterior is not None:
        typer.echo("parameters: fitted, posterior median [90% interval]")
        for k in cal.tf.parameters:
            lo, med, hi = cal.posterior.interval(k)
            typer.echo(f"  {k:28s} {cal.fit.best.params[k]:10.4g}  {med:10.4g} [{lo:.4g}, {hi:.4g}]")
