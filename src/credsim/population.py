"""Synthetic citizens: group codes and latent traits, generated, never imported.

Each citizen's groups and traits are a pure function of (seed, citizen id): group ``d``
comes from one uniform draw on stream ``pop:<d>`` and trait ``t`` from one draw on
``trait:<t>``. So citizen 41 is the same person whatever the population size, block
size or shard layout, and the same person in every scenario run with the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange
from scipy.special import ndtri

from credsim.plan import Plan
from credsim.rng import static_key, uniform


@dataclass
class Population:
    n: int
    groups: np.ndarray  # (D, N) uint8: value index per group dimension
    traits: np.ndarray  # (T, N) float32
    dependants: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # (N,) or (0,): none declared


@njit(parallel=True, cache=True)
def _categorical(key: np.uint64, cum: np.ndarray, n: int, block: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint8)
    nblocks = (n + block - 1) // block
    for c in prange(nblocks):
        for i in range(c * block, min(n, (c + 1) * block)):
            u = uniform(key, np.uint64(i))
            k = 0
            while k < cum.shape[0] - 1 and u >= cum[k]:
                k += 1
            out[i] = k
    return out


@njit(parallel=True, cache=True)
def _open_uniforms(key: np.uint64, n: int, block: int) -> np.ndarray:
    out = np.empty(n, dtype=np.float64)
    nblocks = (n + block - 1) // block
    for c in prange(nblocks):
        for i in range(c * block, min(n, (c + 1) * block)):
            u = uniform(key, np.uint64(i))
            out[i] = min(max(u, 1e-15), 1.0 - 1e-15)
    return out


def generate(plan: Plan, n: int, seed: int, block: int = 1 << 16) -> Population:
    """Draw the groups and traits of ``n`` citizens."""
    pop = plan.scen.population
    groups = np.empty((len(plan.dims), n), dtype=np.uint8)
    for d, dim in enumerate(plan.dims):
        shares = np.array(list(pop.groups[dim].values()), dtype=np.float64)
        cum = np.cumsum(shares)
        cum[-1] = 1.0 + 1e-12  # the last value catches rounding
        groups[d] = _categorical(static_key(seed, f"pop:{dim}"), cum, n, block)
    traits = np.empty((len(plan.traits), n), dtype=np.float32)
    for t, name in enumerate(plan.traits):
        spec = pop.traits[name]
        z = ndtri(_open_uniforms(static_key(seed, f"trait:{name}"), n, block))
        for dim, vals in spec.shift.items():
            d = plan.dims.index(dim)
            table = np.zeros(len(plan.dim_values[d]))
            for v, s in vals.items():
                table[plan.dim_values[d].index(v)] = s
            z += table[groups[d]]
        traits[t] = (spec.mean + spec.sd * z).astype(np.float32)
    deps = np.zeros(0, np.uint8)
    if pop.dependants is not None:
        # one draw per citizen id on its own stream: the same citizen has the same family in every shard
        cum = np.cumsum(np.array(pop.dependants.shares, dtype=np.float64))
        cum[-1] = 1.0 + 1e-12
        deps = _categorical(static_key(seed, "dependants"), cum, n, block)
    return Population(n=n, groups=groups, traits=traits, dependants=deps)
