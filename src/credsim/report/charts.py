"""The report's charts, as plotly figures built from an assembled audit result.

Each function returns ``(title, figure or None, caption)``; a chart without data returns
no figure and the page says why instead of drawing an empty frame.
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

FOUR_FIFTHS = (0.8, 1.25)
Chart = tuple[str, go.Figure | None, str]
PALETTE = ["#1b9e77", "#66a61e", "#7570b3", "#e6ab02", "#d95f02", "#e7298a", "#a6761d", "#666666"]


def _layout(fig: go.Figure, height: int = 380, **kw: Any) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 60, "r": 20, "t": 30, "b": 50}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.2}, font={"size": 13}, **kw)
    return fig


def grade_mix(res: dict[str, Any]) -> Chart:
    f = res["first"]
    ser, grades, n = f["series"], f["grades"], res["meta"]["population"]
    title = "Grade mix over time"
    if not grades:
        return title, None, "This scenario has no grades."
    fig = go.Figure()
    for i, g in enumerate(grades):
        if not any(ser[f"grade.{g}"]) and not any(ser[f"shadow_grade.{g}"]):
            continue
        c = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=ser["day"], y=[100 * v / n if v else None for v in ser[f"grade.{g}"]], name=g,
                                 mode="lines", line={"color": c}))
        fig.add_trace(go.Scatter(x=ser["day"], y=[100 * v / n if v else None for v in ser[f"shadow_grade.{g}"]],
                                 name=f"{g} (true records)", mode="lines", line={"color": c, "dash": "dot"},
                                 showlegend=False))
    _layout(fig, yaxis_title="% of citizens (log scale)", xaxis_title="day")
    fig.update_yaxes(type="log")
    return title, fig, ("Share of citizens in each grade (grades nobody held are left out), first replicate. Solid: "
                        "official; dotted: on true records only. Log scale, so small grades stay visible.")


def list_sizes(res: dict[str, Any]) -> Chart:
    f = res["first"]
    ser = f["series"]
    title = "List sizes over time"
    if not f["lists"]:
        return title, None, "This scenario has no lists."
    fig = go.Figure()
    for i, li in enumerate(f["lists"]):
        c = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=ser["day"], y=ser[f"listed.{li}"], name=f"{li} (official)", line={"color": c}))
        fig.add_trace(go.Scatter(x=ser["day"], y=ser[f"shadow_listed.{li}"], name=f"{li} (true records only)",
                                 line={"color": c, "dash": "dot"}))
    _layout(fig, yaxis_title="citizens listed", xaxis_title="day")
    return title, fig, "Solid: the official list. Dotted: who would be listed on true records only."


def denied_by_group(res: dict[str, Any]) -> Chart:
    f = res["first"]
    title = "Denied attempts by group"
    rows = [g for g in f["groups"] if g.get("population")]
    if not rows or not any(g.get("denied.total") for g in rows):
        return title, None, "No attempt was denied."
    y = [f"{g['dimension']}: {g['group']}" for g in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=y, x=[1000 * g["denied.total"] / g["population"] for g in rows], name="denied",
                         marker_color="#d95f02", orientation="h"))
    fig.add_trace(go.Bar(y=y, x=[1000 * g["wrongful.total"] / g["population"] for g in rows], name="of which wrongful",
                         marker_color="#7570b3", orientation="h"))
    _layout(fig, height=20 * len(rows) + 140, barmode="overlay", xaxis_title="denials per 1,000 citizens")
    fig.update_yaxes(autorange="reversed", tickfont={"size": 11})
    return title, fig, "Denials per 1,000 citizens of each group over the run (first replicate)."


def wrongful_missed(res: dict[str, Any]) -> Chart:
    f = res["first"]
    title = "Official and shadow view disagreements, by activity"
    att = [a for a in f["attempts"] if (res["intervals"].get(f"denied.{a}", {}).get("mean") or 0)
           or (res["intervals"].get(f"missed.{a}", {}).get("mean") or 0)]
    if not att:
        return title, None, "No attempt was denied in either view."
    fig = go.Figure()
    for key, label, color in (("denied", "denied (official)", "#d95f02"), ("wrongful", "wrongful", "#7570b3"),
                              ("missed", "missed", "#1b9e77")):
        ivs = [res["intervals"][f"{key}.{a}"] for a in att]
        err = [((iv["hi"] or 0) - (iv["mean"] or 0)) if iv["k"] > 1 and iv["hi"] is not None else 0 for iv in ivs]
        fig.add_trace(go.Bar(x=att, y=[iv["mean"] for iv in ivs], name=label, marker_color=color,
                             error_y={"type": "data", "array": err, "visible": any(err)}))
    _layout(fig, barmode="group", yaxis_title="denials over the run")
    return title, fig, ("In-run shadow view (every true event of an observed behaviour recorded, nothing false). "
                        "Wrongful here: denied officially, allowed in the shadow view; missed: the reverse. These "
                        "compare with perfect surveillance; the harms table compares with counterfactual runs. "
                        "Error bars: 95% interval across replicates.")


def cross_context(res: dict[str, Any]) -> Chart:
    rules = [r for r in res["first"].get("sanctions") or [] if r["denials"]]
    title = "Cross-context share and proportionality, by sanction rule"
    if not rules:
        return title, None, "No denial to analyse."
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("share of trigger from another domain",
                                                        "severity vs gravity (points lost behind it)"))
    names = [r["sanction"] for r in rules]
    fig.add_trace(go.Bar(x=names, y=[100 * (r["cross_mean"] or 0) for r in rules], marker_color="#e7298a",
                         name="cross-context %", showlegend=False), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=[r["gravity_median"] for r in rules], y=[r["severity"] for r in rules], mode="markers+text", text=names,
        textposition="top center", marker={"size": [8 + 22 * math.sqrt(r["denials"] / max(x["denials"] for x in rules))
                                                    for r in rules], "color": "#7570b3"},
        error_x={"type": "data", "symmetric": False,
                 "array": [(r["gravity_p90"] or 0) - (r["gravity_median"] or 0) for r in rules],
                 "arrayminus": [(r["gravity_median"] or 0) - (r["gravity_p10"] or 0) for r in rules]},
        showlegend=False), row=1, col=2)
    fig.update_yaxes(title_text="% of trigger", range=[0, 105], row=1, col=1)
    fig.update_yaxes(title_text="severity", row=1, col=2)
    fig.update_xaxes(title_text="median points lost (10th-90th percentile)", row=1, col=2)
    _layout(fig)
    return title, fig, ("Left: for each denial, the share of the list or points behind it that came from a domain "
                        "other "
                        "than the activity's, averaged by rule. Right: each rule's severity against the points the "
                        "dossier held against the citizen when it fired (marker size: number of denials).")


def disparate_impact(res: dict[str, Any]) -> Chart:
    fair = res.get("fairness") or res["first"].get("fairness") or {}
    rows = [r for r in fair.get("single", []) if r["group"] != r["reference"] and r["ratio"] and
            math.isfinite(r["ratio"]) and r["ratio"] > 0 and not r.get("too_few")]
    title = "Disparate impact: rate ratios with the four-fifths band"
    if not rows:
        return title, None, "No group rate could be compared."
    fig = go.Figure()
    outcomes = list(fair["outcomes"])
    for i, o in enumerate(outcomes):
        sel = [r for r in rows if r["outcome"] == o]
        if not sel:
            continue
        fig.add_trace(go.Scatter(
            y=[f"{r['dimension']}: {r['group']}" for r in sel], x=[r["ratio"] for r in sel], mode="markers",
            name=fair["outcomes"][o], marker={"color": PALETTE[i % len(PALETTE)], "size": 8},
            error_x={"type": "data", "symmetric": False,
                     "array": [(r["hi"] - r["ratio"]) if r["hi"] is not None and math.isfinite(r["hi"]) else 0
                               for r in sel],
                     "arrayminus": [(r["ratio"] - r["lo"]) if r["lo"] is not None and math.isfinite(r["lo"]) else 0
                                    for r in sel], "thickness": 1}))
    fig.add_vrect(x0=FOUR_FIFTHS[0], x1=FOUR_FIFTHS[1], fillcolor="#cccccc", opacity=0.3, line_width=0)
    for x in FOUR_FIFTHS:
        fig.add_vline(x=x, line_dash="dash", line_color="#444444")
    fig.add_vline(x=1, line_color="#888888", line_width=1)
    n = len({f"{r['dimension']}: {r['group']}" for r in rows})
    _layout(fig, height=max(380, 22 * n + 120), xaxis_title="rate ratio to the reference group (log scale)")
    fig.update_xaxes(type="log")
    fig.update_yaxes(autorange="reversed", tickfont={"size": 11})
    refs = ", ".join(f"{d}={g}" for d, g in (fair.get("reference") or {}).items())
    return title, fig, ("Each dot: a group's rate, pooled over replicates, divided by its dimension's declared "
                        f"reference group ({refs}), with a 95% interval ({fair.get('method', '')}). Ratios on fewer "
                        f"than {fair.get('min_events')} events are left out. Dashed lines: the four-fifths rule "
                        "(0.8 and 1/0.8 = 1.25); dots outside the grey band are flagged.")


def deterrence_chilling(res: dict[str, Any]) -> Chart:
    eff = res.get("effects") or {}
    title = "Deterrence and chilling against the paired run without the system"
    kinds = res["first"]["kinds"]
    names = [f"events.{b}" for k in ("infraction", "speech") for b in kinds.get(k, []) if f"events.{b}" in eff]
    if not names:
        return title, None, "No paired counterfactual: run credsim audit (or report --against) to measure it."
    names += [m for m in ("events.infraction.total", "events.speech.total") if m in eff]
    fig = go.Figure()
    y = [100 * (eff[m]["rel"]["mean"] or 0) for m in names]
    err_hi = [100 * ((eff[m]["rel"]["hi"] or 0) - (eff[m]["rel"]["mean"] or 0)) if eff[m]["rel"]["k"] > 1 else 0
              for m in names]
    err_lo = [100 * ((eff[m]["rel"]["mean"] or 0) - (eff[m]["rel"]["lo"] or 0)) if eff[m]["rel"]["k"] > 1 else 0
              for m in names]
    colors = ["#1b9e77" if ".speech" in m or m.endswith("speech.total") or
              any(m == f"events.{b}" for b in kinds.get("speech", [])) else "#d95f02" for m in names]
    fig.add_trace(go.Bar(x=[m.removeprefix("events.") for m in names], y=y, marker_color=colors,
                         error_y={"type": "data", "symmetric": False, "array": err_hi, "arrayminus": err_lo,
                                  "visible": any(err_hi)}, showlegend=False))
    fig.add_hline(y=0, line_color="#444444")
    _layout(fig, yaxis_title="% change vs no system")
    return title, fig, ("Paired difference in events over the run, system minus counterfactual, as a share of the "
                        "counterfactual; error bars: 95% interval across replicates. Orange: infractions "
                        "(deterrence); green: lawful speech (chilling).")


def chilling_by_group(res: dict[str, Any]) -> Chart:
    rows = [r for r in res.get("effects_by_group") or [] if r["kind"] == "speech" and r["dimension"] != "all"]
    title = "Chilling of lawful speech, by group"
    if not rows or not any(abs(r["diff"]["mean"] or 0) > 0 for r in rows):
        return title, None, "No paired change in lawful speech."
    fig = go.Figure()
    y = [100 * (r["rel"]["mean"] or 0) for r in rows]
    err = [100 * ((r["rel"]["hi"] or 0) - (r["rel"]["mean"] or 0)) if r["rel"]["k"] > 1 else 0 for r in rows]
    fig.add_trace(go.Bar(y=[f"{r['dimension']}: {r['group']}" for r in rows], x=y, marker_color="#1b9e77",
                         orientation="h", error_x={"type": "data", "array": err, "visible": any(err)},
                         showlegend=False))
    _layout(fig, height=20 * len(rows) + 140, xaxis_title="% change in speech vs no system")
    fig.update_yaxes(autorange="reversed", tickfont={"size": 11})
    return title, fig, "Paired relative change in lawful speech events per group (95% intervals across replicates)."


def recovery(res: dict[str, Any]) -> Chart:
    rec = res.get("recovery") or res["first"].get("recovery") or {}  # pooled over replicates
    title = "Recovery: time to leave a list or regain a lost grade"
    curves = [(f"leave {li}", r) for li, r in (rec.get("lists") or {}).items() if r["n"]]
    if rec.get("grade", {}).get("n"):
        curves.append(("regain a lost grade", rec["grade"]))
    if not curves:
        return title, None, "Nobody was listed or lost a grade."
    fig = go.Figure()
    for i, (name, r) in enumerate(curves):
        t = [0.0] + r["curve_t"]
        s = [100.0] + [100 * v for v in r["curve_s"]]
        fig.add_trace(go.Scatter(x=t, y=s, mode="lines", line_shape="hv", name=f"{name} (n={r['n']:,})",
                                 line={"color": PALETTE[i % len(PALETTE)]}))
    _layout(fig, yaxis_title="% not yet recovered", xaxis_title="days since entry / grade loss")
    fig.update_yaxes(range=[0, 101])
    return title, fig, ("Kaplan–Meier curves; citizens still listed (or below their former grade) at the end count as "
                        "not recovered yet (censored), not as recovered.")


def transitions(res: dict[str, Any]) -> Chart:
    tr = res["first"].get("transitions") or {}
    title = "Grade transitions"
    if not tr:
        return title, None, "This scenario has no grades."
    from plotly.subplots import make_subplots

    held = [i for i in range(len(tr["grades"])) if any(tr[k][i][j] or tr[k][j][i] for k in ("start_end",
            "official_vs_shadow") for j in range(len(tr["grades"])))]
    g = [tr["grades"][i] for i in held]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("start of run → end of run (official)",
                                                        "official → true-records-only grade at the end"))
    for col, key in ((1, "start_end"), (2, "official_vs_shadow")):
        z = [[tr[key][i][j] for j in held] for i in held]
        fig.add_trace(go.Heatmap(z=[[math.log10(1 + v) for v in row] for row in z], x=g, y=g, text=z,
                                 texttemplate="%{text}", colorscale="Blues", showscale=False,
                                 hovertemplate="%{y} → %{x}: %{text}<extra></extra>"), row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_yaxes(title_text="from", row=1, col=1)
    fig.update_xaxes(title_text="to", row=1, col=1)
    fig.update_xaxes(title_text="true-records-only grade", row=1, col=2)
    fig.update_yaxes(title_text="official grade", row=1, col=2)
    _layout(fig, height=420)
    return title, fig, "Citizen counts (colour on a log scale). Off-diagonal cells on the right are misgraded citizens."


ALL = (grade_mix, list_sizes, denied_by_group, wrongful_missed, cross_context, disparate_impact,
       deterrence_chilling, chilling_by_group, recovery, transitions)
