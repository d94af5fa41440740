"""A big Parquet file written a row group per thread, into the bytes of one writer's file.

Why: ``citizens.parquet`` is most of a big run's output, and pyarrow encodes a file's row groups
one after the other on one thread (its column-parallel mode is not reachable from Python). Its
bytes are what the golden tests hash, so writing it differently (other row groups, parts, other
encodings) is not an option. But a row group's pages depend only on its own rows: each row
group (``ROW_GROUP`` rows, pyarrow's default) is written as a file of its own on a worker
thread (pyarrow encodes without the interpreter lock), and the pages of those files are
concatenated in order behind one footer. The footer is the first file's, with every row group's
entry appended: the entries' page offsets moved by where their pages now start and their
ordinal set, which is exactly what one writer records.

The footer is Thrift's compact encoding, read and written back here field by field (a
self-describing format: the same fields in the same order give the same bytes). What this does
not know how to move (page indexes, bloom filters, a column chunk stored at an offset) makes
:func:`write_table` fall back to pyarrow's own writer, as does a table of one row group.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 1 << 20  # pyarrow's default rows per row group (``pq.write_table`` without row_group_size)
MAGIC = b"PAR1"

# Thrift compact types
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _STRUCT = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12
# Parquet footer field ids (parquet.thrift)
_FMD_NUM_ROWS, _FMD_ROW_GROUPS = 3, 4
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
_CM_DATA_PAGE, _CM_INDEX_PAGE, _CM_DICT_PAGE, _CM_BLOOM = 9, 10, 11, 14

Struct = list[list[Any]]  # [field id, type, value] in the order read


class Unsupported(ValueError):
    """A footer this module does not know how to move (the caller writes the file the plain way)."""


def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        x = b[i]
        i += 1
        r |= (x & 0x7F) << s
        s += 7
        if x < 0x80:
            return r, i


def _put_varint(out: bytearray, v: int) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _unzigzag(v: int) -> int:
    return (v >> 1) ^ -(v & 1)


def _zigzag(v: int, bits: int) -> int:
    return ((v << 1) ^ (v >> (bits - 1))) & ((1 << bits) - 1)


def _read_value(b: bytes, i: int, t: int) -> tuple[Any, int]:
    if t in (_TRUE, _FALSE):  # a struct field's boolean is in its header
        return t == _TRUE, i
    if t == _BYTE:
        return b[i], i + 1
    if t in (_I16, _I32, _I64):
        v, i = _varint(b, i)
        return _unzigzag(v), i
    if t == _DOUBLE:
        return b[i:i + 8], i + 8
    if t == _BINARY:
        k, i = _varint(b, i)
        return b[i:i + k], i + k
    if t in (_LIST, _SET):
        head = b[i]
        i += 1
        k, et = head >> 4, head & 0x0F
        if k == 15:
            k, i = _varint(b, i)
        items = []
        for _ in range(k):
            if et in (_TRUE, _FALSE):  # a list's booleans are a byte each
                items.append(b[i] == _TRUE)
                i += 1
            else:
                v, i = _read_value(b, i, et)
                items.append(v)
        return (et, items), i
    if t == _STRUCT:
        return _read_struct(b, i)
    raise Unsupported(f"Thrift type {t} in a Parquet footer")


def _read_struct(b: bytes, i: int) -> tuple[Struct, int]:
    fields: Struct = []
    last = 0
    while True:
        head = b[i]
        i += 1
        if head == 0:
            return fields, i
        t, delta = head & 0x0F, head >> 4
        if delta:
            fid = last + delta
        else:
            v, i = _varint(b, i)
            fid = _unzigzag(v)
        value, i = _read_value(b, i, t)
        fields.append([fid, t, value])
        last = fid


def _write_value(out: bytearray, t: int, v: Any) -> None:
    if t in (_TRUE, _FALSE):
        return
    if t == _BYTE:
        out.append(v & 0xFF)
    elif t in (_I16, _I32, _I64):
        _put_varint(out, _zigzag(v, {_I16: 16, _I32: 32, _I64: 64}[t]))
    elif t == _DOUBLE:
        out += v
    elif t == _BINARY:
        _put_varint(out, len(v))
        out += v
    elif t in (_LIST, _SET):
        et, items = v
        if len(items) < 15:
            out.append((len(items) << 4) | et)
        else:
            out.append(0xF0 | et)
            _put_varint(out, len(items))
        for x in items:
            if et in (_TRUE, _FALSE):
                out.append(_TRUE if x else _FALSE)
            else:
                _write_value(out, et, x)
    elif t == _STRUCT:
        _write_struct(out, v)
    else:
        raise Unsupported(f"Thrift type {t} in a Parquet footer")


def _write_struct(out: bytearray, fields: Struct) -> None:
    last = 0
    for fid, t, v in fields:
        tt = (_TRUE if v else _FALSE) if t in (_TRUE, _FALSE) else t
        if 0 < fid - last <= 15:
            out.append(((fid - last) << 4) | tt)
        else:
            out.append(tt)
            _put_varint(out, _zigzag(fid, 16))
        _write_value(out, t, v)
        last = fid
    out.append(0)


def parse(footer: bytes) -> Struct:
    """A footer's FileMetaData as nested ``[field id, type, value]`` lists (structs) and ``(type, items)``."""
    fields, end = _read_struct(footer, 0)
    if end != len(footer):
        raise Unsupported("trailing bytes after the Parquet footer")
    return fields


