"""Reading small files that may come from strangers: regular files only, and never more than a limit.

Why: run directories are shared (the README says one from someone else is safe to open).
A ``manifest.json`` that is a symlink to ``/dev/zero`` or a FIFO would make a naive
``read_text()`` read forever or block; a 10 GB one would exhaust memory. Every JSON file
credsim reads from a run or audit directory goes through :func:`read_text`.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

MANIFEST_BYTES = 64 * 2**20  # a manifest holds the resolved scenario (<= 1 MB of YAML) and small metadata
AUDIT_JSON_BYTES = 256 * 2**20


class FileRefused(ValueError):
    """A file that is not a regular file, is too large or is not the text expected."""


def read_text(path: str | Path, limit: int) -> str:
    """The UTF-8 text of ``path``, refusing devices, FIFOs, folders and files over ``limit`` bytes.

    The file is opened without blocking (so a FIFO cannot hang the open), checked with
    ``fstat`` on the open descriptor (so a swap between check and read does not help), and
    read up to ``limit + 1`` bytes (so a file growing meanwhile is still refused).
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FileRefused(f"{p}: cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"{p}: expected a regular file (not a folder, device, socket or pipe)")
        if st.st_size > limit:
            raise FileRefused(f"{p}: expected at most {limit:,} bytes, it has {st.st_size:,}")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"{p}: expected at most {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"{p}: expected UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json_object(path: str | Path, limit: int) -> dict[str, Any]:
    """A JSON object from ``path`` (see :func:`read_text`); :class:`FileRefused` for anything else."""
    try:
        data = json.loads(read_text(path, limit))
    except json.JSONDecodeError as exc:
        raise FileRefused(f"{path}: expected JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise FileRefused(f"{path}: expected JSON nested less deeply") from None
    if not isinstance(data, dict):
        raise FileRefused(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
