"""NumPy columns and string lists as Arrow arrays, built from their buffers.

Why not ``pa.array``: its first call in a process imports pandas (PyArrow asks whether the
values are a pandas object, and to answer it imports pandas), which costs about 50 MB of
resident memory (measured: 101 -> 151 MB right after the call) for something no credsim
output contains. A shard worker writes its parts with PyArrow and otherwise never touches
pandas, so this was about a tenth of a shard's peak memory. Building the arrays from their
buffers (``pa.Array.from_buffers``) never asks. The arrays are the same as ``pa.array``'s
(same type, values and nulls; numeric columns share the NumPy memory, as ``pa.array`` does),
so the files written from them are the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from credsim.names import TRAIT_PREFIX


def _bits(flags: np.ndarray) -> pa.Buffer:
    """Arrow's bitmap of a boolean array (least significant bit first)."""
    return pa.py_buffer(np.packbits(np.ascontiguousarray(flags, dtype=np.bool_), bitorder="little"))


def numeric(values: np.ndarray, dtype: type | np.dtype | None = None, null: np.ndarray | None = None) -> pa.Array:
    """A 1-D NumPy array of numbers or booleans as an Arrow array of the same type (of ``dtype`` if given,
    converted as ``astype``); ``null`` marks the entries that are null (``pa.array(..., mask=null)``)."""
    a = np.ascontiguousarray(values if dtype is None else values.astype(dtype, copy=False))
    if a.ndim != 1:
        raise ValueError(f"a column is one-dimensional (got shape {a.shape})")
    validity, n_null = None, 0
    if null is not None and null.any():
        validity, n_null = _bits(~null), int(np.count_nonzero(null))
    if a.dtype == np.bool_:
        return pa.Array.from_buffers(pa.bool_(), a.shape[0], [validity, _bits(a)], null_count=n_null)
    return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), a.shape[0], [validity, pa.py_buffer(a)],
                                 null_count=n_null)


def strings(values: Sequence[str] | np.ndarray) -> pa.Array:
    """Strings (UTF-8, 32-bit offsets: ``pa.string()``) as an Arrow array; every value must be a ``str``."""
    data = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(data) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.array([len(b) for b in data], dtype=np.int64))
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])


def required(columns: dict[str, pa.Array]) -> pa.Table:
    """A table of ``columns`` none of which holds a null, declared so (Parquet's ``REQUIRED`` columns).

    Why: a nullable column is written with a definition level a value, an RLE run of ones that every
    reader decodes again; a column with no null needs none. Writing court-defaulters' 10^7 citizens took
    1.34 s with nullable columns and 1.13 s without (2 threads, median of 4), for the same values read
    back. Building a table from arrays with nulls under this schema raises."""
    for name, col in columns.items():
        if col.null_count:
            raise ValueError(f"column {name!r} holds {col.null_count} nulls: it cannot be required")
    schema = pa.schema([pa.field(name, col.type, nullable=False) for name, col in columns.items()])
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


def dictionary(codes: np.ndarray, values: Sequence[str], null: np.ndarray | None = None) -> pa.DictionaryArray:
    """A dictionary column: integer ``codes`` into the strings ``values`` (``null``: entries that are null)."""
    return pa.DictionaryArray.from_arrays(numeric(codes, null=null), strings(values))


def encoded(values: Sequence[str] | np.ndarray) -> pa.DictionaryArray:
    """Strings as a dictionary column, the same array as ``strings(values).dictionary_encode()`` (int32
    codes, the distinct values in order of first occurrence) without encoding every value to UTF-8:
    a run's traces repeat a few dozen words hundreds of thousands of times, and encoding each was most
    of the time a small run took to write (0.6 s of a 2,000-citizen year)."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int32, count=len(values))
    return dictionary(codes, list(index))


# rows per Parquet row group: pyarrow's default for ``pq.write_table``, so a table written a row group at a
# time gives the same file, byte for byte, as writing it whole
ROW_GROUP = 1024 * 1024

# the id column of every citizen-level table
CITIZEN = "citizen"


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """How credsim writes every Parquet file of a run: zstd; dictionary pages for the columns that are
    dictionaries already (categories: region, kind, item, ...), and min/max statistics for the others.

    Why not pyarrow's defaults: it tries a dictionary for every column and gives up only once a column
    chunk has 1 MB of distinct values; for ids, float traits and scores that try is wasted. And the
    min/max of a category column's strings costs a third of writing it, for statistics that skip
    nothing (every category occurs in every row group of a shuffled population). Writing
    ``citizens.parquet`` of court-defaulters at 10^7 citizens took 7.9 s with the defaults and 4.9 s
    without the dictionary tries (200 -> 175 MB: the count columns compress as well without them);
    the values read back are the same.

    The ``citizen`` column is delta-encoded: in ``citizens`` it counts up by one, and elsewhere (events,
    traces, cases) it is in citizen order within a day or a citizen's rows, so its differences are
    small. At 10^7 citizens the id column took 0.20 s to encode and 10 MB as plain zstd, 0.07 s and
    55 kB delta-encoded.

    The traits (``trait_*`` float columns) are not compressed: they are continuous draws, which zstd
    shrinks by 3% (3.88 of 4.19 MB a million citizens) in twice the time of writing them as they are
    (12.5 against 6.8 ms a million, one thread)."""
    cats = [f.name for f in schema if pa.types.is_dictionary(f.type)]
    noise = {f.name for f in schema if f.name.startswith(TRAIT_PREFIX) and pa.types.is_floating(f.type)}
    compression: str | dict[str, str] = "zstd"
    if noise:
        compression = {f.name: "none" if f.name in noise else "zstd" for f in schema}
    out: dict[str, Any] = {"compression": compression, "use_dictionary": cats,
                           "write_statistics": [f.name for f in schema if f.name not in cats]}
    ids = [f.name for f in schema if f.name == CITIZEN and pa.types.is_integer(f.type)]
    if ids:
        out["column_encoding"] = {name: "DELTA_BINARY_PACKED" for name in ids}
    return out


def write_row_groups(tables: Iterable[pa.Table], path: Path, row_group: int = ROW_GROUP) -> None:
    """Write ``tables`` (consecutive pieces of one table, each at most ``row_group`` rows, every one but the
    last exactly that) as one Parquet file, a row group each: the bytes of writing their concatenation with
    ``pq.write_table(..., row_group_size=row_group, **parquet_options(...))``, with one piece in memory at a
    time. The schema is the first piece's; there must be at least one piece (an empty table writes the
    empty file)."""
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, **parquet_options(table.schema))
            writer.write_table(table, row_group_size=row_group)
    finally:
        if writer is not None:
            writer.close()
