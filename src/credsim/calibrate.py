"""Calibration: fit chosen scenario parameters to published figures, and write the fitted scenario.

A targets file (YAML, see ``scenario/targets/court-defaulters.yaml``) names

- the **real population** the published figures refer to (1.4bn for China): every target
  is scaled by ``N / real_population`` before it is compared with a simulated count;
- the **simulation** to fit on (population N, days, seed): a small N is enough when the
  targets are scaled, as long as the scaled counts are large enough for their binomial noise
  (about ``1 / sqrt(count)``) to sit well inside the tolerance;
- the **targets**: a daily metric summed over a range of days (a flow: cumulative entries,
  blocked purchases in a year) or read on one day (a stock), with its source id;
- the **parameters** to fit: a key path into the scenario (:mod:`credsim.scenario.keypath`, e.g.
  ``behaviours["court.judgment_default"].schedule[0].multiplier``) and bounds.

The fit minimises the squared log-ratios ``log(simulated / scaled target)`` with SciPy's
``least_squares`` (trust region, finite differences) over log-parameters. Every evaluation
runs the scenario with the same seed, so the objective is a deterministic function of the
parameters (common random numbers) and finite differences are not swamped by noise.
Runs are in memory (nothing is written) and nothing is ever evaluated from a file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from credsim.abc_smc import COUNT_FLOOR
from credsim.engine import simulate
from credsim.scenario import keypath
from credsim.scenario.keypath import KeyPathError
from credsim.scenario.load import Problem, ScenarioError, dump_yaml, load_scenario, read_yaml
from credsim.scenario.overrides import Override
from credsim.scenario.schema import Scenario


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


RATE_FLOOR = 1e-6  # a rate of 0 likewise: far off, but finite


class TargetSpec(_Strict):
    metric: str = Field(min_length=1, max_length=200)
    kind: Literal["sum", "at"] = "sum"
    from_day: Annotated[int, Field(ge=0)] = 0
    to_day: Annotated[int, Field(ge=0)]
    value: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    tolerance: Annotated[float | None, Field(gt=0, le=10)] = None  # this figure's own, else the file's
    source: str = ""
    note: str = ""
    # a group's count instead of everyone's, as "dimension:group" (e.g. "origin:foreign")
    group: str | None = Field(default=None, pattern=r"^[^:]+:[^:]+$")
    # a metric subtracted from `metric` (same group and days): e.g. investigated minus investigated_true
    minus: str | None = Field(default=None, min_length=1, max_length=200)
    # a rate, not a count: divide by this metric over the same days (then `value` is a ratio and is
    # not scaled by the population); `per_group` is the denominator's group (unset: every citizen)
    per: str | None = Field(default=None, min_length=1, max_length=200)
    per_group: str | None = Field(default=None, pattern=r"^[^:]+:[^:]+$")

    @model_validator(mode="after")
    def _order(self) -> TargetSpec:
        if self.to_day < self.from_day:
            raise ValueError(f"to_day ({self.to_day}) must not be before from_day ({self.from_day})")
        if self.per_group is not None and self.per is None:
            raise ValueError("per_group is the group of the denominator `per`: set per as well")
        return self

    @property
    def is_rate(self) -> bool:
        """A ratio of two counts of the same run: compared as it is, whatever the population."""
        return self.per is not None

    @property
    def log_floor(self) -> float:
        """The least value a log-ratio reads: half an event for a count; for a rate (precision 0.43, a
        share) half an event would swallow every value below 0.5, so a rate's floor is tiny."""
        return RATE_FLOOR if self.is_rate else COUNT_FLOOR


class ParameterSpec(_Strict):
    path: str | list[str | int]
    low: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    high: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    integer: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> ParameterSpec:
        keypath.parse(self.path)
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    @property
    def keys(self) -> keypath.Keys:
        return keypath.parse(self.path)


