"""The report's charts, as plotly figures built from an assembled audit result.

Each function returns a :class:`Chart`: the takeaway as the title (what a reader should
remember), the figure or None, and a caption saying how the figure was made. A chart
without data returns no figure and the page says why instead of drawing an empty frame.
Every name on an axis or in a legend goes through :mod:`credsim.report.labels`, so readers
see words, never identifiers.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from credsim.report.labels import Labels, from_result

FOUR_FIFTHS = (0.8, 1.25)
PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#666666"]  # Okabe-Ito
AXIS_ONLY = "axis-only"  # meta of a trace that only lays out categories (no data: left out of tables)
LOG_TICKS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100]


class Chart(NamedTuple):
    """A chart of the report: takeaway title, figure (None when there is nothing to draw), caption."""

    title: str
    fig: go.Figure | None
    caption: str


def grade_colours(n: int) -> list[str]:
    """An ordered, colour-blind-safe palette for grades, best (first) to worst (last): viridis."""
    if n <= 1:
        return ["#21918c"] * n
    return list(sample_colorscale("Viridis", [i / (n - 1) for i in range(n)]))


def white(fig: go.Figure) -> go.Figure:
    """The ``plotly_white`` template, set the way plotly sets its default one on every new figure
    (``BaseFigure._initialize_layout_template``): a registered template was validated when registered, and
    ``template="plotly_white"`` validated and copied it again for every chart, ~85 ms each, most of the time a
    report took to write."""
    layout = fig.layout
    layout._validate = False
    try:
        layout.template = pio.templates["plotly_white"]
    finally:
        layout._validate = fig._validate
    return fig


def _layout(fig: go.Figure, height: int = 380, **kw: Any) -> go.Figure:
    white(fig).update_layout(height=height, margin={"l": 60, "r": 20, "t": 30, "b": 50},
                             legend={"orientation": "h", "y": -0.2}, font={"size": 13}, separators=".,", **kw)
    return fig


def _k(res: dict[str, Any]) -> int:
    return int(res["meta"].get("replicates") or 1)


def _first_only(res: dict[str, Any]) -> str:
    k = _k(res)
    return f" First of {k} replicates only (the others are in the tables)." if k > 1 else ""


class Spread(NamedTuple):
    """One quantity over days across replicates: the mean, and the lowest and highest replicate each day."""

    mean: list[float | None]
    lo: list[float | None]
    hi: list[float | None]
    k: int


def spread(res: dict[str, Any], col: str) -> Spread | None:
    """A series across every replicate (None for a single replicate or a series some replicate lacks)."""
    found = [(r.get("series") or {}).get(col) for r in res.get("replicates") or []]
    cols: list[list[Any]] = [c for c in found if c is not None]
    if len(cols) < 2 or len(cols) < len(found):
        return None
    mean: list[float | None] = []
    lo: list[float | None] = []
    hi: list[float | None] = []
    for day in range(min(len(c) for c in cols)):
        vals = [float(c[day]) for c in cols if c[day] is not None]
        full = len(vals) == len(cols)  # a day some replicate did not record: no mean claimed
        mean.append(sum(vals) / len(vals) if full else None)
        lo.append(min(vals) if full else None)
        hi.append(max(vals) if full else None)
    return Spread(mean, lo, hi, len(cols))


def _fade(colour: str, alpha: float = 0.2) -> str:
    """A colour (``#rrggbb`` or ``rgb(r, g, b)``) as a translucent fill."""
    if colour.startswith("#"):
        r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    else:
        r, g, b = (int(float(v)) for v in colour[colour.index("(") + 1:colour.index(")")].split(",")[:3])
    return f"rgba({r},{g},{b},{alpha})"


def _band(fig: go.Figure, x: list[Any], sp: Spread, scale: Any, colour: str, name: str, group: str) -> None:
    """The range across replicates as a shaded band (two traces: the low edge, then the high edge filled)."""
    fig.add_trace(go.Scatter(x=x, y=[scale(v) for v in sp.lo], mode="lines", line={"width": 0}, legendgroup=group,
                             name=f"{name}: lowest of {sp.k} replicates", showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=[scale(v) for v in sp.hi], mode="lines", line={"width": 0}, legendgroup=group,
                             name=f"{name}: highest of {sp.k} replicates", showlegend=False, hoverinfo="skip",
                             fill="tonexty", fillcolor=_fade(colour)))


def _band_words(res: dict[str, Any]) -> str:
    k = _k(res)
    return (f" Lines: means over {k} replicates; shaded bands: from the lowest to the highest replicate on each "
            "day (min–max, not a confidence interval)." if k > 1 and spread_available(res) else _first_only(res))


def spread_available(res: dict[str, Any]) -> bool:
    """Whether the result carries each replicate's series (audits assembled with several replicates)."""
    reps = res.get("replicates") or []
    return len(reps) > 1 and all(r.get("series") for r in reps)


def _line(res: dict[str, Any], col: str) -> list[Any]:
    """The drawn line: the mean over replicates when every replicate's series is there, else the first's."""
    sp = spread(res, col)
    return sp.mean if sp is not None else res["first"]["series"][col]


def grade_mix(res: dict[str, Any]) -> Chart:
    f = res["first"]
    lab = from_result(res)
    ser, grades, n = f["series"], f["grades"], res["meta"]["population"]
    if not grades:
        return Chart("Grade mix over time", None, "This scenario has no grades.")
    fig = go.Figure()
    colours = grade_colours(len(grades))
    top, top_share = "", -1.0
    for i, g in enumerate(grades):
        if not any(ser[f"grade.{g}"]) and not any(ser[f"shadow_grade.{g}"]):
            continue
        c = colours[i]
        official = _line(res, f"grade.{g}")
        end = 100 * (official[-1] or 0) / n
        if end > top_share:
            top, top_share = lab.name(g), end
        sp = spread(res, f"grade.{g}")
        if sp is not None:
            _band(fig, ser["day"], sp, lambda v: 100 * v / n if v else None, c, lab.name(g), g)
        fig.add_trace(go.Scatter(x=ser["day"], y=[100 * v / n if v else None for v in official],
                                 name=lab.name(g), mode="lines", line={"color": c}, legendgroup=g))
        fig.add_trace(go.Scatter(x=ser["day"], y=[100 * v / n if v else None for v in _line(res, f"shadow_grade.{g}")],
                                 name=f"{lab.name(g)} (true records only)", mode="lines", legendgroup=g,
                                 line={"color": c, "dash": "dot"}, showlegend=False))
    _layout(fig, yaxis_title="% of citizens (log scale)", xaxis_title="day")
    fig.update_yaxes(type="log")
    return Chart(f"Most citizens ended in grade {top} ({top_share:.1f}%)", fig,
                 "Share of citizens in each grade (grades nobody held are left out); colours run from the best "
                 "grade (purple) to the worst (yellow). Solid: official; dotted: on true records only. Log scale, "
                 "so small grades stay visible." + _band_words(res))


def list_sizes(res: dict[str, Any]) -> Chart:
    f = res["first"]
    lab = from_result(res)
    ser = f["series"]
    if not f["lists"]:
        return Chart("List sizes over time", None, "This scenario has no lists.")
    fig = go.Figure()
    ends = []
    for i, li in enumerate(f["lists"]):
        c = PALETTE[i % len(PALETTE)]
        sp = spread(res, f"listed.{li}")
        if sp is not None:
            _band(fig, ser["day"], sp, lambda v: v, c, f"{lab.name(li)} (official)", li)
        official = _line(res, f"listed.{li}")
        fig.add_trace(go.Scatter(x=ser["day"], y=official, name=f"{lab.name(li)} (official)",
                                 line={"color": c}, legendgroup=li))
        fig.add_trace(go.Scatter(x=ser["day"], y=_line(res, f"shadow_listed.{li}"),
                                 name=f"{lab.name(li)} (true records only)", line={"color": c, "dash": "dot"}))
        ends.append((official[-1] or 0, lab.name(li)))
    _layout(fig, yaxis_title="citizens listed", xaxis_title="day")
    size, name = max(ends)
    return Chart(f"The largest list at the end: {name}, with {size:,.0f} citizens", fig,
                 "Solid: the official list. Dotted: who would be listed on true records only." + _band_words(res))


def denied_by_group(res: dict[str, Any]) -> Chart:
    f = res["first"]
    lab = from_result(res)
    rows = [g for g in f["groups"] if g.get("population")]
    per_rep = _group_rates(res)
    if not rows or not (any(g.get("denied.total") for g in rows)
                        or (per_rep and any(any(v) for v in per_rep["denied.total"].values()))):
        return Chart("Denied attempts by group", None, "No attempt was denied.")
    denied = {key: sum(v) / len(v) for key, v in per_rep["denied.total"].items()} if per_rep else {
        (g["dimension"], g["group"]): 1000 * g["denied.total"] / g["population"] for g in rows}
    wrongful = {key: sum(v) / len(v) for key, v in per_rep["wrongful.total"].items()} if per_rep else {
        (g["dimension"], g["group"]): 1000 * g["wrongful.total"] / g["population"] for g in rows}
    keys = sorted((kg for kg in ((g["dimension"], g["group"]) for g in rows) if kg in denied),
                  key=lambda kg: -denied[kg])
    y = [lab.group(*kg) for kg in keys]
    fig = go.Figure()
    x = [denied[kg] for kg in keys]
    err: dict[str, Any] = {"visible": False}
    if per_rep:
        err = {"type": "data", "symmetric": False, "visible": True, "thickness": 1.2,
               "array": [max(per_rep["denied.total"][kg]) - v for kg, v in zip(keys, x, strict=True)],
               "arrayminus": [v - min(per_rep["denied.total"][kg]) for kg, v in zip(keys, x, strict=True)]}
    fig.add_trace(go.Bar(y=y, x=x, name="denied", marker_color=PALETTE[5], orientation="h", error_x=err))
    fig.add_trace(go.Bar(y=y, x=[wrongful.get(kg, 0.0) for kg in keys],
                         name="of which the shadow view would not deny", marker_color=PALETTE[0], orientation="h"))
    _layout(fig, height=20 * len(rows) + 160, barmode="overlay", xaxis_title="denials per 1,000 citizens")
    fig.update_yaxes(autorange="reversed", tickfont={"size": 11})
    k = _k(res)
    how = (f" Bars: means over {k} replicates of each group's rate; whiskers on the denied bars: from the lowest "
           "to the highest replicate (min–max, not a confidence interval)." if per_rep else _first_only(res))
    return Chart(f"Citizens in the group {y[0]} were denied most often: "
                 f"{x[0]:,.1f} denials per 1,000 citizens", fig,
                 "Denials per 1,000 citizens of each group over the run, sorted from most to least." + how)


def _group_rates(res: dict[str, Any]) -> dict[str, dict[tuple[str, str], list[float]]] | None:
    """Per flow and group: its rate per 1,000 citizens in each replicate (None unless every replicate has it)."""
    reps = res.get("replicates") or []
    if len(reps) < 2 or not all(r.get("groups") for r in reps):
        return None
    out: dict[str, dict[tuple[str, str], list[float]]] = {"denied.total": {}, "wrongful.total": {}}
    for r in reps:
        for g in r["groups"]:
            if not g.get("population"):
                continue
            for flow, dst in out.items():
                dst.setdefault((g["dimension"], g["group"]), []).append(1000 * (g.get(flow) or 0) / g["population"])
    full = {kg for kg, v in out["denied.total"].items() if len(v) == len(reps)}
    return {flow: {kg: v for kg, v in dst.items() if kg in full} for flow, dst in out.items()}


def _err(iv: dict[str, Any]) -> tuple[float, float]:
    """(above, below) the mean of a 95% interval; (0, 0) without one."""
    if iv.get("k", 1) < 2 or iv.get("hi") is None or iv.get("lo") is None or iv.get("mean") is None:
        return 0.0, 0.0
    return iv["hi"] - iv["mean"], iv["mean"] - iv["lo"]


def wrongful_missed(res: dict[str, Any]) -> Chart:
    f = res["first"]
    lab = from_result(res)
    att = [a for a in f["attempts"] if (res["intervals"].get(f"denied.{a}", {}).get("mean") or 0)
           or (res["intervals"].get(f"missed.{a}", {}).get("mean") or 0)]
    if not att:
        return Chart("Official and shadow view disagreements, by activity", None,
                     "No attempt was denied in either view.")
    att.sort(key=lambda a: -(res["intervals"][f"denied.{a}"]["mean"] or 0))
    fig = go.Figure()
    k = _k(res)
    for key, label, color in (("denied", "denied (official)", PALETTE[5]),
                              ("wrongful", "denied, the shadow view would allow", PALETTE[0]),
                              ("missed", "allowed, the shadow view would deny", PALETTE[2])):
        ivs = [res["intervals"][f"{key}.{a}"] for a in att]
        errs = [_err(iv) for iv in ivs]
        fig.add_trace(go.Bar(x=[lab.name(a) for a in att], y=[iv["mean"] for iv in ivs], name=label,
                             marker_color=color,
                             error_y={"type": "data", "symmetric": False, "array": [e[0] for e in errs],
                                      "arrayminus": [e[1] for e in errs], "visible": k > 1}))
        if 1 < k < 5:  # few replicates: show each one, not just an interval
            reps = res.get("replicates") or []
            for r in reps:
                fig.add_trace(go.Scatter(x=[lab.name(a) for a in att],
                                         y=[(r.get("system") or {}).get(f"{key}.{a}") for a in att],
                                         mode="markers", marker={"color": "#222222", "size": 5, "symbol": "circle"},
                                         name="one replicate", showlegend=False, hoverinfo="y"))
    _layout(fig, barmode="group", yaxis_title="denials over the run")
    bars = (f"Bars: means over {k} replicates; whiskers: 95% interval across replicates"
            + ("; dots: each replicate." if k < 5 else ".")) if k > 1 else "One replicate: no interval."
    a0 = att[0]
    return Chart(f"Most denials were of {lab.name(a0)}: {res['intervals'][f'denied.{a0}']['mean']:,.0f} over the run",
                 fig, "In-run shadow view (every true event of an observed behaviour recorded, nothing false). "
                 "These compare with perfect surveillance; the harms table compares with counterfactual runs. "
                 + bars)


def _per_replicate(res: dict[str, Any], key: str) -> list[Any] | None:
    """Each replicate's ``key`` when there are several replicates and every one carries it, else None.

    An audit.json written before replicates carried ``key`` falls back to the first replicate's chart.
    """
    reps = res.get("replicates") or []
    if len(reps) < 2 or not all(key in r for r in reps):
        return None
    return [r[key] for r in reps]


class RuleSpread(NamedTuple):
    """One sanction rule's cross-context share (%) over the replicates in which it denied anyone."""

    rule: dict[str, Any]  # the rule as one replicate that fired it reports it (severity is the scenario's)
    mean: float
    lo: float
    hi: float
    fired: int  # replicates in which the rule denied someone: only there is a share defined


def _rule_spreads(per_rep: list[list[dict[str, Any]]]) -> list[RuleSpread]:
    found: dict[str, list[dict[str, Any]]] = {}
    for rules in per_rep:
        for r in rules:
            if r.get("denials"):
                found.setdefault(r["sanction"], []).append(r)
    out = []
    for rows in found.values():
        vals = [100 * (r["cross_mean"] or 0) for r in rows]
        out.append(RuleSpread(rows[0], sum(vals) / len(vals), min(vals), max(vals), len(rows)))
    return out


def cross_context(res: dict[str, Any]) -> Chart:
    lab = from_result(res)
    per_rep = _per_replicate(res, "sanctions")
    if per_rep is not None:
        return _cross_context_replicates(res, per_rep)
    rules = [r for r in res["first"].get("sanctions") or [] if r["denials"]]
    if not rules:
        return Chart("Cross-context share and proportionality, by sanction rule", None, "No denial to analyse.")
    rules.sort(key=lambda r: -(r["cross_mean"] or 0))
    fig = _cross_frame()
    names = [lab.name(r["sanction"]) for r in rules]
    fig.add_trace(go.Bar(x=names, y=[100 * (r["cross_mean"] or 0) for r in rules], marker_color=PALETTE[3],
                         name="cross-context %", showlegend=False), row=1, col=1)
    _severity_dots(fig, rules, names, "sanction rule")
    _cross_axes(fig)
    top = rules[0]
    return Chart(f"{names[0]}: {100 * (top['cross_mean'] or 0):.0f}% of what triggered its denials came from "
                 "another domain", fig, CROSS_WORDS + " (marker size: number of denials)." + _first_only(res))


CROSS_WORDS = ("Top: for each denial, the share of the list or points behind it that came from a domain other "
               "than the activity's, averaged by rule. Bottom: each rule's severity against the points the "
               "dossier held against the citizen when it fired")


def _cross_frame() -> go.Figure:
    return make_subplots(rows=2, cols=1, vertical_spacing=0.28,
                         subplot_titles=("share of trigger from another domain",
                                         "severity against points lost behind it"))


def _severity_dots(fig: go.Figure, rules: list[dict[str, Any]], names: list[str], name: str,
                   biggest: float | None = None) -> None:
    most = biggest if biggest is not None else max(x["denials"] for x in rules)
    fig.add_trace(go.Scatter(
        x=[r["gravity_median"] for r in rules], y=[r["severity"] for r in rules], mode="markers", text=names,
        name=name, hovertemplate="%{text}: median %{x} points, severity %{y}<extra></extra>",
        marker={"size": [8 + 22 * math.sqrt(r["denials"] / most) for r in rules], "color": PALETTE[0]},
        error_x={"type": "data", "symmetric": False,
                 "array": [(r["gravity_p90"] or 0) - (r["gravity_median"] or 0) for r in rules],
                 "arrayminus": [(r["gravity_median"] or 0) - (r["gravity_p10"] or 0) for r in rules]},
        showlegend=False), row=2, col=1)


def _cross_axes(fig: go.Figure) -> None:
    fig.update_yaxes(title_text="% of trigger", range=[0, 105], row=1, col=1)
    fig.update_yaxes(title_text="severity", row=2, col=1)
    fig.update_xaxes(title_text="median points lost (10th-90th percentile)", row=2, col=1)
    _layout(fig, height=640)


def _cross_context_replicates(res: dict[str, Any], per_rep: list[list[dict[str, Any]]]) -> Chart:
    """Mean share over replicates with min–max whiskers on top; one dot per replicate and rule below."""
    lab = from_result(res)
    spreads = sorted(_rule_spreads(per_rep), key=lambda s: -s.mean)
    if not spreads:
        return Chart("Cross-context share and proportionality, by sanction rule", None, "No denial to analyse.")
    k = len(per_rep)
    names = [lab.name(s.rule["sanction"]) for s in spreads]
    fig = _cross_frame()
    fig.add_trace(go.Bar(
        x=names, y=[s.mean for s in spreads], marker_color=PALETTE[3], name="cross-context %", showlegend=False,
        customdata=[s.fired for s in spreads],
        hovertemplate=f"%{{x}}: mean %{{y:.1f}}% over the %{{customdata}} of {k} replicates it fired in<extra></extra>",
        error_y={"type": "data", "symmetric": False, "visible": True, "thickness": 1.2,
                 "array": [s.hi - s.mean for s in spreads], "arrayminus": [s.mean - s.lo for s in spreads]}),
        row=1, col=1)
    dots = [(r, lab.name(r["sanction"])) for rules in per_rep for r in rules if r.get("denials")]
    _severity_dots(fig, [d[0] for d in dots], [d[1] for d in dots], "sanction rule, one replicate",
                   max(d[0]["denials"] for d in dots))
    _cross_axes(fig)
    partial = [n for n, s in zip(names, spreads, strict=True) if s.fired < k]
    top = spreads[0]
    return Chart(f"{names[0]}: {top.mean:.0f}% of what triggered its denials came from another domain "
                 f"(mean over {k} replicates)", fig,
                 CROSS_WORDS + f", one marker per replicate (size: its number of denials). Bars: means over the "
                 f"{k} replicates; whiskers: from the lowest to the highest replicate (min–max, not a confidence "
                 "interval)."
                 + (f" Fired in only some replicates (mean over those): {', '.join(partial)}." if partial else ""))


def _di_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    fair = res.get("fairness") or res["first"].get("fairness") or {}
    return [r for r in fair.get("single", []) if r["group"] != r["reference"] and r["ratio"]
            and math.isfinite(r["ratio"]) and r["ratio"] > 0 and not r.get("too_few")]


def di_label(lab: Labels, r: dict[str, Any], outcomes: dict[str, str]) -> str:
    """One row of the disparate-impact chart: the group and the outcome compared."""
    return f"{lab.group(r['dimension'], r['group'])} · {outcomes.get(r['outcome'], r['outcome'])}"


def disparate_impact(res: dict[str, Any]) -> Chart:
    """One row per group and outcome, sorted by ratio, with each dimension's reference group at 1."""
    lab = from_result(res)
    fair = res.get("fairness") or res["first"].get("fairness") or {}
    rows = _di_rows(res)
    title = "Disparate impact: rate ratios with the four-fifths band"
    if not rows:
        return Chart(title, None, "No group rate could be compared.")
    outcomes = dict(fair.get("outcomes") or {})
    rows.sort(key=lambda r: -r["ratio"])
    fig = go.Figure()
    ys = [di_label(lab, r, outcomes) for r in rows]
    sig = [bool(r.get("significant")) for r in rows]
    for flag, name, colour in ((True, "95% interval excludes 1", PALETTE[5]),
                               (False, "interval includes 1", "#777777")):
        sel = [i for i, s in enumerate(sig) if s is flag]
        if not sel:
            continue
        fig.add_trace(go.Scatter(
            y=[ys[i] for i in sel], x=[rows[i]["ratio"] for i in sel], mode="markers", name=name,
            marker={"color": colour, "size": 9, "symbol": "circle" if flag else "circle-open"},
            error_x={"type": "data", "symmetric": False, "thickness": 1.2,
                     "array": [(rows[i]["hi"] - rows[i]["ratio"]) if rows[i]["hi"] is not None
                               and math.isfinite(rows[i]["hi"]) else 0 for i in sel],
                     "arrayminus": [(rows[i]["ratio"] - rows[i]["lo"]) if rows[i]["lo"] is not None
                                    and math.isfinite(rows[i]["lo"]) else 0 for i in sel]}))
    refs = fair.get("reference") or {}
    ref_y = [f"reference: {lab.group(d, g)}" for d, g in refs.items()]
    if ref_y:
        fig.add_trace(go.Scatter(y=ref_y, x=[1.0] * len(ref_y), mode="markers", name="reference group (ratio 1)",
                                 marker={"color": "#000000", "size": 9, "symbol": "diamond"}))
    fig.add_vrect(x0=FOUR_FIFTHS[0], x1=FOUR_FIFTHS[1], fillcolor="#cccccc", opacity=0.3, line_width=0)
    for x in FOUR_FIFTHS:
        fig.add_vline(x=x, line_dash="dash", line_color="#444444")
    fig.add_vline(x=1, line_color="#888888", line_width=1)
    _layout(fig, height=max(380, 24 * (len(ys) + len(ref_y)) + 140),
            xaxis_title="rate ratio to the reference group (log scale)")
    lo = min([r["lo"] for r in rows if r["lo"] and math.isfinite(r["lo"])] + [r["ratio"] for r in rows] + [0.5])
    hi = max([r["hi"] for r in rows if r["hi"] and math.isfinite(r["hi"])] + [r["ratio"] for r in rows] + [2.0])
    set_log_range(fig, lo, hi)
    fig.update_yaxes(autorange="reversed", tickfont={"size": 11}, categoryorder="array",
                     categoryarray=ys + ref_y)
    top = rows[0]
    reps = fair.get("replicates", 1)
    return Chart(f"The largest gap: {outcomes.get(top['outcome'], top['outcome'])} in the group "
                 f"{lab.group(top['dimension'], top['group'])} at {top['ratio']:.1f}× its reference group's rate",
                 fig,
                 "Each dot: a group's rate, pooled over " + (f"{reps} replicates" if reps > 1 else "the run")
                 + ", divided by its dimension's reference group (diamonds), with a 95% interval "
                 f"({fair.get('method', '')}). Filled: the interval excludes 1. Ratios on fewer than "
                 f"{fair.get('min_events')} events are left out (see the table). Dashed lines: the four-fifths rule "
                 "(0.8 and 1/0.8 = 1.25); dots outside the grey band are flagged.")


def set_log_range(fig: go.Figure, lo: float, hi: float) -> None:
    """A log ratio axis from ``lo`` to ``hi`` with ticks labelled as the ratios they are (0.2, not 2)."""
    lo, hi = max(lo, 1e-3), max(hi, lo * 1.01)
    ticks = [t for t in LOG_TICKS if lo / 1.5 <= t <= hi * 1.5]
    fig.update_xaxes(type="log", range=[math.log10(lo / 1.2), math.log10(hi * 1.2)], tickvals=ticks,
                     ticktext=[f"{t:g}" for t in ticks])


def _effect_label(lab: Labels, metric: str) -> str:
    body = metric.removeprefix("events.")
    if body.endswith(".total"):
        return "all " + lab.name(body.removesuffix(".total")) + (" acts" if body.startswith("speech") else "s")
    return lab.name(body)


def deterrence_chilling(res: dict[str, Any]) -> Chart:
    lab = from_result(res)
    eff = res.get("effects") or {}
    title = "Deterrence and chilling against the paired run without the system"
    kinds = res["first"]["kinds"]
    names = [f"events.{b}" for k in ("infraction", "speech") for b in kinds.get(k, []) if f"events.{b}" in eff]
    if not names:
        return Chart(title, None, "No paired counterfactual: run credsim audit (or report --against) to measure it.")
    names += [m for m in ("events.infraction.total", "events.speech.total") if m in eff]
    speech = {f"events.{b}" for b in kinds.get("speech", [])} | {"events.speech.total"}
    fig = go.Figure()
    for is_speech, name, colour in ((False, "infractions (deterrence)", PALETTE[5]),
                                    (True, "lawful speech (chilling)", PALETTE[2])):
        sel = [m for m in names if (m in speech) is is_speech]
        if not sel:
            continue
        errs = [_err(eff[m]["rel"]) for m in sel]
        fig.add_trace(go.Bar(x=[_effect_label(lab, m) for m in sel],
                             y=[100 * (eff[m]["rel"]["mean"] or 0) for m in sel], marker_color=colour, name=name,
                             error_y={"type": "data", "symmetric": False, "array": [100 * e[0] for e in errs],
                                      "arrayminus": [100 * e[1] for e in errs], "visible": _k(res) > 1}))
    fig.add_hline(y=0, line_color="#444444")
    _layout(fig, yaxis_title="% change vs no system")
    tot = eff.get("events.speech.total") or eff.get("events.infraction.total")
    what = "Lawful speech" if "events.speech.total" in eff else "Infractions"
    rel = 100 * ((tot or {}).get("rel", {}).get("mean") or 0)
    word = "fell" if rel < 0 else "rose"
    return Chart(f"{what} {word} by {abs(rel):.2f}% against the same citizens without the system", fig,
                 "Paired difference in events over the run, system minus counterfactual, as a share of the "
                 "counterfactual (negative: fewer with the system). "
                 + ("Whiskers: 95% interval across replicates." if _k(res) > 1 else "One replicate: no interval."))


def chilling_by_group(res: dict[str, Any]) -> Chart:
    lab = from_result(res)
    rows = [r for r in res.get("effects_by_group") or [] if r["kind"] == "speech" and r["dimension"] != "all"]
    title = "Chilling of lawful speech, by group"
    if not rows or not any(abs(r["diff"]["mean"] or 0) > 0 for r in rows):
        return Chart(title, None, "No paired change in lawful speech.")
    rows = sorted(rows, key=lambda r: r["rel"]["mean"] or 0)
    fig = go.Figure()
    errs = [_err(r["rel"]) for r in rows]
    fig.add_trace(go.Bar(y=[lab.group(r["dimension"], r["group"]) for r in rows],
                         x=[100 * (r["rel"]["mean"] or 0) for r in rows], marker_color=PALETTE[2], orientation="h",
                         error_x={"type": "data", "symmetric": False, "array": [100 * e[0] for e in errs],
                                  "arrayminus": [100 * e[1] for e in errs], "visible": _k(res) > 1},
                         showlegend=False))
    _layout(fig, height=20 * len(rows) + 140, xaxis_title="% change in speech vs no system")
    fig.update_yaxes(autorange="reversed", tickfont={"size": 11})
    top = rows[0]
    rel = 100 * (top["rel"]["mean"] or 0)
    return Chart(f"Lawful speech {'fell' if rel < 0 else 'rose'} most in the group "
                 f"{lab.group(top['dimension'], top['group'])}: by {abs(rel):.2f}%", fig,
                 "Paired relative change in lawful speech events per group, sorted. "
                 + ("Whiskers: 95% interval across replicates." if _k(res) > 1 else "One replicate: no interval."))


def recovery(res: dict[str, Any]) -> Chart:
    lab = from_result(res)
    rec = res.get("recovery") or res["first"].get("recovery") or {}  # pooled over replicates
    title = "Recovery: time to leave a list or regain a lost grade"
    curves = [(f"leave {lab.name(li)}", r) for li, r in (rec.get("lists") or {}).items() if r["n"]]
    if rec.get("grade", {}).get("n"):
        curves.append(("regain a lost grade", rec["grade"]))
    if not curves:
        return Chart(title, None, "Nobody was listed or lost a grade.")
    fig = go.Figure()
    for i, (name, r) in enumerate(curves):
        t = [0.0] + r["curve_t"]
        s = [100.0] + [100 * v for v in r["curve_s"]]
        flat = len(r["curve_t"]) == 0
        fig.add_trace(go.Scatter(x=t + ([res["meta"]["days"]] if flat else []), y=s + ([100.0] if flat else []),
                                 mode="lines", line_shape="hv", name=f"{name} (n={r['n']:,})",
                                 line={"color": PALETTE[i % len(PALETTE)], "width": 2.5}))
    _layout(fig, yaxis_title="% not yet recovered", xaxis_title="days since entry / grade loss")
    fig.update_yaxes(range=[0, 101])
    meds = [(r["median_days"], name) for name, r in curves]
    med, name = meds[0]
    head = (f"Half of stays ({name}) lasted {med:,.0f} days or longer" if med is not None
            else f"More than half were still waiting to {name} at the end of the run")
    return Chart(head, fig, "Kaplan–Meier curves pooled over replicates; citizens still listed (or below their "
                 "former grade) at the end count as not recovered yet (censored), not as recovered.")


class CellSpread(NamedTuple):
    """A transition matrix over replicates: per cell the mean count and the lowest and highest replicate."""

    mean: list[list[float]]
    lo: list[list[int]]
    hi: list[list[int]]


def _cells(mats: list[list[list[int]]]) -> CellSpread:
    n = len(mats[0])
    cell = [[[m[i][j] for m in mats] for j in range(n)] for i in range(n)]
    return CellSpread([[sum(c) / len(c) for c in row] for row in cell], [[min(c) for c in row] for row in cell],
                      [[max(c) for c in row] for row in cell])


def _count(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def transitions(res: dict[str, Any]) -> Chart:
    lab = from_result(res)
    tr = res["first"].get("transitions") or {}
    title = "Grade transitions"
    if not tr:
        return Chart(title, None, "This scenario has no grades.")
    per_rep = [t for t in _per_replicate(res, "transitions") or [] if t]
    if len(per_rep) < 2 or any(t["grades"] != tr["grades"] for t in per_rep):
        per_rep = []
    k = len(per_rep)
    mats = per_rep or [tr]
    held = [i for i in range(len(tr["grades"])) if any(t[key][i][j] or t[key][j][i] for t in mats for key in (
            "start_end", "official_vs_shadow") for j in range(len(tr["grades"])))]
    g = [lab.name(tr["grades"][i]) for i in held]
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.22,
                        subplot_titles=("start of run → end of run (official)",
                                        "official → true-records-only grade at the end"))
    offs: list[int] = []
    for row, key in ((1, "start_end"), (2, "official_vs_shadow")):
        if key == "official_vs_shadow":
            offs = [sum(t[key][a][b] for a in held for b in held if a != b) for t in mats]
        if k:
            cs = _cells([[[t[key][a][b] for b in held] for a in held] for t in per_rep])
            n = len(held)
            # text: the mean, with the replicates' range beneath when they differ; the table has all three
            text = [[_count(cs.mean[a][b]) + (f"<br>{cs.lo[a][b]:,}–{cs.hi[a][b]:,}" if cs.lo[a][b] != cs.hi[a][b]
                                               else "") for b in range(n)] for a in range(n)]
            fig.add_trace(go.Heatmap(
                z=[[math.log10(1 + v) for v in r] for r in cs.mean], x=g, y=g, text=text, texttemplate="%{text}",
                customdata=[[[cs.mean[a][b], cs.lo[a][b], cs.hi[a][b]] for b in range(n)] for a in range(n)],
                colorscale="Blues", showscale=False,
                hovertemplate=f"%{{y}} → %{{x}}: mean %{{customdata[0]:,.1f}} over {k} replicates "
                              "(lowest %{customdata[1]:,}, highest %{customdata[2]:,})<extra></extra>"),
                row=row, col=1)
        else:
            z = [[tr[key][a][b] for b in held] for a in held]
            fig.add_trace(go.Heatmap(z=[[math.log10(1 + v) for v in r] for r in z], x=g, y=g,
                                     text=[[f"{v:,}" for v in r] for r in z], texttemplate="%{text}",
                                     colorscale="Blues", showscale=False,
                                     hovertemplate="%{y} → %{x}: %{text}<extra></extra>"),
                          row=row, col=1)
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    off = offs[0]
    fig.update_yaxes(title_text="from", row=1, col=1)
    fig.update_xaxes(title_text="to", row=1, col=1)
    fig.update_xaxes(title_text="true-records-only grade", row=2, col=1)
    fig.update_yaxes(title_text="official grade", row=2, col=1)
    _layout(fig, height=640)
    if k:
        mean = sum(offs) / k
        how_many = (f"{offs[0]:,} citizens in each of {k} replicates" if min(offs) == max(offs) else
                    f"On average {_count(mean)} citizens per replicate ({min(offs):,} to {max(offs):,} over {k} "
                    "replicates)")
        return Chart(f"{how_many} ended in another grade than their true records alone would give", fig,
                     f"Citizen counts: each cell is the mean over {k} replicates (colour on a log scale), with the "
                     "lowest–highest replicate beneath where they differ (min–max, not a confidence interval). "
                     "Off-diagonal cells at the bottom are misgraded citizens.")
    return Chart(f"{off:,} citizens ended in another grade than their true records alone would give", fig,
                 "Citizen counts (colour on a log scale). Off-diagonal cells at the bottom are misgraded citizens."
                 + _first_only(res))


ALL = (denied_by_group, disparate_impact, wrongful_missed, deterrence_chilling, chilling_by_group, cross_context,
       grade_mix, list_sizes, recovery, transitions)


def _numbers(vals: Any) -> list[float]:
    out = []
    for v in vals if vals is not None else []:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out.append(float(v))
    return out


def _extent(fig: go.Figure, axis: str) -> tuple[list[float], list[str], bool]:
    """Numbers and categories drawn on ``axis`` ('x' or 'y') with their error bars; whether a bar starts at 0."""
    nums: list[float] = []
    cats: list[str] = []
    bar = False
    for t in fig.data:
        vals = list(getattr(t, axis) or [])
        if any(isinstance(v, str) for v in vals):
            cats += [v for v in vals if isinstance(v, str) and v not in cats]
            continue
        base = _numbers(vals)
        nums += base
        err = getattr(t, f"error_{axis}", None)
        if err is not None and err.visible is not False and err.array is not None:
            hi = _numbers(err.array)
            lo = _numbers(err.arrayminus) if err.arrayminus is not None else hi
            nums += [b + e for b, e in zip(base, hi, strict=False)] + [b - e for b, e in zip(base, lo, strict=False)]
        if t.type == "bar":
            bar = True
    return nums, cats, bar


def share_axes(figs: list[go.Figure]) -> None:
    """Give side-by-side figures the same axis ranges (and category order), so bars and dots compare by eye.

    A figure that scales its own axes makes the run with one denial look like the run with thousands.
    Only single-panel figures are shared; log axes (ratios) share a log range with ratio ticks.
    """
    for axis in ("x", "y"):
        nums: list[float] = []
        cats: list[str] = []
        bar = False
        for f in figs:
            n, c, b = _extent(f, axis)
            nums += n
            cats += [v for v in c if v not in cats]
            bar = bar or b
        layout_axis = [f.layout[f"{axis}axis"] for f in figs]
        if cats:
            reverse = axis == "y" and layout_axis[0].autorange == "reversed"
            span = [len(cats) - 0.5, -0.5] if reverse else [-0.5, len(cats) - 0.5]
            for f in figs:
                # an invisible trace holding every category: plotly places only categories a trace uses
                other = "x" if axis == "y" else "y"
                f.add_trace(go.Scatter(**{axis: cats, other: [None] * len(cats)}, mode="markers",
                                       showlegend=False, hoverinfo="skip", meta=AXIS_ONLY))
                f.update_layout({f"{axis}axis": {"categoryorder": "array", "categoryarray": cats, "range": span,
                                                 "autorange": False}})
                if axis == "y":
                    f.update_layout(height=max(f.layout.height or 380, 24 * len(cats) + 140))
            continue
        if not nums:
            continue
        if any(a.type == "log" for a in layout_axis):
            pos = [v for v in nums if v > 0]
            if pos:
                for f in figs:
                    if axis == "x":
                        set_log_range(f, min(pos), max(pos))
                    else:
                        f.update_yaxes(type="log", range=[math.log10(min(pos) / 1.2), math.log10(max(pos) * 1.2)])
            continue
        lo, hi = min(nums + ([0.0] if bar else [])), max(nums + ([0.0] if bar else []))
        pad = 0.05 * (hi - lo or 1.0)
        rng = [lo - pad if lo < 0 or not bar else 0.0, hi + pad]
        for f in figs:
            f.update_layout({f"{axis}axis": {"range": rng, "autorange": False}})
