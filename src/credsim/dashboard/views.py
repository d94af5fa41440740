"""Page pieces built from audit results: headline numbers, findings, charts, timelines.

The charts are the report's own (:mod:`credsim.report.charts`), so the page and the HTML
report always draw the same figures. Every headline number is a table cell carrying
``data-figure`` (the figure's name in ``audit.json``), ``data-col`` and ``data-value``, so
a reader can look the number up and a test can read it.
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from credsim.report import charts
from credsim.report.findings import fmt, headlines
from credsim.report.labels import Labels, for_run, from_result

GRAPH_CONFIG: Any = {"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}
PAIRED_ONLY = (charts.deterrence_chilling, charts.chilling_by_group)  # already differences from the baseline
# single-panel charts that can share axes side by side (the others are grids or curves of their own)
SHARED = (charts.wrongful_missed, charts.denied_by_group, charts.list_sizes, charts.grade_mix,
          charts.disparate_impact)
COMPARE_CHARTS = (charts.wrongful_missed, charts.denied_by_group, charts.list_sizes, charts.grade_mix,
                  charts.disparate_impact)


def figure_rows(res: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(figure name, label, digits) of the headline table, for the figures this run has."""
    f = res["first"]
    s = f["scalars"]
    lab = from_result(res)
    rows: list[tuple[str, str, int]] = [
        ("citizens.sanctioned", "Citizens denied something at least once", 0),
        ("denied.total", "Attempts denied (all activities)", 0),
        ("wrongful.total", "Wrongful denials (the true records would have allowed them)", 0),
        ("citizens.wrongfully_sanctioned", "Citizens wrongfully denied", 0),
        ("missed.total", "Missed sanctions (true records called for one)", 0),
    ]
    for a in f["attempts"]:
        if f"denied.{a}" in s:
            rows.append((f"denied.{a}", f"Denied: {lab.name(a)}", 0))
    rows.append(("records.official_false", "False records filed", 0))
    for li in f["lists"]:
        rows.append((f"listed.{li}.end", f"On the list {lab.name(li)} at the end", 0))
    rows += [("association_only.citizens", "Citizens denied only because of their contacts", 0),
             ("events.infraction.total", "Infractions committed", 0),
             ("events.speech.total", "Lawful critical posts and searches", 0),
             ("gini.score", "Score inequality (Gini)", 3)]
    return [r for r in rows if r[0] in s]


def pooled_baseline(res: dict[str, Any]) -> dict[str, Any] | None:
    """The paired baseline's figures as means over the same replicates as the result's own figures.

    A mean over seeds must sit beside a mean over the same seeds' baselines, never beside the first
    seed's baseline alone (that once showed the system raising infractions while the audit said they fell).
    """
    reps = [r.get("baseline") for r in res.get("replicates") or []]
    if not reps or any(b is None for b in reps):
        return None
    names = set().union(*(b.keys() for b in reps if b))
    intervals = {}
    for n in names:
        vals = [b.get(n) for b in reps if b]
        ok = [float(v) for v in vals if isinstance(v, (int, float)) and math.isfinite(v)]
        intervals[n] = {"mean": sum(ok) / len(ok) if len(ok) == len(vals) else None, "k": len(ok)}
    return {"intervals": intervals, "first": {"scalars": reps[0]}, "meta": res["meta"]}


def _value(res: dict[str, Any] | None, name: str) -> float | None:
    if res is None:
        return None
    iv = (res.get("intervals") or {}).get(name)
    v = iv.get("mean") if iv else res["first"]["scalars"].get(name)
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def _cell(res: dict[str, Any] | None, name: str, col: str, digits: int, na: str = "n/a") -> html.Td:
    v = _value(res, name)
    shown = fmt(v, digits) if v is not None else na
    attrs: dict[str, Any] = {"data-figure": name, "data-col": col, "data-value": "" if v is None else repr(v)}
    return html.Td(shown, className="num", **attrs)


