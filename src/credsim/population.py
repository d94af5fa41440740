"""Synthetic citizens: group codes and latent traits, generated, never imported.

Each citizen's groups and traits are a pure function of (seed, citizen id): group ``d``
comes from one uniform draw on stream ``pop:<d>`` and trait ``t`` from one draw on
``trait:<t>``. So citizen 41 is the same person whatever the population size, block
size or shard layout, and the same person in every scenario run with the same seed.

A shard generates only its own citizens ``[lo, hi)`` (:func:`generate` with a range): the
columns keep global indexing but only the range is written, so the rest stays zero pages the
operating system never backs. Anyone else's groups, when a shard needs them (a contact in
another shard counted in its group cells), are drawn again from the id (:func:`groups_at`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np
from numba import njit, prange
from scipy.special import ndtri

from credsim import threads
from credsim.allocator import unreserved_zeros
from credsim.plan import Plan
from credsim.rng import static_key, uniform


@dataclass
class Population:
    n: int
    groups: np.ndarray  # (D, N) uint8: value index per group dimension (written only in [lo, hi))
    traits: np.ndarray  # (T, N) float32 (written only in [lo, hi))
    dependants: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))  # (N,) or (0,): none declared
    lo: int = 0  # the citizens generated: [lo, hi); the whole population by default
    hi: int = -1

    def __post_init__(self) -> None:
        if self.hi < 0:
            self.hi = self.n


@njit(inline="always", cache=True)
def code_at(key: np.uint64, cum: np.ndarray, i: int) -> int:
    """Citizen ``i``'s value index of a dimension drawn with ``key`` and cumulative shares ``cum``: the first
    ``k`` with ``u < cum[k]``, counted without a branch (``cum`` rises, so it is the number of
    ``cum[k] <= u`` before the last), which a random ``u`` would otherwise mispredict about once a
    citizen. The one rule every group code comes from."""
    u = uniform(key, np.uint64(i))
    k = 0
    for v in range(cum.shape[0] - 1):
        k += u >= cum[v]
    return k


@njit(inline="always", cache=True)
def _categorical_block(c: int, key: np.uint64, cum: np.ndarray, n: int, block: int, out: np.ndarray) -> None:
    """The values of the citizens of block ``c`` (:func:`code_at`)."""
    for i in range(c * block, min(n, (c + 1) * block)):
        out[i] = code_at(key, cum, i)


@njit(cache=True)
def _categorical_serial(key: np.uint64, cum: np.ndarray, n: int, block: int, out: np.ndarray) -> None:
    for c in range((n + block - 1) // block):
        _categorical_block(c, key, cum, n, block, out)


@njit(parallel=True, cache=True)
def _categorical_parallel(key: np.uint64, cum: np.ndarray, n: int, block: int, out: np.ndarray) -> None:
    for c in prange((n + block - 1) // block):
        _categorical_block(c, key, cum, n, block, out)


def _categorical(key: np.uint64, cum: np.ndarray, n: int, block: int, out: np.ndarray | None = None) -> np.ndarray:
    """One value index per citizen from one draw each (``cum``: cumulative shares, the last above 1)."""
    out = np.empty(n, dtype=np.uint8) if out is None else out
    (_categorical_parallel if threads.parallel_for(n) else _categorical_serial)(key, cum, n, block, out)
    return out


@njit(inline="always", cache=True)
def _open_block(c: int, key: np.uint64, n: int, block: int, out: np.ndarray) -> None:
    for i in range(c * block, min(n, (c + 1) * block)):
        u = uniform(key, np.uint64(i))
        out[i] = min(max(u, 1e-15), 1.0 - 1e-15)


@njit(cache=True)
def _open_uniforms_serial(key: np.uint64, n: int, block: int, out: np.ndarray) -> None:
    for c in range((n + block - 1) // block):
        _open_block(c, key, n, block, out)


@njit(parallel=True, cache=True)
def _open_uniforms_parallel(key: np.uint64, n: int, block: int, out: np.ndarray) -> None:
    for c in prange((n + block - 1) // block):
        _open_block(c, key, n, block, out)


@njit(inline="always", cache=True)
def _trait_block(c: int, z: np.ndarray, groups: np.ndarray, dims: np.ndarray, tables: np.ndarray, mean: float,
                 sd: float, block: int, out: np.ndarray) -> None:
    """``mean + sd * (z + shifts)`` as float32, the shifts added one dimension at a time in the order
    they are declared: the same operations, in the same order, as the NumPy expression it replaces."""
    for i in range(c * block, min(z.shape[0], (c + 1) * block)):
        x = z[i]
        for k in range(dims.shape[0]):
            x += tables[k, groups[dims[k], i]]
        out[i] = np.float32(mean + sd * x)


@njit(cache=True)
def _traits_serial(z: np.ndarray, groups: np.ndarray, dims: np.ndarray, tables: np.ndarray, mean: float, sd: float,
                   block: int, out: np.ndarray) -> None:
    for c in range((z.shape[0] + block - 1) // block):
        _trait_block(c, z, groups, dims, tables, mean, sd, block, out)


@njit(parallel=True, cache=True)
def _traits_parallel(z: np.ndarray, groups: np.ndarray, dims: np.ndarray, tables: np.ndarray, mean: float, sd: float,
                     block: int, out: np.ndarray) -> None:
    for c in prange((z.shape[0] + block - 1) // block):
        _trait_block(c, z, groups, dims, tables, mean, sd, block, out)


def _normals(z: np.ndarray, block: int, par: bool) -> None:
    """``ndtri`` of ``z`` in place, in slices on the worker threads when the work pays for them
    (the ufunc releases the GIL; each value is computed alone, so the split changes nothing)."""
    workers = numba.get_num_threads() if par else 1
    if workers == 1:
        ndtri(z, out=z)
        return
    step = -(-z.shape[0] // (workers * block)) * block
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda a: ndtri(z[a:a + step], out=z[a:a + step]), range(0, z.shape[0], step)))


@njit(parallel=True, cache=True)
def _categorical_at(key: np.uint64, cum: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The draw of :func:`_categorical` for the citizens ``ids`` only."""
    out = np.empty(ids.shape[0], dtype=np.uint8)
    for j in prange(ids.shape[0]):
        out[j] = code_at(key, cum, ids[j])
    return out


