"""Parameter uncertainty by approximate Bayesian computation, sequential Monte Carlo (ABC-SMC).

Why ABC and not a likelihood: a credsim run has no tractable likelihood of "13M listed by
end-2018"; it can only be simulated. ABC keeps the parameter values whose simulations land
close to the published figures, and SMC (Beaumont et al. 2009, "Adaptive approximate
Bayesian computation", Biometrika 96:983) shrinks the closeness threshold generation by
generation, re-using the previous generation as the proposal, so few runs are wasted.
Unlike a point fit (Optuna, least squares) it gives a distribution: intervals for every
parameter and, by re-simulating the posterior, posterior-predictive intervals for every
target and held-out check.

The procedure, for ``P`` particles and ``G`` generations:

- the prior is log-uniform between each parameter's bounds (the rates span decades);
- generation 0 proposes from the prior, or from a normal distribution around a point fit in
  log space, importance-weighted by prior / proposal so the posterior is unchanged;
- generation g accepts a proposal when its distance (the root-mean-square log-ratio of the
  simulated targets to the figures) is at most eps_g, the ``quantile`` of generation g-1's
  distances; proposals are a weighted draw of a previous particle moved by a normal kernel
  with twice the weighted covariance (Beaumont et al.; Filippi et al. 2013 for the
  multivariate kernel), weights prior / sum_j w_j K(theta | theta_j);
- each generation proposes in rounds: every empty slot one proposal per round, all of them
  run in parallel; a proposal outside the bounds is redrawn, and that truncation is left out
  of the weights, as in common implementations (pyABC); after ``max_rounds`` rounds a
  generation short of particles raises its eps to the P-th smallest distance seen in it
  (recorded as ``relaxed``), which is still ABC, at a looser threshold;
- every run's seed and every random draw of the sampler is a counter-based function of
  (seed, generation, particle, round): the same call gives the same posterior for any number
  of workers.

The posterior-predictive values re-run each final particle once, at a seed of its own when
``predictive_seeds`` are given (else drawn from ``seeds``): the accepted runs themselves were
selected for being close and would be too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from credsim.rng import day_key

COUNT_FLOOR = 0.5  # a count of 0 is read as half an event in a log-ratio (it would be -inf)


def quantile_levels(level: float) -> list[float]:
    """The (low, median, high) probabilities of a central ``level`` interval."""
    return [(1 - level) / 2, 0.5, (1 + level) / 2]


Simulator = Callable[[list[tuple[dict[str, float], int]]], list[dict[str, float]]]
"""Runs (parameters, seed) pairs and returns each run's values by name, in the order given."""


