"""The SQL views of a run, opened so that a query can read the run's own files and nothing else.

Why a module of its own: both :mod:`credsim.store` (``credsim.connect``, ``credsim sql``,
the audit) and :mod:`credsim.security` (servers) open runs for SQL, and neither may open
a run's ``results.duckdb`` to do it -- a stranger's catalog can define views that read any
local file. Here the views are created in a fresh in-memory database over Parquet files
the caller has already checked (regular files inside the run directory), and then every
other way out is closed:

- ``allowed_paths`` lists exactly those files and ``enable_external_access=false`` closes
  the rest (no ``read_text('/etc/...')``, ``COPY ... TO``, ``ATTACH``, HTTP);
- extensions are neither installed nor loaded automatically;
- ``lock_configuration=true`` comes last, so a query cannot undo any of it.

The database is in memory, so nothing a query does can change the run on disk.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

VIEW_FILES = {"metrics": "metrics.parquet", "citizens": "citizens.parquet", "traces": "traces.parquet",
              "events": "events.parquet",
              "harms": "harms.parquet",  # added by an audit (audit/harms.py)
              # objections and stays by exit route: only runs of scenarios with a redress section
              "cases": "cases.parquet", "stays": "stays.parquet"}
REQUIRED_VIEWS = ("metrics", "citizens", "traces")
# tables a sharded run writes as one Parquet part per shard (TABLE/part-NNNNN.parquet, see credsim.partitions)
PART_TABLES = frozenset({"citizens", "traces", "events", "cases", "stays"})


def quote(text: str | Path) -> str:
    """A SQL string literal's body: single quotes doubled."""
    return str(text).replace("'", "''")


def daily_view(metric_names: list[str], metrics_source: str = "read_parquet('metrics.parquet')") -> str:
    """One row per (day, dimension, group), a column per metric: handy for plots."""
    values = ", ".join("'" + quote(m) + "'" for m in metric_names)
    return (
        f"PIVOT (SELECT day, dimension, \"group\", metric, value FROM {metrics_source})"
        f" ON metric IN ({values}) USING first(value) GROUP BY day, dimension, \"group\" ORDER BY day"
    )


def source(paths: list[Path]) -> str:
    """``read_parquet`` over one table's file or parts (in order: a sharded run's parts are in citizen order)."""
    return "read_parquet([" + ", ".join(f"'{quote(p)}'" for p in paths) + "])"


def locked_views(files: dict[str, list[Path]]) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with a view per entry of ``files`` (view name -> checked Parquet files: one,
    or a sharded run's parts) and ``daily``, able to read those files only. The caller vouches that each
    path is a run's own file."""
    missing = [v for v in REQUIRED_VIEWS if v not in files]
    if missing:
        raise FileNotFoundError(f"a run needs {', '.join(VIEW_FILES[v] for v in missing)}")
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET autoinstall_known_extensions=false")
        con.execute("SET autoload_known_extensions=false")
        allowed = [f for paths in files.values() for f in paths]
        con.execute("SET allowed_paths=[" + ", ".join(f"'{quote(f)}'" for f in allowed) + "]")
        con.execute("SET enable_external_access=false")
        for view, paths in files.items():
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM {source(paths)}")
        names = [r[0] for r in con.execute("SELECT DISTINCT metric::VARCHAR FROM metrics ORDER BY 1").fetchall()]
        con.execute("CREATE VIEW daily AS " + daily_view(names, source(files["metrics"])))
        con.execute("SET lock_configuration=true")
    except BaseException:
        con.close()
        raise
    return con
