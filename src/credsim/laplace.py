"""Parameter uncertainty by a local Gaussian approximation at the point fit (Laplace).

Why this besides ABC-SMC: in 6-11 dimensions ABC-SMC needs hundreds of full runs before its
weights stop being dominated by a few particles (the shipped ABC posteriors had an effective
sample size of 3.7 of 16 particles). Around a least-squares optimum the figures are close to
linear in the log-parameters over the range the published figures allow; the posterior is
then Gaussian, and it takes only

- ``p`` runs at each fit seed beside the fitted point's own: forward differences of every
  figure (targets and checks) in log-log, with common random numbers, for the Jacobian ``J``;
- runs of the fitted point at ``R`` seeds (the fit seeds and fresh ones): the run-to-run
  covariance ``S`` of the figures' logs at the simulated N.

The model is a linearised synthetic likelihood (Wood 2010, Nature 466:1102): the published
figures, scaled to N, are read as one more run, ``log obs = mu(x) + e`` with ``e ~ N(0, S)``
and ``mu(x) = mu + J (x - x_fit)``, where ``mu`` is the mean log figure over the ``R`` runs and
``S`` their sample covariance. Cumulative counts of one flow are strongly correlated, and with
``R`` below the number of figures ``S`` cannot be inverted; so the estimate is a sandwich
(Huber 1967) that needs no inverse of ``S``: each target is weighted by its own run-to-run
variance (``W = diag(S)^-1``), and the correlations enter the variance through the "meat":

- bread ``B = (J' W J + P0)^-1``, where ``P0`` is a weak normal (sd three times each bound's
  width in log space) standing in for the flat prior only so that a parameter the figures do
  not inform has a proper distribution (the truncation below turns it into about its prior);
- centre: one weighted-least-squares step from the fit, ``x_fit + B J' W r`` with
  ``r = log obs - mu`` (the fit minimised unweighted log-ratios averaged over its seeds);
- covariance ``B (J' W S_r W J + P0) B`` with ``S_r = (1 + 1/R) S``: ``r`` carries one run's
  noise and the noise of ``mu``; the prior enters as one more observation. The meat's rank is at
  most ``R - 1``, so ``R`` must exceed the number of parameters by two or more;
- misfit: ``chi2 = r' W r`` after the step, against what the runs' own noise would give
  (``tr(P' W P S_r)``, ``P`` the residual projection). When the published figures sit further
  from the model than its noise explains (the model is not the world), every interval is
  widened by that ratio (a Birge ratio) rather than pretending the model is exact; with as many
  parameters as targets it cannot be estimated and is 1;
- the posterior: a multivariate t with ``R - 1`` degrees of freedom (``S`` is estimated from
  ``R`` runs, so a normal would be too sure of it), truncated to the log-uniform prior's bounds
  (draws outside are rejected), from Philox keyed by the sampler's seed;
- posterior-predictive: each draw's linear prediction plus one run's noise (a draw of ``S``'s
  diagonal with the same t scale), for targets and checks.

A parameter whose posterior sd comes out more than twice its step was linearised where the
figures may be flat (a listing term at its bound: few listings outlive it, so a 10% shorter term
moves nothing while a much shorter one takes most names off); it is stepped again by that sd, a secant
over the range the posterior covers, at most ``refine_rounds`` times.

The linearity is checked, not assumed silently: ``check_runs`` draws are run at seeds of their
own, and the report shows how many of those runs' figures fall inside their 90% predictive
interval and how far they sit from the linear prediction, in units of a run's noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from credsim.abc_smc import COUNT_FLOOR, Prior, Simulator, quantile_levels, sampler_rng

PRIOR_SD_WIDTHS = 3.0  # sd of the weak normal standing in for the flat prior, in bound widths
WIDE_STEPS = 2.0  # a posterior sd beyond this many steps: step again, by the sd
MIN_ACCEPTANCE = 1e-3  # truncated draws: refuse a posterior almost wholly outside the bounds


@dataclass
class Laplace:
    """The Gaussian posterior and everything needed to check it."""

    prior: Prior
    figures: tuple[str, ...]  # targets, then checks
    n_targets: int
    fitted: np.ndarray  # (p,) log parameters of the point fit
    centre: np.ndarray  # (p,) posterior mean in log space (before truncation)
    steps: np.ndarray  # (p,) realised log steps of the forward differences (integers round)
    jacobian: np.ndarray  # (m, p): d log figure / d log parameter, every figure
    mu: np.ndarray  # (m,) mean log figure at the fit over the noise seeds
    noise: np.ndarray  # (m, m) one run's covariance of the log figures (sample, over the noise seeds)
    noise_seeds: tuple[int, ...]
    chi2: float  # weighted misfit of the targets at the centre
    chi2_expected: float  # what the runs' own noise would give
    dof: int
    inflation: float
    cov: np.ndarray  # (p, p) posterior covariance in log space, inflation included
    draws: np.ndarray  # (D, p) log parameters, inside the bounds
    acceptance: float  # share of draws inside the bounds
    z: np.ndarray  # (D, m) one run's noise for each draw, in noise sds (t scale included)
    floors: np.ndarray  # (m,) the least value each figure's log reads
    refined: tuple[str, ...]  # parameters stepped again at the posterior's scale, once per round
    runs: int = 0
    check_draws: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # (K, p) run at fresh seeds
    check_seeds: tuple[int, ...] = ()
    checked: dict[str, np.ndarray] = field(default_factory=dict)  # figure -> (K,) simulated values

    def interval(self, name: str, level: float = 0.9) -> tuple[float, float, float]:
        """(low, median, high) of a parameter from the truncated draws."""
        j = self.prior.names.index(name)
        lo, med, hi = np.quantile(self.draws[:, j], quantile_levels(level))
        return math.exp(lo), math.exp(med), math.exp(hi)

    def predicts(self, name: str) -> bool:
        return name in self.figures

    @property
    def misfit_estimable(self) -> bool:
        """More targets than parameters: with as many, the step fits them all and chi2 is noise."""
        return self.dof > 0

    def predictive_log(self, name: str) -> np.ndarray:
        """One predictive log value per draw: the draw's linear prediction plus one run's noise."""
        k = self.figures.index(name)
        sd = math.sqrt(max(float(self.noise[k, k]), 0.0))
        return np.asarray(self.mu[k] + (self.draws - self.fitted) @ self.jacobian[k] + sd * self.z[:, k])

    def predictive_interval(self, name: str, level: float = 0.9) -> tuple[float, float, float]:
        """(low, median, high) of a figure over the posterior, one run's noise included."""
        qs = np.quantile(self.predictive_log(name), quantile_levels(level))
        return float(math.exp(qs[0])), float(math.exp(qs[1])), float(math.exp(qs[2]))

    def check_coverage(self, level: float = 0.9) -> tuple[int, int]:
        """(inside, total): the runs at posterior draws whose figures fall in their predictive interval."""
        inside = total = 0
        for name, vals in self.checked.items():
            lo, _, hi = self.predictive_interval(name, level)
            inside += int(np.sum((vals >= lo) & (vals <= hi)))
            total += len(vals)
        return inside, total

    def linearity(self) -> float:
        """Median over figures of the RMS distance of the check runs from their linear prediction
        at their own draw, in units of one run's noise sd: about 1 when the linear model holds."""
        if not self.checked:
            return math.nan
        out = []
        for name, vals in self.checked.items():
            k = self.figures.index(name)
            pred = self.mu[k] + (self.check_draws - self.fitted) @ self.jacobian[k]
            sd = math.sqrt(max(float(self.noise[k, k]), 1e-300))
            out.append(math.sqrt(float(np.mean((_log(vals, self.floors[k]) - pred) ** 2))) / sd)
        return float(np.median(out))


