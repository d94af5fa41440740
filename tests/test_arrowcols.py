"""Arrow columns built from buffers equal ``pa.array``'s, and writing a run never imports pandas.

Why: ``pa.array`` imports pandas on its first call (about 50 MB resident in every process
that writes a table, a shard worker included); :mod:`credsim.arrowcols` builds the same
arrays without it. Same arrays means the same Parquet bytes (the goldens check the files).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import credsim
from credsim import arrowcols, names, partitions
from credsim.engine import simulate
from tests.test_outputs import _ipc


@pytest.mark.parametrize("values", [
    np.arange(7, dtype=np.int8), np.arange(5, dtype=np.int64) - 2, np.linspace(0, 1, 9, dtype=np.float32),
    np.zeros(0), np.array([True, False, True] * 5), np.arange(20.0)[::3],
    np.arange(12, dtype=np.uint8).reshape(3, 4)[1], np.array([1, 0, 1], dtype=np.uint16)])
def test_numeric_equals_pa_array(values: np.ndarray) -> None:
    got, want = arrowcols.numeric(values), pa.array(values)
    assert got.type == want.type and got.equals(want)


def test_numeric_with_dtype_and_nulls() -> None:
    x = np.array([1.0, 0.0, 3.0])
    assert arrowcols.numeric(x, np.int8).equals(pa.array(x, pa.int8()))
    assert arrowcols.numeric(np.array([5, 0], np.uint8), np.bool_).equals(pa.array(np.array([True, False])))
    r = np.array([0, -1, 2, -1, 1], dtype=np.int32)
    got = arrowcols.dictionary(r, ["a", "b", "c"], null=r < 0)
    want = pa.DictionaryArray.from_arrays(pa.array(r, mask=r < 0), pa.array(["a", "b", "c"]))
    assert got.equals(want) and got.null_count == 2


def test_strings_equal_pa_array() -> None:
    for values in (np.array(["é", "", "abc", "é"], dtype=object), [], ["x"]):
        assert arrowcols.strings(values).equals(pa.array(list(values), pa.string()))
    with pytest.raises(AttributeError):
        arrowcols.strings([None])  # type: ignore[list-item]


def test_encoded_equals_dictionary_encode() -> None:
    """The same codes (int32), the same dictionary in order of first occurrence: the traces file's bytes
    do not change with the way it is built."""
    for values in (np.array(["b", "é", "", "b", "a", "é"], dtype=object), [], ["x"], ["z"] * 5 + ["y"]):
        got, want = arrowcols.encoded(values), arrowcols.strings(values).dictionary_encode()
        assert got.type == want.type == pa.dictionary(pa.int32(), pa.string())
        assert got.equals(want)


def test_a_run_and_a_shard_write_without_pandas(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys, tempfile
        import credsim
        from credsim.distributed import Shard, boundaries
        scen = credsim.load_scenario("court-defaulters", {{"population.size": 3000, "run.days": 3}})
        credsim.run(scen, out=r"{tmp_path}/run", threads=1)  # with appeal cases and stays
        scen = credsim.load_scenario("city-points", {{"population.size": 4096, "run.days": 3}})
        shard = Shard(scen, 1, boundaries(4096, 2), threads=1)
        shard.write_parts(r"{tmp_path}/parts")
        print("pandas" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_citizens_written_a_row_group_at_a_time_are_the_whole_tables_bytes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``partitions.write_rows`` builds and writes one row group at a time; the file must be the one
    ``write_part`` writes from the whole table, byte for byte (row groups of 1,000 rows here, so a
    5,500-citizen run has six, the last shorter; dictionary, boolean and numeric columns)."""
    res = simulate(credsim.load_scenario("integrated", {"population.size": 5_500, "run.days": 20}))
    monkeypatch.setattr(partitions, "GROUP", 1_000)
    partitions.write_rows(res.citizens_table, 0, res.state.n, tmp_path, "pieces.parquet")
    whole = res.citizens_table()
    pq.write_table(whole, tmp_path / "whole.parquet", row_group_size=1_000, **arrowcols.parquet_options(whole.schema))
    assert pq.ParquetFile(tmp_path / "pieces.parquet").metadata.num_row_groups == 6
    assert (tmp_path / "pieces.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    partitions.write_rows(res.citizens_table, 7, 7, tmp_path, "empty.parquet")  # an empty range: its empty table
    pq.write_table(res.citizens_table(7, 7), tmp_path / "empty-whole.parquet", row_group_size=1_000,
                   **arrowcols.parquet_options(whole.schema))
    assert (tmp_path / "empty.parquet").read_bytes() == (tmp_path / "empty-whole.parquet").read_bytes()


def test_citizens_columns_are_required_and_traits_stored_as_they_are(tmp_path: Path) -> None:
    """Every column of ``citizens.parquet`` is declared REQUIRED (no definition levels), its trait columns are
    written uncompressed and the rest with zstd; what is read back is the table the run built, nullable or not."""
    res = simulate(credsim.load_scenario("integrated", {"population.size": 3_000, "run.days": 10}))
    table = res.citizens_table()
    partitions.write_rows(res.citizens_table, 0, res.state.n, tmp_path, "citizens.parquet")
    meta = pq.ParquetFile(tmp_path / "citizens.parquet")
    traits = [f.name for f in table.schema if f.name.startswith(names.TRAIT_PREFIX)]
    assert len(traits) == len(res.plan.traits) > 0
    for i, field in enumerate(meta.schema_arrow):
        assert not field.nullable
        assert meta.schema.column(i).max_definition_level == 0
        codec = meta.metadata.row_group(0).column(i).compression
        assert codec == ("UNCOMPRESSED" if field.name in traits else "ZSTD"), field.name
    back = pq.read_table(tmp_path / "citizens.parquet")
    assert back.equals(table)
    loose = pa.Table.from_arrays(table.columns, names=table.column_names)  # every column nullable
    assert loose.schema != table.schema and pa.Table.from_arrays(back.columns, schema=loose.schema).equals(loose)


def test_a_column_with_nulls_cannot_be_required() -> None:
    with pytest.raises(ValueError, match="'x' holds 1 nulls"):
        arrowcols.required({"x": arrowcols.numeric(np.array([1, 2]), null=np.array([False, True]))})


def test_events_columns_are_required(tmp_path: Path) -> None:
    """``events.parquet`` has no nulls either (NaN where a value does not apply): every column is REQUIRED, and
    the file reads back as the log's table."""
    res = simulate(credsim.load_scenario("integrated", {"population.size": 3_000, "run.days": 30}))
    partitions.write_events(res.events, tmp_path, "events.parquet")
    meta = pq.ParquetFile(tmp_path / "events.parquet")
    assert meta.metadata.num_rows == res.events.rows() > 0
    assert all(not f.nullable for f in meta.schema_arrow)
    assert all(meta.schema.column(i).max_definition_level == 0 for i in range(len(meta.schema_arrow)))
    back, held = pq.read_table(tmp_path / "events.parquet"), res.events.to_arrow()
    assert back.schema == held.schema
    assert _ipc(back) == _ipc(held)  # bytes: NaN != NaN in Table.equals


def test_metrics_written_a_row_group_at_a_time_are_the_whole_tables_bytes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``metrics.parquet`` is built and written a row group at a time from the daily table (the long table of ten
    years of ``integrated`` is 446 MB); the file is the whole table's, byte for byte (row groups of 1,000 rows:
    a 60-day run has dozens, the last shorter), and any range of rows is that range of the whole table."""
    res = simulate(credsim.load_scenario("integrated", {"population.size": 2_000, "run.days": 60}))
    whole = res.metrics.to_arrow()
    assert whole.num_rows == res.metrics.n_rows() > 20_000
    assert res.metrics.rows(1_234, 5_678).equals(whole.slice(1_234, 5_678 - 1_234))
    monkeypatch.setattr(partitions, "ROW_GROUP", 1_000)
    partitions.write_metrics(res.metrics, tmp_path, "pieces.parquet")
    pq.write_table(whole, tmp_path / "whole.parquet", row_group_size=1_000, **arrowcols.parquet_options(whole.schema))
    assert pq.ParquetFile(tmp_path / "pieces.parquet").metadata.num_row_groups == -(-whole.num_rows // 1_000)
    assert (tmp_path / "pieces.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
