"""One self-contained HTML page: findings in sentences, then charts and tables.

plotly.js is embedded once, inline, in the page head (no CDN, no network): the file opens
offline and can be mailed as is. Each chart is a ``<div class="chart">`` drawn by
``Plotly.newPlot``; each headline number is a ``<span class="num" data-figure=...>``.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from credsim.report import charts
from credsim.report.findings import Headline, fmt, headlines, num

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
 padding:0 1.2em;color:#222;line-height:1.5}
h1{font-size:1.7em;margin-bottom:.2em}
h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#666;font-size:.92em} .findings li{margin:.45em 0} .num{font-weight:600;color:#b3301e}
.caption{color:#555;font-size:.9em;margin-top:-.3em} .nodata{color:#777;font-style:italic}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0} th,td{padding:.25em .6em;border-bottom:1px solid #eee;
 text-align:right} th{background:#f6f6f6} td.l,th.l{text-align:left} tr.flag td{background:#fff2ef}
code{background:#f4f4f4;padding:0 .25em;border-radius:3px;font-size:.9em} pre{background:#f6f6f6;padding:.6em;
 white-space:pre-wrap;font-size:.85em} .note{background:#fbfaf3;border-left:3px solid #e6ab02;padding:.4em .8em}
"""


def _fig_html(fig: go.Figure, div_id: str) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                           config={"displaylogo": False, "responsive": True}))


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{CSS}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head><body>\n{body}\n</body></html>\n")


def _chart_sections(res: dict[str, Any], prefix: str = "chart") -> str:
    parts = []
    for i, fn in enumerate(charts.ALL):
        title, fig, caption = fn(res)
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if fig is None:
            parts.append(f'<p class="nodata">{html.escape(caption)}</p>')
        else:
            parts.append(f'<div class="chart" id="{prefix}-{i}-wrap">{_fig_html(fig, f"{prefix}-{i}")}</div>'
                         f'<p class="caption">{html.escape(caption)}</p>')
        if fn is charts.disparate_impact:
            parts.append(_di_table(res))
    return "\n".join(parts)


def _harms_table(res: dict[str, Any]) -> str:
    """Each harm against its counterfactual: net denials, citizens harmed, citizens the other way."""
    harms = res["meta"].get("harms") or {}
    if not harms:
        return ""
    out = ["<h2>Harms against counterfactual runs (same seeds, citizen by citizen)</h2>",
           "<table><tr><th class='l'>harm</th><th class='l'>against</th><th>denials (net)</th>"
           "<th>citizens harmed</th><th>citizens the other way</th></tr>"]
    for h, m in harms.items():
        cells = []
        for part in ("denials", "citizens", "reversed"):
            name, value, shown = num(res, f"harm.{h}.{part}")
            cells.append(f'<td><span class="num" data-figure="{html.escape(name)}" data-value="{value!r}">'
                         f"{html.escape(shown)}</span></td>")
        out.append(f"<tr><td class='l'>{html.escape(m['means'])}</td><td class='l'>{html.escape(m['against'])}</td>"
                   + "".join(cells) + "</tr>")
    out.append("</table><p class='caption'>Per-citizen columns: view <code>harms</code> in each system run "
               "(<code>credsim sql RUN \"SELECT sum(wrongful_denials), sum(wrongful_sanctioned) FROM harms\"</code>)."
               " A counterfactual identical to the scenario is not run: its harm is exactly 0.</p>")
    return "\n".join(out)


def _di_table(res: dict[str, Any], limit: int = 25) -> str:
    fair = res.get("fairness") or res["first"].get("fairness") or {}
    rows = [r for r in fair.get("single", []) if r["flag"] and r["group"] != r["reference"]]
    rows.sort(key=lambda r: not r["significant"])  # significant first, then in dimension order
    inter = [r for r in fair.get("intersectional", []) if r["flag"] and r["significant"]
             and r["group"] != r["reference"]]
    inter.sort(key=lambda r: -abs(math.log(r["ratio"])))
    out = [f"<p>Flagged ratios (beyond 0.8–1.25; pooled over replicates; reference groups "
           f"{html.escape(', '.join(f'{d}={g}' for d, g in (fair.get('reference') or {}).items()))}); ratios on "
           f"fewer than {fair.get('min_events')} events are never flagged; groups under "
           f"{fair.get('min_population', 30)} citizens are "
           "left out. Shaded rows: the 95% interval excludes 1. With this many comparisons, some flags on small "
           "groups are chance: about 1 in 20 comparisons without a real difference shows a 95% interval "
           "excluding 1.</p>"]
    for label, rs in (("Single dimensions", rows), ("Intersectional groups (significant only, largest first)",
                                                    inter[:limit])):
        out.append(f"<h3>{label}</h3>")
        if not rs:
            out.append('<p class="nodata">none</p>')
            continue
        out.append("<table><tr><th class='l'>group</th><th class='l'>outcome</th><th>citizens</th><th>rate</th>"
                   "<th class='l'>reference</th><th>ref. rate</th><th>ratio</th><th>95% CI</th></tr>")
        for r in rs[:limit]:
            pc = r["outcome"] == "adverse_records"

            def rate(v: float, pc: bool = pc) -> str:
                return fmt(v, 2) if pc else fmt(v, 3, pct=True) + "%"
            out.append(f"<tr class='{'flag' if r['significant'] else ''}'><td class='l'>"
                       f"{html.escape(r['dimension'])}: {html.escape(r['group'])}</td>"
                       f"<td class='l'>{html.escape(r['label'])}</td><td>{r['population']:,}</td>"
                       f"<td>{rate(r['rate'])}</td><td class='l'>{html.escape(r['reference'])}</td>"
                       f"<td>{rate(r['reference_rate'])}</td><td>{r['ratio']:.2f}</td>"
                       f"<td>{fmt(r['lo'], 2)}–{fmt(r['hi'], 2)}</td></tr>")
        out.append("</table>")
    return "\n".join(out)


