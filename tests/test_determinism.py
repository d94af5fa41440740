"""Same scenario + seed = same outputs, whatever the thread count or block size."""

from __future__ import annotations

from pathlib import Path

import numba
import pyarrow.parquet as pq
import pytest

import credsim
from credsim import threads

RICH = {
    # exercise every stage: association penalties, cut ties, a model score, grades
    "lists.court_defaulters.association_points": -10,
    "lists.court_defaulters.entry.grace_days": 0,
    "responses.cut_ties": {"effect": "cut_ties", "trigger": "contact_listed", "probability": 0.3},
    "scoring.model": {
        "every_days": 10,
        "features": {
            "arrears": {"records": ["finance.card_arrears", "finance.utility_late"]},
            "rich": {"group": {"income": {"q5": 1.0, "q4": 0.5}}},
            "careful": {"trait": "conscientiousness"},
            "bad_company": {"contacts_listed": "court_defaulters"},
        },
        "dimensions": {
            "history": {"weight": 0.6, "features": {"arrears": -1.0, "careful": 0.3}},
            "ability": {"weight": 0.3, "features": {"rich": 1.0}},
            "relations": {"weight": 0.1, "features": {"bad_company": -2.0}},
        },
    },
}
OUTPUTS = ("metrics.parquet", "citizens.parquet", "traces.parquet")


@pytest.fixture(scope="module")
def scen() -> credsim.Scenario:
    s = credsim.load_scenario("city-points", {**RICH, "population.size": 30_000, "run.days": 90})
    return s


def outputs(d: Path) -> dict[str, object]:
    return {f: pq.read_table(d / f) for f in OUTPUTS}


def test_threads_and_blocks_do_not_change_results(scen: credsim.Scenario, tmp_path: Path) -> None:
    layouts = [(1, 1 << 16), (2, 1 << 16), (2, 4096), (1, 1000), (2, 7)]
    results = []
    try:
        for threads, block in layouts:
            run = credsim.run(scen, out=tmp_path / f"t{threads}-b{block}", threads=threads, block_size=block)
            results.append(outputs(run.dir))
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    first = results[0]
    cit = first["citizens.parquet"]
    assert cit.column("n_times_listed").to_numpy().sum() > 0, "the scenario must list someone"
    for (threads, block), res in zip(layouts[1:], results[1:], strict=True):
        for f in OUTPUTS:
            assert res[f].equals(first[f]), f"{f} differs with threads={threads}, block={block}"
    # byte-identical files too
    a = (tmp_path / "t1-b65536" / "citizens.parquet").read_bytes()
    b = (tmp_path / "t2-b7" / "citizens.parquet").read_bytes()
    assert a == b


def test_different_seed_different_results(scen: credsim.Scenario, tmp_path: Path) -> None:
    a = credsim.run(scen, out=tmp_path / "a", seed=1, days=20)
    b = credsim.run(scen, out=tmp_path / "b", seed=2, days=20)
    c = credsim.run(scen, out=tmp_path / "c", seed=1, days=20)
    ta, tb, tc = (pq.read_table(r.dir / "metrics.parquet") for r in (a, b, c))
    assert ta.equals(tc)
    assert not ta.equals(tb)
    assert not a.citizens().column("region").equals(b.citizens().column("region"))


def test_population_is_a_prefix_property(tmp_path: Path) -> None:
    """Citizen i is the same person in a population of 5,000 and of 8,000."""
    small = credsim.run("city-points", population=5000, days=1, out=tmp_path / "s").citizens()
    big = credsim.run("city-points", population=8000, days=1, out=tmp_path / "b").citizens().slice(0, 5000)
    for col in ("region", "hukou", "occupation", "trait_conscientiousness"):
        assert small.column(col).equals(big.column(col))


def test_every_kernel_parallel_writes_the_same_bytes(tmp_path: Path) -> None:
    """With every kernel parallel (no work cut-off), every file has the bytes of a one-thread run."""
    scen = credsim.load_scenario("court-defaulters", {"population.size": 3000, "run.days": 20})
    files = ("metrics.parquet", "citizens.parquet", "traces.parquet", "events.parquet", "cases.parquet",
             "stays.parquet")
    one = credsim.run(scen, out=tmp_path / "one", threads=1)
    try:
        threads.configure(2, min_parallel_work=0)
        two = credsim.run(scen, out=tmp_path / "two", threads=2)
    finally:
        threads.configure(numba.config.NUMBA_NUM_THREADS, min_parallel_work=threads.MIN_PARALLEL_WORK)
    for f in files:
        assert (one.dir / f).read_bytes() == (two.dir / f).read_bytes(), f
