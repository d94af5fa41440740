"""A whole calibration: point fit across seeds, a posterior, out-of-sample validation.

This is what ``credsim calibrate`` runs and what its report shows; it works for any scenario
and targets file (nothing here knows about the court list). The steps, each using the same
cached, parallel :class:`credsim.calib_runs.Runner`:

1. least squares on the log-ratios, averaged over the fit seeds (``simulate.seeds``);
2. a posterior around that point (prior: log-uniform bounds of the targets file), giving
   parameter intervals and posterior-predictive intervals of every target and check: ABC-SMC
   (:mod:`credsim.abc_smc`) or a Laplace approximation (:mod:`credsim.laplace`), which needs far
   fewer runs when there are many parameters;
3. the fitted point re-run at the validation seeds (and size), which the fit never used:
   each target's and check's value there, with its spread across those seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from credsim.abc_smc import Generation, Posterior, Prior, abc_smc
from credsim.calib_runs import Runner
from credsim.calibrate import Evaluation, Fit, TargetsFile, fit
from credsim.laplace import Laplace, laplace
from credsim.scenario.schema import Scenario

POSTERIOR_METHODS = ("laplace", "abc-smc", "none")  # what --posterior accepts; none: the point fit only


@dataclass(frozen=True)
class Spread:
    """One figure's simulated values at several seeds, as ratios to the scaled figure."""

    figure: float  # the published value scaled to the simulated N
    values: tuple[float, ...]  # one per seed, in the order of ``seeds``
    seeds: tuple[int, ...]

    @property
    def ratios(self) -> list[float]:
        return [v / self.figure for v in self.values]

    @property
    def mean_ratio(self) -> float:
        return float(np.mean(self.ratios))

    @property
    def low(self) -> float:
        return min(self.ratios)

    @property
    def high(self) -> float:
        return max(self.ratios)

    def within(self, tolerance: float) -> bool:
        """The mean over the seeds within the tolerance: the tolerance is about what the model
        produces on average; each seed adds its own noise, shown as the range."""
        return abs(self.mean_ratio - 1) <= tolerance

    def seeds_outside(self, tolerance: float) -> int:
        """How many single seeds fall outside the tolerance (reported beside the verdict)."""
        return sum(1 for r in self.ratios if abs(r - 1) > tolerance)


def spreads(evs: list[Evaluation]) -> dict[str, Spread]:
    """Each target's and check's values across the evaluations (one per seed)."""
    first = evs[0]
    figures = {**first.scaled, **first.check_scaled}
    seeds = tuple(s for e in evs for s in e.seeds)
    return {k: Spread(f, tuple(e.values()[k] for e in evs), seeds) for k, f in figures.items()}


@dataclass
class Calibration:
    """Everything the report shows."""

    scenario: str
    targets_file: str
    tf: TargetsFile
    fit: Fit
    fit_spread: dict[str, Spread]
    posterior: Posterior | Laplace | None = None
    validation: dict[str, Spread] = field(default_factory=dict)
    validation_population: int | None = None
    wall_seconds: float = 0.0
    runs: int = 0  # simulations run in this invocation
    cached: int = 0  # evaluations read from the cache
    workers: int = 1

    def predictive_ratio(self, key: str, level: float = 0.9) -> tuple[float, float, float] | None:
        """Posterior-predictive (low, median, high) of a figure as ratios to the scaled figure."""
        if self.posterior is None or not self.posterior.predicts(key):
            return None
        fig = self.fit_spread[key].figure
        lo, med, hi = self.posterior.predictive_interval(key, level)
        return lo / fig, med / fig, hi / fig


def prior_of(tf: TargetsFile) -> Prior:
    names = tuple(tf.parameters)
    return Prior(names, tuple(tf.parameters[k].low for k in names), tuple(tf.parameters[k].high for k in names),
                 tuple(tf.parameters[k].integer for k in names))


PREDICTIVE_SEED0 = 900_000  # posterior-predictive runs: seeds from here up, skipping any the file uses


def predictive_seeds(particles: int, taken: set[int]) -> list[int]:
    """One seed per final particle for its posterior-predictive run, none of them a fit or validation
    seed: a posterior-predictive interval is meant to carry the run-to-run noise of fresh citizens,
    which a handful of fit seeds shared among all particles would not."""
    out: list[int] = []
    s = PREDICTIVE_SEED0
    while len(out) < particles:
        if s not in taken:
            out.append(s)
        s += 1
    return out