def _findings(hs: list[Headline]) -> str:
    return "<ul class=\"findings\">" + "".join(f'<li data-headline="{h.key}">{h.html}</li>' for h in hs) + "</ul>"


METHODS = """
<h2>Definitions and how to check the numbers</h2>
<ul>
<li><b>Harms are differences against named counterfactual runs.</b> Each counterfactual is the scenario with one
 thing changed, run with the same seed: every random draw is keyed by (seed, stream, day, citizen), so both runs share
 their citizens and random numbers, and they are compared citizen by citizen. <b>Wrongful</b>: against every
 false-record rate 0 (denials caused by false records). <b>Missed</b>: observing every infraction (coverage =
 detection = 1, no false records) against the scenario as it is without false records: sanctions that escaped; lawful
 acts are not in it. <b>Lawful</b>: against lawful
 behaviours carrying no points lost and feeding no list. <b>Cross-context</b>: against each sanction using only records
 of the attempt's own domain (a list only for attempts of its domain; a points grade from the base score less the
 points lost in that domain). <b>Association</b>: against no association penalties. "Denials (net)" is the sum of
 per-citizen differences; "citizens harmed" were sanctioned on one side only; "the other way" counts the reverse.</li>
<li><b>Shadow view.</b> Every record carries a truth flag the simulated authority cannot see; an in-run shadow state
 built from every true event of an observed behaviour (nothing false) runs beside the official one. Its disagreements
 compare with perfect surveillance of lawful and unlawful acts alike, not with the absence of false records.</li>
<li><b>Cross-context share</b> of a denial: for a list sanction, 1 when the list's domain differs from the activity's
 domain, else 0; for a grade sanction, the share of points lost in other domains than the activity's.</li>
<li><b>Gravity</b> behind a denial: official points lost held in the dossier when it fired; <b>severity</b> is the
 sanction's declared weight.</li>
<li><b>Disparate impact.</b> Rates per group over the whole run, pooled over replicates (ratio of pooled rates),
 against each dimension's declared reference group (scenario <code>population.reference</code> or
 <code>--reference</code>; else the largest declared share), the same in every replicate. Adverse records (points lost,
 a negative model feature, a blacklist entry) are counted apart from rewards. 95% intervals: percentiles of a Poisson
 bootstrap over citizens (log scale; over-dispersed counts widen them). Ratios on fewer than 20 events are shown as
 too few and never flagged. The four-fifths rule flags ratios below 0.8 or above 1.25.</li>
<li><b>Intervals.</b> Student-t intervals across replicate seeds, never clipped: a count's interval may reach below 0.
 With 2 replicates t(1) = 12.7; with fewer than 5 the replicate values are shown.</li>
<li><b>Paired effects.</b> Deterrence and chilling are against the scenario with scoring, lists, sanctions and
 responses switched off.</li>
<li><b>Recovery.</b> Kaplan–Meier estimates; stays still running at the end are censored.</li>
</ul>
"""


