"""The HTML report: the story first, then one chart per finding, then detail and definitions.

A reader (a journalist, a policy researcher) gets three headline numbers in sentences and an
icon array first; each chart carries its takeaway as its title, a caption saying how it was
made, a text alternative, its data table and PNG/SVG/CSV downloads. Names are always
plain words (:mod:`credsim.report.labels`).

plotly.js is either written once beside the HTML as a shared file (the report stays small
and still opens offline, from disk) or, for a page sent as one download, embedded inline.
No CDN, no network, no cloud button.
"""

from __future__ import annotations

import csv
import html
import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from credsim.report import charts, due_process
from credsim.report.findings import Headline, IconCounts, fmt, headlines, icon_counts, num, story
from credsim.report.labels import Labels, from_result

PLOTLY_FILE = f"plotly-{plotly.__version__}.min.js"

CSS = """
*{box-sizing:border-box}
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;max-width:1100px;margin:1.5em auto;
 padding:0 1em;color:#1a1a1a;line-height:1.5;overflow-wrap:anywhere}
h1{font-size:1.8em;line-height:1.2;margin-bottom:.3em}
h2{font-size:1.35em;margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
h3{font-size:1.12em;margin:1.6em 0 .3em} h4{font-size:1em}
.meta{color:#4a4a4a;font-size:.92em} .findings li{margin:.45em 0} .num{font-weight:600}
.story p{font-size:1.15em;margin:.5em 0} .story .num{font-weight:700}
.caption{color:#4a4a4a;font-size:.9em;margin-top:.2em} .nodata{color:#4a4a4a;font-style:italic}
.tablewrap{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0} th,td{padding:.25em .6em;border-bottom:1px solid #ddd;
 text-align:right} th{background:#f2f2f2} td.l,th.l{text-align:left} tr.flag td{background:#fff2ef}
code{background:#f2f2f2;padding:0 .25em;border-radius:3px;font-size:.9em;overflow-wrap:anywhere}
pre{background:#f2f2f2;padding:.6em;white-space:pre-wrap;font-size:.85em;overflow-wrap:anywhere}
.note{background:#fbfaf3;border-left:3px solid #8a6d00;padding:.4em .8em}
.warn{background:#fff4e5;border-left:3px solid #b35900;padding:.4em .8em}
.figure{margin:1em 0 2em} .chart{width:100%;min-height:300px}
.tools{display:flex;flex-wrap:wrap;gap:.4em;align-items:center;margin:.3em 0}
.tools button{font:inherit;font-size:.85em;padding:.2em .7em;border:1px solid #555;background:#fff;border-radius:3px;
 cursor:pointer;color:#1a1a1a}
details summary{cursor:pointer;color:#0b5394}
.icons{display:block;width:100%;max-width:560px;height:auto}
.legend span{display:inline-block;margin-right:1.2em} .sw{display:inline-block;width:.9em;height:.9em;
 vertical-align:-.1em;margin-right:.3em;border:1px solid #555}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:600px){body{padding:0 .6em;font-size:15px} h1{font-size:1.4em} .story p{font-size:1.05em}}
"""

# Plotly's own toolbar, without the cloud/share and selection buttons a reader never needs.
CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True, "showSendToCloud": False,
                          "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}

DOWNLOADS_JS = """
document.addEventListener('click', function (ev) {
  var b = ev.target.closest('button[data-download]');
  if (!b) return;
  var id = b.dataset.chart, kind = b.dataset.download, name = b.dataset.name || id;
  if (kind === 'csv') {
    var src = document.getElementById(id + '-csv').textContent;
    var url = URL.createObjectURL(new Blob([src], {type: 'text/csv'}));
    var a = document.createElement('a'); a.href = url; a.download = name + '.csv';
    document.body.appendChild(a); a.click(); a.remove(); setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  } else {
    Plotly.downloadImage(document.getElementById(id), {format: kind, filename: name, width: 1100, height: 600});
  }
});
"""


def page(title: str, body: str) -> str:
    """The page frame with plotly.js inline (sweep pages and pages that travel alone)."""
    return framed(title, body, None)


def framed(title: str, body: str, script_src: str | None) -> str:
    """The page frame: plotly.js from ``script_src`` beside the HTML, or inline when None."""
    script = (f'<script src="{html.escape(script_src)}"></script>' if script_src
              else f'<script type="text/javascript">{get_plotlyjs()}</script>')
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{CSS}</style>"
            f"{script}</head><body><main>\n{body}\n</main><script>{DOWNLOADS_JS}</script></body></html>\n")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return "" if v is None else str(v)


