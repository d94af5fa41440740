"""A Parquet file written a row group per thread has the bytes of pyarrow's one writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import credsim
from credsim import engine, rowgroups


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(3)
    flags = rng.random(n) < 0.1
    return pa.table({
        "citizen": pa.array(np.arange(n, dtype=np.int64)),
        "region": pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 5, n).astype(np.int8)),
                                                 pa.array(["a", "b", "c", "d", "e"])),
        "trait": pa.array(rng.standard_normal(n).astype(np.float32)),
        "on_list": pa.array(flags),
        "count": pa.array(rng.poisson(0.4, n).astype(np.int32)),
        "maybe": pa.array(rng.random(n), mask=flags),
        "name": pa.array([f"x{i % 97}" for i in range(n)]),
    })


@pytest.mark.parametrize("options", [{"compression": "zstd"}, {"compression": "snappy"},
                                     {"compression": "zstd", "use_dictionary": False}])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_same_bytes_as_one_writer(tmp_path: Path, options: dict[str, object], workers: int) -> None:
    table = _table(5500)
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=1000, **options)
    rowgroups.write_table(table, tmp_path / "many.parquet", workers, rows=1000, **options)
    assert (tmp_path / "many.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()


def test_default_row_groups(tmp_path: Path) -> None:
    """Without a row group size pyarrow cuts at ``ROW_GROUP`` rows, as the threads do."""
    n = rowgroups.ROW_GROUP + 3000
    table = pa.table({"i": np.arange(n, dtype=np.int64), "x": (np.arange(n) % 7).astype(np.int8)})
    pq.write_table(table, tmp_path / "one.parquet", compression="zstd")
    rowgroups.write_table(table, tmp_path / "many.parquet", 2, compression="zstd")
    assert pq.ParquetFile(tmp_path / "one.parquet").metadata.num_row_groups == 2
    assert (tmp_path / "many.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()


def test_citizens_table(tmp_path: Path) -> None:
    res = engine.simulate(credsim.load_scenario("court-defaulters", {"population.size": 3000, "run.days": 10}),
                          threads=1)
    table = res.citizens_table()
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=700, compression="zstd")
    rowgroups.write_table(table, tmp_path / "many.parquet", 2, rows=700, compression="zstd")
    assert (tmp_path / "many.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()


def test_what_cannot_be_moved_is_written_plainly(tmp_path: Path) -> None:
    """Page indexes sit after the row groups and their offsets are not moved: pyarrow writes the file."""
    table = _table(3000)
    pq.write_table(table, tmp_path / "one.parquet", row_group_size=1000, write_page_index=True)
    rowgroups.write_table(table, tmp_path / "many.parquet", 2, rows=1000, write_page_index=True)
    assert (tmp_path / "many.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()


def test_footer_reads_back_to_its_bytes(tmp_path: Path) -> None:
    pq.write_table(_table(2000), tmp_path / "t.parquet", row_group_size=500)
    data = (tmp_path / "t.parquet").read_bytes()
    n = int.from_bytes(data[-8:-4], "little")
    footer = data[-8 - n:-8]
    assert rowgroups.emit(rowgroups.parse(footer)) == footer