def _log(v: np.ndarray | Sequence[float] | float, floor: np.ndarray | float = COUNT_FLOOR) -> np.ndarray:
    """Log of a figure, a value below its floor read as the floor (as the fit and ABC's distance do)."""
    return np.log(np.maximum(np.asarray(v, dtype=float), floor))


def _step_point(prior: Prior, x: np.ndarray, j: int, h: float) -> tuple[dict[str, float], float]:
    """The fitted point with parameter j moved by about h in log space (backwards at the upper
    bound), and the step actually taken once an integer parameter is rounded."""
    base = prior.params(x)
    ints = prior.integer or (False,) * len(prior.names)
    sign = 1.0 if x[j] + h <= prior.hi[j] else -1.0
    moved = x.copy()
    moved[j] = x[j] + sign * h
    p = prior.params(moved)
    name = prior.names[j]
    if ints[j] and p[name] == base[name]:
        p[name] = base[name] + int(sign)
    return p, math.log(p[name] / base[name])


def min_noise_seeds(parameters: int) -> int:
    """The fewest runs of the fitted point that give the sandwich's meat (rank <= runs - 1) a rank
    above the number of parameters."""
    return parameters + 2


def laplace(simulate: Simulator, prior: Prior, observed: dict[str, float], fitted: dict[str, float],
            fit_seeds: Sequence[int], noise_seeds: Sequence[int], *, step: float = 0.1, draws: int = 4000,
            seed: int = 0, check_seeds: Sequence[int] = (), names: Sequence[str] | None = None,
            floors: Mapping[str, float] | None = None, refine_rounds: int = 2) -> Laplace:
    """The Laplace posterior around ``fitted`` (see the module docstring).

    ``observed``: the scaled targets; ``noise_seeds``: seeds of the fitted point's runs for the
    noise (the fit seeds should be among them: their runs are then shared with the Jacobian's);
    ``check_seeds``: one run per seed at the first posterior draws, to check the linear model;
    ``names``: every figure the simulator returns that should get a predictive interval
    (default: what it returns, targets first); ``floors``: the least value each figure's log
    reads (default 0.5, half an event of a count; a rate needs a smaller one); ``refine_rounds``:
    how often a parameter whose posterior sd exceeds twice its step is stepped again by that sd."""
    p = len(prior.names)
    if len(noise_seeds) < min_noise_seeds(p) or not fit_seeds or not observed:
        raise ValueError(f"a Laplace posterior of {p} parameters needs >= {min_noise_seeds(p)} noise seeds (a "
                         f"run-to-run covariance of rank >= {p + 1}), fit seeds and observed figures; "
                         f"got {len(noise_seeds)}")
    x_fit = np.log(np.array([prior.params(np.log([fitted[k] for k in prior.names]))[k] for k in prior.names],
                            dtype=float))
    base = prior.params(x_fit)
    moves = [_step_point(prior, x_fit, j, step) for j in range(p)]
    seeds = list(dict.fromkeys([*noise_seeds, *fit_seeds]))
    batch = [(base, s) for s in seeds] + [(pt, s) for pt, _ in moves for s in fit_seeds]
    out = simulate(batch)
    runs = len(batch)
    at = {s: out[i] for i, s in enumerate(seeds)}
    targets = list(observed)
    figs = list(names) if names is not None else targets + [k for k in out[0] if k not in observed]
    m, mt = len(figs), len(targets)
    if figs[:mt] != targets:
        raise ValueError("names must list the observed targets first")
    fl = np.array([(floors or {}).get(k, COUNT_FLOOR) for k in figs])
    steps = np.array([h for _, h in moves])
    jac = np.zeros((m, p))
    for j in range(p):
        jac[:, j] = _column(out[len(seeds) + j * len(fit_seeds):len(seeds) + (j + 1) * len(fit_seeds)],
                            [at[s] for s in fit_seeds], figs, fl, steps[j])
    logs = np.array([_log([at[s][k] for k in figs], fl) for s in noise_seeds])
    n_noise = len(noise_seeds)
    mu = logs.mean(axis=0)
    noise = np.cov(logs, rowvar=False, ddof=1).reshape(m, m)
    r = _log([observed[k] for k in targets], fl[:mt]) - mu[:mt]
    # r = log obs - mu carries one run's noise and the noise of mu, a mean of n_noise runs
    s_r = (1 + 1 / n_noise) * noise[:mt, :mt]
    width = prior.hi - prior.lo
    g = _gaussian(jac[:mt], r, s_r, width)
    refined: list[str] = []
    for _ in range(refine_rounds):
        # a posterior reaching far past the step was linearised where the figures may be flat (a
        # term at its bound barely moves anything 10% away): measure the slope at the posterior's scale
        wide = [j for j in range(p) if math.sqrt(g.cov[j, j]) > WIDE_STEPS * abs(steps[j])]
        if not wide:
            break
        again = {j: _step_point(prior, x_fit, j, min(math.sqrt(g.cov[j, j]), 0.5 * width[j])) for j in wide}
        out2 = simulate([(again[j][0], s) for j in wide for s in fit_seeds])
        runs += len(out2)
        for i, j in enumerate(wide):
            steps[j] = again[j][1]
            jac[:, j] = _column(out2[i * len(fit_seeds):(i + 1) * len(fit_seeds)], [at[s] for s in fit_seeds],
                                figs, fl, steps[j])
            refined.append(prior.names[j])
        g = _gaussian(jac[:mt], r, s_r, width)
    delta, cov, chi2, expected, inflation = g.delta, g.cov, g.chi2, g.expected, g.inflation
    dof = mt - p
    centre = x_fit + delta
    nu = len(noise_seeds) - 1
    sample, scale, acceptance = _truncated_t(centre, cov, nu, prior, draws, seed)
    z = _normals(seed, "laplace-noise", (len(sample), m)) * scale[:, None]
    post = Laplace(prior, tuple(figs), mt, x_fit, centre, steps, jac, mu, noise, tuple(noise_seeds), chi2,
                   expected, dof, inflation, cov, sample, acceptance, z, fl, tuple(refined), runs)
    if check_seeds:
        k = len(check_seeds)
        if k > len(sample):
            raise ValueError(f"{k} check runs need as many posterior draws")
        post.check_draws = sample[:k].copy()
        post.check_seeds = tuple(check_seeds)
        res = simulate([(prior.params(post.check_draws[i]), int(check_seeds[i])) for i in range(k)])
        post.checked = {f: np.array([v[f] for v in res]) for f in figs}
        post.runs += k
    return post