def figure_rows(fig: go.Figure) -> tuple[list[str], list[list[str]]]:
    """The data a figure draws, as a long table (series, x, y[, interval]); heatmaps as (panel, row, column, count).

    This is the chart's data table and its CSV: the numbers behind every mark, not a summary.
    """
    heat = [t for t in fig.data if t.type == "heatmap"]
    if heat:
        titles = [a.text for a in fig.layout.annotations] or [""] * len(heat)
        rows = []
        spread = all(t.customdata is not None for t in heat)  # several replicates: mean, lowest, highest
        for t, panel in zip(heat, titles, strict=False):
            for i, y in enumerate(t.y):
                for j, x in enumerate(t.x):
                    rows.append([panel, str(y), str(x)] + ([_cell(float(v)) for v in t.customdata[i][j]] if spread
                                                           else [str(t.text[i][j]).replace(",", "")]))
        return (["panel", "from", "to"] + (["citizens (mean over replicates)", "lowest replicate",
                                            "highest replicate"] if spread else ["citizens"])), rows
    rows = []
    for t in fig.data:
        if t.meta == charts.AXIS_ONLY:
            continue
        xs, ys = list(t.x if t.x is not None else []), list(t.y if t.y is not None else [])
        errs = t.error_y if t.type in ("bar", "scatter") and t.error_y is not None else None
        if t.orientation == "h" or (t.type == "scatter" and ys and isinstance(ys[0], str)):
            xs, ys = ys, xs
            errs = t.error_x
        hi = list(errs.array) if errs is not None and errs.visible is not False and errs.array is not None else []
        lo = list(errs.arrayminus) if errs is not None and errs.arrayminus is not None else hi
        for i, (x, y) in enumerate(zip(xs, ys, strict=False)):
            iv = ""
            if hi and isinstance(y, (int, float)) and i < len(hi) and (hi[i] or lo[i]):
                iv = f"{_cell(y - lo[i])} to {_cell(y + hi[i])}"
            rows.append([str(t.name or ""), _cell(x), _cell(y), iv])
    keep_iv = any(r[3] for r in rows)
    # whiskers are 95% intervals on some charts and replicate ranges on others: the caption says which
    head = (["series", _axis_title(fig, "x", "x"), _axis_title(fig, "y", "value")]
            + (["whiskers (see the caption)"] if keep_iv else []))
    return head, [r if keep_iv else r[:3] for r in rows]


def _axis_title(fig: go.Figure, axis: str, default: str) -> str:
    t = fig.layout[f"{axis}axis"].title.text
    if any(tr.orientation == "h" for tr in fig.data):  # horizontal bars: categories on y, values on x
        other = fig.layout[("y" if axis == "x" else "x") + "axis"].title.text
        return (other or default) if axis == "y" else "group"
    return str(t or default)


def text_alternative(chart: charts.Chart, head: list[str], rows: list[list[str]]) -> str:
    """A sentence for screen readers: the takeaway, what is plotted, and where the numbers are."""
    series = sorted({r[0] for r in rows if r[0]})
    return (f"Chart: {chart.title}. {len(rows)} values" + (f" in {len(series)} series ({', '.join(series[:6])})"
                                                            if series else "")
            + ". The data table below the chart lists every value.")


