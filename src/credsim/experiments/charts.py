"""Self-contained HTML for sweeps and sensitivity analyses (plotly inline, no CDN).

Uses the page frame of :mod:`credsim.report.html` (plotly.js embedded once in the head),
so a sweep's page opens offline like a run's report.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go

from credsim.report.charts import white
from credsim.report.html import page


def _fig(fig: go.Figure, div_id: str) -> str:
    white(fig).update_layout(height=460, margin={"l": 60, "r": 20, "t": 50, "b": 50})
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False}))


def _table(cols: list[str], rows: list[tuple[Any, ...]], limit: int = 200) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows[:limit])
    return f"<table><tr>{head}</tr>{body}</table>"


def pareto_figure(points: list[dict[str, Any]], front: set[int]) -> go.Figure:
    """Compliance gained vs wrongful-sanction rate; colour = disparate impact; the front joined."""
    ok = [p for p in points if p.get("wrongful_rate") is not None]
    x_key = "compliance_gain" if any(p.get("compliance_gain") is not None for p in ok) else "infraction_rate"
    ok = [p for p in ok if p.get(x_key) is not None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[p[x_key] for p in ok], y=[p["wrongful_rate"] for p in ok], mode="markers", name="policies",
        marker={"size": 10, "color": [p.get("disparate_impact") or 0 for p in ok], "colorscale": "Viridis",
                "showscale": True, "colorbar": {"title": "disparate<br>impact"}},
        text=[f"point {p['point']}" for p in ok], hovertemplate="%{text}<br>x=%{x:.4g}<br>wrongful=%{y:.4g}"))
    fr = sorted((p for p in ok if p["point"] in front), key=lambda p: p[x_key])
    fig.add_trace(go.Scatter(x=[p[x_key] for p in fr], y=[p["wrongful_rate"] for p in fr], mode="lines+markers",
                             name="Pareto front", marker={"size": 14, "symbol": "circle-open", "color": "#b3301e"},
                             line={"color": "#b3301e", "dash": "dot"}))
    fig.update_layout(title="Trade-off: compliance gained vs wrongful sanctions (colour: disparate impact)",
                      xaxis_title=x_key.replace("_", " "), yaxis_title="wrongful denials per attempt")
    return fig


def write_sweep_report(out: Path) -> Path:
    con = duckdb.connect(str(out / "sweep.duckdb"), read_only=True)
    try:
        cur = con.execute("SELECT * FROM points ORDER BY point")
        cols = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
        front = {int(r[0]) for r in con.execute("SELECT point FROM pareto").fetchall()}
        name = con.execute("SELECT name FROM sweep_info").fetchone()
    finally:
        con.close()
    points = [dict(zip(cols, r, strict=True)) for r in rows]
    title = f"credsim sweep: {name[0] if name else out.name}"
    body = (f"<h1>{html.escape(title)}</h1><p class='meta'>{len(points)} policies; objectives: maximise "
            "compliance gained (infractions deterred against the same seed without responses), minimise "
            "wrongful denials per attempt and disparate impact (max/min denial rate across groups).</p>"
            "<h2>Trade-off frontier</h2>" + _fig(pareto_figure(points, front), "pareto")
            + "<h2>Pareto-optimal policies</h2>"
            + _table(cols, [r for r in rows if int(r[0]) in front])
            + "<h2>All policies (means over replicates)</h2>" + _table(cols, rows)
            + "<p class='meta'>SQL: <code>credsim.experiments.connect(DIR)</code>; tables runs, points, pareto; "
              "view metrics.</p>")
    path = out / "sweep.html"
    path.write_text(page(title, body), encoding="utf-8")
    return path


def indices_figure(indices: list[dict[str, Any]], method: str) -> go.Figure:
    """Grouped bars: first-order and total Sobol indices (or Morris mu* and sigma) per parameter and output."""
    fig = go.Figure()
    keys = ("S1", "ST") if method == "sobol" else ("mu_star", "sigma")
    outputs = list(dict.fromkeys(r["output"] for r in indices))
    for out in outputs:
        rs = [r for r in indices if r["output"] == out]
        for k in keys:
            err = [r.get(f"{k}_conf") for r in rs]
            fig.add_trace(go.Bar(name=f"{out}: {k}", x=[r["parameter"] for r in rs], y=[r.get(k) for r in rs],
                                 error_y={"type": "data", "array": [e or 0 for e in err]}))
    fig.update_layout(barmode="group", title=f"Sensitivity indices ({method})", yaxis_title="index")
    return fig


def write_sensitivity_report(out: Path, indices: list[dict[str, Any]], method: str, name: str) -> Path:
    cols = list(indices[0]) if indices else []
    title = f"credsim sensitivity: {name}"
    body = (f"<h1>{html.escape(title)}</h1><p class='meta'>Method: {method}. Every sample runs with the same "
            "seed (common random numbers), so differences come from the parameters.</p>"
            + _fig(indices_figure(indices, method), "indices")
            + _table(cols, [tuple(r.values()) for r in indices]))
    path = out / "sensitivity.html"
    path.write_text(page(title, body), encoding="utf-8")
    return path
