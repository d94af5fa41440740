"""Parts of a growing log kept on disk instead of in memory, read back in order when it is written.

Why: the audit's event log grows with every day of a run (``integrated``: 2 rows, 20 B a citizen a
year; at 10^7 citizens 200 MB a year, the same again each further year), while everything else a run
holds is the size of its population. A run that spools its log holds one row group of it at a time.

The file is anonymous: it is created beside the run's output and unlinked at once, so it has no name
anyone could read or find, and the kernel frees it when it is closed or the process ends, however
that happens (Ctrl-C, a crash, SIGKILL): an interrupted run leaves nothing behind. Its pages sit in
the page cache, which the kernel can drop, not in the process's resident memory.

A part is a dict of 1-D arrays of one length. Each column is stored as its bytes, with its name, type
and length; a column of one repeated value (a broadcast view, stride 0: the log's constant columns)
as that value alone, and read back as such a view again.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# a part: its column count; a column: name length, name, dtype string length, dtype string, broadcast flag, length
_PART = struct.Struct("<I")
_HEAD = struct.Struct("<B")
_COL = struct.Struct("<BQ")


def repeated(value: np.ndarray, k: int) -> np.ndarray:
    """``k`` copies of the one-element ``value`` as a read-only view that takes no memory (stride 0)."""
    out = np.ndarray((k,), dtype=value.dtype, buffer=np.ascontiguousarray(value[:1]), strides=(0,))
    out.flags.writeable = False
    return out


class Spool:
    """An append-only, anonymous file of parts (see the module docstring)."""

    def __init__(self, directory: Path) -> None:
        fd, name = tempfile.mkstemp(prefix=".credsim-spool-", dir=directory)
        os.unlink(name)
        self.file = os.fdopen(fd, "w+b")
        self.parts = 0
        self.rows = 0

    def append(self, part: dict[str, np.ndarray]) -> None:
        f = self.file
        f.seek(0, os.SEEK_END)
        f.write(_PART.pack(len(part)))
        for name, a in part.items():
            key, dt = name.encode(), a.dtype.str.encode()
            flat = a.ndim == 1 and a.shape[0] > 1 and a.strides[0] == 0
            f.write(_HEAD.pack(len(key)) + key + _HEAD.pack(len(dt)) + dt + _COL.pack(flat, a.shape[0]))
            f.write((a[:1] if flat else np.ascontiguousarray(a)).tobytes())
        self.parts += 1
        self.rows += next(iter(part.values())).shape[0] if part else 0

    def read(self) -> Iterator[dict[str, np.ndarray]]:
        """The parts in the order they were appended (each a fresh copy)."""
        f = self.file
        f.flush()
        at = 0
        for _ in range(self.parts):
            f.seek(at)
            (width,) = _PART.unpack(f.read(_PART.size))
            part: dict[str, np.ndarray] = {}
            for _c in range(width):
                name = f.read(_HEAD.unpack(f.read(_HEAD.size))[0]).decode()
                dt = np.dtype(f.read(_HEAD.unpack(f.read(_HEAD.size))[0]).decode())
                flat, k = _COL.unpack(f.read(_COL.size))
                held = 1 if flat else k
                a = np.frombuffer(f.read(held * dt.itemsize), dtype=dt, count=held)
                part[name] = repeated(a, k) if flat else a
            at = f.tell()
            yield part

    def clear(self) -> None:
        self.file.truncate(0)
        self.parts = self.rows = 0

    def close(self) -> None:
        self.file.close()
