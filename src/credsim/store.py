"""The run directory: manifest, Parquet files and a DuckDB catalog over them.

A run is written to a temporary sibling directory and renamed into place only when
every file is complete, so an interrupted write leaves either the previous complete
result or nothing -- never a half-written run.

``results.duckdb`` holds *views* over the Parquet files, with paths relative to the run
directory: open it with :func:`connect` (which points DuckDB at the directory), or
``cd`` into the directory first when using the DuckDB command line.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from credsim.engine import Result
from credsim.scenario.keypath import dump
from credsim.scenario.load import scenario_hash
from credsim.scenario.schema import Scenario

FILES = ("manifest.json", "metrics.parquet", "citizens.parquet", "traces.parquet", "results.duckdb")

VIEWS = {
    "metrics": "SELECT * FROM read_parquet('metrics.parquet')",
    "citizens": "SELECT * FROM read_parquet('citizens.parquet')",
    "traces": "SELECT * FROM read_parquet('traces.parquet')",
}


EVENTS_VIEW = {"events": "SELECT * FROM read_parquet('events.parquet')"}  # audit event log (eventlog.py)


def _daily_view(metric_names: list[str]) -> str:
    """One row per (day, dimension, group), a column per metric: handy for plots."""
    values = ", ".join("'" + m.replace("'", "''") + "'" for m in metric_names)
    return (
        "PIVOT (SELECT day, dimension, \"group\", metric, value FROM read_parquet('metrics.parquet'))"
        f" ON metric IN ({values}) USING first(value) GROUP BY day, dimension, \"group\" ORDER BY day"
    )


def _q(path: Path) -> str:
    return str(path).replace("'", "''")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("credsim", "numpy", "numba", "pydantic", "pyarrow", "duckdb", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    os.replace(tmp, path)


def write_run(result: Result, scen: Scenario, out: Path, *, wall: float,
              extra: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write all outputs of ``result`` into ``out`` atomically; return ``out``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        pq.write_table(result.metrics.to_arrow(), tmp / "metrics.parquet", compression="zstd")
        pq.write_table(result.citizens_table(), tmp / "citizens.parquet", compression="zstd")
        pq.write_table(result.tracer.to_arrow(), tmp / "traces.parquet", compression="zstd")
        if result.events is not None:  # audit event log (eventlog.py)
            pq.write_table(result.events.to_arrow(), tmp / "events.parquet", compression="zstd")
        con = duckdb.connect(str(tmp / "results.duckdb"))
        try:
            con.execute(f"SET file_search_path='{_q(tmp)}'")
            for name, sql in {**VIEWS, **(EVENTS_VIEW if result.events is not None else {}),
                              "daily": _daily_view(result.metrics.names)}.items():
                con.execute(f"CREATE VIEW {name} AS {sql}")
        finally:
            con.close()
        manifest = {
            "status": "complete",
            "scenario_name": scen.name,
            "scenario_hash": scenario_hash(scen),
            "seed": result.seed,
            "population": result.n,
            "days": result.days,
            "versions": versions(),
            "platform": {"machine": platform.machine(), "system": platform.system(),
                         "argv": sys.argv},
            "timings_s": {**{k: round(v, 4) for k, v in result.timings.items()},
                          "write": round(time.perf_counter() - t0, 4), "wall": round(wall, 4)},
            "files": list(FILES) + (["events.parquet"] if result.events is not None else []),
            **(extra or {}),
            "scenario": dump(scen),
        }
        _atomic_json(tmp / "manifest.json", manifest)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


class RunIncomplete(RuntimeError):
    """The directory holds a run that is still running, was interrupted or failed (see resumable.py)."""


def require_complete(run_dir: str | Path) -> None:
    """Refuse a run directory whose manifest does not say ``complete`` (outputs may be missing or stale)."""
    try:
        man = read_manifest(run_dir)
    except (OSError, ValueError) as exc:
        raise RunIncomplete(f"{run_dir} is not a run directory (manifest.json: {exc})") from None
    status = man.get("status")
    if status != "complete":
        why = f": {man['reason']}" if man.get("reason") else ""
        hint = f"; {man['resume']}" if man.get("resume") else ""
        raise RunIncomplete(f"{run_dir} is not a complete run (status {status}{why}){hint}")


# -- issue 8 (dashboard): inside ``served_from(root)``, runs are opened with credsim.security.safe_connect
# (views built in memory over the run's own Parquet files), never through the run's own results.duckdb,
# which a stranger could have written to read other files (SECURITY.md, "Rules for servers").
_SERVED_ROOT: ContextVar[Path | None] = ContextVar("credsim_served_root", default=None)


@contextmanager
def served_from(root: str | Path) -> Iterator[None]:
    """Within this block (this thread/context), :func:`connect` only opens runs under ``root``, locked down."""
    token = _SERVED_ROOT.set(Path(root).resolve())
    try:
        yield
    finally:
        _SERVED_ROOT.reset(token)
# -- end issue 8


def connect(run_dir: str | Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to a run's catalog, with its relative paths resolved (complete runs only)."""
    run_dir = Path(run_dir).resolve()
    require_complete(run_dir)
    root = _SERVED_ROOT.get()
    if root is not None:  # issue 8: a server's run, opened locked down (see served_from)
        from credsim import security

        if not run_dir.is_relative_to(root):
            raise security.PathRefused(f"{run_dir} is outside the served runs folder {root}")
        return security.safe_connect(root, run_dir.relative_to(root).as_posix())
    con = duckdb.connect(str(run_dir / "results.duckdb"), read_only=read_only)
    con.execute(f"SET file_search_path='{_q(run_dir)}'")
    return con


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    return dict(json.loads((Path(run_dir) / "manifest.json").read_text()))