def noise_seed_count(parameters: int) -> int:
    """Default number of runs of the fitted point for the Laplace posterior's noise: the sandwich
    needs more than ``parameters + 1`` (rank), and its t has one degree of freedom fewer."""
    return parameters + 5


def run_calibration(scen: Scenario, tf: TargetsFile, targets_file: str, runner: Runner, *, max_evals: int,
                    particles: int, generations: int, abc_seed: int = 0, method: str = "laplace",
                    noise_seeds: int | None = None,
                    on_eval: Callable[[Evaluation], None] | None = None,
                    on_generation: Callable[[int, Generation], None] | None = None,
                    on_stage: Callable[[str], None] | None = None) -> Calibration:
    """Fit, posterior and validation (if the file asks).

    ``method`` "abc-smc": ``particles`` x ``generations`` (no posterior when ``particles`` is 0);
    "none": no posterior.
    "laplace": the fitted point at ``noise_seeds`` seeds (the fit seeds and fresh ones; default
    :func:`noise_seed_count`), one step of each parameter at each fit seed, and ``particles`` runs
    at posterior draws, each at a fresh seed, that check the linear model."""
    if method not in POSTERIOR_METHODS:
        raise ValueError(f"posterior method {method!r}: expected one of {POSTERIOR_METHODS}")
    t0 = time.perf_counter()
    stage = on_stage or (lambda _s: None)
    stage(f"fit: least squares over seeds {tf.simulate.fit_seeds}")
    f = fit(scen, tf, max_evals=max_evals, on_eval=on_eval, run=runner)
    cal = Calibration(scen.name, targets_file, tf, f, spreads(f.best_by_seed), workers=runner.workers)
    taken = set(tf.simulate.fit_seeds) | set(tf.validation.seeds if tf.validation is not None else [])

    def simulate(batch: list[tuple[dict[str, float], int]]) -> list[dict[str, float]]:
        return [ev.values() for ev in runner(batch)]

    floors = {k: spec.log_floor for k, spec in (tf.targets | tf.checks).items()}  # targets first

    if method == "laplace" and tf.parameters:
        fit_seeds = tf.simulate.fit_seeds
        total = noise_seeds or noise_seed_count(len(tf.parameters))
        extra = max(0, total - len(fit_seeds))
        fresh = predictive_seeds(extra + particles, taken)
        stage(f"posterior: Laplace at the fit, {len(tf.parameters)} parameter steps x {len(fit_seeds)} seeds, "
              f"noise from {len(fit_seeds) + extra} seeds, {particles} check runs")
        cal.posterior = laplace(simulate, prior_of(tf), dict(f.best.scaled), f.best.params, fit_seeds,
                                [*fit_seeds, *fresh[:extra]], seed=abc_seed, check_seeds=fresh[extra:],
                                names=list(floors), floors=floors)
    elif method == "abc-smc" and particles > 0 and tf.parameters:
        stage(f"posterior: ABC-SMC, {particles} particles x {generations} generations")
        observed = dict(f.best.scaled)
        cal.posterior = abc_smc(simulate, prior_of(tf), observed, tf.simulate.fit_seeds, particles=particles,
                                generations=generations, seed=abc_seed, centre=f.best.params,
                                predictive_seeds=predictive_seeds(particles, taken), floors=floors,
                                on_generation=on_generation)
    if tf.validation is not None:
        n = tf.validation.population or tf.simulate.population
        stage(f"validation: {n:,} citizens at seeds {tf.validation.seeds} (never used in the fit)")
        with Runner(runner.scen, tf, population=n, days=runner.days, threads=runner.threads,
                    workers=runner.workers, cache=runner.cache, on_result=runner.on_result) as held:
            evs = held([(f.best.params, s) for s in tf.validation.seeds])
        cal.validation = spreads(evs)
        cal.validation_population = n
        runner.runs += held.runs
        runner.cached += held.cached
    cal.wall_seconds = time.perf_counter() - t0
    cal.runs, cal.cached = runner.runs, runner.cached
    return cal


def verdict(cal: Calibration) -> bool:
    """Every target's mean over the out-of-sample seeds within its tolerance (over the fit seeds
    when the targets file names no validation seeds). Checks are reported, not part of the verdict: a
    held-out figure the model cannot reach is a finding, not a failed fit."""
    sp = cal.validation or cal.fit_spread
    return all(sp[k].within(cal.tf.tolerance_of(k)) for k in cal.tf.targets)


def fmt_ratio(r: float) -> str:
    return "n/a" if not math.isfinite(r) else f"{r:.3f}"


def write_text(path: Path, text: str) -> None:
    """Write atomically (a reader never sees half a report)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