def _column(moved: Sequence[dict[str, float]], base: Sequence[dict[str, float]], figs: list[str], fl: np.ndarray,
            h: float) -> np.ndarray:
    """One Jacobian column: the log figures' change over the step, averaged over the fit seeds (each
    pair of runs at one seed shares its random numbers)."""
    diffs = [_log([mv[k] for k in figs], fl) - _log([b[k] for k in figs], fl)
             for mv, b in zip(moved, base, strict=True)]
    return np.asarray(np.mean(diffs, axis=0) / h)


@dataclass(frozen=True)
class _Gaussian:
    delta: np.ndarray  # the weighted least-squares step from the fit
    cov: np.ndarray
    chi2: float
    expected: float
    inflation: float


def _gaussian(jt: np.ndarray, r: np.ndarray, s_r: np.ndarray, width: np.ndarray) -> _Gaussian:
    """The sandwich posterior of the targets' Jacobian ``jt``, residual ``r`` and its noise ``s_r``."""
    mt, p = jt.shape
    w = 1.0 / np.maximum(np.diag(s_r), 1e-12)  # working weights: each target by its own run-to-run variance
    p0 = np.diag(1.0 / (PRIOR_SD_WIDTHS * width) ** 2)
    bread = np.linalg.inv(jt.T @ (w[:, None] * jt) + p0)
    delta = bread @ (jt.T @ (w * r))
    wj = w[:, None] * jt
    meat = wj.T @ s_r @ wj + p0  # the weak prior as one more observation with its own variance
    resid = r - jt @ delta
    chi2 = float(resid @ (w * resid))
    proj = np.eye(mt) - jt @ bread @ wj.T  # the residual after the step, as a map of the noise
    expected = float(np.trace(proj.T @ np.diag(w) @ proj @ s_r))
    inflation = max(1.0, chi2 / expected) if mt > p and expected > 0 else 1.0
    return _Gaussian(delta, inflation * (bread @ meat @ bread), chi2, expected, inflation)


