"""ABC-SMC: on a synthetic model with known parameters the posterior intervals cover the truth
as often as they claim, the sampler is deterministic, and its bookkeeping adds up.

The synthetic model is two Poisson counts, ``y1 ~ Poisson(400 a)`` and ``y2 ~ Poisson(400 a b)``
(a rate and a multiplier of it, correlated like the scenario's ceilings and schedule
multipliers), drawn from Philox keyed by the run's seed. It costs microseconds, so the
coverage is checked over 30 repetitions with the procedure the CLI uses (a point estimate,
then ABC-SMC centred on it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from credsim.abc_smc import Prior, abc_smc, distance, weighted_quantiles
from credsim.calib_pipeline import PREDICTIVE_SEED0, predictive_seeds

PRIOR = Prior(("a", "b"), (0.1, 0.1), (10.0, 10.0))
SIM_SEEDS = list(range(1000))  # the observations use seeds 10**8 + r, never one of these


def poisson_model(batch: list[tuple[dict[str, float], int]]) -> list[dict[str, float]]:
    out = []
    for p, seed in batch:
        r = np.random.Generator(np.random.Philox(key=seed))
        out.append({"y1": float(r.poisson(400 * p["a"])), "y2": float(r.poisson(400 * p["a"] * p["b"]))})
    return out


def _point_estimate(obs: dict[str, float]) -> dict[str, float]:
    return {"a": obs["y1"] / 400, "b": obs["y2"] / obs["y1"]}


def test_intervals_cover_the_truth_as_often_as_they_claim() -> None:
    """90% intervals over R = 30 truths drawn from the middle of the prior.

    If the intervals cover with probability 0.9, P(fewer than 24 of 30 cover) = 0.026 per
    parameter and P(fewer than 23) = 0.0078; we require >= 23 for each parameter (a < 1%
    false alarm each). ABC with eps > 0 widens the posterior, so coverage may exceed 0.9;
    the width check keeps "always covers" from passing by being useless: the 90% interval
    must be narrower than a quarter of the prior's width in log space (4.6).
    """
    reps, level = 30, 0.9
    covered = {"a": 0, "b": 0}
    widths = []
    for rep in range(reps):
        rr = np.random.Generator(np.random.Philox(key=10**7 + rep))
        truth = {k: math.exp(rr.uniform(math.log(0.2), math.log(5.0))) for k in ("a", "b")}
        obs = poisson_model([(truth, 10**8 + rep)])[0]
        post = abc_smc(poisson_model, PRIOR, obs, SIM_SEEDS, particles=40, generations=4, seed=rep,
                       centre=_point_estimate(obs))
        for k in covered:
            lo, med, hi = post.interval(k, level)
            assert lo <= med <= hi
            covered[k] += lo <= truth[k] <= hi
            widths.append(math.log(hi / lo))
    need = 23
    assert binom.cdf(need - 1, reps, level) < 0.01  # the threshold is the binomial bound above
    assert all(c >= need for c in covered.values()), covered
    assert float(np.median(widths)) < math.log(100) / 4, np.median(widths)


def test_same_seed_same_posterior_and_eps_shrinks() -> None:
    obs = poisson_model([({"a": 1.5, "b": 0.6}, 10**8)])[0]
    a = abc_smc(poisson_model, PRIOR, obs, SIM_SEEDS, particles=20, generations=3, seed=5)
    b = abc_smc(poisson_model, PRIOR, obs, SIM_SEEDS, particles=20, generations=3, seed=5)
    assert np.array_equal(a.particles, b.particles) and np.array_equal(a.weights, b.weights)
    assert a.predictive["y1"].tolist() == b.predictive["y1"].tolist()
    c = abc_smc(poisson_model, PRIOR, obs, SIM_SEEDS, particles=20, generations=3, seed=6)
    assert not np.array_equal(a.particles, c.particles)
    eps = [g.eps for g in a.generations]
    assert eps[0] == math.inf and eps[1] > eps[2]
    assert math.isclose(float(a.weights.sum()), 1.0)
    assert all(d <= a.generations[-1].eps for d in a.distances)
    # every run counted: the generations' proposals plus one posterior-predictive run per particle
    assert a.runs == sum(g.proposed for g in a.generations) + len(a.particles)
    assert 1.0 <= a.ess <= len(a.particles)


def test_weighted_quantiles_and_distance() -> None:
    x = np.array([3.0, 1.0, 2.0])
    assert weighted_quantiles(x, np.ones(3), [0.5]) == [2.0]
    assert weighted_quantiles(x, np.array([0.0, 1.0, 0.0]), [0.1, 0.9]) == [1.0, 1.0]
    assert math.isclose(distance({"y": 200.0}, {"y": 100.0}), math.log(2))
    assert math.isclose(distance({"y": 0.0}, {"y": 1.0}), math.log(2))  # zero counts are taken as 0.5


def test_posterior_predictive_runs_use_a_seed_of_their_own() -> None:
    """Each final particle's predictive run gets its own seed, outside the fit's: drawn from a few fit
    seeds, every particle shared one of a few noise draws (3 in a calibration), and a figure that
    does not depend on the parameters got an interval of width ~0."""
    asked: list[list[int]] = []

    def recording(batch: list[tuple[dict[str, float], int]]) -> list[dict[str, float]]:
        asked.append([s for _, s in batch])
        return poisson_model(batch)

    obs = poisson_model([({"a": 1.5, "b": 0.6}, 10**8)])[0]
    fit_seeds = [2017, 2018, 2019]
    fresh = predictive_seeds(12, set(fit_seeds) | {PREDICTIVE_SEED0 + 1})
    assert fresh == [PREDICTIVE_SEED0] + list(range(PREDICTIVE_SEED0 + 2, PREDICTIVE_SEED0 + 13))
    post = abc_smc(recording, PRIOR, obs, fit_seeds, particles=12, generations=2, seed=1, predictive_seeds=fresh)
    assert asked[-1] == fresh  # the last batch is the predictive one, particle by particle
    assert all(set(b) <= set(fit_seeds) for b in asked[:-1])  # the generations still run at the fit seeds
    spread = np.ptp(post.predictive["y1"])
    assert spread > 0
    with pytest.raises(ValueError, match="12 particles need as many predictive seeds"):
        abc_smc(poisson_model, PRIOR, obs, fit_seeds, particles=12, generations=1, predictive_seeds=fresh[:3])
