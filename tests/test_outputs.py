"""The run directory, its DuckDB catalog, the CLI and the public API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import credsim
from credsim import partitions, store
from credsim.arrowcols import ROW_GROUP
from credsim.cli import app
from credsim.engine import citizen_rows, simulate
from credsim.state import COUNTERS


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> credsim.Run:
    out = tmp_path_factory.mktemp("runs") / "default"
    return credsim.run(population=20_000, days=120, out=out)


def test_run_directory_has_every_output(default_run: credsim.Run) -> None:
    d = default_run.dir
    for f in ("manifest.json", "metrics.parquet", "citizens.parquet", "traces.parquet", "results.duckdb"):
        assert (d / f).is_file(), f
    man = json.loads((d / "manifest.json").read_text())
    assert man["status"] == "complete"
    assert man["scenario_name"] == "city-points"
    assert len(man["scenario_hash"]) == 64
    assert man["population"] == 20_000 and man["days"] == 120
    assert {"numpy", "numba", "duckdb", "python"} <= set(man["versions"])
    assert set(man["timings_s"]) >= {"behave", "observe", "file", "classify", "sanction", "measure", "wall"}
    assert man["scenario"]["population"]["size"] == 20_000
    assert not list(d.parent.glob(".*partial*")), "no temporary directory left behind"


def test_sql_share_on_each_list_by_hukou(default_run: credsim.Run) -> None:
    rows = default_run.sql(
        "SELECT hukou, avg(on_court_defaulters::INT) AS share, count(*) FROM citizens GROUP BY hukou ORDER BY 1")
    assert [r[0] for r in rows] == ["local", "migrant"]
    assert sum(r[2] for r in rows) == 20_000
    # the same figure from the daily metrics table
    m = dict(default_run.sql(
        "SELECT l.\"group\", l.value / p.value FROM metrics l JOIN metrics p USING (day, dimension, \"group\") "
        "WHERE l.metric = 'listed.court_defaulters' AND p.metric = 'population' AND l.dimension = 'hukou' "
        "AND l.day = (SELECT max(day) FROM metrics)"))
    for hukou, share, _n in rows:
        assert m[hukou] == pytest.approx(share)


def test_catalog_works_from_any_directory(default_run: credsim.Run, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    con = credsim.connect(default_run.dir)
    assert con.execute("SELECT count(*) FROM traces").fetchone()[0] > 0  # type: ignore[index]
    daily = con.execute("SELECT \"listed.court_defaulters\" FROM daily WHERE dimension='all' ORDER BY day").fetchall()
    assert len(daily) == 120
    con.close()
    monkeypatch.chdir(default_run.dir)
    raw = duckdb.connect("results.duckdb", read_only=True)
    assert raw.execute("SELECT count(*) FROM citizens").fetchone()[0] == 20_000  # type: ignore[index]
    raw.close()


def test_traces_hold_the_full_history_of_traced_citizens(default_run: credsim.Run) -> None:
    tr = default_run.traces()
    stages = set(tr.column("stage").to_pylist())
    assert {"event", "record", "score"} <= stages
    traced = default_run.sql("SELECT count(*) FROM citizens WHERE traced")[0][0]
    assert traced == 200
    per_day = default_run.sql("SELECT count(DISTINCT citizen) FROM traces WHERE stage='score' AND day=0")[0][0]
    assert per_day == 200


def test_overwrite_is_refused_unless_asked(default_run: credsim.Run) -> None:
    with pytest.raises(FileExistsError):
        credsim.run(population=100, days=2, out=default_run.dir)


def test_public_api_is_small_and_declared() -> None:
    assert sorted(credsim.__all__) == sorted([
        "MemoryRefused", "Run", "Scenario", "ScenarioError", "__version__", "builtin_names", "connect",
        "estimate_memory", "load_scenario", "run"])
    for name in credsim.__all__:
        assert hasattr(credsim, name)


def test_memory_guard_refuses_with_estimate(tmp_path: Path) -> None:
    with pytest.raises(credsim.MemoryRefused) as ei:
        credsim.run(population=2_000_000_000, days=365, out=tmp_path / "x")
    msg = str(ei.value)
    assert "GiB" in msg and "refusing" in msg and "population" in msg
    assert not (tmp_path / "x").exists()
    est = credsim.estimate_memory(credsim.load_scenario("city-points", {"population.size": 1_000_000}))
    assert 100 * 2**20 < est.total < 4 * 2**30


runner = CliRunner()


def test_cli_run_validate_scenarios(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "-n", "3000", "-d", "20", "--seed", "3", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    # the summary speaks in readers' words (the table wraps them inside the cell), never in metric names
    assert all(w in res.output for w in ("citizens on the list", "defaulters", "(end of run)")), res.output
    assert "listed.court_defaulters" not in res.output
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["seed"] == 3
    res = runner.invoke(app, ["scenarios"])
    assert res.exit_code == 0 and "city-points" in res.output and "baseline" in res.output
    res = runner.invoke(app, ["validate", "baseline"])
    assert res.exit_code == 0 and "ok" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npopulation: {size: -1, groups: {a: {b: 1}}}\nbehaviours: {}\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "population.size" in res.output and str(bad) in res.output
    res = runner.invoke(app, ["run", str(bad)])
    assert res.exit_code == 2 and "population.size" in res.output
    res = runner.invoke(app, ["sql", str(tmp_path / "r"), "SELECT count(*) AS n FROM citizens"])
    assert res.exit_code == 0 and "3000" in res.output


def test_cli_entry_point_installed() -> None:
    exe = Path(sys.executable).parent / "credsim"
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "run" in res.stdout


def test_set_override_from_cli(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", "-n", "2000", "-d", "5", "--out", str(tmp_path / "r"),
                              "--set", "scoring.points.base=900", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["scenario"]["scoring"]["points"]["base"] == 900


def test_run_without_traced_citizens(tmp_path: Path) -> None:
    run = credsim.run(population=500, days=3, out=tmp_path / "r", overrides={"run.trace": 0})
    assert run.traces().num_rows == 0


def test_scenario_without_sensors_runs(tmp_path: Path) -> None:
    """No sensor: nothing is ever recorded, so nobody is scored, listed or sanctioned."""
    from .conftest import tiny

    run = credsim.run(tiny(sensors=None), out=tmp_path / "r", days=10)
    cit = run.citizens()
    assert cit.column("n_events").to_numpy().sum() > 0
    assert cit.column("n_records_true").to_numpy().sum() == 0
    assert cit.column("n_denied").to_numpy().sum() == 0


def test_more_citizens_than_a_row_group_are_written_as_parts_the_same_for_any_thread_count(tmp_path: Path) -> None:
    """Above a part's 2^20 citizens a single process writes ``citizens/part-NNNNN.parquet``, encoded side by side,
    in row groups of 2^17 (what a writer holds at once); the parts are the same bytes with one thread or two,
    and read together (the API, the SQL views) they are every citizen once, in id order, with the columns of
    the one file."""
    n = ROW_GROUP + 1_000
    scen = credsim.load_scenario("court-defaulters", {"population.size": n, "run.days": 2})
    runs = {t: credsim.run(scen, out=tmp_path / f"t{t}", threads=t) for t in (1, 2)}
    one, two = runs[1].dir, runs[2].dir
    parts = sorted(p.relative_to(one).as_posix() for p in (one / "citizens").iterdir())
    assert parts == ["citizens/part-00000.parquet", "citizens/part-00001.parquet"]
    assert not (one / "citizens.parquet").exists()
    assert set(parts) <= set(runs[1].manifest["files"])
    for name in [*parts, "metrics.parquet"]:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert [pq.ParquetFile(one / p).metadata.num_rows for p in parts] == [ROW_GROUP, 1_000]
    first = pq.ParquetFile(one / parts[0]).metadata
    assert [first.row_group(g).num_rows for g in range(first.num_row_groups)] == [partitions.GROUP] * 8
    table = runs[1].citizens()
    assert table.column("citizen").to_numpy().tolist() == list(range(n))
    small = credsim.run(credsim.load_scenario("court-defaulters", {"population.size": 1_000, "run.days": 2}),
                        out=tmp_path / "small")
    assert table.schema == pq.read_schema(small.dir / "citizens.parquet")
    assert runs[2].sql("SELECT count(*), count(DISTINCT citizen) FROM citizens") == [(n, n)]


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def test_a_run_writes_its_event_log_then_lets_it_go(tmp_path: Path) -> None:
    """The event log is written before the citizens and, for a caller done with the result (as ``credsim.run``
    is), dropped once written: the file holds every row, and the log refuses to be read again rather than
    read as empty."""
    scen = credsim.load_scenario("integrated", {"population.size": 5_000, "run.days": 90})
    result = simulate(scen)
    held = result.events.to_arrow()
    assert held.num_rows > 400 and set(held.column("kind").to_pylist()) == {"list", "grade", "denial"}
    out = store.write_run(result, scen, tmp_path / "run", wall=0.0, release_events=True)
    assert _ipc(pq.read_table(out / "events.parquet")) == _ipc(held)  # bytes: NaN (no cross) is not == NaN
    with pytest.raises(RuntimeError, match="released"):
        result.events.to_arrow()
    with pytest.raises(RuntimeError, match="released"):
        result.events.rows()
    # the same files as a run that keeps its log, and as credsim.run
    kept = store.write_run(simulate(scen), scen, tmp_path / "kept", wall=0.0)
    ran = credsim.run(scen, out=tmp_path / "ran").dir
    for name in ("events.parquet", "citizens.parquet", "traces.parquet", "metrics.parquet"):
        assert (out / name).read_bytes() == (kept / name).read_bytes() == (ran / name).read_bytes(), name


def test_counters_written_through_one_reused_buffer_are_each_row_groups_own(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A writer widens the int16 counters of each row group into one buffer per thread, reused for the next
    row group once the last is written (``engine.citizen_rows``): every row group read back holds its own
    citizens' counts, equal to the state's, and the same bytes as tables built afresh."""
    res = simulate(credsim.load_scenario("court-defaulters", {"population.size": 5_500, "run.days": 30}))
    assert res.state.counters.dtype == np.int16 and res.state.counters.any()
    monkeypatch.setattr(partitions, "GROUP", 1_000)
    rows = citizen_rows(res.plan, res.state, res.tracer.mask)
    partitions.write_rows(rows, 0, res.state.n, tmp_path, "reused.parquet")
    partitions.write_rows(res.citizens_table, 0, res.state.n, tmp_path, "fresh.parquet")
    back = pq.read_table(tmp_path / "reused.parquet")
    assert pq.ParquetFile(tmp_path / "reused.parquet").metadata.num_row_groups == 6
    for c, name in enumerate(COUNTERS):
        assert np.array_equal(back.column(f"n_{name}").to_numpy(), res.state.counters[c]), name
    assert (tmp_path / "reused.parquet").read_bytes() == (tmp_path / "fresh.parquet").read_bytes()


def test_events_are_written_in_row_groups_of_the_citizens_size(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The event log is written one row group of ``partitions.GROUP`` rows at a time (what the writer holds
    while the run is at its peak): the rows read back are the log's, in order, whatever the group size."""
    scen = credsim.load_scenario("integrated", {"population.size": 5_000, "run.days": 90})
    result = simulate(scen)
    held = result.events.to_arrow()
    monkeypatch.setattr(partitions, "GROUP", 100)
    out = store.write_run(result, scen, tmp_path / "run", wall=0.0)
    meta = pq.ParquetFile(out / "events.parquet").metadata
    assert meta.num_row_groups == -(-held.num_rows // 100) > 1
    back = pq.read_table(out / "events.parquet")
    assert back.schema == held.schema and back.num_rows == held.num_rows
    for name in held.column_names:
        x, y = back.column(name).combine_chunks(), held.column(name).combine_chunks()
        if pa.types.is_dictionary(x.type):
            x, y = x.dictionary_decode(), y.dictionary_decode()
        if pa.types.is_floating(x.type):  # NaN (no cross-context share) is not == NaN
            assert np.array_equal(x.to_numpy(), y.to_numpy(), equal_nan=True), name
        else:
            assert x.to_pylist() == y.to_pylist(), name
