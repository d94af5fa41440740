"""Range-local shards: each builds only its own graph rows and state, and writes its own output parts.

The rows a shard builds from the counter-based tie rule must be exactly the rows of the whole
graph (else results would depend on the layout); its state must be written only in its range
(else its memory would not shrink with K); and a sharded run directory, written as one part
per shard, must read back -- through the views, ``credsim sql`` typed in a terminal, the
servers' locked views and the audit's harm tables -- as the single-process run's rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import credsim
from credsim import engine, security, shard_graph, store
from credsim import graph as graph_mod
from credsim import population as pop_mod
from credsim.audit.harms import _citizens
from credsim.distributed import Shard, boundaries, run_sharded
from credsim.plan import compile_plan
from credsim.state import initial_state
from tests.terminal import typed

N, DAYS = 5000, 10


@pytest.fixture(scope="module")
def scen() -> credsim.Scenario:
    # association records and cut ties cross shards; homophily on two dimensions shapes the graph
    return credsim.load_scenario("city-points", {
        "population.size": N, "run.days": DAYS, "lists.court_defaulters.association_points": -10,
        "responses.cut_ties": {"effect": "cut_ties", "trigger": "contact_listed", "probability": 0.3}})


@pytest.fixture(scope="module")
def runs(scen: credsim.Scenario, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("range")
    single = credsim.run(scen, out=base / "single", threads=1).dir
    sharded, _stats = run_sharded(scen, base / "sharded", 3, threads=1)
    return single, sharded


def test_graph_rows_of_a_range_are_the_whole_graphs_rows(scen: credsim.Scenario) -> None:
    plan = compile_plan(scen)
    pop = pop_mod.generate(plan, N, 7)
    whole = graph_mod.build(plan, pop, 7)
    assert plan.scen.graph.homophily, "the rule under test picks within groups"
    cuts = boundaries(N, 3)
    seen = 0
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        part = shard_graph.build_rows(plan, pop, 7, lo, hi)
        assert (part.lo, part.rows) == (lo, hi - lo), "a range holds the row pointers of its own rows only"
        assert np.array_equal(part.degree(), np.diff(whole.indptr)[lo:hi])
        # the same rows from a population that holds only the range (the other codes drawn again)
        mine = shard_graph.build_rows(plan, pop_mod.generate(plan, N, 7, lo=lo, hi=hi), 7, lo, hi)
        assert np.array_equal(mine.indptr, part.indptr) and np.array_equal(mine.indices, part.indices)
        # same degrees and the same concatenated rows: every row is the same sorted set
        assert np.array_equal(part.indices, whole.indices[whole.indptr[lo]:whole.indptr[hi]]), (lo, hi)
        seen += part.n_edges
    assert seen == whole.n_edges  # every tie direction is held by exactly one range


@pytest.mark.parametrize("shards", [2, 40])
def test_shards_that_swap_tie_marks_hold_the_whole_graphs_rows(scen: credsim.Scenario, shards: int) -> None:
    """Each shard draws only the ties its citizens open and tells every other shard which of them point
    at its citizens (a bit a stub, or positions when fewer than 1 in 32 do: 40 shards); the receiver
    draws those again. The rows must be the whole graph's, and the marks far smaller than the ties."""
    n = 40 * 1024
    big = scen.model_copy(update={"population": scen.population.model_copy(update={"size": n})})
    plan = compile_plan(big)
    whole = graph_mod.build(plan, pop_mod.generate(plan, n, 7), 7)
    cuts = boundaries(n, shards)
    parts = [Shard(big, k, cuts, seed=7, threads=1, swap_ties=True) for k in range(shards)]
    rounds = max(p.swap_rounds() for p in parts)
    assert rounds >= 1
    sent = 0
    for r in range(rounds):
        outs = [p.ties_out(r) for p in parts]
        kinds = {"bits" if x.bits.shape[0] else "positions" for k, o in enumerate(outs) for j, x in enumerate(o)
                 if j != k and x.count}
        # 2 shards: half of all stubs cross, every mark is a bitset; 40 shards: ~1 stub in 40 goes to each
        # other shard, most below the 1-in-32 line (a few above it, by chance)
        assert kinds == {"bits"} if shards == 2 else "positions" in kinds
        sent += sum(x.bits.nbytes + x.positions.nbytes for o in outs for x in o)
        for j, p in enumerate(parts):
            p.ties_in(*(o[j] for o in outs))
    for p in parts:
        p.connect()
    for k, p in enumerate(parts):
        g, lo, hi = p.loop.st.graph, cuts[k], cuts[k + 1]
        assert (g.lo, g.rows) == (lo, hi - lo)
        assert np.array_equal(g.indptr, whole.indptr[lo:hi + 1] - whole.indptr[lo]), k
        assert np.array_equal(g.indices, whole.indices[whole.indptr[lo]:whole.indptr[hi]]), k
    crossing = sum(int(np.sum((whole.indices[whole.indptr[lo]:whole.indptr[hi]] < lo)
                              | (whole.indices[whole.indptr[lo]:whole.indptr[hi]] >= hi)))
                   for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)) // 2
    # both ends would be 8 bytes a crossing tie; a position is 4, and a bitset (sent only where at least 1 stub
    # in 32 crosses) at most 32 bits a tie plus a byte of rounding
    assert sent <= 4 * crossing + shards * shards * rounds
    if shards == 2:  # a bit a stub each shard opens (about half of them cross: ~2 bits a crossing tie)
        m = big.graph.contacts // 2
        assert rounds == 1 and sent == sum(-(-(hi - lo) * m // 8) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True))


def test_a_shards_pick_tables_do_not_grow_with_the_population(scen: credsim.Scenario) -> None:
    """A shard keeps only group sizes and code rules (shard_graph.Lean), not every citizen's code and place in
    the group order; its stubs are the ones the full tables give, bit for bit."""
    plan = compile_plan(scen)
    sizes = {n: sum(a.nbytes for a in vars(shard_graph.lean_tables(plan, 7, n)).values() if isinstance(a, np.ndarray))
             for n in (5_000, 500_000)}
    assert sizes[5_000] == sizes[500_000] < 10_000, sizes
    for lo, hi in ((0, 1024), (2048, N)):
        pop = pop_mod.generate(plan, N, 7, lo=lo, hi=hi)
        full = shard_graph.draw_stubs(plan, pop, 7, lo, hi)
        lean = shard_graph.draw_stubs_lean(plan, pop, 7, lo, hi, shard_graph.lean_tables(plan, 7, N))
        assert np.array_equal(full.tgt, lean.tgt) and np.array_equal(full.counts, lean.counts)


def test_a_range_writes_only_its_own_state(scen: credsim.Scenario) -> None:
    plan = compile_plan(scen)
    pop = pop_mod.generate(plan, N, 7)
    g = graph_mod.build(plan, pop, 7)
    whole = initial_state(plan, pop, g)
    lo, hi = 1024, 3072
    part = initial_state(plan, pop_mod.generate(plan, N, 7, lo=lo, hi=hi), g, lo, hi)
    for name in ("groups", "traits", "score", "listed_since", "cured_seq", "pending", "resp_day", "counters"):
        a, b = getattr(part, name), getattr(whole, name)
        assert np.array_equal(a[..., lo:hi], b[..., lo:hi]), name
        assert not a[..., :lo].any() and not a[..., hi:].any(), f"{name} written outside the range"


def test_shard_loop_holds_only_its_rows(scen: credsim.Scenario) -> None:
    cuts = boundaries(N, 3)
    loop, _setup = engine.prepare(scen, threads=1, cuts=cuts, index=1)
    g = loop.st.graph
    lo, hi = cuts[1], cuts[2]
    assert (g.lo, g.rows) == (lo, hi - lo) and g.degree().sum() == g.n_edges > 0


def test_parts_replace_the_gathered_files(runs: tuple[Path, Path]) -> None:
    single, sharded = runs
    listed = store.read_manifest(sharded)["files"]
    for table in ("citizens", "traces", "events"):
        assert not (sharded / f"{table}.parquet").exists()
        assert [f"{table}/part-{k:05d}.parquet" for k in range(3)] == [n for n in listed if n.startswith(table)]
    assert (sharded / "metrics.parquet").read_bytes() == (single / "metrics.parquet").read_bytes()
    assert credsim.Run(sharded).citizens().equals(pq.read_table(single / "citizens.parquet"))
    for table in ("traces", "events"):  # the same rows; within a day they come shard by shard
        q = f"SELECT * FROM {table} ORDER BY ALL"
        assert credsim.Run(sharded).sql(q) == credsim.Run(single).sql(q)


def test_sql_typed_reads_every_part(runs: tuple[Path, Path], tmp_path: Path) -> None:
    single, sharded = runs
    query = "SELECT count(*) AS n, sum(n_infractions) AS infractions, max(citizen) AS last FROM citizens"
    n, infractions, last = credsim.Run(single).sql(query)[0]
    res = typed("sql", str(sharded), query, cwd=tmp_path, timeout=120)
    assert res.rc == 0 and not res.traceback, res.out
    assert (n, last) == (N, N - 1) and infractions > 0
    assert [str(n), str(infractions), str(last)] == [w for w in res.out.split() if w.isdigit()][-3:], res.out


def test_servers_and_audit_read_the_parts(runs: tuple[Path, Path]) -> None:
    single, sharded = runs
    con = security.safe_connect(sharded.parent, sharded.name)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT citizen) FROM citizens").fetchone() == (N, N)
        with pytest.raises(Exception, match="(?i)permission|not allowed|disabled"):
            con.execute(f"SELECT * FROM read_parquet('{single / 'citizens.parquet'}')").fetchall()
    finally:
        con.close()
    with store.connect(sharded) as con2:
        rows = con2.execute(f"SELECT count(*) FROM {_citizens(sharded)}").fetchone()
    assert rows == (N,)