def _sql_block(res: dict[str, Any]) -> str:
    pairs = res["meta"].get("pairs") or []
    d = pairs[0][0] if pairs else "RUN_DIR"
    q = [f'credsim sql {d} "SELECT count(*) FILTER (WHERE n_denied > 0), sum(n_denied), sum(n_wrongful), '
         'count(*) FILTER (WHERE n_wrongful > 0), sum(n_missed) FROM citizens"',
         f'credsim sql {d} "SELECT metric, sum(value) FROM metrics WHERE dimension = \'all\' AND '
         '(metric LIKE \'denied.%\' OR metric LIKE \'wrongful.%\') GROUP BY 1 ORDER BY 1"',
         f'credsim sql {d} "SELECT sanction, count(*), avg(\\"cross\\"), median(gravity) FROM events '
         'WHERE kind = \'denial\' AND view IN (\'both\', \'official\') GROUP BY 1"']
    if res["meta"].get("harms"):
        q.append(f'credsim sql {d} "SELECT sum(wrongful_denials), sum(wrongful_sanctioned), sum(missed_sanctioned), '
                 'sum(lawful_sanctioned), sum(cross_context_sanctioned), sum(association_sanctioned) FROM harms"')
    return ("<p>Every number comes from the run directories' DuckDB catalogs (first replicate shown):</p><pre>"
            + html.escape("\n".join(q)) + "</pre>")


def report_html(res: dict[str, Any]) -> str:
    m = res["meta"]
    title = f"credsim audit: {m['scenario']}"
    seeds = ", ".join(str(s) for s in m["seeds"])
    against = (f"paired with <b>{html.escape(str(m.get('baseline_scenario')))}</b> (same seeds)" if m.get("paired")
               else "no counterfactual (deterrence and chilling are not measured)")
    head = (f"<h1>{html.escape(title)}</h1><p class=\"meta\">{m['population']:,} synthetic citizens × "
            f"{m['days']} days; "
            f"{m['replicates']} replicate(s), seed(s) {seeds}; {against}. Generated "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.</p>")
    note = ("<p class=\"note\">All citizens are synthetic. Rates, error profiles and responses are the scenario's "
            "assumptions; the figures show what such a system does under them, not what any real system did.</p>")
    body = (head + note + "<h2>Findings</h2>" + _findings(headlines(res)) + _harms_table(res)
            + _chart_sections(res) + METHODS + _sql_block(res))
    return page(title, body)


def compare_html(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> str:
    """Two runs side by side: a table of figures, both sets of findings, charts of each."""
    title = f"credsim compare: {name_a} vs {name_b}"
    ma, mb = a["meta"], b["meta"]
    paired = ma["seeds"] == mb["seeds"] and ma["population"] == mb["population"] and ma["days"] == mb["days"]
    note = ("Same seeds, population size and days: the runs share their random numbers, so differences are effects of "
            "the scenarios, not sampling noise." if paired else
            "Different seeds or sizes: differences mix scenario effects with sampling noise.")
    keys = [k for k in a["intervals"] if k in b["intervals"] and not k.startswith(("population", "days"))]
    keys = [k for k in keys if (a["intervals"][k]["mean"] or 0) or (b["intervals"][k]["mean"] or 0)]
    rows = []
    for k in keys:
        va, vb = a["intervals"][k]["mean"], b["intervals"][k]["mean"]
        diff = (vb - va) if va is not None and vb is not None else None
        digits = 4 if k.startswith("gini") else (3 if "share" in k or "per_capita" in k else 0)
        rows.append(f"<tr data-figure='{html.escape(k)}'><td class='l'>{html.escape(k)}</td><td>{fmt(va, digits)}</td>"
                    f"<td>{fmt(vb, digits)}</td><td>{fmt(diff, digits)}</td></tr>")
    table = ("<table><tr><th class='l'>figure</th><th>" + html.escape(name_a) + "</th><th>" + html.escape(name_b)
             + "</th><th>B − A</th></tr>" + "".join(rows) + "</table>")
    cols = []
    for res, name in ((a, name_a), (b, name_b)):
        cols.append(f"<h2>{html.escape(name)}: findings</h2>" + _findings(headlines(res)))
    charts_html = []
    for i, fn in enumerate((charts.grade_mix, charts.list_sizes, charts.wrongful_missed, charts.disparate_impact)):
        for res, name, prefix in ((a, name_a, "a"), (b, name_b, "b")):
            t, fig, caption = fn(res)
            charts_html.append(f"<h2>{html.escape(t)}: {html.escape(name)}</h2>")
            charts_html.append(_fig_html(fig, f"{prefix}-{i}") if fig is not None
                               else f'<p class="nodata">{html.escape(caption)}</p>')
    head = (f"<h1>{html.escape(title)}</h1><p class=\"meta\">A = {html.escape(name_a)} "
            f"({ma['population']:,} citizens × "
            f"{ma['days']} days, seeds {ma['seeds']}); B = {html.escape(name_b)} ({mb['population']:,} × {mb['days']}, "
            f"seeds {mb['seeds']}).</p><p class=\"note\">{note}</p>")
    return page(title, head + "<h2>Figures side by side</h2>" + table + "".join(cols) + "".join(charts_html) + METHODS)
