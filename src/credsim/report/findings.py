"""Headline findings: plain sentences with numbers, from an assembled audit result.

Each number is also kept as a (figure name, value) pair, so the HTML can mark it up
(``<span data-figure=... data-value=...>``) and a test can compare it with SQL over the
run directory. With several replicates a number is the mean across replicates and comes
with its 95% interval.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Headline:
    key: str
    parts: list[str | tuple[str, float, str]] = field(default_factory=list)  # text or (figure, value, shown)

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p[2] for p in self.parts)

    @property
    def html(self) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(html.escape(p))
            else:
                name, value, shown = p
                out.append(f'<span class="num" data-figure="{html.escape(name)}" data-value="{value!r}">'
                           f"{html.escape(shown)}</span>")
        return "".join(out)

    @property
    def figures(self) -> dict[str, float]:
        return {p[0]: p[1] for p in self.parts if not isinstance(p, str)}


VERBS = {"surveillance": "citizens had official records made about them at",
         "sanctioned": "citizens were denied at least once at",
         "wrongfully_sanctioned": "citizens were wrongfully denied at",
         "denied_travel": "citizens were denied travel at"}


def fmt(v: float | None, digits: int = 0, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if pct:
        v = 100 * v
    if digits == 0 and not pct and abs(v - round(v)) < 1e-9:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _iv(res: dict[str, Any], name: str) -> dict[str, Any]:
    return res["intervals"].get(name) or {"mean": None, "lo": None, "hi": None, "k": 0}


def num(res: dict[str, Any], name: str, digits: int = 0, pct: bool = False, ci: bool = True) -> tuple[str, float, str]:
    """A figure from the intervals: (name, mean, shown text with its 95% interval when replicated)."""
    iv = _iv(res, name)
    m = iv["mean"]
    shown = fmt(m, digits, pct) + ("%" if pct and m is not None else "")
    if ci and iv.get("k", 0) > 1 and iv["lo"] is not None and iv["hi"] is not None:
        lo, hi = fmt(iv["lo"], digits, pct), fmt(iv["hi"], digits, pct)
        if lo != hi:
            shown += f" (95% CI {lo}–{hi}{'%' if pct else ''})"
    return (name, m if m is not None else math.nan, shown)


def _eff(res: dict[str, Any], metric: str) -> dict[str, Any] | None:
    return (res.get("effects") or {}).get(metric)


def _effect_parts(res: dict[str, Any], metric: str) -> list[str | tuple[str, float, str]]:
    e = _eff(res, metric)
    if e is None:
        return []
    rel, diff = e["rel"], e["diff"]
    k = rel.get("k", 1)
    direction = "fell" if (rel["mean"] or 0) < 0 else "rose"
    shown = f"{abs(100 * (rel['mean'] or 0)):.2f}%"
    if k > 1 and rel["lo"] is not None:
        shown += f" (95% CI {100 * rel['lo']:+.2f}% to {100 * rel['hi']:+.2f}%)"
    d_shown = f"{diff['mean']:+,.0f} events"
    return [f"{direction} by ", (f"effect.{metric}.rel", rel["mean"], shown), ", ",
            (f"effect.{metric}.diff", diff["mean"], d_shown)]


def headlines(res: dict[str, Any]) -> list[Headline]:
    f = res["first"]
    meta = res["meta"]
    n = meta["population"]
    s = f["scalars"]
    out: list[Headline] = []
    reps = meta["replicates"]
    per = " (means over replicates)" if reps > 1 else ""

    h = Headline("sanctioned")
    h.parts += [num(res, "citizens.sanctioned"), " citizens (",
                ("citizens.sanctioned.share", _iv(res, "citizens.sanctioned")["mean"] / n,
                 fmt(_iv(res, "citizens.sanctioned")["mean"] / n, 2, pct=True) + "%"),
                f" of {n:,}) were denied at least one activity in {meta['days']} days; ",
                num(res, "denied.total"), f" attempts were denied in all{per}."]
    att = sorted(f["attempts"], key=lambda a: -(s.get(f"denied.{a}") or 0))
    if att and (s.get(f"denied.{att[0]}") or 0) > 0:
        h.parts += [" Most were ", att[0], " (", num(res, f"denied.{att[0]}", ci=False), ")."]
    out.append(h)

    h = Headline("wrongful")
    if _iv(res, "denied.total")["mean"]:
        h.parts += [num(res, "wrongful.total"), " denials (", num(res, "wrongful.share_of_denied", 1, pct=True,
                                                                   ci=False),
                    " of all denials) were wrongful: the official dossier, with its false records, denied them, "
                    "but the true-records-only view would not have; ", num(res, "citizens.wrongfully_sanctioned"),
                    " citizens were affected. "]
    else:
        h.parts += ["No attempt was denied, so none wrongfully. "]
    h.parts += [num(res, "missed.total"), " sanctions that the true records called for were missed."]
    out.append(h)

    if (s.get("denied.total") or 0) > 0:
        h = Headline("cross_context")
        h.parts += ["On average ", num(res, "cross_context.mean_share", 0, pct=True),
                    " of what triggered a denial came from a different domain than the activity denied "
                    "(cross-context detriment, EU AI Act Art. 5(1)(c)(i))."]
        rules = [r for r in f.get("sanctions") or [] if r["denials"]]
        if rules:
            h.parts.append(" By rule: " + "; ".join(
                f"{r['sanction']} {fmt(r['cross_mean'], 0, pct=True)}% (severity {fmt(r['severity'])}, median "
                f"{fmt(r['gravity_median'])} points lost behind it)" for r in rules) + ".")
        out.append(h)

    h = Headline("association")
    h.parts += [num(res, "association_only.citizens"), " citizens were denied only because of their contacts' "
                "records (", num(res, "association_only.denials"), " denials)."]
    out.append(h)

    if res.get("effects"):
        h = Headline("deterrence")
        h.parts += ["Against the paired run without the system (same seed, same citizens), infractions "]
        h.parts += _effect_parts(res, "events.infraction.total")
        h.parts += [" (deterrence); lawful speech "]
        h.parts += _effect_parts(res, "events.speech.total") or ["was not modelled"]
        h.parts += [" (chilling)."]
        out.append(h)

    fair = f.get("fairness") or {}
    flagged = [r for r in fair.get("single", []) if r["flag"] and r["group"] != r["reference"]]
    flagged.sort(key=lambda r: (not r["significant"], -abs(math.log(r["ratio"])) if r["ratio"] else 0))
    h = Headline("disparate_impact")
    if flagged:
        top = flagged[:3]
        h.parts.append(f"{sum(r['significant'] for r in flagged)} group rate ratios are beyond the four-fifths rule "
                       "with 95% confidence. ")
        for i, r in enumerate(top):
            key = f"di.{r['dimension']}.{r['group']}.{r['outcome']}"
            h.parts += [f"{r['dimension']}={r['group']} {VERBS.get(r['outcome'], r['label'] + ' at')} ",
                        (key, r["ratio"], f"{r['ratio']:.2f}×"),
                        f" the rate of {r['dimension']}={r['reference']} (95% CI {fmt(r['lo'], 2)}–{fmt(r['hi'], 2)})"
                        + ("" if r["significant"] else ", not significant")
                        + ("; " if i < len(top) - 1 else ".")]
    else:
        h.parts.append("No group's rate ratio is beyond the four-fifths rule (0.8 to 1.25).")
    out.append(h)

    for li in f.get("lists") or []:
        h = Headline(f"list.{li}")
        h.parts += [num(res, f"listed.{li}.end"), f" citizens were on {li} at the end (",
                    num(res, f"shadow_listed.{li}.end"), " under the true records only); ",
                    num(res, f"entries.{li}"), " entries in all."]
        rec = (f.get("recovery") or {}).get("lists", {}).get(li)
        if rec and rec["n"]:
            med = rec["median_days"]
            first = " In the first replicate, of" if reps > 1 else " Of"
            h.parts += [f"{first} {rec['n']:,} stays, {rec['recovered']:,} ended within the run; ",
                        ("half lasted " + fmt(med) + " days or longer" if med is not None
                         else "more than half were still running at the end"), " (Kaplan–Meier)."]
        out.append(h)
    rec = (f.get("recovery") or {}).get("grade")
    if rec and rec.get("n"):
        h = Headline("grade_recovery")
        med = rec["median_days"]
        h.parts += [("In the first replicate, " if reps > 1 else "") + f"{rec['n']:,} grade losses: "
                    f"{rec['recovered']:,} were regained within the run; ",
                    (f"the median time to regain was {fmt(med)} days" if med is not None
                     else "more than half were not regained by the end"), " (Kaplan–Meier)."]
        out.append(h)
    h = Headline("gini")
    h.parts += ["Score inequality (Gini) is ", num(res, "gini.score", 4), ", against ",
                num(res, "gini.shadow_score", 4), " for scores from true records only."]
    out.append(h)
    return out