class SimulateSpec(_Strict):
    population: Annotated[int, Field(ge=100, le=50_000_000)]
    days: Annotated[int, Field(ge=1, le=36_500)]
    seed: Annotated[int, Field(ge=0)] = 0
    # the fit's objective averages over these seeds (one seed fits its own noise)
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=64)] = []

    @property
    def fit_seeds(self) -> list[int]:
        return list(self.seeds) or [self.seed]


class ValidateSpec(_Strict):
    """Out-of-sample runs: citizens are keyed by (seed, id), so a larger N at a fit seed repeats
    the fit's citizens; only seeds the fit never used are new people."""

    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=64)]
    population: Annotated[int | None, Field(ge=100, le=50_000_000)] = None


class TargetsFile(_Strict):
    scenario: str = ""
    description: str = ""
    real_population: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    tolerance: Annotated[float, Field(gt=0, le=1)] = 0.10
    simulate: SimulateSpec
    targets: dict[str, TargetSpec] = Field(min_length=1)
    checks: dict[str, TargetSpec] = {}  # compared and reported, never fitted
    parameters: dict[str, ParameterSpec] = {}
    validation: ValidateSpec | None = None

    @model_validator(mode="after")
    def _held_out(self) -> TargetsFile:
        both = set(self.targets) & set(self.checks)
        if both:
            raise ValueError(f"a figure is either a target (fitted) or a check (held out), not both: {sorted(both)}")
        if self.validation is not None:
            reused = sorted(set(self.validation.seeds) & set(self.simulate.fit_seeds))
            if reused:
                raise ValueError(f"validation.seeds {reused} are fit seeds: validation needs seeds the fit never saw")
        return self

    def tolerance_of(self, key: str) -> float:
        spec = self.targets.get(key) or self.checks[key]
        return self.tolerance if spec.tolerance is None else spec.tolerance


class TargetsError(ScenarioError):
    """A targets file (or its parameter paths) that cannot be used, with every problem found."""

    def __str__(self) -> str:
        head = f"invalid targets file {self.file} ({len(self.problems)} problem(s))"
        return "\n".join([head] + ["  " + p.render(self.file) for p in self.problems])


def load_targets(path: str | Path) -> TargetsFile:
    """Read a targets file; raise :class:`ScenarioError` naming the file and key path of each problem."""
    p = Path(path)
    file = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetsError(file, [Problem("", f"a readable UTF-8 targets file ({exc})")]) from None
    try:  # the scenario loader's guards (nesting, tags, size), and the line of each key
        data, lines = read_yaml(text, file)
    except ScenarioError as exc:
        raise TargetsError(file, exc.problems) from None
    try:
        return TargetsFile.model_validate(data)
    except ValidationError as exc:
        probs = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"] if x not in ("str", "list[union[str,int]]"))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "no such key (unknown keys are errors; check the spelling)"
            probs.append(Problem(loc, msg, lines.get(loc)))
        raise TargetsError(file, probs) from None


def check_paths(tf: TargetsFile, data: dict[str, Any], file: str) -> None:
    """Every parameter must name a number the scenario sets (the fit starts from it)."""
    probs = []
    for name, spec in tf.parameters.items():
        try:
            value = keypath.get_value(data, spec.keys)
        except KeyPathError as exc:
            probs.append(Problem(f"parameters.{name}.path", f"a key path to a value of the scenario: {exc}"))
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            probs.append(Problem(f"parameters.{name}.path", f"a path to a number (found {value!r})"))
    if probs:
        raise TargetsError(file, probs)


@dataclass
class Evaluation:
    """One run (or the mean of runs at several seeds) measured against the scaled figures."""

    params: dict[str, float]
    simulated: dict[str, float]
    scaled: dict[str, float]
    seconds: float
    checked: dict[str, float] = field(default_factory=dict)
    check_scaled: dict[str, float] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    @property
    def ratios(self) -> dict[str, float]:
        return {k: self.simulated[k] / self.scaled[k] for k in self.scaled}

    @property
    def check_ratios(self) -> dict[str, float]:
        return {k: self.checked[k] / self.check_scaled[k] for k in self.check_scaled}

    def within(self, tolerance: float) -> bool:
        return all(abs(r - 1.0) <= tolerance for r in self.ratios.values())

    def values(self) -> dict[str, float]:
        """Targets and checks together, by name (names are unique across the two)."""
        return {**self.simulated, **self.checked}