def _normals(seed: int, stream: str, shape: tuple[int, int]) -> np.ndarray:
    return sampler_rng(seed, stream).standard_normal(shape)


def _truncated_t(mean: np.ndarray, cov: np.ndarray, nu: int, prior: Prior, n: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``n`` draws of a multivariate t (``nu`` degrees of freedom, centre ``mean``, scale ``cov``)
    inside the bounds, with each draw's t scale, by rejection in fixed-size rounds (each round's
    numbers keyed by its index, so the draws depend on nothing but the seed)."""
    chol = np.linalg.cholesky(cov + 1e-15 * np.eye(len(mean)))
    kept: list[np.ndarray] = []
    scales: list[np.ndarray] = []
    tried = got = 0
    for rnd in range(1000):
        z = _normals(seed, f"laplace-draws:{rnd}", (n, len(mean)))
        g = sampler_rng(seed, f"laplace-scale:{rnd}").chisquare(nu, n)
        scale = np.sqrt(nu / g)
        x = mean + (z * scale[:, None]) @ chol.T
        ok = np.all((x >= prior.lo) & (x <= prior.hi), axis=1)
        kept.append(x[ok])
        scales.append(scale[ok])
        tried += n
        got += int(ok.sum())
        if got >= n:
            break
        if rnd >= 9 and got / tried < MIN_ACCEPTANCE:
            break
    if got < n:
        raise RuntimeError(f"Laplace posterior: only {got} of {tried} normal draws inside the parameter bounds; "
                           "the fit sits far outside them or the figures do not inform the parameters")
    return np.concatenate(kept)[:n], np.concatenate(scales)[:n], got / tried

