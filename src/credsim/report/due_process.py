"""Due process in the audit's report and summary: how long a wrong listing lasts and who gets it corrected.

Why a section of its own: the harm of a false record is measured in days, so the report shows the days
listed on false records before an upheld objection ended them, how long correction takes, how the appeal
queues grew, and whose objections succeed -- in plain words (lists, bodies, routes and groups through
:class:`~credsim.report.labels.Labels`), with how each interval was made. Reads ``res["redress"]`` made
by :func:`credsim.audit.redress.pool`; shows nothing for a scenario without a redress section.
"""

from __future__ import annotations

import html
import math
from typing import Any

from credsim.report.labels import Labels

ROUTE_WORDS = {"compliance": "paid or complied", "appeal": "objection upheld", "repair": "credit repair",
               "term": "term ran out", "grade": "grade recovered", "other": "other"}
RECORD_WORDS = {"false_record": "false record", "true_record": "true record"}


def _n(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def _iv(cell: dict[str, Any] | None, digits: int = 0) -> str:
    """Mean with its t interval over replicates (none with one replicate)."""
    if not cell or cell.get("mean") is None:
        return "n/a"
    if cell.get("k", 0) < 2 or cell.get("lo") is None or cell.get("hi") is None:
        return _n(cell["mean"], digits)
    return f"{_n(cell['mean'], digits)} ({_n(cell['lo'], digits)} to {_n(cell['hi'], digits)})"


def _share(cell: dict[str, Any]) -> str:
    if not cell.get("decided"):
        return "none decided"
    return (f"{100 * cell['rate']:.0f}% of {cell['decided']:,} ({100 * cell['lo']:.0f}% to "
            f"{100 * cell['hi']:.0f}%)")


def children_line(res: dict[str, Any]) -> str:
    """Children affected by sanctions that reach dependants (empty when the scenario has no family ties)."""
    iv = res.get("intervals") or {}
    if "harm.children_affected" not in iv:
        return ""
    text = f"Children affected (dependants of citizens denied by a sanction that reaches them): " \
           f"{_iv(iv['harm.children_affected'])}"
    if "harm.children_affected_wrongly" in iv:
        text += (f"; only because of false records (against the same scenario without them, citizen by citizen): "
                 f"{_iv(iv['harm.children_affected_wrongly'])}")
    if "harm.children_affected_by_system" in iv:
        text += f"; against the system switched off: {_iv(iv['harm.children_affected_by_system'])}"
    return text + " (mean over replicates, 95% t interval)."


def summary_lines(res: dict[str, Any], lab: Labels) -> list[str]:
    """A few sentences for the terminal after ``credsim audit``."""
    r = res.get("redress") or {}
    kids = children_line(res)
    if not r:
        return [kids] if kids else []
    out = [*([kids] if kids else []),
           f"Due process: {_iv(r['wrongful_days'])} days listed on false records before an upheld objection "
           f"ended them ({_iv(r['wrongful_citizens'])} citizens); {_iv(r['corrected'])} listings corrected after "
           f"{_iv(r['days_to_redress'], 1)} days on average (mean over replicates, 95% t interval)."]
    for body, b in r["backlog"].items():
        end = _n(b["mean"][-1]) if b["mean"] else "n/a"
        out.append(f"Cases waiting at {lab.name(body)}: at most {_iv(b['max'])}, {end} at the end (mean of "
                   "replicates).")
    for body, by in r["success"].items():
        f = by.get("false_record", {}).get("all")
        if f:
            out.append(f"Objections to false records upheld by {lab.name(body)}: {_share(f)} (Wilson 95%, counts "
                       "added over replicates).")
    return out


def section(res: dict[str, Any], lab: Labels) -> str:
    """The report's due-process section (empty without redress figures)."""
    r = res.get("redress") or {}
    kids = children_line(res)
    if not r:
        return f"<h2>Family ties</h2><p>{html.escape(kids)}</p>" if kids else ""
    e = html.escape
    parts = ["<h2>Due process: how long a wrong listing lasts</h2>",
             "<p>Days listed on a false record before an upheld objection ended the listing: "
             f"<b>{_iv(r['wrongful_days'])}</b> days, over {_iv(r['wrongful_citizens'])} citizens. Listings ended "
             f"by an upheld objection: {_iv(r['corrected'])}, after {_iv(r['days_to_redress'], 1)} days on the list "
             f"on average; a false record was corrected {_iv(r['false_record_days'], 1)} days after it was filed. "
             "Figures per run, shown as the "
             "mean over replicates with its 95% t interval in brackets.</p>"]
    if kids:
        parts.append(f"<p>{e(kids)}</p>")
    rows = []
    for ln, routes in r["exit_routes"].items():
        for route, c in routes.items():
            rows.append(f"<tr><td class='l'>{e(lab.name(ln))}</td><td class='l'>{e(ROUTE_WORDS.get(route, route))}"
                        f"</td><td>{c['exits']:,}</td><td>{c['stays']:,}</td><td>{e(_iv(c['median_days']))}</td></tr>")
    if rows:
        parts += ["<h3>Time to leave a list, by way out</h3><div class='tablewrap'><table><tr><th class='l'>list</th>"
                  "<th class='l'>way out</th><th>left this way (all replicates)</th><th>stays</th>"
                  "<th>median days (Kaplan-Meier)</th></tr>", *rows, "</table></div>",
                  "<p class='caption'>Each way out is counted as if it were the only one: other endings and stays "
                  "still running at the end are censored. n/a: fewer than half would have left this way.</p>"]
    for body, b in r["backlog"].items():
        cells = "".join(f"<td>{_n(v, 1)}</td>" for v in b["mean"])
        heads = "".join(f"<th>day {d}</th>" for d in b["days"])
        parts += [f"<h3>Cases waiting at {e(lab.name(body))}</h3><div class='tablewrap'><table><tr>{heads}</tr>"
                  f"<tr>{cells}</tr></table></div><p class='caption'>Objections filed and not yet decided at the end "
                  f"of each day (mean of the replicates); at most {e(_iv(b['max']))}.</p>"]
    for body, by in r["success"].items():
        rows = []
        for label, entry in by.items():
            what = RECORD_WORDS.get(label, label)
            if entry.get("all", {}).get("decided"):
                rows.append(f"<tr><td class='l'>{e(what)}</td><td class='l'>everyone</td>"
                            f"<td>{e(_share(entry['all']))}</td></tr>")
            for dim, groups in entry.items():
                if dim == "all":
                    continue
                for g, cell in groups.items():
                    if cell.get("decided"):
                        rows.append(f"<tr><td class='l'>{e(what)}</td><td class='l'>{e(lab.group(dim, g))}</td>"
                                    f"<td>{e(_share(cell))}</td></tr>")
        if rows:
            parts += [f"<h3>Objections upheld by {e(lab.name(body))}</h3><details><summary>By group</summary>"
                      "<div class='tablewrap'><table><tr><th class='l'>contested record</th><th class='l'>group</th>"
                      "<th>upheld (95% interval)</th></tr>", *rows, "</table></div></details>",
                      "<p class='caption'>Upheld of decided, with the counts of all replicates added; Wilson 95% "
                      "interval.</p>"]
    return "\n".join(parts)