def mean_of(evs: list[Evaluation]) -> Evaluation:
    """The seed-averaged evaluation: what the fit's objective compares with the targets."""
    if not evs:
        raise ValueError("no evaluations to average")
    def avg(key: str, attr: str) -> float:
        return float(np.mean([getattr(e, attr)[key] for e in evs]))
    first = evs[0]
    return Evaluation(dict(first.params), {k: avg(k, "simulated") for k in first.simulated}, dict(first.scaled),
                      sum(e.seconds for e in evs), {k: avg(k, "checked") for k in first.checked},
                      dict(first.check_scaled), tuple(s for e in evs for s in e.seeds))


def objective(ev: Evaluation) -> float:
    """Sum of squared log-ratios of the targets (the quantity the fit minimises)."""
    return sum(math.log(max(r, 1e-9)) ** 2 for r in ev.ratios.values())


def scaled_targets(tf: TargetsFile, population: int | None = None, checks: bool = False) -> dict[str, float]:
    n = population or tf.simulate.population
    items = tf.checks if checks else tf.targets
    return {k: t.value if t.is_rate else t.value * n / tf.real_population for k, t in items.items()}


class _Table:
    """A run's long metrics table as arrays, to read one metric of one group over a range of days."""

    def __init__(self, metrics_table: Any) -> None:
        t = metrics_table
        # dictionary codes, not strings: the table has a row per day, metric and group slot
        self.names, self.name_codes = self._codes(t["metric"])
        self.dims, self.dim_codes = self._codes(t["dimension"])
        self.groups, self.group_codes = self._codes(t["group"])
        self.days = t["day"].to_numpy()
        self.values = t["value"].to_numpy()
        self.everyone = self.dims == self.dim_codes.get("all", -1)

    @staticmethod
    def _codes(column: Any) -> tuple[np.ndarray, dict[str, int]]:
        arr = column.combine_chunks()
        if not pa.types.is_dictionary(arr.type):
            arr = pc.dictionary_encode(arr)
        return arr.indices.to_numpy(zero_copy_only=False), {v: i for i, v in enumerate(arr.dictionary.to_pylist())}

    def read(self, key: str, spec: TargetSpec, metric: str, group: str | None) -> float:
        sel = self.names == self.name_codes.get(metric, -1)
        if not sel.any():
            raise KeyError(f"target {key!r}: the run has no metric {metric!r}")
        if group is None:
            sel &= self.everyone
        else:
            dim, grp = group.split(":", 1)
            sel &= (self.dims == self.dim_codes.get(dim, -1)) & (self.groups == self.group_codes.get(grp, -1))
            if not sel.any():
                raise KeyError(f"target {key!r}: the run has no group {grp!r} of dimension {dim!r}")
        d, v = self.days[sel], self.values[sel]
        if spec.kind == "sum":
            return float(v[(d >= spec.from_day) & (d <= spec.to_day)].sum())
        return float(v[d == spec.to_day].sum())


def measure_targets(metrics_table: Any, specs: dict[str, TargetSpec]) -> dict[str, float]:
    """Each target's simulated value from a run's long metrics table: a count of everyone (or of
    a group), less ``minus``, divided by ``per`` for a rate (0 when the denominator is 0: nothing
    to divide, which the fit reads as far off)."""
    tab = _Table(metrics_table)
    out = {}
    for k, spec in specs.items():
        v = tab.read(k, spec, spec.metric, spec.group)
        if spec.minus is not None:
            v -= tab.read(k, spec, spec.minus, spec.group)
        if spec.per is not None:
            den = tab.read(k, spec, spec.per, spec.per_group)
            v = v / den if den > 0 else 0.0
        out[k] = v
    return out