@dataclass(frozen=True)
class Prior:
    """Log-uniform bounds of each parameter; integer parameters are rounded when run."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    integer: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if not (len(self.names) == len(self.low) == len(self.high)) or not self.names:
            raise ValueError("a prior needs names, low and high of the same non-zero length")
        if any(not 0 < lo < hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError("every bound must satisfy 0 < low < high")

    @property
    def lo(self) -> np.ndarray:
        return np.log(np.array(self.low))

    @property
    def hi(self) -> np.ndarray:
        return np.log(np.array(self.high))

    def inside(self, x: np.ndarray) -> bool:
        return bool(np.all(x >= self.lo) and np.all(x <= self.hi))

    def params(self, x: np.ndarray) -> dict[str, float]:
        ints = self.integer or (False,) * len(self.names)
        return {k: (round(math.exp(v)) if i else float(f"{math.exp(v):.6g}"))
                for k, v, i in zip(self.names, x, ints, strict=True)}


@dataclass
class Generation:
    eps: float
    proposed: int  # runs made
    accepted: int
    relaxed: bool  # eps raised because max_rounds ran out


@dataclass
class Posterior:
    prior: Prior
    particles: np.ndarray  # (P, d), log parameters
    weights: np.ndarray  # (P,), sum 1
    distances: np.ndarray
    generations: list[Generation]
    predictive: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (P,) values re-simulated
    runs: int = 0

    def interval(self, name: str, level: float = 0.9) -> tuple[float, float, float]:
        """(low, median, high) of a parameter: weighted quantiles of the final particles."""
        j = self.prior.names.index(name)
        lo, med, hi = weighted_quantiles(self.particles[:, j], self.weights, quantile_levels(level))
        return math.exp(lo), math.exp(med), math.exp(hi)

    def predicts(self, name: str) -> bool:
        return name in self.predictive

    def predictive_interval(self, name: str, level: float = 0.9) -> tuple[float, float, float]:
        """(low, median, high) of a simulated value over the posterior, one fresh run per particle."""
        lo, med, hi = weighted_quantiles(self.predictive[name], self.weights, quantile_levels(level))
        return lo, med, hi

    @property
    def ess(self) -> float:
        """Effective sample size of the final weights (Kish): how many equal particles they are worth."""
        return float(1.0 / np.sum(self.weights ** 2))


def weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: Sequence[float]) -> list[float]:
    """Quantiles of a weighted sample (inverse of the weighted CDF at the mid-points of the weights)."""
    keep = np.asarray(w) > 0  # a particle of no weight is not part of the distribution
    xk, wk = np.asarray(x, dtype=float)[keep], np.asarray(w, dtype=float)[keep]
    order = np.argsort(xk, kind="stable")
    xs, ws = xk[order], wk[order]
    cdf = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    return [float(np.interp(q, cdf, xs)) for q in qs]


def distance(values: dict[str, float], observed: dict[str, float], floors: Mapping[str, float] | None = None) -> float:
    """Root-mean-square log-ratio of simulated to observed; a value below its floor (default
    :data:`COUNT_FLOOR`) is read as the floor."""
    fl = floors or {}
    return math.sqrt(sum(math.log(max(values[k], fl.get(k, COUNT_FLOOR)) / v) ** 2 for k, v in observed.items())
                     / len(observed))


def sampler_rng(seed: int, stream: str, counter: int = 0) -> np.random.Generator:
    """A calibration sampler's random numbers: Philox keyed by (seed, stream, counter), so a draw
    depends on nothing but what names it (not on the number of workers or the order of runs)."""
    return np.random.Generator(np.random.Philox(key=int(day_key(seed, stream, counter))))


def draws(seed: int, generation: int, particle: int, rnd: int) -> np.random.Generator:
    """The sampler's random numbers for one proposal: Philox keyed by (seed, generation, particle, round)."""
    return sampler_rng(seed, f"abc-smc:{generation}:{rnd}", particle)


