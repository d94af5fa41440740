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

from credsim.report.labels import from_result


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


VERBS = {"adverse_records": "citizens had adverse official records made about them at",
         "sanctioned": "citizens were denied at least once at",
         "wrongfully_sanctioned": "citizens were sanctioned only because of false records at",
         "denied_travel": "citizens were denied travel at",
         "rewarded": "citizens were rewarded at"}


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


def _replicate_values(res: dict[str, Any], name: str) -> list[float | None]:
    return [(r.get("system") or {}).get(name) for r in res.get("replicates") or []]


def num(res: dict[str, Any], name: str, digits: int = 0, pct: bool = False, ci: bool = True) -> tuple[str, float, str]:
    """A figure: (name, mean over replicates, shown text).

    With several replicates the text carries the 95% t interval as computed (an interval of a
    count may reach below 0: it is never clipped), and with fewer than 5 the replicate values.
    """
    iv = _iv(res, name)
    m = iv["mean"]
    if digits == 0 and not pct and m is not None and abs(m - round(m)) > 1e-9 and abs(m) < 100:
        digits = 1  # a mean of counts such as 0.5 must not print as 0
    shown = fmt(m, digits, pct) + ("%" if pct and m is not None else "")
    k = iv.get("k", 0)
    if ci and k > 1 and iv["lo"] is not None and iv["hi"] is not None:
        lo, hi = fmt(iv["lo"], digits, pct), fmt(iv["hi"], digits, pct)
        if lo != hi:
            shown += f" (95% CI {lo} to {hi}{'%' if pct else ''}"
            if k < 5:
                vals = ", ".join(fmt(v, digits, pct) for v in _replicate_values(res, name))
                shown += f"; replicates {vals}"
            shown += ")"
    return (name, m if m is not None else math.nan, shown)


def _eff(res: dict[str, Any], metric: str) -> dict[str, Any] | None:
    return (res.get("effects") or {}).get(metric)


def change_words(mean: float, lo: float | None = None, hi: float | None = None, k: int = 1) -> str:
    """A relative change in words with one sign convention: 'fell by 0.63% (95% CI: fell by 0.49% to 0.76%)'.

    The interval is said in the direction of the estimate; an interval that crosses zero says so
    instead of printing a negative bound next to the word 'fell'.
    """
    word = "fell" if mean < 0 else "rose"
    out = f"{word} by {abs(100 * mean):.2f}%"
    if k > 1 and lo is not None and hi is not None:
        if lo < 0 < hi:
            out += f" (95% CI from a fall of {abs(100 * lo):.2f}% to a rise of {100 * hi:.2f}%: no clear change)"
        else:
            a, b = sorted((abs(100 * lo), abs(100 * hi)))
            out += f" (95% CI: {word} by {a:.2f}% to {b:.2f}%)"
    return out


def _effect_parts(res: dict[str, Any], metric: str) -> list[str | tuple[str, float, str]]:
    e = _eff(res, metric)
    if e is None:
        return []
    rel, diff = e["rel"], e["diff"]
    shown = change_words(rel["mean"] or 0, rel["lo"], rel["hi"], rel.get("k", 1))
    d = diff["mean"] or 0
    d_shown = f"{abs(d):,.0f} {'fewer' if d < 0 else 'more'} events"
    return [(f"effect.{metric}.rel", rel["mean"], shown), ", ", (f"effect.{metric}.diff", diff["mean"], d_shown)]


def _harm(res: dict[str, Any], harm: str) -> dict[str, Any] | None:
    """The harm's counterfactual (plain words) when the audit measured it, else None."""
    meta = (res["meta"].get("harms") or {}).get(harm)
    return meta if meta and f"harm.{harm}.denials" in res["intervals"] else None


def _harm_ran(res: dict[str, Any], harm: str) -> bool:
    return bool(_iv(res, f"harm.{harm}.run")["mean"])