def headline_table(res: dict[str, Any], base: dict[str, Any] | None, prev: dict[str, Any] | None,
                   prev_label: str = "previous run", run: str = "", table_id: str = "headline-table") -> html.Table:
    """Key figures: this policy, the paired baseline (no system), and the previous run for comparison."""
    base = pooled_baseline(res) or base  # like with like: pooled over the same seeds as the policy's column
    k = res["meta"].get("replicates", 1)
    over = f" (means over {k} seeds)" if k > 1 else ""
    head = [html.Th("figure (over the whole run)", className="l"), html.Th("your policy" + over),
            html.Th("no system (same citizens, same seeds)" + over)]
    if prev is not None:
        head.append(html.Th(prev_label))
    body = []
    for name, label, digits in figure_rows(res):
        cells = [html.Td(label, className="l", title=name), _cell(res, name, "system", digits),
                 _cell(base, name, "baseline", digits, na="–")]
        if prev is not None:
            cells.append(_cell(prev, name, "previous", digits, na="–"))
        body.append(html.Tr(cells))
    attrs: dict[str, Any] = {"data-run": run}
    return html.Table([html.Thead(html.Tr(head)), html.Tbody(body)], className="figures", id=table_id,
                      **attrs)


def findings(res: dict[str, Any]) -> html.Ul:
    """The report's findings sentences, with their numbers in bold."""
    items = []
    for h in headlines(res):
        parts: list[Any] = []
        for p in h.parts:
            fig_attr: dict[str, Any] = {"data-figure": p[0]} if not isinstance(p, str) else {}
            parts.append(p if isinstance(p, str) else html.B(p[2], **fig_attr))
        head_attr: dict[str, Any] = {"data-headline": h.key}
        items.append(html.Li(parts, **head_attr))
    return html.Ul(items, className="findings")


def _graph(fig: go.Figure, gid: str) -> dcc.Graph:
    fig.update_layout(margin={"l": 50, "r": 10, "t": 40, "b": 40})
    fig.update_annotations(font_size=12)  # subplot titles fit half a page
    return dcc.Graph(id=gid, figure=fig, config=GRAPH_CONFIG, className="graph")


def _cell_chart(chart: charts.Chart | None, gid: str, missing: str) -> html.Div:
    if chart is None:
        return html.Div(html.P(missing, className="nodata"), className="cell")
    _title, fig, caption = chart
    if fig is None:
        return html.Div(html.P(caption, className="nodata"), className="cell", id=gid)
    return html.Div(_graph(fig, gid), className="cell")


def chart_grid(res: dict[str, Any], base: dict[str, Any] | None, prefix: str = "chart",
               right: str = "no system (baseline)", span_paired: bool = True, run: str = "") -> html.Div:
    """Every report chart: the policy on the left, the baseline (or another run) on the right.

    With ``span_paired``, charts that are already differences from the baseline span both columns.
    """
    rows: list[Any] = [html.Div([html.Div(html.H3("your policy"), className="cell colhead"),
                                 html.Div(html.H3(right), className="cell colhead")],
                                className="pair")]
    for fn in charts.ALL:
        title, fig, caption = fn(res)
        key = fn.__name__
        rows.append(html.H2(title))
        if fn in PAIRED_ONLY and span_paired:
            rows.append(html.Div(_graph(fig, f"{prefix}-{key}-system") if fig is not None
                                 else html.P(caption, className="nodata", id=f"{prefix}-{key}-system"),
                                 className="wide"))
        else:
            other = fn(base) if base is not None else None
            if fig is not None and other is not None and other.fig is not None and fn in SHARED:
                charts.share_axes([fig, other.fig])  # side by side: one scale, or the smaller run looks larger
            rows.append(html.Div([
                html.Div(_graph(fig, f"{prefix}-{key}-system") if fig is not None else
                         html.P(caption, className="nodata", id=f"{prefix}-{key}-system"), className="cell"),
                _cell_chart(other, f"{prefix}-{key}-right", "no paired baseline for this run"),
            ], className="pair"))
        rows.append(html.P(caption, className="caption"))
    attrs: dict[str, Any] = {"data-run": run}
    return html.Div(rows, className="charts", **attrs)