def abc_smc(simulate: Simulator, prior: Prior, observed: dict[str, float], seeds: Sequence[int], *,
            particles: int = 24, generations: int = 3, seed: int = 0, quantile: float = 0.5,
            max_rounds: int = 6, centre: dict[str, float] | None = None, centre_sd: float = 0.25,
            predictive_seeds: Sequence[int] | None = None, floors: Mapping[str, float] | None = None,
            on_generation: Callable[[int, Generation], None] | None = None) -> Posterior:
    """The ABC-SMC posterior of ``prior`` given ``observed`` (see the module docstring).

    ``predictive_seeds``: final particle p's posterior-predictive run is made at
    ``predictive_seeds[p]`` (one seed per particle, so each run brings its own noise); without them,
    at a seed drawn from ``seeds``, which, when ``seeds`` are a few fit seeds, lets every
    particle share one of a few noise draws and narrows the intervals of noisy figures.
    ``floors``: the least value each figure's log-ratio reads (default :data:`COUNT_FLOOR`)."""
    if particles < 4 or generations < 1 or not seeds or not observed:
        raise ValueError("ABC-SMC needs >= 4 particles, >= 1 generation, seeds and observed values")
    d = len(prior.names)
    lo, hi = prior.lo, prior.hi
    mu0 = None if centre is None else np.clip(np.log([centre[k] for k in prior.names]), lo, hi)
    prev_x = np.empty((0, d))
    prev_w = np.empty(0)
    prev_d = np.empty(0)
    gens: list[Generation] = []
    runs = 0
    for g in range(generations):
        eps = math.inf if g == 0 else float(np.quantile(prev_d, quantile))
        sd = np.linalg.cholesky(2.0 * _weighted_cov(prev_x, prev_w)) if g else np.eye(d)
        xs = np.empty((particles, d))
        ws = np.empty(particles)
        ds = np.full(particles, np.inf)
        filled = np.zeros(particles, dtype=bool)
        seen: list[tuple[float, np.ndarray, float]] = []  # (distance, x, weight) of every run this generation
        for rnd in range(max_rounds):
            slots = [p for p in range(particles) if not filled[p]]
            if not slots:
                break
            batch = []
            for p in slots:
                rng = draws(seed, g, p, rnd)
                x = _propose(rng, g, prior, mu0, centre_sd, prev_x, prev_w, sd)
                batch.append((p, x, prior.params(x), seeds[int(rng.integers(len(seeds)))]))
            results = simulate([(params, s) for _, _, params, s in batch])
            runs += len(batch)
            for (p, x, _, _), vals in zip(batch, results, strict=True):
                dist = distance(vals, observed, floors)
                w = _weight(x, g, prior, mu0, centre_sd, prev_x, prev_w, sd)
                seen.append((dist, x, w))
                if dist <= eps:
                    xs[p], ws[p], ds[p], filled[p] = x, w, dist, True
        relaxed = not filled.all()
        if relaxed:  # a looser threshold: the P closest of everything run in this generation
            seen.sort(key=lambda t: t[0])
            best = seen[:particles]
            eps = best[-1][0]
            xs = np.array([t[1] for t in best])
            ws = np.array([t[2] for t in best])
            ds = np.array([t[0] for t in best])
        gen = Generation(eps, len(seen), int(filled.sum()), relaxed)
        gens.append(gen)
        if on_generation is not None:
            on_generation(g, gen)
        prev_x, prev_w, prev_d = xs, ws / ws.sum(), ds
    post = Posterior(prior, prev_x, prev_w, prev_d, gens)
    batch2 = []
    if predictive_seeds is not None and len(predictive_seeds) < len(prev_x):
        raise ValueError(f"{len(prev_x)} particles need as many predictive seeds, got {len(predictive_seeds)}")
    for p in range(len(prev_x)):
        rng = draws(seed, generations, p, 0)
        s_p = seeds[int(rng.integers(len(seeds)))] if predictive_seeds is None else int(predictive_seeds[p])
        batch2.append((prior.params(prev_x[p]), s_p))
    pred = simulate(batch2)
    post.runs = runs + len(batch2)
    post.predictive = {k: np.array([v[k] for v in pred]) for k in pred[0]} if pred else {}
    return post


def _weighted_cov(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted covariance of the particles: the kernel follows correlated parameters (a rate and
    a multiplier of it) along their ridge instead of stepping off it."""
    m = np.sum(w[:, None] * x, axis=0)
    c = (w[:, None] * (x - m)).T @ (x - m)
    return np.asarray(c + 1e-10 * np.eye(x.shape[1]))  # a collapsed dimension still moves a little


def _propose(rng: np.random.Generator, g: int, prior: Prior, mu0: np.ndarray | None, centre_sd: float,
             prev_x: np.ndarray, prev_w: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """One proposal inside the bounds (redrawn from the same stream until it is inside)."""
    lo, hi = prior.lo, prior.hi
    for _ in range(1000):
        if g == 0:
            x = rng.uniform(lo, hi) if mu0 is None else mu0 + centre_sd * rng.standard_normal(len(lo))
        else:
            j = int(rng.choice(len(prev_w), p=prev_w))
            x = prev_x[j] + sd @ rng.standard_normal(len(lo))
        if prior.inside(x):
            return np.asarray(x, dtype=float)
    raise RuntimeError("ABC-SMC: no proposal inside the prior bounds in 1000 draws")


def _weight(x: np.ndarray, g: int, prior: Prior, mu0: np.ndarray | None, centre_sd: float,
            prev_x: np.ndarray, prev_w: np.ndarray, sd: np.ndarray) -> float:
    """Importance weight prior(x) / proposal(x), up to a constant (the prior is flat in log space
    inside the bounds; the truncation constants are the same for every proposal)."""
    if g == 0:
        if mu0 is None:
            return 1.0
        return math.exp(0.5 * float(np.sum(((x - mu0) / centre_sd) ** 2)))
    z = np.linalg.solve(sd, (x[None, :] - prev_x).T)  # sd is the kernel's Cholesky factor
    k = np.exp(-0.5 * np.sum(z ** 2, axis=0))
    return 1.0 / float(np.sum(prev_w * k))