def evaluate(scen: Scenario, tf: TargetsFile, params: dict[str, float] | None = None, *,
             population: int | None = None, days: int | None = None, seed: int | None = None,
             threads: int | None = None) -> Evaluation:
    """Run the scenario (with ``params`` applied) in memory and measure every target."""
    s = configure(scen, tf, params, population=population, days=days, seed=seed)
    return measure(s, tf, params, threads=threads)


def configure(scen: Scenario, tf: TargetsFile, params: dict[str, float] | None = None, *,
              population: int | None = None, days: int | None = None, seed: int | None = None) -> Scenario:
    """The scenario one evaluation runs: parameters applied, size, days and seed set, no traces.
    Its :func:`scenario_hash` is what an evaluation is cached under."""
    data = keypath.dump(scen)
    data["population"]["size"] = population or tf.simulate.population
    data["run"]["days"] = days or tf.simulate.days
    data["run"]["seed"] = tf.simulate.seed if seed is None else seed
    data["run"]["trace"] = 0
    data["run"].pop("trace_ids", None)
    return load_scenario(data, parameter_overrides(tf, params or {}))


def measure(s: Scenario, tf: TargetsFile, params: dict[str, float] | None = None, *,
            threads: int | None = None) -> Evaluation:
    """Run a configured scenario in memory and read every target and check from its metrics."""
    n = s.population.size
    t0 = time.perf_counter()
    res = simulate(s, threads=threads)
    table = res.metrics.to_arrow()
    return Evaluation(dict(params or {}), measure_targets(table, tf.targets), scaled_targets(tf, n),
                      time.perf_counter() - t0, measure_targets(table, tf.checks), scaled_targets(tf, n, True),
                      (s.run.seed,))


def parameter_overrides(tf: TargetsFile, params: dict[str, float]) -> list[Override]:
    """Fitted values as overrides, each named by its parameter (a refused value names it)."""
    return [Override(tf.parameters[k].keys, v, f"calibration parameter {k!r} = {v!r}") for k, v in params.items()]


BatchEvaluator = Callable[[list[tuple[dict[str, float], int]]], list[Evaluation]]
"""Evaluates (parameters, seed) pairs, in the order given (:class:`credsim.calib_runs.Runner`)."""


def sequential(scen: Scenario, tf: TargetsFile, threads: int | None = None) -> BatchEvaluator:
    """A batch evaluator that runs one point after another, in this process, without a cache."""
    def run(batch: list[tuple[dict[str, float], int]]) -> list[Evaluation]:
        return [evaluate(scen, tf, p, seed=seed, threads=threads) for p, seed in batch]
    return run


@dataclass
class Fit:
    scenario: Scenario
    start: Evaluation  # seed-averaged, at the scenario's own values
    best: Evaluation  # seed-averaged, at the fitted values
    evaluations: int  # parameter points tried (each runs every fit seed)
    history: list[Evaluation] = field(default_factory=list)  # seed-averaged, one per point
    best_by_seed: list[Evaluation] = field(default_factory=list)


def _round(v: float, integer: bool) -> float:
    return round(v) if integer else float(f"{v:.4g}")  # an int: the schema refuses 3027.0 for a day count