def figure_block(chart: charts.Chart, div_id: str, filename: str) -> str:
    """One finding: takeaway title, chart, caption, then Table and downloads (the reader's tools)."""
    out = [f'<section class="figure" id="{div_id}-figure"><h3>{html.escape(chart.title)}</h3>']
    if chart.fig is None:
        out.append(f'<p class="nodata">{html.escape(chart.caption)}</p></section>')
        return "".join(out)
    head, rows = figure_rows(chart.fig)
    alt = text_alternative(chart, head, rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows(rows)
    cfg = dict(CONFIG, toImageButtonOptions={"filename": filename})
    plot = chart.fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=cfg)
    # the alternative is a described-by text, not role="img": the chart holds buttons (its toolbar)
    out.append(f'<p class="sr" id="{div_id}-alt">{html.escape(alt)}</p>'
               f'<div class="chart" aria-describedby="{div_id}-alt">{plot}</div>')
    out.append(f'<p class="caption">{html.escape(chart.caption)}</p>')
    out.append('<div class="tools">' + "".join(
        f'<button type="button" data-download="{k}" data-chart="{div_id}" data-name="{html.escape(filename)}">'
        f"Download {k.upper()}</button>" for k in ("png", "svg", "csv")) + "</div>")
    body = "".join("<tr>" + "".join(f"<td class='{'l' if j == 0 else ''}'>{html.escape(c)}</td>"
                                     for j, c in enumerate(r)) + "</tr>" for r in rows)
    out.append(f"<details><summary>Table: the numbers in this chart</summary><div class='tablewrap'><table>"
               f"<caption class='sr'>{html.escape(chart.title)}</caption><tr>"
               + "".join(f"<th scope='col' class='{'l' if j == 0 else ''}'>{html.escape(h)}</th>"
                         for j, h in enumerate(head))
               + f"</tr>{body}</table></div></details>")
    out.append(f'<script type="text/csv" id="{div_id}-csv">{html.escape(buf.getvalue())}</script></section>')
    return "".join(out)


def _few(v: float | None) -> str:
    return "fewer than 1" if v is not None and 0 < v < 0.5 else f"{v or 0:,.0f}"


ICON_COLOURS = {"wrongly": "#d55e00", "denied": "#e69f00", "other": "#d9d9d9"}


