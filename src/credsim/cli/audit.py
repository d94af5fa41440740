"""``credsim audit`` and ``credsim explain``: paired runs against a counterfactual, and one citizen's story."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from credsim.audit.money import pooled
from credsim.audit.paired import audit_pairs
from credsim.cli.common import fail, parse_set
from credsim.cli.redress import money_intervals, money_table
from credsim.report import due_process
from credsim.report.labels import Labels, for_run, from_result
from credsim.store import read_manifest

app = typer.Typer()
out = Console()
err = Console(stderr=True)


@app.command("audit")
def audit_cmd(
    scenario: Annotated[str, typer.Argument(help="built-in name or YAML file")] = "default",
    against: Annotated[str, typer.Option(help="counterfactual: 'baseline' (the scenario with the system off), "
                                              "'none', or a scenario name/file")] = "baseline",
    replicates: Annotated[int, typer.Option("--replicates", "-k", help="paired runs with seeds seed, seed+1, ...")] = 1,
    population: Annotated[int | None, typer.Option("--population", "-n", help="citizens")] = None,
    days: Annotated[int | None, typer.Option("--days", "-d")] = None,
    seed: Annotated[int | None, typer.Option("--seed", "-s", help="first seed")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="audit directory")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override KEY.PATH=VALUE, e.g. "
                                                   "'behaviours[\"traffic.violation\"].rate=0.01'")] = None,
    trace: Annotated[int | None, typer.Option(help="citizens traced per run (for explain)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --out directory")] = False,
    threads: Annotated[int | None, typer.Option(help="worker threads (results do not depend on it)")] = None,
    reference: Annotated[list[str] | None, typer.Option(
        help="disparate-impact reference group DIM=GROUP (repeatable; default: the scenario's "
             "population.reference, else the largest declared share)")] = None,
) -> None:
    """Run a scenario and its counterfactuals over replicates; write audit.json and report.html."""
    from credsim.audit.paired import audit
    from credsim.memory import MemoryRefused
    from credsim.scenario.load import ScenarioError

    t0 = time.perf_counter()

    def progress(name: str, s: int, k: int) -> None:
        err.print(f"[dim]{time.perf_counter() - t0:7.1f}s[/dim]  replicate {k + 1}/{replicates}: {name}, seed {s}")

    refs: dict[str, str] = {}
    for item in reference or []:
        dim, sep, grp = item.partition("=")
        if not sep or not dim.strip() or not grp.strip():
            typer.echo(f"--reference expects DIM=GROUP (e.g. income=q3), got {item!r}", err=True)
            raise typer.Exit(2)
        refs[dim.strip()] = grp.strip()
    try:
        d = audit(scenario, against=None if against == "none" else against, replicates=replicates,
                  population=population, days=days, seed=seed, out=out_dir, overrides=parse_set(set_),
                  trace=trace, overwrite=overwrite, on_run=progress, threads=threads, reference=refs or None)
    except (ScenarioError, MemoryRefused, FileExistsError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    res = json.loads((d / "audit.json").read_text())
    from credsim.report.findings import headlines

    out.print(f"[bold]{res['meta']['scenario']}[/bold]: {res['meta']['population']:,} citizens x "
              f"{res['meta']['days']} days, {res['meta']['replicates']} replicate(s), "
              f"{time.perf_counter() - t0:.1f} s")
    for h in headlines(res):
        out.print(" - " + h.text)
    for line in due_process.summary_lines(res, from_result(res)):
        out.print(" - " + line)
    _money_summary(d, res)
    page = d / "report.html"
    shown = f"[bold]{page}[/bold]" if page.is_file() else (
        "not written (the HTML report needs plotly: pip install 'credsim[report]', then credsim report "
        f"{d})")
    out.print(f"report: {shown}   figures: {d / 'audit.json'}   runs: {d / 'runs'}")


def _money_summary(d: Path, res: dict[str, Any]) -> None:
    """Money taken wrongly (against the no-false-records runs, same seeds), by group, when the run has money."""
    iv = res["intervals"].get("harm.wrongful.money_taken_net")
    if not iv:
        return
    files = [d / r["system"] / "harms.parquet" for r in res["meta"]["runs"]]
    files = [f for f in files if f.exists()]
    if not files:
        return
    dims = list(read_manifest(files[0].parent)["scenario"]["population"]["groups"])
    rows = pooled(files, dims)
    out.print(money_table(rows, "money taken wrongly (net of refunds) vs the same scenario without false records, "
                          "citizen by citizen", from_result(res)))
    out.print(money_intervals(rows))


def _fmt_rec(r: dict[str, Any], lab: Labels) -> str:
    flag = "FALSE record" if not r["true"] else "true"
    return f"{lab.name(r['item'])} filed day {r['day']} ({r['points']:+.0f} pts, {flag}, from {r['source'] or '?'})"


def render(ex: Any, show_all: bool = False, console: Console | None = None) -> None:
    """Print an :class:`~credsim.audit.explain.Explanation` for a person to read."""
    c = console or out
    s = ex.summary
    lab = for_run(ex.run_dir)  # plain words for groups, lists and behaviours (the same as the report's)
    who = ", ".join(lab.group(k, str(v)) for k, v in ex.groups.items())
    c.print(f"[bold]Citizen {ex.citizen}[/bold]  ({who})")
    lists_on = [lab.name(k[3:]) for k, v in s.items() if k.startswith("on_") and v]
    grade = f" (grade {s['grade']})" if s.get("grade") else ""
    sgrade = f" (grade {s['shadow_grade']})" if s.get("shadow_grade") else ""
    c.print(f"End of run: official score {s['score']:.0f}{grade}; true-records-only (shadow) score "
            f"{s['shadow_score']:.0f}{sgrade}; on lists: {', '.join(lists_on) or 'none'}.")
    c.print(f"Lifetime: {s.get('n_records_true', 0) + s.get('n_records_false', 0)} official records "
            f"({s.get('n_records_false', 0)} false), {s.get('n_denied', 0)} denial(s) "
            f"({s.get('n_wrongful', 0)} wrongful), {s.get('n_missed', 0)} missed, "
            f"{s.get('n_times_listed', 0)} listing(s).")
    if ex.score_path:
        vals = [(d, o) for d, o, _ in ex.score_path if not math.isnan(o)]
        if vals:
            lo = min(vals, key=lambda x: x[1])
            c.print(f"Score path (official): {vals[0][1]:.0f} on day {vals[0][0]}, lowest {lo[1]:.0f} on day {lo[0]}, "
                    f"{vals[-1][1]:.0f} on day {vals[-1][0]}; on true records only it ends at "
                    f"{ex.score_path[-1][2]:.0f}.")
    t = Table(title="Timeline", title_justify="left", show_lines=False)
    for col in ("day", "what", "item", "details"):
        t.add_column(col, justify="right" if col == "day" else "left")
    hidden: dict[str, int] = {}
    kinds = ex.kinds
    for e in ex.timeline:
        what, item = e["what"], e["item"]
        if what == "event":
            k = kinds.get(item, "other")
            if not show_all and k in ("speech", "attempt"):
                hidden[f"{k} events"] = hidden.get(f"{k} events", 0) + 1
                continue
            t.add_row(str(e["day"]), "event", lab.name(item), f"true {k}")
        elif what == "record":
            if e["view"] == "shadow":
                if not show_all:
                    hidden["events the authority never saw"] = hidden.get("events the authority never saw", 0) + 1
                    continue
                t.add_row(str(e["day"]), "unseen", lab.name(item), "in the shadow view only (no official record)")
                continue
            style = "bold red" if not e["true"] else ""
            label = "FALSE record" if not e["true"] else "record"
            t.add_row(str(e["day"]), f"[{style}]{label}[/{style}]" if style else label, lab.name(item),
                      f"{e['points']:+.0f} pts, from {e['source'] or '?'}")
        elif what == "grade":
            t.add_row(str(e["day"]), "grade", item, f"{e['view']} view")
        elif what in ("listed", "delisted"):
            t.add_row(str(e["day"]), what, lab.name(item), f"{e['view']} view")
        elif what == "denied":
            wrong = " -- [bold red]WRONGFUL[/bold red] (true records would allow it)" if e.get("wrongful") else ""
            t.add_row(str(e["day"]), "[bold]DENIED[/bold]", lab.name(item), f"{e['detail']}{wrong}")
        elif what == "rewarded":
            t.add_row(str(e["day"]), "rewarded", lab.name(item), e["detail"])
        elif what == "outcome":
            t.add_row(str(e["day"]), "outcome", lab.name(item), "of an allowed attempt")
        elif what == "money":
            t.add_row(str(e["day"]), "money", lab.name(item), f"{e['amount']:+,.2f} to the {lab.name(item)} balance")
    c.print(t)
    if hidden:
        c.print("[dim]hidden: " + ", ".join(f"{v} {k}" for k, v in hidden.items()) + " (--all shows them)[/dim]")
    if not ex.sanctions:
        c.print("No official denial: nothing to explain counterfactually.")
        return
    c.print("\n[bold]Why each denial happened, and the smallest set of records whose removal avoids it[/bold]")
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for sn in ex.sanctions:
        removal = tuple((r["day"], r["item"]) for r in sn.removal)
        key = (sn.attempt, sn.sanction, sn.wrongful, removal, sn.note.split(" on day")[0])
        groups.setdefault(key, []).append(sn)
    for items in groups.values():
        sn = items[0]
        days = ", ".join(str(x.day) for x in items)
        wrong = " [bold red](wrongful: the true-records-only view allows it)[/bold red]" if sn.wrongful else ""
        c.print(f"- {lab.name(sn.attempt)} denied by {lab.name(sn.sanction)} on day(s) {days}{wrong}")
        c.print(f"    {sn.note}")
        if sn.removal:
            n = len(sn.removal)
            c.print(f"    remove {n} record{'s' if n > 1 else ''}: " + "; ".join(_fmt_rec(r, lab) for r in sn.removal))
        if sn.false_only and any(r["true"] for r in sn.removal):
            n = len(sn.false_set)
            c.print(f"    or remove only false records ({n}): " + "; ".join(_fmt_rec(r, lab) for r in sn.false_set))
        elif sn.false_only is False:
            c.print("    removing only the false records would not be enough")


@app.command("explain")
def explain_cmd(
    run_dir: Annotated[Path, typer.Argument(help="run directory")],
    citizen: Annotated[int | None, typer.Argument(help="citizen id (a traced one)")] = None,
    find: Annotated[str | None, typer.Option(help="pick a citizen with a case: wrongful, missed, denied, "
                                                  "association")] = None,
    retrace: Annotated[bool, typer.Option(help="when no such citizen was traced, re-run the same scenario and "
                                               "seed tracing them (same result)")] = True,
    show_all: Annotated[bool, typer.Option("--all", help="also show speech, attempts and unseen events")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Explain one traced citizen: timeline, and the smallest record removals that avoid each sanction."""
    from credsim.audit.explain import NotTraced, explain, find_cases
    from credsim.audit.explain import retrace as rerun_traced

    if not (run_dir / "manifest.json").exists():
        if not (run_dir / "audit.json").exists():
            fail(f"{run_dir}: not a run directory (no manifest.json) nor an audit directory (no audit.json); "
                 "give a directory written by credsim run or credsim audit")
        try:  # an audit directory: its citizens live in the system run of the first replicate
            system, _counterfactual = audit_pairs(run_dir)[0]
        except (FileNotFoundError, ValueError, IndexError) as exc:
            fail(f"{run_dir}: an audit directory without a usable run ({exc})")
        err.print(f"{run_dir} is an audit directory: explaining its system run {system}")
        run_dir = system
    source = run_dir
    if citizen is None:
        if find is None:
            typer.echo("give a CITIZEN_ID or --find wrongful", err=True)
            raise typer.Exit(2)
        try:
            traced, untraced = find_cases(run_dir, find)
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        if traced:
            citizen = traced[0]
            err.print(f"traced citizens with {find} cases: {', '.join(map(str, traced))}; explaining {citizen}")
        elif untraced and retrace:
            err.print(f"no traced citizen has a {find} case; re-running the same scenario and seed tracing "
                      f"{', '.join(map(str, untraced))} ...")
            source = rerun_traced(run_dir, untraced)
            citizen = untraced[0]
            err.print(f"reproduced in {source}; explaining {citizen}")
        else:
            typer.echo(f"no citizen in {run_dir} has a {find} case", err=True)
            raise typer.Exit(1)
    try:
        ex = explain(source, citizen)
    except NotTraced as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if as_json:
        out.print_json(json.dumps(ex.as_dict(), default=str))
    else:
        render(ex, show_all)

