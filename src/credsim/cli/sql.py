"""``credsim sql RUN_DIR QUERY``: SQL over a run's views (metrics, citizens, traces, events, daily)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from credsim.cli.common import fail, out_console
from credsim.store import RunIncomplete, connect

app = typer.Typer()


@app.command()
def sql(run_dir: Path, query: str) -> None:
    """Run a SQL query over a run's DuckDB catalog (views: metrics, citizens, traces, daily)."""
    try:
        con = connect(run_dir)
    except RunIncomplete as exc:  # running, interrupted or failed run (resumable.py)
        fail(exc)
    try:
        cur = con.execute(query)
        cols = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
    finally:
        con.close()
    t = Table()
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*(f"{v:.6g}" if isinstance(v, float) else str(v) for v in r))
    out_console.print(t)
