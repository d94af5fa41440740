"""The Laplace posterior: on a synthetic model with known parameters its intervals cover the
truth as often as they claim, its predictive intervals cover a fresh held-out figure, it is
deterministic, and it refuses a noise estimate too small for its parameters.

The synthetic model has more figures than parameters, correlated as the court list's are:
``y1 ~ Poisson(400 a)``, ``y2 ~ Poisson(400 a b)``, ``y3 = y1 + Poisson(200 a)`` (a later
cumulative count of the same flow) and a held-out check ``y4 ~ Poisson(300 b)``, each drawn
from a Philox stream of its own keyed by the run's seed, as credsim's named streams are (one
shared stream would shift every later draw when an earlier one takes more numbers, and common
random numbers would be lost). It costs microseconds, so the coverage is checked over 30
repetitions with the procedure the CLI uses (a point, then the Laplace posterior around it).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from credsim.abc_smc import Prior, distance
from credsim.calibrate import TargetSpec
from credsim.laplace import laplace

PRIOR = Prior(("a", "b"), (0.1, 0.1), (10.0, 10.0))
FIT_SEEDS = [0, 1, 2]
NOISE_SEEDS = list(range(10))  # the fit seeds and 7 more; observations use seeds 10**8 + r
TARGETS = ("y1", "y2", "y3")


def _poisson(seed: int, stream: int, lam: float) -> float:
    return float(np.random.Generator(np.random.Philox(key=seed + (stream << 64))).poisson(lam))


def model(batch: list[tuple[dict[str, float], int]]) -> list[dict[str, float]]:
    out = []
    for p, seed in batch:
        y1 = _poisson(seed, 1, 400 * p["a"])
        y2 = _poisson(seed, 2, 400 * p["a"] * p["b"])
        y3 = y1 + _poisson(seed, 3, 200 * p["a"])
        y4 = _poisson(seed, 4, 300 * p["b"])
        out.append({"y1": y1, "y2": y2, "y3": y3, "y4": y4})
    return out


def _point(obs: dict[str, float]) -> dict[str, float]:
    """A rough point (the posterior's generalised-least-squares step refines it)."""
    return {"a": obs["y1"] / 400, "b": obs["y2"] / obs["y1"]}


def test_intervals_cover_the_truth_as_often_as_they_claim() -> None:
    """90% intervals over R = 30 truths drawn from the middle of the prior.

    With true coverage 0.9, P(fewer than 23 of 30 cover) = 0.0078 per parameter (and per
    held-out figure); we require >= 23. The Birge inflation and the t scale can only widen, so
    the width check keeps "always covers" from passing by being useless: the median 90% interval
    must be narrower than a tenth of the prior's width in log space (0.46).
    """
    reps, level, need = 30, 0.9, 23
    assert binom.cdf(need - 1, reps, level) < 0.01
    covered = {"a": 0, "b": 0, "y4": 0}
    widths = []
    for rep in range(reps):
        rr = np.random.Generator(np.random.Philox(key=10**7 + rep))
        truth = {k: math.exp(rr.uniform(math.log(0.2), math.log(5.0))) for k in ("a", "b")}
        obs_all = model([(truth, 10**8 + rep)])[0]
        fresh = model([(truth, 2 * 10**8 + rep)])[0]  # a held-out figure, never seen by the fit
        obs = {k: obs_all[k] for k in TARGETS}
        # each repetition its own simulation seeds: shared ones would share one noise estimate
        fit_seeds, noise_seeds = [100 * rep + s for s in FIT_SEEDS], [100 * rep + s for s in NOISE_SEEDS]
        post = laplace(model, PRIOR, obs, _point(obs), fit_seeds, noise_seeds, seed=rep, draws=4000)
        for k in ("a", "b"):
            lo, med, hi = post.interval(k, level)
            assert lo <= med <= hi
            covered[k] += lo <= truth[k] <= hi
            widths.append(math.log(hi / lo))
        lo, _, hi = post.predictive_interval("y4", level)
        covered["y4"] += lo <= fresh["y4"] <= hi
    assert all(c >= need for c in covered.values()), covered
    assert float(np.median(widths)) < math.log(100) / 10, np.median(widths)


def test_same_seed_same_posterior_and_the_runs_add_up() -> None:
    asked: list[list[tuple[dict[str, float], int]]] = []

    def recording(batch: list[tuple[dict[str, float], int]]) -> list[dict[str, float]]:
        asked.append(batch)
        return model(batch)

    obs = {k: v for k, v in model([({"a": 1.5, "b": 0.6}, 10**8)])[0].items() if k in TARGETS}
    a = laplace(recording, PRIOR, obs, _point(obs), FIT_SEEDS, NOISE_SEEDS, seed=3, check_seeds=[900_000, 900_001])
    b = laplace(model, PRIOR, obs, _point(obs), FIT_SEEDS, NOISE_SEEDS, seed=3, check_seeds=[900_000, 900_001])
    assert np.array_equal(a.draws, b.draws) and a.interval("a") == b.interval("a")
    c = laplace(model, PRIOR, obs, _point(obs), FIT_SEEDS, NOISE_SEEDS, seed=4)
    assert not np.array_equal(a.draws, c.draws)
    # the fitted point at every noise seed, one step of each parameter at each fit seed, then the checks
    assert len(asked[0]) == len(NOISE_SEEDS) + 2 * len(FIT_SEEDS)
    assert [s for _, s in asked[1]] == [900_000, 900_001]
    assert a.runs == len(asked[0]) + 2
    assert a.figures == ("y1", "y2", "y3", "y4") and a.n_targets == 3 and a.dof == 1
    assert np.all(a.draws >= PRIOR.lo) and np.all(a.draws <= PRIOR.hi)
    inside, total = a.check_coverage()
    assert total == 2 * 4 and 0 <= inside <= total
    # d log y1 / d log a is 1 and d log y2 / d log b is 1 (Poisson means), up to the counts' noise
    assert a.jacobian[0, 0] == pytest.approx(1.0, abs=0.15) and a.jacobian[1, 1] == pytest.approx(1.0, abs=0.15)
    assert abs(a.jacobian[0, 1]) < 0.15


def _days_model(batch: list[tuple[dict[str, float], int]]) -> list[dict[str, float]]:
    """A day count that matters only below 45 days (like a listing term few listings outlive)."""
    return [{"y": _poisson(seed, 1, 20 * min(p["days"], 45) * p["rate"]), "z": _poisson(seed, 2, 300 * p["rate"])}
            for p, seed in batch]


DAYS_PRIOR = Prior(("days", "rate"), (10.0, 0.1), (50.0, 10.0), (True, False))


def test_integer_parameters_step_by_at_least_one_and_backwards_at_the_upper_bound() -> None:
    obs = {"y": 900.0, "z": 300.0}
    post = laplace(_days_model, DAYS_PRIOR, obs, {"days": 50, "rate": 1.0}, FIT_SEEDS, NOISE_SEEDS, step=0.01,
                   refine_rounds=0)
    assert post.steps[0] == pytest.approx(math.log(49 / 50))  # 50 * e^0.01 rounds to 50; backwards from the bound
    assert post.steps[1] == pytest.approx(0.01, rel=1e-3)
    assert post.jacobian[0, 0] == 0.0 and post.refined == ()


def test_a_parameter_flat_at_the_fit_is_stepped_again_at_the_posteriors_scale() -> None:
    """At 50 days the figures do not move one day back, so the first posterior of ``days`` is about
    its prior, reaching 10 days where ``y`` would fall by 78%. It is stepped again by its posterior sd
    (a secant over the range the posterior covers), which the figures do see."""
    obs = {"y": 900.0, "z": 300.0}
    asked: list[int] = []

    def counting(batch: list[tuple[dict[str, float], int]]) -> list[dict[str, float]]:
        asked.append(len(batch))
        return _days_model(batch)

    post = laplace(counting, DAYS_PRIOR, obs, {"days": 50, "rate": 1.0}, FIT_SEEDS, NOISE_SEEDS)
    assert post.refined[0] == "days" and "rate" not in post.refined
    assert post.steps[0] < math.log(40 / 50) and post.jacobian[0, 0] > 0.1
    assert post.interval("days")[0] > 20  # the short terms the figures rule out are ruled out
    assert post.runs == sum(asked) and asked[1:] == [len(FIT_SEEDS)] * len(post.refined)


def test_too_few_noise_seeds_for_the_parameters_are_refused() -> None:
    obs = {"y1": 400.0, "y2": 400.0, "y3": 600.0}
    with pytest.raises(ValueError, match="needs >= 4 noise seeds"):
        laplace(model, PRIOR, obs, {"a": 1.0, "b": 1.0}, FIT_SEEDS, [0, 1, 2])


def test_a_rate_below_one_half_is_not_read_as_one_half() -> None:
    """Half an event is the floor of a count's log; a rate (precision 0.43, a group's share of picks)
    needs its own, or every value below 0.5 reads the same and the figure pins nothing."""
    def rate_model(batch: list[tuple[dict[str, float], int]]) -> list[dict[str, float]]:
        return [{"r": _poisson(seed, 1, 4000 * p["a"]) / 10000, "n": _poisson(seed, 2, 400 * p["b"])}
                for p, seed in batch]

    obs = {"r": 0.3, "n": 400.0}
    floors = {"r": TargetSpec(metric="m", per="d", to_day=1, value=0.3).log_floor,
              "n": TargetSpec(metric="m", to_day=1, value=400).log_floor}
    assert floors == {"r": 1e-6, "n": 0.5}
    post = laplace(rate_model, PRIOR, obs, {"a": 0.75, "b": 1.0}, FIT_SEEDS, NOISE_SEEDS, floors=floors)
    assert post.jacobian[0, 0] == pytest.approx(1.0, abs=0.15)
    assert post.interval("a")[2] < 0.9  # 0.3 pins a near 0.75
    floored = laplace(rate_model, PRIOR, obs, {"a": 0.75, "b": 1.0}, FIT_SEEDS, NOISE_SEEDS, refine_rounds=0)
    assert floored.jacobian[0, 0] == 0.0  # what every rate below 0.5 read before
    assert distance({"r": 0.2}, {"r": 0.4}, floors) == pytest.approx(math.log(2))
    assert distance({"r": 0.2}, {"r": 0.4}) == pytest.approx(math.log(1.25))