@njit(parallel=True, cache=True)
def _open_uniforms_at(key: np.uint64, ids: np.ndarray) -> np.ndarray:
    """The draw of :func:`_open_uniforms` for the citizens ``ids`` only."""
    out = np.empty(ids.shape[0], dtype=np.float64)
    for j in prange(ids.shape[0]):
        u = uniform(key, np.uint64(ids[j]))
        out[j] = min(max(u, 1e-15), 1.0 - 1e-15)
    return out


def _shares(values: list[float]) -> np.ndarray:
    cum = np.cumsum(np.array(values, dtype=np.float64))
    cum[-1] = 1.0 + 1e-12  # the last value catches rounding
    return cum


def code_rule(plan: Plan, seed: int, d: int) -> tuple[np.uint64, np.ndarray]:
    """The key and cumulative shares :func:`code_at` draws dimension ``d``'s codes with."""
    dim = plan.dims[d]
    return static_key(seed, f"pop:{dim}"), _shares(list(plan.scen.population.groups[dim].values()))


def dim_codes(plan: Plan, seed: int, d: int, n: int, block: int = 1 << 16) -> np.ndarray:
    """Group codes of dimension ``d`` for all ``n`` citizens (what :func:`generate` writes)."""
    return _categorical(*code_rule(plan, seed, d), n, block)


