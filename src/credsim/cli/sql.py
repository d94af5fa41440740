"""``credsim sql RUN_DIR QUERY``: SQL over a run's views (metrics, citizens, traces, events, daily).

Read-only by default, and safe on run directories from others: the views are built in
memory from the manifest's own file list and the query can read those files and nothing
else (:mod:`credsim.catalog`). ``--allow-writes`` opens the run's ``results.duckdb`` with
DuckDB's full power instead (writes, other files, extensions) -- for your own runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.table import Table

from credsim.cli.common import fail, out_console
from credsim.safeio import FileRefused
from credsim.store import RunIncomplete, connect

app = typer.Typer()


def _sql_error(exc: duckdb.Error, allow_writes: bool) -> str:
    """DuckDB's message without a traceback; a refused file access says why it was refused."""
    text = str(exc).strip()
    if not allow_writes and isinstance(exc, duckdb.PermissionException | duckdb.InvalidInputException) and (
            "disabled" in text or "external access" in text.lower() or "lock_configuration" in text
            or "allowed" in text):
        text += ("\n(credsim sql is read-only and reads only the run's own files; "
                 "pass --allow-writes to use DuckDB's full power on your own runs)")
    return f"SQL error: {text}"


@app.command()
def sql(
    run_dir: Annotated[Path, typer.Argument(help="a complete run directory")],
    query: Annotated[str, typer.Argument(help="SQL over the views metrics, citizens, traces, events, daily")],
    allow_writes: Annotated[bool, typer.Option(help="open the run's results.duckdb for writing, with file, "
                                                    "network and extension access (only for runs you trust)")]
    = False,
) -> None:
    """Run a SQL query over a run's views (metrics, citizens, traces, events, daily); read-only by default."""
    try:
        con = connect(run_dir, read_only=not allow_writes)
    except (RunIncomplete, FileRefused) as exc:  # running, interrupted, failed or not a run
        fail(exc)
    except duckdb.IOException as exc:  # --allow-writes: another process holds results.duckdb
        fail(f"{run_dir}/results.duckdb cannot be opened for writing: {str(exc).strip()}\n"
             "(another process has it open; without --allow-writes credsim sql never locks it)")
    except duckdb.Error as exc:
        fail(f"{run_dir}: its files cannot be read by DuckDB ({str(exc).strip()})")
    try:
        cur = con.execute(query)
        cols = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
    except duckdb.Error as exc:
        fail(_sql_error(exc, allow_writes))
    finally:
        con.close()
    t = Table()
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in r))
    out_console.print(t)
