"""The toy points model three ways: credsim, Mesa, and plain dense NumPy, in one process.

Model (``benchmarks/toy.yaml``): each citizen-day, one infraction draw (p = 0.002, halved
while listed) and one good-deed draw (p = 0.001); -10 / +5 points from a base of 1,000;
listed while the score is below 990. credsim runs it through its full pipeline (sensor,
dossier, shadow view, grades, list, response, metrics); Mesa and NumPy implement only the
model itself.

Agreement: the three use different random numbers, so their end-of-run mean score and
share listed must agree within 5 standard errors (binomial for the share; the sample
standard deviation of scores for the mean).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

P_INF, P_GOOD, LOSS, GAIN, BASE, THRESHOLD = 0.002, 0.001, 10.0, 5.0, 1000.0, 990.0
TOY = Path(__file__).with_name("toy.yaml")


def run_credsim(n: int, days: int, seed: int = 1, fused: bool | None = None) -> dict[str, Any]:
    """credsim end to end (``fused``: None takes the fused day, which the toy qualifies for; False the staged loop)."""
    import credsim
    from credsim.engine import simulate

    scen = credsim.load_scenario(TOY, {"population.size": n, "run.days": days, "run.seed": seed})
    t0 = time.perf_counter()
    res = simulate(scen, fused=fused)
    wall = time.perf_counter() - t0
    loop = sum(v for k, v in res.timings.items() if k != "setup")
    score = res.state.score[0].astype(np.float64)
    listed = res.state.listed[0, 0].astype(np.float64)
    return {"impl": "credsim", "n": n, "days": days, "wall_s": wall, "loop_s": loop,
            "rate": n * days / wall, "loop_rate": n * days / loop, "timings": res.timings,
            **_summary(score, listed)}


def run_numpy(n: int, days: int, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    score = np.full(n, BASE)
    listed = np.zeros(n, dtype=bool)
    t0 = time.perf_counter()
    for _ in range(days):
        p = np.where(listed, P_INF / 2, P_INF)
        score -= LOSS * (rng.random(n) < p)
        score += GAIN * (rng.random(n) < P_GOOD)
        listed = score < THRESHOLD
    wall = time.perf_counter() - t0
    return {"impl": "numpy-dense", "n": n, "days": days, "wall_s": wall, "rate": n * days / wall,
            **_summary(score, listed.astype(np.float64))}


def run_mesa(n: int, days: int, seed: int = 1) -> dict[str, Any]:
    import mesa

    class Citizen(mesa.Agent):  # type: ignore[misc]
        def __init__(self, model: mesa.Model) -> None:
            super().__init__(model)
            self.score = BASE
            self.listed = False

        def step(self) -> None:
            r = self.model.random
            if r.random() < (P_INF / 2 if self.listed else P_INF):
                self.score -= LOSS
            if r.random() < P_GOOD:
                self.score += GAIN
            self.listed = self.score < THRESHOLD

    class Toy(mesa.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(seed=seed)
            for _ in range(n):
                Citizen(self)

        def step(self) -> None:
            self.agents.do("step")

    model = Toy()
    t0 = time.perf_counter()
    for _ in range(days):
        model.step()
    wall = time.perf_counter() - t0
    score = np.array([a.score for a in model.agents], dtype=np.float64)
    listed = np.array([a.listed for a in model.agents], dtype=np.float64)
    return {"impl": "mesa", "n": n, "days": days, "wall_s": wall, "rate": n * days / wall,
            **_summary(score, listed)}


def _summary(score: np.ndarray, listed: np.ndarray) -> dict[str, float]:
    return {"mean_score": float(score.mean()), "sd_score": float(score.std()),
            "share_listed": float(listed.mean())}


def agree(a: dict[str, Any], b: dict[str, Any], z: float = 5.0) -> tuple[bool, str]:
    """Do two runs agree on mean score and share listed within ``z`` standard errors?"""
    se_mean = math.sqrt(a["sd_score"] ** 2 / a["n"] + b["sd_score"] ** 2 / b["n"])
    p = (a["share_listed"] * a["n"] + b["share_listed"] * b["n"]) / (a["n"] + b["n"])
    se_share = math.sqrt(max(p * (1 - p), 1e-12) * (1 / a["n"] + 1 / b["n"]))
    d_mean = abs(a["mean_score"] - b["mean_score"])
    d_share = abs(a["share_listed"] - b["share_listed"])
    ok = d_mean <= z * se_mean + 1e-9 and d_share <= z * se_share + 1e-12
    return ok, (f"{a['impl']} vs {b['impl']} at n={a['n']}: mean {a['mean_score']:.3f} vs {b['mean_score']:.3f} "
                f"(|d|={d_mean:.3f}, {z:.0f} se={z * se_mean:.3f}); listed {a['share_listed']:.4f} vs "
                f"{b['share_listed']:.4f} (|d|={d_share:.4f}, {z:.0f} se={z * se_share:.4f})")
