"""``credsim redress``: due-process figures of a run, or a what-if of redress rules as paired runs."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from credsim.audit import money as am
from credsim.audit import redress as ar
from credsim.cli.common import fail
from credsim.memory import MemoryRefused
from credsim.report.labels import Labels, for_run
from credsim.resumable import RunStopped
from credsim.scenario.load import ScenarioError
from credsim.store import RunIncomplete, read_manifest

app = typer.Typer()
out = Console()
err = Console(stderr=True)


def _num(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def _iv(cell: dict[str, Any]) -> str:
    if cell["k"] < 2 or math.isnan(cell["lo"]):
        return _num(cell["mean"])
    return f"{_num(cell['mean'])} [{_num(cell['lo'])}, {_num(cell['hi'])}]"


def show_figures(fig: dict[str, Any], console: Console) -> None:
    """Time to exit by route, time to redress, wrongful days, backlog and success by group."""
    t = Table(title="Time to exit by route (Kaplan-Meier, other endings censored)", title_justify="left")
    for col in ("list", "route", "exits", "stays", "median days", "p90 days"):
        t.add_column(col, justify="left" if col in ("list", "route") else "right")
    for ln, routes in fig["exit_time"].items():
        for route, f in routes.items():
            a = f["all"]
            t.add_row(ln, route, str(a["events"]), str(a["n"]), _num(a["median_days"], 0), _num(a["p90_days"], 0))
    console.print(t)
    tr = fig["time_to_redress"]
    w = fig["wrongful_days_before_correction"]
    console.print(f"Upheld objections that ended a stay: {tr['from_listing']['n']}; days from listing to correction: "
                  f"mean {_num(tr['from_listing']['mean'])}, median {_num(tr['from_listing']['median'])}; from notice: "
                  f"mean {_num(tr['from_notice']['mean'])}.")
    ff = tr["false_record_from_filing"]
    console.print(f"False records corrected: {ff['n']}; days from filing to correction: mean {_num(ff['mean'])}, "
                  f"median {_num(ff['median'])}.")
    console.print(f"Wrongful days before correction (listed on a false record until an upheld objection): "
                  f"{_num(w['sum'], 0)} days over {w['n']} citizens.")
    for body, b in fig["backlog"].items():
        console.print(f"Backlog of {body}: max {_num(b['max'], 0)}, mean {_num(b['mean'])}, at the end "
                      f"{_num(b['end'], 0)} cases waiting.")
    s = Table(title="Appeal success (upheld / decided, Wilson 95%)", title_justify="left")
    for col in ("body", "record", "group", "upheld", "decided", "rate [95%]"):
        s.add_column(col, justify="left" if col in ("body", "record", "group") else "right")
    for body, by in fig["appeal_success"].items():
        for label, entry in by.items():
            rows = [("all", entry["all"])] + [(f"{d}={g}", v) for d, vals in entry.items() if d != "all"
                                             for g, v in vals.items()]
            for name, v in rows:
                if v["decided"]:
                    s.add_row(body, label.replace("_", " "), name, str(v["upheld"]), str(v["decided"]),
                              f"{v['rate']:.2f} [{v['lo']:.2f}, {v['hi']:.2f}]")
    console.print(s)


def _share(v: dict[str, Any], scale: float = 1.0, digits: int = 1) -> str:
    if not v["decided"]:
        return "n/a"
    return f"{scale * v['rate']:.{digits}f} [{scale * v['lo']:.{digits}f}, {scale * v['hi']:.{digits}f}]"


def show_investigations(inv: dict[str, Any], console: Console) -> None:
    """Precision of each investigation, picks by group and flag rates of those without an error."""
    for name, f in inv.items():
        console.print(f"[bold]{name}[/bold] ({f['rank_by']}): {f['investigated']} investigated, precision "
                      f"{_share(f['precision'], 100)} % (truly had it; Wilson 95%)")
    t = Table(title="By group: share of picks, and flag rate of those WITHOUT it (%, Wilson 95%; ratio to the "
                    "reference group)", title_justify="left")
    t.add_column("group")
    for name in inv:
        t.add_column(f"{name} picks %", justify="right")
        t.add_column(f"{name} flagged w/o %", justify="right")
        t.add_column("ratio", justify="right")
    first = next(iter(inv.values()))
    for dim, gd in first["groups"].items():
        for g in gd["by"]:
            cells = [f"{dim}={g}" + (" (ref)" if g == gd["reference"] else "")]
            for f in inv.values():
                c = f["groups"][dim]["by"][g]
                cells += [_share(c["share_of_picks"], 100), _share(c["flag_rate_without"], 100, 2),
                          _num(c["flag_ratio_to_reference"], 2)]
            t.add_row(*cells)
    console.print(t)


def money_table(rows: list[dict[str, Any]], title: str, lab: Labels) -> Table:
    """Money taken wrongly by group, in readers' words: sum with its interval (how it was made: see
    :func:`money_intervals`)."""
    t = Table(title=title, title_justify="left")
    for col in ("group", "citizens", "taken wrongly (net)", "95% interval", "per citizen"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for r in rows:
        g = "everyone" if r["dimension"] == "all" else lab.group(r["dimension"], r["group"])
        t.add_row(g, f"{r['citizens']:,}", f"{r['sum']:,.0f}", f"[{r['lo']:,.0f}, {r['hi']:,.0f}]",
                  f"{r['mean']:,.2f}")
    return t


def money_intervals(rows: list[dict[str, Any]]) -> str:
    """How the intervals of :func:`money_table` were made, in words."""
    return "intervals: " + "; ".join(dict.fromkeys(r["how"] for r in rows))


def show_money(m: dict[str, Any], console: Console, lab: Labels) -> None:
    """Money moved by clawbacks in the run, and money taken wrongly when the run was audited."""
    console.print(f"Money: taken {m['taken']:,.0f} from {m['citizens_taken']:,} citizens; refunded "
                  f"{m['refunded']:,.0f} to {m['citizens_refunded']:,}; compensation paid {m['compensated']:,.0f}.")
    if "wrongful" not in m:
        console.print("Money taken wrongly needs the same run without false records: audit the scenario "
                      "(credsim audit SCENARIO) and point this command at its runs/system-s<seed> directory.")
        return
    console.print(money_table(m["wrongful"], "money taken wrongly = (taken - refunded) minus the same without "
                              "false records, citizen by citizen (same seed)", lab))
    console.print(money_intervals(m["wrongful"]))
    other = m.get("other", {})
    console.print("Against the same run without false records (sums over citizens): taken "
                  f"{other.get('money_taken', 0.0):+,.0f}, refunded {other.get('money_refunded', 0.0):+,.0f}, "
                  + ", ".join(f"{k} {v:+,.0f}" for k, v in other.items()
                              if k not in ("money_taken_net", "money_taken", "money_refunded",
                                           "citizens_out_of_pocket"))
                  + f"; {other.get('citizens_out_of_pocket', 0.0):,.0f} citizens out of pocket.")


@app.command("redress")
def redress_cmd(
    target: Annotated[str, typer.Argument(help="a run directory (its figures), or a scenario (built-in name or "
                                                "YAML file) for the what-if")],
    replicates: Annotated[int, typer.Option("--replicates", "-k", help="seeds per variant (k >= 5 for intervals "
                                                                       "worth reading)")] = 5,
    population: Annotated[int | None, typer.Option("--population", "-n", help="citizens")] = None,
    days: Annotated[int | None, typer.Option("--days", "-d")] = None,
    seed: Annotated[int | None, typer.Option("--seed", "-s", help="first seed")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="what-if directory")] = None,
    threads: Annotated[int | None, typer.Option(help="worker threads (results do not depend on it)")] = None,
) -> None:
    """Due process: a run's redress figures, or how wrongful days and time to redress change with prior
    notice, an enforced deadline and doubled appeal capacity (paired runs, same seeds)."""
    path = Path(target)
    if path.is_dir() and (path / "manifest.json").exists():
        try:
            fig = ar.figures(path)
            inv = ar.investigation_figures(path)
        except RunIncomplete as exc:
            fail(exc)
        except duckdb.Error as exc:  # a run written by another version of the redress tables
            fail(f"{path}: cannot read its redress tables (cases.parquet, stays.parquet): {exc}")
        money = am.run_money(path, list(read_manifest(path)["scenario"]["population"]["groups"]))
        if not fig and not inv and not money:
            fail(f"{path}: the run's scenario has no redress section, no investigations and no money")
        if fig:
            show_figures(fig, out)
        if inv:
            show_investigations(inv, out)
        if money:
            show_money(money, out, for_run(path))
        return
    if replicates < 1:
        fail("--replicates must be at least 1")
    t0 = time.perf_counter()
    where = out_dir or Path("redress-" + path.stem)

    def progress(name: str, s: int) -> None:
        err.print(f"[dim]{time.perf_counter() - t0:7.1f}s[/dim]  {name}, seed {s}")

    try:
        res = ar.what_if(target, where, replicates=replicates, population=population, days=days, seed=seed,
                         threads=threads, on_run=progress)
    except (ScenarioError, MemoryRefused, ValueError) as exc:
        fail(exc)
    except RunStopped as exc:  # Ctrl-C or a signal during one of the paired runs
        fail(f"what-if stopped, its figures are not written: {exc}", 130 if exc.by_signal else 3)
    except OSError as exc:  # the disk, not the user
        fail(f"cannot write the what-if directory: {exc}")
    t = Table(title=f"{res['scenario']}: what-if of redress rules, {len(res['seeds'])} seed(s) "
                    "(mean [95% t interval]; change = paired by seed)", title_justify="left")
    with_money = "money_taken_wrongly" in res["figures"]["as_is"]
    cols = ["variant", "wrongful days", "change", "days to correction", "change", "false records corrected"]
    for col in cols + (["money taken wrongly", "change"] if with_money else []):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for key, row in res["figures"].items():
        w, r, n = row["wrongful_days"], row["days_to_correction"], row["corrected_false"]
        cells = [key.replace("_", " "), _iv(w), _iv(w["change_vs_as_is"]) if "change_vs_as_is" in w else "",
                 _iv(r), _iv(r["change_vs_as_is"]) if "change_vs_as_is" in r else "", _iv(n)]
        if with_money:
            m = row["money_taken_wrongly"]
            cells += [_iv(m), _iv(m["change_vs_as_is"]) if "change_vs_as_is" in m else ""]
        t.add_row(*cells)
    out.print(t)
    out.print("wrongful days: days listed minus days listed in the same variant without false records, citizen by "
              "citizen, summed; days to correction: mean days from the filing of a false record to its correction "
              "(upheld objections corrected within the run)."
              + (" money taken wrongly: (taken - refunded) minus the same without false records, summed over "
                 "citizens." if with_money else ""))
    if len(res["seeds"]) < 5:
        out.print(f"Warning: {len(res['seeds'])} seed(s); intervals need k >= 5 to mean much.")
    out.print(f"figures: {where / ar.WHAT_IF_FILE}   runs: {where / 'runs'}   ({time.perf_counter() - t0:.1f} s)")