def _harm_headline(res: dict[str, Any], harm: str, lead: str, what: str, reversed_words: str) -> Headline | None:
    """'Against <counterfactual>: <lead> N denials (M citizens) <what>', from the citizen-by-citizen difference."""
    meta = _harm(res, harm)
    if meta is None:
        return None
    h = Headline(f"harm.{harm}")
    h.parts.append(f"Against {meta['against']} (same seeds, compared citizen by citizen): ")
    if not _harm_ran(res, harm):
        h.parts.append(f"that is the scenario itself, so {meta['means']} is 0.")
        return h
    h.parts += [lead, num(res, f"harm.{harm}.denials"), " denials (net) and ", num(res, f"harm.{harm}.citizens"),
                f" citizens {what}"]
    rev = _iv(res, f"harm.{harm}.reversed")["mean"]
    if rev:
        h.parts += ["; ", num(res, f"harm.{harm}.reversed"), f" citizens {reversed_words}"]
    h.parts.append(".")
    return h


def headlines(res: dict[str, Any]) -> list[Headline]:
    f = res["first"]
    meta = res["meta"]
    n = meta["population"]
    s = f["scalars"]
    out: list[Headline] = []
    reps = meta["replicates"]
    per = " (means over replicates)" if reps > 1 else ""

    for w in meta.get("warnings") or []:
        out.append(Headline("warning", ["Warning: " + w]))

    h = Headline("sanctioned")
    h.parts += [num(res, "citizens.sanctioned"), " citizens (",
                ("citizens.sanctioned.share", _iv(res, "citizens.sanctioned")["mean"] / n,
                 fmt(_iv(res, "citizens.sanctioned")["mean"] / n, 2, pct=True) + "%"),
                f" of {n:,}) were denied at least one activity in {meta['days']} days; ",
                num(res, "denied.total"), f" attempts were denied in all{per}."]
    att = sorted(f["attempts"], key=lambda a: -(_iv(res, f"denied.{a}")["mean"] or 0))
    if att and (_iv(res, f"denied.{att[0]}")["mean"] or 0) > 0:
        h.parts += [" Most were ", from_result(res).name(att[0]), " (", num(res, f"denied.{att[0]}", ci=False), ")."]
    out.append(h)

    for harm, lead, what, rev in (
            ("wrongful", "false records caused ", "sanctioned only because of them",
             "were sanctioned only without them (their behaviour or contacts changed)"),
            ("missed", "imperfect surveillance of infractions let ", "escape every sanction that full observation "
             "would have imposed", "were sanctioned only under imperfect surveillance"),
            ("lawful", "punishing lawful acts caused ", "sanctioned only because of them",
             "were sanctioned only when lawful acts went unpunished"),
            ("cross_context", "records from other domains than the activity's caused ",
             "sanctioned only because of them (cross-context detriment, EU AI Act Art. 5(1)(c)(i))",
             "were sanctioned only under own-domain rules"),
            ("association", "association penalties caused ", "sanctioned only because of their contacts",
             "were sanctioned only without association penalties")):
        hh = _harm_headline(res, harm, lead, what, rev)
        if hh is not None:
            out.append(hh)

    h = Headline("shadow")
    if _iv(res, "denied.total")["mean"]:
        h.parts += ["The in-run shadow view (every true event of an observed behaviour recorded, nothing false) "
                    "disagrees with the official one on ", num(res, "wrongful.total"),
                    " denials it would not have made and ", num(res, "missed.total"),
                    " it would have made; that view is perfect surveillance of lawful and unlawful acts alike, so "
                    "these are not the harm of false records or under-enforcement (see above)."]
    else:
        h.parts += ["No attempt was denied. The in-run shadow view would have made ", num(res, "missed.total"),
                    " denials."]
    out.append(h)

    if _harm(res, "cross_context") is None and (s.get("denied.total") or 0) > 0:
        h = Headline("cross_context")
        h.parts += ["On average ", num(res, "cross_context.mean_share", 0, pct=True),
                    " of what triggered a denial came from a different domain than the activity denied "
                    "(a list sanction counts 1 whenever the list's domain differs: run the audit to measure the "
                    "harm against own-domain sanctions)."]
        out.append(h)

    if _harm(res, "association") is None:
        h = Headline("association")
        h.parts += [num(res, "association_only.citizens"), " citizens were denied only because of their contacts' "
                    "records (", num(res, "association_only.denials"), " denials; in-run check of the grade without "
                    "association points)."]
        out.append(h)

    if res.get("effects"):
        h = Headline("deterrence")
        h.parts += ["Against the paired run without the system (same seed, same citizens), infractions "]
        h.parts += _effect_parts(res, "events.infraction.total")
        h.parts += [" (deterrence); lawful speech "]
        h.parts += _effect_parts(res, "events.speech.total") or ["was not modelled"]
        h.parts += [" (chilling)."]
        out.append(h)

    out.append(_di_headline(res))

    lab = from_result(res)
    for li in f.get("lists") or []:
        h = Headline(f"list.{li}")
        h.parts += [num(res, f"listed.{li}.end"), f" citizens were on the list {lab.name(li)} at the end (",
                    num(res, f"shadow_listed.{li}.end"), " under the true records only); ",
                    num(res, f"entries.{li}"), " entries during the run."]
        rec = (res.get("recovery") or f.get("recovery") or {}).get("lists", {}).get(li)
        if rec and rec["n"]:
            med = rec["median_days"]
            first = f" Over the {reps} replicates, of" if reps > 1 else " Of"
            h.parts += [f"{first} {rec['n']:,} stays, {rec['recovered']:,} ended within the run; ",
                        ("half lasted " + fmt(med) + " days or longer" if med is not None
                         else "more than half were still running at the end"), " (Kaplan–Meier)."]
        out.append(h)
    rec = (res.get("recovery") or f.get("recovery") or {}).get("grade")
    if rec and rec.get("n"):
        h = Headline("grade_recovery")
        med = rec["median_days"]
        h.parts += [(f"Over the {reps} replicates, " if reps > 1 else "") + f"{rec['n']:,} grade losses: "
                    f"{rec['recovered']:,} were regained within the run; ",
                    (f"the median time to regain was {fmt(med)} days" if med is not None
                     else "more than half were not regained by the end"), " (Kaplan–Meier)."]
        out.append(h)
    h = Headline("gini")
    h.parts += ["Score inequality (Gini) is ", num(res, "gini.score", 4), ", against ",
                num(res, "gini.shadow_score", 4), " for scores from true records only."]
    out.append(h)
    return out