def emit(fields: Struct) -> bytes:
    """The compact encoding of what :func:`parse` read (the same bytes when nothing changed)."""
    out = bytearray()
    _write_struct(out, fields)
    return bytes(out)


def _field(fields: Struct, fid: int) -> list[Any] | None:
    for f in fields:
        if f[0] == fid:
            return f
    return None


def _split(buf: pa.Buffer) -> tuple[int, bytes]:
    """Where a one-file Parquet buffer's footer starts, and the footer."""
    size = buf.size
    tail = buf.slice(size - 8, 8).to_pybytes()
    if tail[4:] != MAGIC or buf.slice(0, 4).to_pybytes() != MAGIC:
        raise Unsupported("not a Parquet file")
    n = int.from_bytes(tail[:4], "little")
    return size - 8 - n, buf.slice(size - 8 - n, n).to_pybytes()


def _move(rg: Struct, delta: int, ordinal: int) -> None:
    """A row group's footer entry, its pages now ``delta`` bytes further into the file."""
    columns = _field(rg, _RG_COLUMNS)
    if columns is None:
        raise Unsupported("a row group without columns")
    for cc in columns[2][1]:
        off = _field(cc, _CC_FILE_OFFSET)
        if off is not None and off[2] != 0:
            raise Unsupported("a column chunk with a file offset")
        if _field(cc, _CC_OFFSET_INDEX) is not None or _field(cc, _CC_COLUMN_INDEX) is not None:
            raise Unsupported("page indexes")
        meta = _field(cc, _CC_META)
        if meta is None:
            raise Unsupported("a column chunk without metadata")
        if _field(meta[2], _CM_BLOOM) is not None:
            raise Unsupported("bloom filters")
        for fid in (_CM_DATA_PAGE, _CM_INDEX_PAGE, _CM_DICT_PAGE):
            f = _field(meta[2], fid)
            if f is not None:
                f[2] += delta
    f = _field(rg, _RG_FILE_OFFSET)
    if f is not None:
        f[2] += delta
    f = _field(rg, _RG_ORDINAL)
    if f is not None:
        f[2] = ordinal


def join(parts: Iterator[pa.Buffer], sink: Any) -> None:
    """Write the one-row-group Parquet files ``parts`` (in row order) to ``sink`` as one file."""
    meta: Struct | None = None
    groups: list[Struct] = []
    rows = 0
    pos = len(MAGIC)
    sink.write(MAGIC)
    for k, buf in enumerate(parts):
        start, footer = _split(buf)
        fmd = parse(footer)
        rg = _field(fmd, _FMD_ROW_GROUPS)
        nr = _field(fmd, _FMD_NUM_ROWS)
        if rg is None or nr is None or len(rg[2][1]) != 1:
            raise Unsupported("a part that is not one row group")
        group = rg[2][1][0]
        _move(group, pos - len(MAGIC), k)
        groups.append(group)
        rows += nr[2]
        meta = fmd if meta is None else meta
        sink.write(memoryview(buf)[len(MAGIC):start])
        pos += start - len(MAGIC)
    if meta is None:
        raise Unsupported("no parts")
    rg, nr = _field(meta, _FMD_ROW_GROUPS), _field(meta, _FMD_NUM_ROWS)
    assert rg is not None and nr is not None
    rg[2] = (rg[2][0], groups)
    nr[2] = rows
    footer = emit(meta)
    sink.write(footer)
    sink.write(len(footer).to_bytes(4, "little"))
    sink.write(MAGIC)


def _part(table: pa.Table, k: int, rows: int, options: dict[str, Any]) -> pa.Buffer:
    out = pa.BufferOutputStream()
    pq.write_table(table.slice(k * rows, rows), out, row_group_size=rows, **options)
    return out.getvalue()


def _footer_check(table: pa.Table, rows: int, options: dict[str, Any]) -> None:
    """Refuse, before any work, options whose footers :func:`join` cannot move (one tiny part as a probe)."""
    _, footer = _split(_part(table.slice(0, min(rows, 1)), 0, rows, options))
    fmd = parse(footer)
    if emit(fmd) != footer:
        raise Unsupported("a footer that does not read back to its own bytes")
    rg = _field(fmd, _FMD_ROW_GROUPS)
    if rg is not None and rg[2][1]:
        _move(rg[2][1][0], 0, 0)


def write_table(table: pa.Table, path: Path, workers: int, rows: int = ROW_GROUP, **options: Any) -> None:
    """``pq.write_table(table, path, row_group_size=rows, **options)``, byte for byte, with the row groups
    encoded on ``workers`` threads. One worker or one row group: pyarrow's writer itself."""
    groups = -(-table.num_rows // rows)
    if workers > 1 and groups > 1:
        try:
            _footer_check(table, rows, options)
        except Unsupported:
            workers = 1
    if workers <= 1 or groups <= 1:
        pq.write_table(table, path, row_group_size=rows, **options)
        return
    try:
        with ThreadPoolExecutor(workers) as pool, open(path, "wb") as sink:
            join(pool.map(lambda k: _part(table, k, rows, options), range(groups)), sink)
    except Unsupported:  # a part's footer unlike the probe's: start again the plain way
        pq.write_table(table, path, row_group_size=rows, **options)
