"""Plain labels for every identifier a reader could see: activities, groups, lists, sanctions, metrics.

The scenario names things the way a program needs them (``travel.hsr_attempt``,
``key_person_travel_ban``, ``age=60_plus``, ``denied.cross_context_sum``); a journalist reading
the report, the comparison, the dashboard or ``explain`` should read words instead. Everything
that shows a name to a reader goes through one :class:`Labels` built from the assembled result
(or the scenario), so the same thing carries the same words on every page.

A scenario may give its own words (``label:`` on a behaviour, sensor, list, sanction, grade or the
scenario; ``population.labels`` for group dimensions and values): :func:`from_scenario` collects
them, the audit stores them in its result's meta, and they win over made-up words. Otherwise a
label is made from the identifier itself: the domain prefix is dropped, underscores become
spaces, a handful of abbreviations the built-in scenarios use are spelled out, and group codes
such as ``60_plus`` or ``18_29`` become "60 and over" or "18–29". Metric names take their
family's meaning from :mod:`credsim.names` with the member replaced by its label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credsim import names
from credsim.safeio import MANIFEST_BYTES, read_json_object

# Abbreviations in the built-in scenarios' identifiers, spelled out for readers.
WORDS: dict[str, str] = {"hsr": "high-speed rail", "aaa": "AAA", "ngo": "NGO", "id": "ID", "q1": "lowest income fifth",
                         "q2": "second income fifth", "q3": "middle income fifth", "q4": "fourth income fifth",
                         "q5": "highest income fifth", "hukou": "household registration", "cv": "CV"}

# Figures the audit derives (not metric families): what each counts, in the report's words.
FIGURES: dict[str, str] = {
    "citizens.sanctioned": "citizens denied at least once",
    "citizens.wrongfully_sanctioned": "citizens denied at least once where the shadow view would not deny",
    "citizens.missed": "citizens the shadow view would deny but the official view did not",
    "wrongful.share_of_denied": "share of denials the shadow view would not make",
    "missed.share_of_shadow_denied": "share of shadow-view denials the official view did not make",
    "records.per_capita": "official records per citizen",
    "records.adverse": "adverse official records",
    "records.adverse_per_capita": "adverse official records per citizen",
    "cross_context.mean_share": "average share of a denial's trigger from another domain",
    "association_only.denials": "denials only because of contacts' records",
    "association_only.citizens": "citizens denied only because of contacts' records",
    "gini.score": "score inequality (Gini)",
    "gini.shadow_score": "score inequality on true records only (Gini)",
    "score.mean": "average score",
    "denied.total": "attempts denied",
    "wrongful.total": "denials the shadow view would not make",
    "missed.total": "denials the shadow view would make but the official view did not",
    "events.infraction.total": "infractions committed",
    "events.speech.total": "lawful speech acts",
}
HARM_PARTS = {"denials": "net denials", "citizens": "citizens harmed", "reversed": "citizens harmed the other way",
              "run": "counterfactual run"}
HARM_WORDS = {"wrongful": "false records", "missed": "missed infractions", "lawful": "punished lawful acts",
              "cross_context": "records from other domains", "association": "association penalties"}


def words(ident: str) -> str:
    """Readable words for one identifier: ``travel.hsr_attempt`` -> ``high-speed rail``."""
    last = ident.rsplit(".", 1)[-1]
    if re.fullmatch(r"\d+_plus", last):
        return last.split("_")[0] + " and over"
    if re.fullmatch(r"\d+_\d+", last):
        a, b = last.split("_")
        return f"{a}–{b}"
    if last.endswith("_attempt") and last != "_attempt":
        last = last.removesuffix("_attempt")
    parts = [WORDS.get(p.lower(), p) for p in re.split(r"[_\-]+", last) if p]
    return " ".join(parts) or ident


@dataclass
class Labels:
    """Plain words for the identifiers of one scenario (an explicit entry wins over a made-up one)."""

    given: dict[str, str] = field(default_factory=dict)

    def name(self, ident: str) -> str:
        """An activity, behaviour, list, sanction, grade, sensor or dimension."""
        return self.given.get(ident) or words(ident)

    def group(self, dimension: str, group: str) -> str:
        """``occupation`` / ``journalist`` -> ``occupation: journalist``."""
        if " × " in dimension:  # an intersectional group: age × income / 18_29 × q1
            return " & ".join(self.group(d, g) for d, g in zip(dimension.split(" × "), group.split(" × "),
                                                               strict=False))
        if dimension == names.ALL:
            return "everyone"
        return f"{self.name(dimension)}: {self.given.get(f'{dimension}={group}') or self.name(group)}"

    def value(self, group: str) -> str:
        """A group value alone (``60_plus``, or ``18_29 × q1`` for an intersection)."""
        return " & ".join(self.name(g) for g in group.split(" × "))

    def group_key(self, key: str) -> str:
        """A group written as ``dimension=group`` (one or several joined by ``&``)."""
        return " & ".join(self.group(*p.split("=", 1)) if "=" in p else self.name(p) for p in key.split("&"))

    def metric(self, metric: str) -> str:
        """A metric or derived figure in words (never its internal name)."""
        if metric in self.given:
            return self.given[metric]
        if metric in FIGURES:
            return FIGURES[metric]
        if metric.startswith("harm."):
            _, harm, part = (metric.split(".", 2) + ["", ""])[:3]
            return f"{HARM_PARTS.get(part, words(part))} by {HARM_WORDS.get(harm, words(harm))}"
        if metric.startswith("effect."):
            inner = metric.removeprefix("effect.").rsplit(".", 1)
            kind = "relative change" if inner[-1] == "rel" else "change"
            return f"{kind} in {self.metric(inner[0])}"
        if metric in names.SINGLE_METRICS:
            return names.describe(metric)
        for fam in sorted(names.FAMILIES, key=lambda f: -len(f.prefix)):
            member = fam.member(metric)
            if member is None:
                continue
            member = member.removesuffix(".end")
            if member == "total" or member.endswith(".total"):
                head = member.removesuffix("total").rstrip(".")
                return f"{fam.meaning}: all" + (f" {self.name(head)}" if head else "")
            return f"{fam.meaning}: {self.name(member)}"
        return words(metric)


def from_scenario(scen: Mapping[str, Any]) -> dict[str, str]:
    """The words a scenario gives its names (its ``label`` fields), keyed as :class:`Labels` looks them up.

    ``scen`` is the scenario as data (a run manifest's ``scenario``). Behaviours, sensors, lists,
    sanctions and grades are keyed by their names, group dimensions by theirs, a group value by
    ``dimension=value`` (and by the bare value when no other dimension uses it).
    """
    out: dict[str, str] = {}
    if scen.get("label"):
        out[str(scen["name"])] = str(scen["label"])
    for section in ("behaviours", "sensors", "lists", "sanctions"):
        for ident, spec in (scen.get(section) or {}).items():
            if isinstance(spec, Mapping) and spec.get("label"):
                out[str(ident)] = str(spec["label"])
    for band in ((scen.get("scoring") or {}).get("grades") or {}).get("bands") or []:
        if band.get("label"):
            out[str(band["name"])] = str(band["label"])
    pop = scen.get("population") or {}
    values_of: dict[str, int] = {}
    for shares in (pop.get("groups") or {}).values():
        for v in shares:
            values_of[v] = values_of.get(v, 0) + 1
    for dim, gl in (pop.get("labels") or {}).items():
        if gl.get("label"):
            out[str(dim)] = str(gl["label"])
        for v, words_ in (gl.get("values") or {}).items():
            out[f"{dim}={v}"] = str(words_)
            if values_of.get(v) == 1:
                out.setdefault(str(v), str(words_))
    return out


def from_result(res: dict[str, Any]) -> Labels:
    """Labels for an assembled audit result (explicit ``labels`` in its meta win)."""
    given = dict(res.get("meta", {}).get("labels") or {})
    return Labels(given)


def for_run(run_dir: str | Path) -> Labels:
    """Labels for one run directory (``explain``): its scenario's words, or made-up ones if unreadable."""
    try:
        scen = read_json_object(Path(run_dir) / "manifest.json", MANIFEST_BYTES).get("scenario") or {}
        return Labels(from_scenario(scen))
    except (OSError, ValueError, TypeError, AttributeError):
        return Labels()


def identifiers(res: dict[str, Any]) -> set[str]:
    """Every identifier of the result's scenario a reader could be shown (for tests and checks)."""
    f = res["first"]
    out: set[str] = set(f.get("attempts") or []) | set(f.get("lists") or []) | set(f.get("grades") or [])
    for bs in (f.get("kinds") or {}).values():
        out |= set(bs)
    out |= {r["sanction"] for r in f.get("sanctions") or []}
    for g in f.get("groups") or []:
        out.add(f"{g['dimension']}={g['group']}")
        out.add(str(g["group"]))
    out |= set(res.get("intervals") or {})
    return out


def internal_names(res: dict[str, Any]) -> set[str]:
    """The identifiers that look like program names (they carry ``.``, ``_`` or ``=``)."""
    return {i for i in identifiers(res) if re.search(r"[A-Za-z][._=][A-Za-z0-9]", i)}
