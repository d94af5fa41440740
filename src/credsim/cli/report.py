"""``credsim report`` and ``credsim compare``: self-contained HTML pages of runs and audits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from credsim.cli.common import fail

app = typer.Typer()
out = Console()


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory or audit directory")],
    against: Annotated[Path | None, typer.Option(help="a counterfactual run directory with the same seed")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", "-o",
                                                  help="HTML file (default RUN_DIR/report.html)")] = None,
) -> None:
    """Write one self-contained HTML report (opens offline) for a run or an audit."""
    from credsim.audit.paired import load_result
    from credsim.report import write_report
    from credsim.report.findings import headlines

    try:
        res = load_result(run_dir, against)
    except (FileNotFoundError, ValueError) as exc:  # ValueError: unreadable audit.json or an incomplete run
        fail(exc)
    try:
        path = write_report(res, out_file or run_dir / "report.html")
    except ModuleNotFoundError as exc:
        fail(f"the HTML report needs {exc.name}: pip install 'credsim[report]'")
    for h in headlines(res):
        out.print(" - " + h.text)
    out.print(f"report: [bold]{path}[/bold]")


@app.command("compare")
def compare_cmd(
    run_a: Annotated[Path, typer.Argument(help="first run or audit directory")],
    run_b: Annotated[Path, typer.Argument(help="second run or audit directory")],
    out_file: Annotated[Path, typer.Option("--out", "-o", help="HTML file")] = Path("compare.html"),
) -> None:
    """Put two runs side by side in one HTML page (and a table on the terminal)."""
    from rich.table import Table

    from credsim.audit.paired import load_result
    from credsim.report import write_compare
    from credsim.report.findings import fmt
    from credsim.report.labels import from_result

    try:
        ra, rb = load_result(run_a), load_result(run_b)
    except (FileNotFoundError, ValueError) as exc:
        fail(exc)
    lab = from_result(ra)
    t = Table(title=f"A = {run_a.name}   B = {run_b.name}")
    for c in ("figure", "A", "B", "B - A"):
        t.add_column(c, justify="left" if c == "figure" else "right")
    keys = ["citizens.sanctioned", "denied.total", "harm.wrongful.citizens", "harm.missed.citizens",
            "harm.lawful.citizens", "harm.cross_context.citizens", "harm.association.citizens",
            "wrongful.total", "missed.total", "wrongful.share_of_denied",
            "cross_context.mean_share", "association_only.citizens", "records.per_capita", "gini.score",
            "events.infraction.total", "events.speech.total"]
    for k in keys:
        a, b = (ra["intervals"].get(k) or {}).get("mean"), (rb["intervals"].get(k) or {}).get("mean")
        d = 3 if "share" in k or "per_capita" in k or "gini" in k else 0
        t.add_row(lab.metric(k), fmt(a, d), fmt(b, d), fmt(b - a, d) if a is not None and b is not None else "n/a")
    out.print(t)
    try:
        path = write_compare(ra, rb, run_a.name, run_b.name, out_file)
    except ModuleNotFoundError as exc:
        fail(f"the HTML comparison needs {exc.name}: pip install 'credsim[report]'")
    out.print(f"comparison: [bold]{path}[/bold]")
