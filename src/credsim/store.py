"""The run directory: manifest, Parquet files and a DuckDB catalog over them.

A run is written to a temporary sibling directory and renamed into place only when
every file is complete, so an interrupted write leaves either the previous complete
result or nothing -- never a half-written run.

``results.duckdb`` holds *views* over the Parquet files, with paths relative to the run
directory, for the DuckDB command line (``cd`` into the directory first). credsim itself
never opens it to read: :func:`connect` builds the same views in memory over the files the
manifest lists, able to read those files only (:mod:`credsim.catalog`), so a run directory
from someone else is safe to query.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from credsim import catalog, outdir, threads
from credsim.engine import Result, citizen_rows
from credsim.partitions import Partitioned, table_files, write_events, write_metrics, write_part, write_row_parts
from credsim.safeio import MANIFEST_BYTES, read_json_object
from credsim.scenario.keypath import dump
from credsim.scenario.load import scenario_hash
from credsim.scenario.schema import Scenario

FILES = ("manifest.json", "metrics.parquet", "citizens.parquet", "traces.parquet", "results.duckdb")


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


def _write_tables(result: Result | Partitioned, tmp: Path, release_events: bool) -> list[str]:
    """The Parquet files of ``result`` in ``tmp``: one per table, or a sharded run's parts; their names.

    The event log is written first, and with ``release_events`` its rows are dropped before the citizens are
    written: a run peaks while it writes them (a row group's new columns on each writer), and the log is
    the one large thing left that nothing reads again (``integrated``: ~21 B a citizen a year)."""
    write_metrics(result.metrics, tmp)
    if isinstance(result, Partitioned):  # every shard writes its own rows; the driver holds none
        return ["metrics.parquet", *result.write_parts(tmp)]
    events = []
    if result.events is not None:  # audit event log (eventlog.py)
        events.append(write_events(result.events, tmp, "events.parquet", release=release_events))
    names = ["metrics.parquet",
             *write_row_parts(citizen_rows(result.plan, result.state, result.tracer.mask), result.state.n, tmp,
                              "citizens", threads.current()),
             write_part(result.tracer.to_arrow(), tmp, "traces.parquet"), *events]
    if result.redress is not None:  # objections and stays by exit route (stages/redress.py)
        names.append(write_part(result.redress[0], tmp, "cases.parquet"))
        names.append(write_part(result.redress[1], tmp, "stays.parquet"))
    return names


def views(names: list[str], metric_names: list[str]) -> dict[str, str]:
    """The views of a run's own ``results.duckdb`` over the files ``names`` (relative paths): a table
    written as parts is read with a glob over its folder, so the same SQL works for both layouts."""
    out: dict[str, str] = {}
    for view, filename in catalog.VIEW_FILES.items():
        files = table_files(names, filename)
        if files == [filename]:
            out[view] = f"SELECT * FROM read_parquet('{filename}')"
        elif files:
            out[view] = f"SELECT * FROM read_parquet('{filename.removesuffix('.parquet')}/part-*.parquet')"
    out["daily"] = catalog.daily_view(metric_names)
    return out


def write_run(result: Result | Partitioned, scen: Scenario, out: Path, *, wall: float,
              extra: dict[str, Any] | None = None, overwrite: bool = False, release_events: bool = False) -> Path:
    """Write all outputs of ``result`` into ``out`` atomically; return ``out``. ``release_events``: drop the event
    log's rows once written (:meth:`credsim.eventlog.EventLog.release`), for a caller done with ``result``."""
    out = outdir.check_out_path(out)
    outdir.check_replaceable(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        names = _write_tables(result, tmp, release_events)
        con = duckdb.connect(str(tmp / "results.duckdb"))
        try:
            con.execute(f"SET file_search_path='{catalog.quote(tmp)}'")
            for name, sql in views(names, result.metrics.names).items():
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
            "files": ["manifest.json", *[f for f in names if f in FILES], "results.duckdb",
                      *[f for f in names if f not in FILES]],
            **(extra or {}),
            "scenario": dump(scen),
        }
        _atomic_json(tmp / "manifest.json", manifest)
        outdir.check_replaceable(out, overwrite)  # again: the run took a while, and something may be there now
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


def require_complete(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a complete run; refuse a directory whose manifest does not say ``complete``
    (outputs may be missing or stale)."""
    try:
        man = read_manifest(run_dir)
    except (OSError, ValueError) as exc:
        raise RunIncomplete(f"{run_dir} is not a run directory (manifest.json: {exc})") from None
    status = man.get("status")
    if status != "complete":
        why = f": {man['reason']}" if man.get("reason") else ""
        hint = f"; {man['resume']}" if man.get("resume") else ""
        raise RunIncomplete(f"{run_dir} is not a complete run (status {status}{why}){hint}")
    return man


def add_file(run_dir: Path, name: str) -> None:
    """List a file written into a finished run later (an audit's ``harms.parquet``) in its manifest,
    so the read-only views (:func:`connect`) include it."""
    man = read_manifest(run_dir)
    files = man.get("files")
    if isinstance(files, list) and name not in files:
        man["files"] = [*files, name]
        _atomic_json(run_dir / "manifest.json", man)


def run_files(run_dir: Path, manifest: dict[str, Any]) -> dict[str, list[Path]]:
    """The Parquet files behind the views, from the manifest's list: per view its file, or its parts
    (``citizens/part-00000.parquet``, ...) in order; each a regular file inside ``run_dir`` (symlinks
    followed), so a query can read this run and nothing else."""
    listed = manifest.get("files")
    if not isinstance(listed, list):
        raise RunIncomplete(f"{run_dir}/manifest.json: expected a list of files under 'files'")
    files: dict[str, list[Path]] = {}
    for view, filename in catalog.VIEW_FILES.items():
        names = table_files(listed, filename)
        if names:
            files[view] = [_inside_run(run_dir, name) for name in names]
    return files


def _inside_run(run_dir: Path, name: str) -> Path:
    try:
        real = (run_dir / name).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise RunIncomplete(f"{run_dir}: {name} is listed in manifest.json but cannot be read ({exc})") from None
    if real.parent != (run_dir / name).parent.resolve() or not real.is_file() or run_dir not in real.parents:
        raise RunIncomplete(f"{run_dir}: {name} must be a regular file inside the run directory")
    return real


def read_table(run_dir: str | Path, filename: str) -> pa.Table:
    """One table of a complete run (``citizens.parquet``, ...), from its file or its shards' parts."""
    run_dir = Path(run_dir).resolve()
    man = require_complete(run_dir)
    listed = man.get("files")
    if not isinstance(listed, list):
        raise RunIncomplete(f"{run_dir}/manifest.json: expected a list of files under 'files'")
    names = table_files(listed, filename)
    if not names:
        raise RunIncomplete(f"{run_dir}: no {filename} (nor parts of it) in manifest.json")
    return pa.concat_tables([pq.read_table(_inside_run(run_dir, n)) for n in names])


def connect(run_dir: str | Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to a complete run's views (metrics, citizens, traces, events, daily).

    Read-only (the default) builds the views in memory from the manifest's file list and can
    read those files only (see :mod:`credsim.catalog`): safe for run directories from others.
    ``read_only=False`` opens the run's own ``results.duckdb`` for writing, with DuckDB's full
    power (files, extensions, network): for your own runs only.
    """
    run_dir = Path(run_dir).resolve()
    man = require_complete(run_dir)
    if read_only:
        try:
            return catalog.locked_views(run_files(run_dir, man))
        except FileNotFoundError as exc:
            raise RunIncomplete(f"{run_dir}: {exc}") from None
    con = duckdb.connect(str(run_dir / "results.duckdb"))
    con.execute(f"SET file_search_path='{catalog.quote(run_dir)}'")
    return con


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """``manifest.json`` of a run directory: a regular JSON file of bounded size (never a device or a pipe)."""
    return read_json_object(Path(run_dir) / "manifest.json", MANIFEST_BYTES)