def fit(scen: Scenario, tf: TargetsFile, *, max_evals: int = 60, threads: int | None = None,
        on_eval: Callable[[Evaluation], None] | None = None, run: BatchEvaluator | None = None) -> Fit:
    """Fit ``tf.parameters`` to ``tf.targets`` with SciPy least squares on log-ratios.

    The residuals of every fit seed are stacked (each divided by sqrt(#seeds)), so the objective
    is the mean over seeds of the summed squared log-ratios: a parameter set that fits one
    seed's noise gains nothing. ``max_evals`` counts parameter points, each run at every seed.
    """
    from scipy.optimize import least_squares

    run = run or sequential(scen, tf, threads)
    seeds = tf.simulate.fit_seeds
    data = keypath.dump(scen)
    check_paths(tf, data, tf.scenario or scen.name)
    names = list(tf.parameters)
    specs = [tf.parameters[k] for k in names]
    # search in x = 1 + log(p / p0): a finite-difference step (SciPy: diff_step x max(1, |x|)) is
    # then about the same relative change of every parameter
    p0 = np.array([min(max(float(keypath.get_value(data, s.keys)), s.low), s.high) for s in specs])
    x0 = np.ones(len(specs))
    lo = np.array([1 + math.log(s.low / v) for s, v in zip(specs, p0, strict=True)])
    hi = np.array([1 + math.log(s.high / v) for s, v in zip(specs, p0, strict=True)])
    history: list[Evaluation] = []
    by_seed: dict[tuple[float, ...], list[Evaluation]] = {}
    cache: dict[tuple[float, ...], np.ndarray] = {}
    weight = 1.0 / math.sqrt(len(seeds))

    def params_of(x: np.ndarray) -> dict[str, float]:
        return {k: _round(v0 * math.exp(v - 1), s.integer) for k, s, v0, v in zip(names, specs, p0, x, strict=True)}

    def residuals(x: np.ndarray) -> np.ndarray:
        p = params_of(x)
        key = tuple(p.values())
        if key not in cache:
            evs = run([(p, seed) for seed in seeds])
            ev = mean_of(evs)
            history.append(ev)
            by_seed[key] = evs
            if on_eval is not None:
                on_eval(ev)
            cache[key] = np.array([weight * math.log(max(e.simulated[k], spec.log_floor) / e.scaled[k])
                                   for e in evs for k, spec in tf.targets.items()])
        return cache[key]

    if names and max_evals > 1:
        least_squares(residuals, x0, bounds=(lo, hi), diff_step=0.05, x_scale=1.0,
                      max_nfev=max(1, max_evals // (len(names) + 1)), xtol=1e-3, ftol=1e-4)
    else:
        residuals(x0)
    best = min(history, key=objective)
    fitted = load_scenario(data, parameter_overrides(tf, best.params))
    return Fit(fitted, history[0], best, len(history), history, by_seed[tuple(best.params.values())])


def render_yaml(f: Fit, tf: TargetsFile, targets_file: str) -> str:
    """The fitted scenario as YAML, with a header saying what was fitted to what."""
    seeds = ", ".join(str(x) for x in tf.simulate.fit_seeds)
    lines = [f"# {f.scenario.name}: fitted by `credsim calibrate {f.scenario.name} {targets_file}`",
             f"# simulation: {tf.simulate.population:,} citizens x {tf.simulate.days} days, seeds {seeds}"
             " (values below: mean over the seeds);"
             f" targets scaled by N / {tf.real_population:,.0f}", "# parameters:"]
    for k, v in f.best.params.items():
        lines.append(f"#   {k} = {v:.6g}  (start {f.start.params.get(k, float('nan')):.6g};"
                     f" path {keypath.show(tf.parameters[k].keys)})")
    lines.append("# targets (simulated / scaled target):")
    for k, spec in tf.targets.items():
        sim, fig = ((f"{f.best.simulated[k]:.3f}", f"{f.best.scaled[k]:.3f}") if spec.is_rate
                    else (f"{f.best.simulated[k]:,.0f}", f"{f.best.scaled[k]:,.1f}"))
        lines.append(f"#   {k}: {sim} / {fig} = {f.best.ratios[k]:.3f}  [{spec.source}]")
    for k, spec in tf.checks.items():
        sim, fig = ((f"{f.best.checked[k]:.3f}", f"{f.best.check_scaled[k]:.3f}") if spec.is_rate
                    else (f"{f.best.checked[k]:,.0f}", f"{f.best.check_scaled[k]:,.1f}"))
        lines.append(f"#   (check, not fitted) {k}: {sim} / {fig}"
                     f" = {f.best.checked[k] / f.best.check_scaled[k]:.3f}  [{spec.source}]")
    lines.append(f"# {f.evaluations} evaluations; all within {tf.tolerance:.0%}: {f.best.within(tf.tolerance)}")
    body = dump_yaml(f.scenario)
    return "\n".join(lines) + "\n" + body