def groups_at(plan: Plan, seed: int, ids: np.ndarray) -> np.ndarray:
    """(D, len(ids)) group codes of any citizens, drawn again from their ids (the same as :func:`generate`'s)."""
    out = np.empty((len(plan.dims), ids.shape[0]), dtype=np.uint8)
    for d in range(len(plan.dims)):
        out[d] = _categorical_at(*code_rule(plan, seed, d), ids)
    return out


def _generate_range(plan: Plan, n: int, seed: int, lo: int, hi: int) -> Population:
    """The citizens ``[lo, hi)`` of :func:`generate`'s population, the same numbers elementwise; other columns
    stay zero pages."""
    pop = plan.scen.population
    ids = np.arange(lo, hi, dtype=np.int64)
    # indexed by every citizen, written only in the range: reserved nothing for (allocator.unreserved_zeros)
    groups = unreserved_zeros((len(plan.dims), n), np.uint8)
    groups[:, lo:hi] = groups_at(plan, seed, ids)
    traits = unreserved_zeros((len(plan.traits), n), np.float32)
    for t, name in enumerate(plan.traits):
        spec = pop.traits[name]
        z = ndtri(_open_uniforms_at(static_key(seed, f"trait:{name}"), ids))
        for dim, vals in spec.shift.items():
            d = plan.dims.index(dim)
            table = np.zeros(len(plan.dim_values[d]))
            for v, s in vals.items():
                table[plan.dim_values[d].index(v)] = s
            z += table[groups[d, lo:hi]]
        traits[t, lo:hi] = (spec.mean + spec.sd * z).astype(np.float32)
    deps = np.zeros(0, np.uint8)
    if pop.dependants is not None:
        deps = np.zeros(n, np.uint8)
        deps[lo:hi] = _categorical_at(static_key(seed, "dependants"), _shares(list(pop.dependants.shares)), ids)
    return Population(n=n, groups=groups, traits=traits, dependants=deps, lo=lo, hi=hi)


def generate(plan: Plan, n: int, seed: int, block: int = 1 << 16, lo: int = 0, hi: int | None = None) -> Population:
    """Draw the groups and traits of ``n`` citizens, or (a shard) of the citizens ``[lo, hi)`` only."""
    hi = n if hi is None else hi
    if (lo, hi) != (0, n):
        return _generate_range(plan, n, seed, lo, hi)
    pop = plan.scen.population
    par = threads.parallel_for(n)
    groups = np.empty((len(plan.dims), n), dtype=np.uint8)
    for d in range(len(plan.dims)):
        _categorical(*code_rule(plan, seed, d), n, block, groups[d])
    traits = np.empty((len(plan.traits), n), dtype=np.float32)
    z = np.empty(n if plan.traits else 0, dtype=np.float64)  # one buffer for every trait
    for t, name in enumerate(plan.traits):
        spec = pop.traits[name]
        (_open_uniforms_parallel if par else _open_uniforms_serial)(static_key(seed, f"trait:{name}"), n, block, z)
        _normals(z, block, par)
        dims = np.array([plan.dims.index(dim) for dim in spec.shift], dtype=np.int64)
        tables = np.zeros((len(dims), max([len(plan.dim_values[d]) for d in dims], default=1)))
        for k, vals in enumerate(spec.shift.values()):
            for v, s in vals.items():
                tables[k, plan.dim_values[dims[k]].index(v)] = s
        (_traits_parallel if par else _traits_serial)(z, groups, dims, tables, float(spec.mean), float(spec.sd),
                                                      block, traits[t])
    deps = np.zeros(0, np.uint8)
    if pop.dependants is not None:
        # one draw per citizen id on its own stream: the same citizen has the same family in every shard
        cum = np.cumsum(np.array(pop.dependants.shares, dtype=np.float64))
        cum[-1] = 1.0 + 1e-12
        deps = _categorical(static_key(seed, "dependants"), cum, n, block)
    return Population(n=n, groups=groups, traits=traits, dependants=deps)
