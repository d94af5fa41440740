"""Set-up kernels: the blocked graph build and the population draws give exactly what their rules say.

The graph is built a block of citizens at a time, on one thread or several; the rows must be
the same sorted, de-duplicated sets whatever the block width and the thread count, and equal to
the rule read literally (each stub's other end from :func:`credsim.graph._target`, both
directions kept). The population's categorical draws count past cumulative shares without a
branch and its traits are shifted and cast in one kernel; both must equal the NumPy reading of
the rule, value for value. The samplers' chunk bounds leave out factors that cannot change a
rate; they must equal the largest :func:`credsim.sampling.static_rate` of each chunk bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numba
import numpy as np
import pytest
from numba import njit
from scipy.special import ndtri

import credsim
from credsim import engine, sampling, threads
from credsim import graph as graph_mod
from credsim import population as pop_mod
from credsim.plan import Plan, compile_plan
from credsim.rng import static_key, uniform
from credsim.stages.behave import behaviour_streams

N, SEED = 3000, 5


@pytest.fixture
def restore() -> Iterator[None]:
    before = numba.get_num_threads()
    yield
    threads.configure(before, min_parallel_work=threads.MIN_PARALLEL_WORK)


def _rule_rows(plan: Plan, pop: pop_mod.Population, seed: int) -> list[list[int]]:
    """Every row straight from the tie rule: own stubs and stubs opened towards the citizen, as sorted sets."""
    n, m = pop.n, plan.scen.graph.contacts // 2
    p = graph_mod.pick_tables(plan, pop, seed)
    km, kp = static_key(seed, "graph:mode"), static_key(seed, "graph:pick")
    rows: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        for e in range(m):
            j = graph_mod._target(i, e, n, m, km, kp, p.cum_mode, p.codes, p.orders, p.starts, p.sizes)
            if j >= 0:
                rows[i].add(j)
                rows[j].add(i)
    return [sorted(r) for r in rows]


@pytest.mark.parametrize("shift", [8, 10, 14])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_blocked_graph_equals_the_rule(restore: None, monkeypatch: pytest.MonkeyPatch, shift: int,
                                       nthreads: int) -> None:
    scen = credsim.load_scenario("city-points", {"population.size": N})
    plan = compile_plan(scen)
    pop = pop_mod.generate(plan, N, SEED)
    monkeypatch.setattr(graph_mod, "_SHIFT", shift)  # 256-citizen blocks: a dozen of them here
    threads.configure(nthreads, min_parallel_work=0)
    g = graph_mod.build(plan, pop, SEED)
    want = _rule_rows(plan, pop, SEED)
    assert g.indptr.dtype == np.int32 and g.indices.dtype == np.int32  # offsets_dtype: below 2^31 ties
    assert np.array_equal(np.diff(g.indptr), [len(r) for r in want])
    assert np.array_equal(g.indices, np.concatenate([np.array(r, dtype=np.int32) for r in want]))


def test_block_width_grows_past_the_block_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Few, wide blocks (the partition tables are blocks squared) give the same rows."""
    scen = credsim.load_scenario("city-points", {"population.size": N})
    plan = compile_plan(scen)
    pop = pop_mod.generate(plan, N, SEED)
    monkeypatch.setattr(graph_mod, "_SHIFT", 6)
    narrow = graph_mod.build(plan, pop, SEED)
    monkeypatch.setattr(graph_mod, "_MAX_BLOCKS", 4)
    assert graph_mod._block_shift(N) == 10
    wide = graph_mod.build(plan, pop, SEED)
    assert np.array_equal(narrow.indptr, wide.indptr) and np.array_equal(narrow.indices, wide.indices)


@pytest.mark.parametrize("nthreads", [1, 2])
def test_population_equals_the_rule(restore: None, nthreads: int) -> None:
    scen = credsim.load_scenario("city-points", {"population.size": N})
    plan = compile_plan(scen)
    threads.configure(nthreads, min_parallel_work=0)
    pop = pop_mod.generate(plan, N, SEED, block=700)
    spec = scen.population
    ids = np.arange(N)
    for d, dim in enumerate(plan.dims):
        cum = np.cumsum(np.array(list(spec.groups[dim].values()), dtype=np.float64))
        cum[-1] = 1.0 + 1e-12
        u = np.array([uniform(static_key(SEED, f"pop:{dim}"), np.uint64(i)) for i in ids])
        assert np.array_equal(pop.groups[d], np.searchsorted(cum, u, side="right").astype(np.uint8)), dim
    for t, name in enumerate(plan.traits):
        tr = spec.traits[name]
        u = np.array([uniform(static_key(SEED, f"trait:{name}"), np.uint64(i)) for i in ids])
        z = ndtri(np.clip(u, 1e-15, 1.0 - 1e-15))
        for dim, vals in tr.shift.items():
            d = plan.dims.index(dim)
            table = np.zeros(len(plan.dim_values[d]))
            for v, s in vals.items():
                table[plan.dim_values[d].index(v)] = s
            z += table[pop.groups[d]]
        want = (tr.mean + tr.sd * z).astype(np.float32)
        assert np.array_equal(pop.traits[t].view(np.int32), want.view(np.int32)), name