def _di_headline(res: dict[str, Any]) -> Headline:
    """The largest pooled ratios beyond the four-fifths rule (never one with too few events)."""
    fair = res.get("fairness") or res["first"].get("fairness") or {}
    rows = fair.get("single", [])
    flagged = [r for r in rows if r["flag"] and not r["too_few"] and not r.get("favourable")]
    flagged.sort(key=lambda r: (not r["significant"], -abs(math.log(r["ratio"]))))
    too_few = sum(1 for r in rows if r["too_few"])
    h = Headline("disparate_impact")
    lab = from_result(res)
    if flagged:
        k = fair.get("replicates", 1)
        h.parts.append(f"{sum(r['significant'] for r in flagged)} group rate ratios are beyond the four-fifths rule "
                       f"with 95% confidence ({fair.get('method', '')}). ")
        for i, r in enumerate(flagged[:3]):
            key = f"di.{r['dimension']}.{r['group']}.{r['outcome']}"
            reps = ""
            if 1 < k < 5:
                reps = "; replicates " + ", ".join(fmt(v, 2) for v in r.get("replicates") or [])
            verb = VERBS.get(r["outcome"], "citizens had " + r["label"] + " at").removeprefix("citizens ")
            h.parts += [f"Citizens in the group {lab.group(r['dimension'], r['group'])} {verb} ",
                        (key, r["ratio"], f"{r['ratio']:.2f}×"),
                        f" the rate of the group {lab.group(r['dimension'], r['reference'])} "
                        f"(95% CI {fmt(r['lo'], 2)} to "
                        f"{fmt(r['hi'], 2)}{reps}; {fmt(r['count'])} against {fmt(r['reference_count'])} events)"
                        + ("" if r["significant"] else ", not significant")
                        + ("; " if i < min(len(flagged), 3) - 1 else ".")]
    else:
        h.parts.append("No group's rate ratio with enough events is beyond the four-fifths rule (0.8 to 1.25).")
    if too_few:
        h.parts.append(f" {too_few} ratios rest on fewer than {fair.get('min_events')} events in the group or its "
                       "reference: shown as too few events, never headlined.")
    return h