def icon_array(ic: IconCounts) -> str:
    """1,000 squares, one per citizen: denied only because of false records, denied otherwise, not denied."""
    cols, size, gap = 40, 12, 2
    cells = []
    for i in range(1000):
        kind = ("wrongly" if ic.wrongly is not None and i < ic.wrongly else "denied" if i < ic.denied else "other")
        x, y = (i % cols) * (size + gap), (i // cols) * (size + gap)
        cells.append(f'<rect x="{x}" y="{y}" width="{size}" height="{size}" fill="{ICON_COLOURS[kind]}"/>')
    wrong = "" if ic.wrongly is None else f", {_few(ic.wrongly_exact)} of them only because of false records"
    alt = f"Of 1,000 citizens, {_few(ic.denied_exact)} were denied something{wrong}."
    w, h = cols * (size + gap), 25 * (size + gap)
    legend = ([("wrongly", "denied only because of false records")] if ic.wrongly is not None else []) + [
        ("denied", "denied something (other reasons)"), ("other", "not denied")]
    return (f'<figure><svg class="icons" viewBox="0 0 {w} {h}" role="img" aria-label="{html.escape(alt)}">'
            f"<title>{html.escape(alt)}</title>{''.join(cells)}</svg><figcaption class='legend'>"
            + "".join(f'<span><i class="sw" style="background:{ICON_COLOURS[k]}"></i>{html.escape(t)}</span>'
                      for k, t in legend)
            + f"<br>{html.escape(alt)} Scaled from the whole population (rounded to whole citizens per 1,000)."
            "</figcaption>"
            "</figure>")


def _findings(hs: list[Headline]) -> str:
    return "<ul class=\"findings\">" + "".join(f'<li data-headline="{h.key}">{h.html}</li>' for h in hs) + "</ul>"


def _story(res: dict[str, Any]) -> str:
    return ('<section class="story" aria-label="The story in three numbers">'
            + "".join(f'<p data-headline="{h.key}">{h.html}</p>' for h in story(res)) + "</section>")


def _title(res: dict[str, Any], lab: Labels) -> str:
    m = res["meta"]
    return (f"What the {lab.name(m['scenario'])} system did to {m['population']:,} synthetic citizens in "
            f"{m['days']} days")


def _small_sample(res: dict[str, Any]) -> str:
    k = res["meta"]["replicates"]
    if k >= 5:
        return ""
    return (f'<p class="warn">Small sample: {k} replicate{"s" if k != 1 else ""}. '
            + ("No interval can be given; " if k == 1 else "Intervals are wide and each replicate is shown; ")
            + "run the audit with <code>-k 5</code> or more for firmer numbers.</p>")


def _harms_table(res: dict[str, Any]) -> str:
    """Each harm against its counterfactual: net denials, citizens harmed, citizens the other way."""
    harms = res["meta"].get("harms") or {}
    if not harms:
        return ""
    out = ["<h3>Harms against counterfactual runs (same seeds, citizen by citizen)</h3>", "<div class='tablewrap'>",
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
    out.append("</table></div><p class='caption'>Per-citizen columns: view <code>harms</code> in each system run "
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
    lab = from_result(res)
    out = [f"<p>Flagged ratios (beyond 0.8–1.25; pooled over replicates; reference groups "
           f"{html.escape(', '.join(lab.group(d, g) for d, g in (fair.get('reference') or {}).items()))}); ratios on "
           f"fewer than {fair.get('min_events')} events are never flagged; groups under "
           f"{fair.get('min_population', 30)} citizens are "
           "left out. Shaded rows: the 95% interval excludes 1. With this many comparisons, some flags on small "
           "groups are chance: about 1 in 20 comparisons without a real difference shows a 95% interval "
           "excluding 1.</p>"]
    for label, rs in (("Single dimensions", rows), ("Intersectional groups (significant only, largest first)",
                                                    inter[:limit])):
        out.append(f"<h4>{label}</h4>")
        if not rs:
            out.append('<p class="nodata">none</p>')
            continue
        out.append("<div class='tablewrap'><table><tr><th class='l'>group</th><th class='l'>outcome</th>"
                   "<th>citizens</th><th>rate</th>"
                   "<th class='l'>reference</th><th>ref. rate</th><th>ratio</th><th>95% CI</th></tr>")
        for r in rs[:limit]:
            pc = r["outcome"] == "adverse_records"

            def rate(v: float, pc: bool = pc) -> str:
                return fmt(v, 2) if pc else fmt(v, 3, pct=True) + "%"
            out.append(f"<tr class='{'flag' if r['significant'] else ''}'><td class='l'>"
                       f"{html.escape(lab.group(r['dimension'], r['group']))}</td>"
                       f"<td class='l'>{html.escape(r['label'])}</td><td>{r['population']:,}</td>"
                       f"<td>{rate(r['rate'])}</td><td class='l'>{html.escape(lab.value(r['reference']))}</td>"
                       f"<td>{rate(r['reference_rate'])}</td><td>{r['ratio']:.2f}</td>"
                       f"<td>{fmt(r['lo'], 2)}–{fmt(r['hi'], 2)}</td></tr>")
        out.append("</table></div>")
    return "\n".join(out)


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
    return ("<details><summary>How to check every number with SQL</summary><p>Every number comes from the run "
            "directories' DuckDB catalogs (first replicate shown):</p><pre>"
            + html.escape("\n".join(q)) + "</pre></details>")




def _chart_sections(res: dict[str, Any], prefix: str = "chart") -> str:
    parts = []
    for fn in charts.ALL:
        c = fn(res)
        parts.append(figure_block(c, f"{prefix}-{fn.__name__}", f"{res['meta']['scenario']}-{fn.__name__}"))
        if fn is charts.disparate_impact:
            parts.append(f"<details><summary>All flagged ratios</summary>{_di_table(res)}</details>")
    return "\n".join(parts)


def report_html(res: dict[str, Any], script_src: str | None = None) -> str:
    m = res["meta"]
    lab = from_result(res)
    title = _title(res, lab)
    seeds = ", ".join(str(s) for s in m["seeds"])
    against = (f"paired with {html.escape(lab.name(str(m.get('baseline_scenario'))))} (same citizens, same seeds)"
               if m.get("paired") else "no counterfactual (deterrence and chilling are not measured)")
    head = (f"<h1>{html.escape(title)}</h1><p class=\"meta\">Scenario {html.escape(lab.name(m['scenario']))}: "
            f"{m['population']:,} synthetic citizens × {m['days']} days; {m['replicates']} replicate(s), seed(s) "
            f"{seeds}; {against}. Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.</p>")
    note = ("<p class=\"note\">All citizens are synthetic. Rates, error profiles and responses are the scenario's "
            "assumptions; the figures show what such a system does under them, not what any real system did.</p>")
    body = (head + _story(res) + icon_array(icon_counts(res)) + note + _small_sample(res)
            + "<h2>The findings, chart by chart</h2>" + _chart_sections(res)
            + "<h2>Detail: every finding with its interval</h2>" + _findings(headlines(res)) + _harms_table(res)
            + due_process.section(res, lab) + METHODS + _sql_block(res))
    return framed(title, body, script_src)


def write_plotly_beside(path: Path) -> str:
    """Write plotly.js once beside an HTML file (skipped when already there); return its relative name."""
    target = path.parent / PLOTLY_FILE
    if not target.exists() or target.stat().st_size < 1000:
        tmp = target.with_suffix(".tmp")
        tmp.write_text(get_plotlyjs(), encoding="utf-8")
        tmp.replace(target)
    return PLOTLY_FILE


def _scenario_diff(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> list[str]:
    """What differs between two results' setups, in sentences (empty when nothing does)."""
    ma, mb = a["meta"], b["meta"]
    lab = from_result(a)
    out = []
    if ma["scenario"] != mb["scenario"]:
        out.append(f"Scenario: A is {lab.name(ma['scenario'])}, B is {lab.name(mb['scenario'])}.")
    if ma["population"] != mb["population"]:
        out.append(f"Size: A has {ma['population']:,} citizens, B has {mb['population']:,}.")
    if ma["days"] != mb["days"]:
        out.append(f"Length: A runs {ma['days']} days, B runs {mb['days']}.")
    if ma["seeds"] != mb["seeds"]:
        out.append(f"Seeds: A {', '.join(map(str, ma['seeds']))}; B {', '.join(map(str, mb['seeds']))}.")
    for what, key in (("lists", "lists"), ("activities", "attempts"), ("grades", "grades")):
        xa, xb = set(a["first"].get(key) or []), set(b["first"].get(key) or [])
        if xa != xb:
            only_a = ", ".join(lab.name(x) for x in sorted(xa - xb)) or "none"
            only_b = ", ".join(lab.name(x) for x in sorted(xb - xa)) or "none"
            out.append(f"{what.capitalize()} only in A: {only_a}; only in B: {only_b}.")
    sa = {r["sanction"] for r in a["first"].get("sanctions") or []}
    sb = {r["sanction"] for r in b["first"].get("sanctions") or []}
    if sa != sb:
        out.append("Sanction rules that denied anything differ: only in A: "
                   + (", ".join(lab.name(x) for x in sorted(sa - sb)) or "none") + "; only in B: "
                   + (", ".join(lab.name(x) for x in sorted(sb - sa)) or "none") + ".")
    return out


COMPARE_FIGURES = ("citizens.sanctioned", "denied.total", "harm.wrongful.citizens", "harm.missed.citizens",
                   "harm.lawful.citizens", "harm.cross_context.citizens", "harm.association.citizens",
                   "records.official_false", "association_only.citizens", "events.infraction.total",
                   "events.speech.total", "gini.score")
COMPARE_CHARTS = (charts.denied_by_group, charts.wrongful_missed, charts.disparate_impact, charts.list_sizes,
                  charts.grade_mix)


def difference_chart(a: dict[str, Any], b: dict[str, Any]) -> charts.Chart:
    """B minus A per 1,000 citizens of each run, for the key figures: the difference drawn directly."""
    lab = from_result(a)
    pa, pb = a["meta"]["population"] or 1, b["meta"]["population"] or 1
    rows = []
    for k in COMPARE_FIGURES:
        if k == "gini.score" or k not in a["intervals"] or k not in b["intervals"]:
            continue
        va, vb = a["intervals"][k]["mean"], b["intervals"][k]["mean"]
        if va is None or vb is None or not (va or vb):
            continue
        rows.append((lab.metric(k), 1000 * vb / pb - 1000 * va / pa))
    if not rows:
        return charts.Chart("B against A", None, "No key figure differs from zero in either run.")
    rows.sort(key=lambda r: r[1])
    fig = go.Figure(go.Bar(y=[r[0] for r in rows], x=[r[1] for r in rows], orientation="h", name="B − A",
                           marker_color=[charts.PALETTE[5] if r[1] > 0 else charts.PALETTE[0] for r in rows]))
    fig.add_vline(x=0, line_color="#444444")
    charts._layout(fig, height=26 * len(rows) + 140, xaxis_title="B − A, per 1,000 citizens")
    big = max(rows, key=lambda r: abs(r[1]))
    word = "more" if big[1] > 0 else "fewer"
    return charts.Chart(f"The largest difference: {abs(big[1]):,.1f} {word} per 1,000 citizens in B ({big[0]})",
                        fig, "Each bar: the figure per 1,000 citizens of run B minus the same in run A (means over "
                        "replicates). Right of zero: more in B; left: fewer.")


def compare_html(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str,
                 script_src: str | None = None) -> str:
    """Two runs: what differs between them, key figures per 1,000 citizens, then each chart on shared axes."""
    lab = from_result(a)
    ma, mb = a["meta"], b["meta"]
    title = f"Comparing {name_a} (A) with {name_b} (B)"
    diffs = _scenario_diff(a, b, name_a, name_b)
    paired = ma["seeds"] == mb["seeds"] and ma["population"] == mb["population"] and ma["days"] == mb["days"]
    warn = ""
    if ma["population"] != mb["population"] or ma["days"] != mb["days"]:
        warn = ("<p class=\"warn\"><b>Warning: different sizes.</b> A has "
                f"{ma['population']:,} citizens × {ma['days']} days, B has {mb['population']:,} × {mb['days']}: "
                "compare the rates per 1,000 citizens, not the counts.</p>")
    note = ("Same seeds, population size and days: the runs share their random numbers, so differences are effects of "
            "the scenarios, not sampling noise." if paired else
            "Different seeds or sizes: differences mix scenario effects with sampling noise.")
    head = (f"<h1>{html.escape(title)}</h1><p class=\"meta\">A = {html.escape(name_a)}: "
            f"{html.escape(lab.name(ma['scenario']))}, {ma['population']:,} citizens × {ma['days']} days, seeds "
            f"{', '.join(map(str, ma['seeds']))}. B = {html.escape(name_b)}: {html.escape(lab.name(mb['scenario']))}, "
            f"{mb['population']:,} × {mb['days']} days, seeds {', '.join(map(str, mb['seeds']))}.</p>"
            "<h2>What differs between A and B</h2><ul class='diff'>"
            + ("".join(f"<li>{html.escape(d)}</li>" for d in diffs) or "<li>Nothing in the setup: same scenario, "
               "size and seeds.</li>") + f"</ul>{warn}<p class=\"note\">{note}</p>")
    rows = []
    for k in COMPARE_FIGURES:
        if k not in a["intervals"] or k not in b["intervals"]:
            continue
        va, vb = a["intervals"][k]["mean"], b["intervals"][k]["mean"]
        if not (va or vb):
            continue
        digits = 4 if k.startswith("gini") else 0
        per = k != "gini.score"
        ra = va * 1000 / ma["population"] if per and va is not None else va
        rb = vb * 1000 / mb["population"] if per and vb is not None else vb
        diff = (rb - ra) if ra is not None and rb is not None else None
        d = 4 if not per else 1
        rows.append(f"<tr data-figure='{html.escape(k)}'><td class='l'>{html.escape(lab.metric(k))}</td>"
                    f"<td>{fmt(va, digits)}</td><td>{fmt(vb, digits)}</td>"
                    f"<td>{fmt(ra, d)}</td><td>{fmt(rb, d)}</td><td>{fmt(diff, d)}</td></tr>")
    diff_chart = figure_block(difference_chart(a, b), "cmp-difference", f"{name_a}-vs-{name_b}-difference")
    table = ("<div class='tablewrap'><table><tr><th class='l'>figure</th><th>A</th><th>B</th><th>A per 1,000</th>"
             "<th>B per 1,000</th><th>B − A per 1,000</th></tr>" + "".join(rows) + "</table></div>"
             "<p class='caption'>Means over replicates; per 1,000 citizens of each run (score inequality as is).</p>")
    stories = "".join(f"<h3>{label}: {html.escape(name)}</h3>" + _findings(story(res))
                      for res, name, label in ((a, name_a, "A"), (b, name_b, "B")))
    blocks = []
    for fn in COMPARE_CHARTS:
        ca, cb = fn(a), fn(b)
        figs = [c.fig for c in (ca, cb) if c.fig is not None]
        if len(figs) == 2:
            charts.share_axes(figs)
        for c, side, name in ((ca, "a", name_a), (cb, "b", name_b)):
            c2 = charts.Chart(f"{side.upper()} ({name}): {c.title}", c.fig,
                              c.caption + (" Same axes as the other side." if len(figs) == 2 else ""))
            blocks.append(figure_block(c2, f"cmp-{fn.__name__}-{side}", f"{name}-{fn.__name__}"))
    body = (head + "<h2>Key figures</h2>" + diff_chart + table + "<h2>The story of each</h2>" + stories
            + "<h2>Side by side, on the same axes</h2>" + "".join(blocks) + METHODS)
    return framed(title, body, script_src)