def compare_view(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> html.Div:
    """Two runs side by side: a table of figures, then the main charts of each."""
    ma, mb = a["meta"], b["meta"]
    same = ma["seeds"] == mb["seeds"] and ma["population"] == mb["population"] and ma["days"] == mb["days"]
    note = ("Same seed, size and length: the runs share their random numbers, so differences are effects of the "
            "settings, not chance." if same else
            "Different seeds, sizes or lengths: differences mix the settings' effects with chance.")
    names = [r for r in figure_rows(a) if r[0] in b["first"]["scalars"]]
    names += [r for r in figure_rows(b) if r[0] not in a["first"]["scalars"]]
    body = []
    for name, label, digits in names:
        va, vb = _value(a, name), _value(b, name)
        diff = fmt(vb - va, digits) if va is not None and vb is not None else "–"
        body.append(html.Tr([html.Td(label, className="l", title=name), _cell(a, name, "a", digits, "–"),
                             _cell(b, name, "b", digits, "–"), html.Td(diff, className="num")]))
    table = html.Table([html.Thead(html.Tr([html.Th("figure", className="l"), html.Th(f"A: {name_a}"),
                                            html.Th(f"B: {name_b}"), html.Th("B − A")])), html.Tbody(body)],
                       className="figures", id="compare-table")
    rows: list[Any] = [html.P(note, className="note"), table,
                       html.Div([html.Div(html.H3(f"A: {name_a}"), className="cell colhead"),
                                 html.Div(html.H3(f"B: {name_b}"), className="cell colhead")], className="pair")]
    for fn in COMPARE_CHARTS:
        ca, cb = fn(a), fn(b)
        if ca.fig is not None and cb.fig is not None:
            charts.share_axes([ca.fig, cb.fig])
        rows.append(html.H2(ca.title))
        rows.append(html.Div([_cell_chart(ca, f"cmp-{fn.__name__}-a", ""),
                              _cell_chart(cb, f"cmp-{fn.__name__}-b", "")], className="pair"))
        rows.append(html.P(ca.caption + " Both sides share their axes.", className="caption"))
    return html.Div(rows)


def _rec(r: dict[str, Any], lab: Labels) -> str:
    flag = "FALSE record" if not r["true"] else "true record"
    return f"{lab.name(r['item'])} filed day {r['day']} ({r['points']:+.0f} pts, {flag}, from {r['source'] or '?'})"


def explain_view(ex: Any, show_all: bool = False, limit: int = 400) -> html.Div:
    """One traced citizen: who, the score path, the timeline, and why each denial happened."""
    s = ex.summary
    lab = for_run(ex.run_dir)
    who = ", ".join(lab.group(k, str(v)) for k, v in ex.groups.items())
    lists_on = [lab.name(k[3:]) for k, v in s.items() if k.startswith("on_") and v]
    grade = f" (grade {s['grade']})" if s.get("grade") else ""
    sgrade = f" (grade {s['shadow_grade']})" if s.get("shadow_grade") else ""
    parts: list[Any] = [
        html.H2(f"Citizen {ex.citizen}"), html.P(who, className="meta"),
        html.P(f"End of run: official score {s.get('score', math.nan):.0f}{grade}; on true records only "
               f"{s.get('shadow_score', math.nan):.0f}{sgrade}; on lists: {', '.join(lists_on) or 'none'}. "
               f"Lifetime: {s.get('n_records_true', 0) + s.get('n_records_false', 0)} official records "
               f"({s.get('n_records_false', 0)} false), {s.get('n_denied', 0)} denial(s) "
               f"({s.get('n_wrongful', 0)} wrongful), {s.get('n_missed', 0)} missed.", id="explain-summary")]
    vals = [(d, o, sh) for d, o, sh in ex.score_path if not math.isnan(o)]
    if vals:
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=[v[0] for v in vals], y=[v[1] for v in vals], name="official score",
                                 line={"color": "#d95f02", "shape": "hv"}))
        fig.add_trace(go.Scatter(x=[v[0] for v in vals], y=[v[2] for v in vals], name="on true records only",
                                 line={"color": "#1b9e77", "dash": "dot", "shape": "hv"}))
        denied_days = sorted({t["day"] for t in ex.timeline if t["what"] == "denied"})
        for day in denied_days:
            fig.add_vline(x=day, line_color="#b3301e", line_dash="dash", opacity=0.6)
        charts.white(fig).update_layout(height=300, xaxis_title="day", yaxis_title="score",
                                        legend={"orientation": "h", "y": -0.3},
                                        margin={"l": 50, "r": 10, "t": 20, "b": 40})
        parts.append(dcc.Graph(id="explain-score", figure=fig, config=GRAPH_CONFIG))
        parts.append(html.P("Orange: the official score, from every record including false ones. Green dotted: "
                            "the score on true records only."
                            + (" Red dashed lines: days an attempt was denied." if denied_days else ""),
                            className="caption"))
    rows = []
    hidden = 0
    for e in ex.timeline:
        what, item = e["what"], e["item"]
        cls = ""
        if what == "event":
            k = ex.kinds.get(item, "other")
            if not show_all and k in ("speech", "attempt"):
                hidden += 1
                continue
            label, detail = "did", f"a true {k} event"
        elif what == "record":
            if e["view"] == "shadow":
                if not show_all:
                    hidden += 1
                    continue
                label, detail = "unseen", "the authority never saw this"
            else:
                label = "FALSE record" if not e["true"] else "record"
                cls = "false" if not e["true"] else ""
                detail = f"{e['points']:+.0f} points, from {e['source'] or '?'}"
        elif what == "denied":
            label, cls = "DENIED", "denied"
            detail = e["detail"] + (" — wrongful: the true records would allow it" if e.get("wrongful") else "")
        else:
            label, detail = what, f"{e['view']} view"
        rows.append(html.Tr([html.Td(str(e["day"])), html.Td(label), html.Td(lab.name(item), className="l"),
                             html.Td(detail, className="l")], className=cls))
    shown = rows[:limit]
    parts.append(html.H3("Timeline"))
    parts.append(html.Table([html.Thead(html.Tr([html.Th("day"), html.Th("what"), html.Th("item", className="l"),
                                                 html.Th("details", className="l")])), html.Tbody(shown)],
                            className="timeline", id="explain-timeline"))
    more = []
    if len(rows) > limit:
        more.append(f"{len(rows) - limit} later rows not shown")
    if hidden:
        more.append(f"{hidden} speech, attempt and unseen events hidden")
    if more:
        parts.append(html.P("; ".join(more) + ".", className="caption"))
    parts.append(html.H3("Why each denial happened"))
    if not ex.sanctions:
        parts.append(html.P("No official denial: nothing to explain.", className="nodata"))
    items = []
    for sn in ex.sanctions:
        sub: list[Any] = [html.B(f"day {sn.day}: {lab.name(sn.attempt)} denied by {lab.name(sn.sanction)}"),
                          html.Span(" (wrongful: the true-records-only view allows it)", className="bad")
                          if sn.wrongful else "", html.Br(), sn.note]
        if sn.removal:
            sub += [html.Br(), f"Remove {len(sn.removal)} record(s) to avoid it: "
                    + "; ".join(_rec(r, lab) for r in sn.removal)]
        if sn.false_only and any(r["true"] for r in sn.removal):
            sub += [html.Br(), "or only false records: " + "; ".join(_rec(r, lab) for r in sn.false_set)]
        items.append(html.Li(sub))
    parts.append(html.Ul(items[:100], id="explain-sanctions"))
    return html.Div(parts)