@dataclass(frozen=True)
class IconCounts:
    """Citizens per 1,000 for the icon array: denied at least once, and of them harmed by false records."""

    denied: int
    wrongly: int | None  # None when no counterfactual without false records was run
    denied_exact: float
    wrongly_exact: float | None


def icon_counts(res: dict[str, Any]) -> IconCounts:
    """Per 1,000 citizens, from the audit's citizen counts (the harm against no false records, not the shadow view)."""
    n = res["meta"]["population"] or 1
    denied = (_iv(res, "citizens.sanctioned")["mean"] or 0) * 1000 / n
    wrong = None
    if _harm(res, "wrongful") is not None:
        wrong = (_iv(res, "harm.wrongful.citizens")["mean"] or 0) * 1000 / n if _harm_ran(res, "wrongful") else 0.0
    return IconCounts(round(denied), None if wrong is None else min(round(wrong), round(denied)), denied, wrong)


def _per_thousand(v: float) -> str:
    return "fewer than 1" if 0 < v < 0.5 else f"{v:,.0f}"


def story(res: dict[str, Any]) -> list[Headline]:
    """The three numbers a reader should leave with, each in one sentence, most important first."""
    lab = from_result(res)
    meta = res["meta"]
    out: list[Headline] = []
    ic = icon_counts(res)
    h = Headline("story.denied")
    h.parts += [f"Of every 1,000 citizens, {_per_thousand(ic.denied_exact)} were denied something in "
                f"{meta['days']} days"]
    if ic.wrongly_exact is not None:
        h.parts += [f"; {_per_thousand(ic.wrongly_exact)} of them only because of false records ("]
        k = meta.get("replicates", 1)
        h.parts += [num(res, "harm.wrongful.citizens", ci=False), f" of {meta['population']:,} citizens"
                    + (f", mean over {k} replicates" if k > 1 else "") + ")."]
    else:
        h.parts.append(" (the harm of false records was not measured: no counterfactual run without them).")
    out.append(h)

    fair = res.get("fairness") or res["first"].get("fairness") or {}
    rows = [r for r in fair.get("single", []) if r["flag"] and r["significant"] and not r["too_few"]
            and not r.get("favourable") and r["group"] != r["reference"]]
    rows.sort(key=lambda r: -abs(math.log(r["ratio"])))
    h = Headline("story.disparity")
    if rows:
        r = rows[0]
        verb = VERBS.get(r["outcome"], "citizens had " + r["label"] + " at").removeprefix("citizens ")
        h.parts += [f"Citizens in the group {lab.group(r['dimension'], r['group'])} {verb} ",
                    (f"di.{r['dimension']}.{r['group']}.{r['outcome']}", r["ratio"], f"{r['ratio']:.1f} times"),
                    f" the rate of the group {lab.group(r['dimension'], r['reference'])} (95% CI {fmt(r['lo'], 1)} to "
                    f"{fmt(r['hi'], 1)}; {fmt(r['count'])} events)."]
    else:
        h.parts.append("No group was treated differently beyond the four-fifths rule with 95% confidence.")
    out.append(h)

    h = Headline("story.effect")
    e = _eff(res, "events.speech.total")
    if e is not None:
        h.parts += ["Against the same citizens without the system, lawful speech "]
        h.parts += _effect_parts(res, "events.speech.total") + ["."]
    elif _eff(res, "events.infraction.total") is not None:
        h.parts += ["Against the same citizens without the system, infractions "]
        h.parts += _effect_parts(res, "events.infraction.total") + ["."]
    elif _harm(res, "cross_context") is not None and _harm_ran(res, "cross_context"):
        h.parts += [num(res, "harm.cross_context.citizens", ci=False),
                    " citizens were denied only because records from other parts of life were used."]
    else:
        h.parts += [num(res, "denied.total", ci=False), " attempts were denied in all."]
    out.append(h)
    return out