@njit
def _rule_bounds(n: int, base: np.ndarray, gm: np.ndarray, groups: np.ndarray, beta: np.ndarray,
                 traits: np.ndarray) -> np.ndarray:
    """Each chunk's largest static rate, every factor of every stream for every citizen."""
    ub = np.zeros(((n + sampling.CHUNK - 1) // sampling.CHUNK, base.shape[0]))
    for i in range(n):
        for s in range(base.shape[0]):
            ub[i // sampling.CHUNK, s] = max(ub[i // sampling.CHUNK, s],
                                             sampling.static_rate(i, s, base, gm, groups, beta, traits))
    return ub


@pytest.mark.parametrize("scenario", ["city-points", "court-defaulters", "commercial-score"])
@pytest.mark.parametrize("nthreads", [1, 2])
def test_chunk_bounds_equal_the_rule(restore: None, scenario: str, nthreads: int) -> None:
    scen = credsim.load_scenario(scenario, {"population.size": N})
    plan = compile_plan(scen)
    pop = pop_mod.generate(plan, N, SEED)
    st = behaviour_streams(plan)
    threads.configure(nthreads, min_parallel_work=0)
    base = st.base.copy()
    base[-1] = 0.7  # a stream whose rate is capped at 1 for some citizens
    base[0] = 0.0  # and one that never happens
    cases = [(base, st.group, st.beta, pop.traits)]
    traits = pop.traits.copy()
    traits[-1, :sampling.CHUNK] = np.inf  # 0 x an infinite trait is NaN: the first chunk draws nothing
    cases.append((base, st.group, st.beta, traits))
    for b, gm, beta, tr in cases:
        got = sampling.chunk_bounds(N, b, gm, pop.groups, beta, tr)
        want = _rule_bounds(N, b, gm, pop.groups, beta, tr)
        assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), scenario


@pytest.mark.parametrize("n", [1, 1000, (1 << 16) * 3 + 17])
def test_group_order_is_a_stable_argsort(restore: None, n: int) -> None:
    codes = (np.arange(n, dtype=np.uint64) * np.uint64(2654435761) % np.uint64(7)).astype(np.uint8)
    threads.configure(2, min_parallel_work=0)
    want = np.argsort(codes, kind="stable").astype(np.int32)
    assert np.array_equal(graph_mod._group_order(codes, 9), want)
    assert np.array_equal(graph_mod._group_order_parallel(codes, 9), want)


READS_GRAPH = {"baseline": False, "city-points": True, "commercial-score": True, "court-defaulters": False,
               "integrated": True, "welfare-risk": False}


@pytest.mark.parametrize(("scenario", "reads"), sorted(READS_GRAPH.items()))
def test_a_graph_is_built_only_where_a_stage_reads_it(scenario: str, reads: bool) -> None:
    """city-points has a response to a contact's listing, commercial-score a model feature on contacts, integrated
    association points, cut ties and censors; court-defaulters (own-listing deterrence only) and baseline have
    contacts in their population section that nothing reads, and welfare-risk has none."""
    plan = compile_plan(credsim.load_scenario(scenario))
    assert plan.reads_graph is reads


def test_a_graph_nothing_reads_changes_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """court-defaulters builds no graph; building it anyway (as every run did before) gives the same files, byte
    for byte: no stage reads it, and no other draw depends on it (counter-based streams)."""
    scen = credsim.load_scenario("court-defaulters", {"population.size": 4000, "run.days": 40})
    skipped, _ = engine.prepare(scen, threads=1)
    assert skipped.st.graph.n_edges == 0 and skipped.st.graph.rows == 4000
    a = credsim.run(scen, out=tmp_path / "a", threads=1).dir
    monkeypatch.setattr(Plan, "reads_graph", property(lambda self: True))
    built, _ = engine.prepare(scen, threads=1)
    assert built.st.graph.n_edges > 4000
    b = credsim.run(scen, out=tmp_path / "b", threads=1).dir
    for f in ("metrics.parquet", "citizens.parquet", "events.parquet", "traces.parquet", "cases.parquet"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_row_offsets_widen_only_past_int32() -> None:
    """``indptr`` is int32 while every tie direction fits (4 B a citizen less for the whole run), int64 past it."""
    assert graph_mod.offsets_dtype(0) is np.int32
    assert graph_mod.offsets_dtype(2**31 - 1) is np.int32
    assert graph_mod.offsets_dtype(2**31) is np.int64
    assert graph_mod.Graph.empty(5).indptr.dtype == np.int32
