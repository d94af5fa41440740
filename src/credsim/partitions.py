"""Partitioned outputs: a table written as one Parquet part per shard under one run directory.

Why: at country scale no single process can hold every citizen's row, so a sharded run's
shards write their own rows -- ``citizens/part-00000.parquet``, ``citizens/part-00001.parquet``,
... and the same for ``traces`` and ``events`` -- and only the small, exactly additive metric
table passes through the driver. The manifest's ``files`` list names every part; readers
(the SQL views, ``credsim sql``, the audit, :class:`credsim.api.Run`) take the parts of a
table together, in part order, which is citizen-id order for ``citizens``. A single-process
run writes the one file ``citizens.parquet`` up to 1,048,576 citizens, and above that parts of that
many each, encoded side by side on the run's threads (pyarrow's encoder runs on one thread per file:
2.3 s of a 10^7-citizen run's 5.7 s); both layouts are read the same way. Citizens are written in row
groups of 131,072 (:data:`GROUP`), and so are events; the other tables in row groups of 1,048,576.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from credsim import allocator
from credsim.arrowcols import ROW_GROUP, parquet_options, write_row_groups
from credsim.catalog import PART_TABLES
from credsim.eventlog import EventLog
from credsim.plan import Plan
from credsim.stages.measure import Metrics


def part_name(table: str, index: int) -> str:
    """The run-relative name of shard ``index``'s part of ``table``."""
    return f"{table}/part-{index:05d}.parquet"


def is_part_of(name: str, table: str) -> bool:
    """Whether a manifest entry is a part of ``table`` (``table/part-NNNNN.parquet``)."""
    head, _, tail = name.partition("/")
    return (head == table and table in PART_TABLES and tail.startswith("part-") and tail.endswith(".parquet")
            and "/" not in tail)


def table_files(listed: list[Any], filename: str) -> list[str]:
    """The manifest entries holding ``filename``'s table: the file itself, or its parts in order."""
    if filename in listed:
        return [filename]
    stem = filename.removesuffix(".parquet")
    return sorted(n for n in listed if isinstance(n, str) and is_part_of(n, stem))


@dataclass
class Partitioned:
    """A finished sharded run whose citizen-level tables are still with the shards.

    :func:`credsim.store.write_run` writes ``metrics.parquet`` from ``metrics`` (the shards'
    tables added up) and calls ``write_parts(directory)``, which has every shard write its
    parts into ``directory`` and returns their run-relative names."""

    plan: Plan
    metrics: Metrics
    timings: dict[str, float]
    days: int
    seed: int
    n: int
    write_parts: Callable[[Path], list[str]]
    has_events: bool = True
    has_redress: bool = False


# the row groups of the citizens and events tables: 2^17 rows. A writer holds one row group's new columns (the
# id, the counters widened to int32, an event's widened columns, ...) and its encoded pages until it is written,
# and a run peaks while it writes. court-defaulters at 10^7: 130-155 MB above the days with row groups of a
# part's 2^20 citizens, 35-56 MB with 2^17, in the same time and 0.2% more bytes (DuckDB's own row groups are
# 122,880 rows)
GROUP = 1 << 17


def write_events(events: EventLog, directory: Path, name: str, release: bool = False) -> str:
    """Write an audit event log (the whole ``events.parquet`` or a shard's part) one row group of :data:`GROUP`
    rows at a time (:meth:`credsim.eventlog.EventLog.write_parquet`: the bytes of one table, a fraction of its
    memory). ``release``, for a writer done with the log: drop its rows once written
    (:meth:`~credsim.eventlog.EventLog.release`) and give their memory back to the system
    (:func:`credsim.allocator.give_back`: its small daily parts stay in glibc's heap otherwise), before the
    citizens are written, where a run peaks."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    events.write_parquet(path, GROUP)
    if release:
        events.release()
        allocator.give_back()
    return name


def write_metrics(metrics: Metrics, directory: Path, name: str = "metrics.parquet") -> str:
    """Write ``metrics.parquet`` a row group (2^20 rows) at a time from the daily table (:meth:`Metrics.rows`):
    the bytes of writing :meth:`Metrics.to_arrow` whole, with one row group's long-form columns in memory."""
    return write_rows(metrics.rows, 0, metrics.n_rows(), directory, name, ROW_GROUP)


def write_rows(rows: Callable[[int, int], pa.Table], lo: int, hi: int, directory: Path, name: str,
               group: int | None = None) -> str:
    """Write the rows ``[lo, hi)`` of a table that ``rows(a, b)`` builds for any range, one row group of
    ``group`` rows (default :data:`GROUP`) at a time, with one group's new columns in memory instead of the
    whole range's (``citizens.parquet``: the id column alone is 8 B a citizen, 80 MB at 10^7, beside the state
    it is read from)."""
    group = GROUP if group is None else group
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    # an empty range still writes its (empty) table
    write_row_groups((rows(a, min(hi, a + group)) for a in range(lo, max(hi, lo + 1), group)), path, group)
    return name


# parts encoded at once, whatever the thread count: each writer holds a row group's new columns and their
# encoded pages (the single process's peak while writing was ~30 MB above its days' with 1 writer and with 2,
# city-points at 4x10^6), which the memory estimate does not count per thread
MAX_WRITERS = 4


def write_row_parts(rows: Callable[[int, int], pa.Table], n: int, directory: Path, table: str,
                    threads: int) -> list[str]:
    """Write the rows ``[0, n)`` of ``table`` that ``rows(a, b)`` builds: ``table.parquet`` up to a part's
    ``ROW_GROUP`` rows (2^20), else ``table/part-NNNNN.parquet`` of that many rows each (row groups of
    :data:`GROUP`), on up to ``threads`` threads (at most :data:`MAX_WRITERS`; pyarrow releases the GIL while
    it encodes); return the run-relative names in citizen order.

    Why parts and not one file: pyarrow encodes a file's row groups one after another on one thread,
    and joining row groups encoded apart behind one footer cost more processor time than it saved on
    a busy machine. The parts depend on ``n`` alone, so the files are the same bytes for any thread
    count; their rows, in part order, are the one file's."""
    if n <= ROW_GROUP:
        return [write_rows(rows, 0, n, directory, f"{table}.parquet")]
    def one(index: int) -> str:
        lo = index * ROW_GROUP
        return write_rows(rows, lo, min(n, lo + ROW_GROUP), directory, part_name(table, index))

    count = -(-n // ROW_GROUP)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, count, MAX_WRITERS))) as pool:
        return list(pool.map(one, range(count)))


def write_part(table: pa.Table, directory: Path, name: str) -> str:
    """Write one table or part (creating its table's folder) as every run's files are written; return ``name``."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **parquet_options(table.schema))
    return name
