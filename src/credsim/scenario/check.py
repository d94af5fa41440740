"""Cross-section name checks: every name used in a scenario must be declared in it.

Returns a list of ``(key path, what was expected)``; an empty list means the scenario is
consistent. Kept apart from the schema so that each check reads as one sentence.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from credsim.scenario.economy_check import check_economy
from credsim.scenario.schema import ASSOCIATION_DOMAIN, Condition, ConditionGroup, SanctionWhen, Scenario


def record_types(s: Scenario) -> list[str]:
    """Record types a dossier can hold: behaviours, plus one association type per list."""
    return list(s.behaviours) + [f"{ASSOCIATION_DOMAIN}.{name}" for name in s.lists]


def reconsideration_problems(s: Scenario) -> list[tuple[str, str]]:
    """Reconsideration chains end (no body reconsiders its own rejections, even through others), and a
    body that hears no list is some body's reconsideration (else no case could ever reach it)."""
    out: list[tuple[str, str]] = []
    if s.redress is None:
        return out
    bodies = s.redress.appeals
    targets = {b.reconsideration for b in bodies.values()}
    for bn, body in bodies.items():
        seen = [bn]
        nxt = body.reconsideration
        while nxt is not None and nxt in bodies:
            if nxt in seen:
                out.append((f"redress.appeals.{bn}.reconsideration", "a chain of reconsiderations that ends "
                            f"(got the cycle {' -> '.join([*seen, nxt])})"))
                break
            seen.append(nxt)
            nxt = bodies[nxt].reconsideration
        if not body.lists and bn not in targets:
            out.append((f"redress.appeals.{bn}.lists", "at least one list, or the body must be another body's "
                        "reconsideration (no case can reach it)"))
    return out


def cross_check(s: Scenario) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    dims = s.population.groups
    traits = s.population.traits
    domains = set(s.domains)

    def one_of(path: str, name: str, allowed: list[str] | set[str], what: str) -> None:
        if name not in allowed:
            shown = sorted(allowed)
            more = "" if len(shown) <= 12 else f" ... ({len(shown)} in all)"
            close = difflib.get_close_matches(name, [str(a) for a in allowed], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append((path, f"{what} declared in the scenario, one of {shown[:12]}{more} (got {name!r}){hint}"))

    def check_table(path: str, table: Mapping[str, Mapping[str, float]]) -> None:
        for dim, vals in table.items():
            one_of(f"{path}.{dim}", dim, list(dims), "a group dimension")
            if dim in dims:
                for v in vals:
                    one_of(f"{path}.{dim}.{v}", v, list(dims[dim]), f"a value of group {dim!r}")

    for name, t in traits.items():
        check_table(f"population.traits.{name}.shift", t.shift)
    for dim in s.graph.homophily:
        one_of(f"graph.homophily.{dim}", dim, list(dims), "a group dimension")

    for d in s.domains:
        if d == ASSOCIATION_DOMAIN:
            out.append(("domains", f"{ASSOCIATION_DOMAIN!r} is reserved for association records"))
    for b, beh in s.behaviours.items():
        dom = b.split(".", 1)[0]
        if dom not in domains:
            expected = f"a name '<domain>.<what>' with a domain in {sorted(domains)} (got domain {dom!r})"
            out.append((f"behaviours.{b}", expected))
        check_table(f"behaviours.{b}.by", beh.by)
        for tname in beh.traits:
            one_of(f"behaviours.{b}.traits.{tname}", tname, list(traits), "a trait")
        if beh.only_listed is not None:
            one_of(f"behaviours.{b}.only_listed", beh.only_listed, list(s.lists), "a list")

    for sn, sen in s.sensors.items():
        for i, b in enumerate(sen.observes):
            one_of(f"sensors.{sn}.observes[{i}]", b, list(s.behaviours), "a behaviour")
        check_table(f"sensors.{sn}.coverage_by", sen.coverage_by)
        check_table(f"sensors.{sn}.surveillance", sen.surveillance)
        if sen.suppress is not None:
            for i, b in enumerate(sen.observes):
                if b in s.behaviours and s.behaviours[b].kind != "speech":
                    out.append((f"sensors.{sn}.observes[{i}]", "a behaviour of kind 'speech' for a sensor with "
                                f"suppress set (a censor hides posts; {b!r} is {s.behaviours[b].kind!r})"))
    if s.sharing is not None:
        for i, sn in enumerate(s.sharing):
            one_of(f"sharing[{i}]", sn, list(s.sensors), "a sensor")
            if sn in s.sensors and s.sensors[sn].suppress is not None:
                out.append((f"sharing[{i}]", f"a sensor that files records ({sn!r} has suppress set: a censor "
                            "hides posts and files nothing, so it cannot share)"))

    rtypes = record_types(s)
    sc = s.scoring
    if sc.points is not None:
        check_table("scoring.points.base_by", sc.points.base_by)
        for r in sc.points.rules:
            one_of(f"scoring.points.rules.{r}", r, rtypes, "a record type (a behaviour or association.<list>)")
    if sc.model is not None:
        for fn, f in sc.model.features.items():
            p = f"scoring.model.features.{fn}"
            for i, r in enumerate(f.records or []):
                one_of(f"{p}.records[{i}]", r, rtypes, "a record type")
            if f.group is not None:
                check_table(f"{p}.group", f.group)
            if f.trait is not None:
                one_of(f"{p}.trait", f.trait, list(traits), "a trait")
            if f.contacts_listed is not None:
                one_of(f"{p}.contacts_listed", f.contacts_listed, list(s.lists), "a list")
        for dn, dspec in sc.model.dimensions.items():
            for fn in dspec.features:
                one_of(f"scoring.model.dimensions.{dn}.features.{fn}", fn, list(sc.model.features), "a feature")
    if sc.grades is not None:
        src = sc.grades.score
        if getattr(sc, src) is None:
            out.append(("scoring.grades.score", f"a score that is defined: scoring.{src} is missing"))
        names = [b.name for b in sc.grades.bands]
        if len(set(names)) != len(names):
            out.append(("scoring.grades.bands", f"distinct band names (got {names})"))
    grades = [b.name for b in sc.grades.bands] if sc.grades else []

    for ln, lst in s.lists.items():
        p = f"lists.{ln}"
        one_of(f"{p}.domain", lst.domain, list(domains), "a domain")
        for i, r in enumerate(lst.entry.records or []):
            one_of(f"{p}.entry.records[{i}]", r, rtypes, "a record type")
        check_table(f"{p}.entry.count_by", lst.entry.count_by)
        for i, g in enumerate(lst.entry.grades or []):
            one_of(f"{p}.entry.grades[{i}]", g, grades, "a grade (scoring.grades.bands)")
        for i, r in enumerate(lst.exit.cure):
            one_of(f"{p}.exit.cure[{i}]", r, rtypes, "a record type")
        if lst.entry.grades is None and lst.exit.on_grade_recovery:
            out.append((f"{p}.exit.on_grade_recovery", "only for lists entered by grade"))
        if lst.entry.records is not None and not lst.exit.cure and lst.exit.term_days is None:
            out.append((f"{p}.exit", "a way out: cure records and/or term_days"))
        for gn, ground in lst.exit.grounds.items():
            gp = f"{p}.exit.grounds.{gn}"
            if lst.entry.records is None:
                out.append((gp, "grounds only for lists entered by records (a grade list follows the grade)"))
            elif ground.extend_days is not None and lst.exit.term_days is None:
                out.append((f"{gp}.extend_days", "a term to extend: term_days is not set"))
            elif ground.no_term and not lst.exit.cure:
                out.append((f"{gp}.no_term", "a cure (exit.cure): with no term and no cure a stay could never end"))

    def check_condition(path: str, cond: SanctionWhen | ConditionGroup | Condition) -> None:
        if cond.list_ is not None:
            one_of(f"{path}.list", cond.list_, list(s.lists), "a list")
        for i, g in enumerate(cond.grades or []):
            one_of(f"{path}.grades[{i}]", g, grades, "a grade (scoring.grades.bands)")
        if cond.score is not None and getattr(sc, cond.score.of) is None:
            out.append((f"{path}.score.of", f"a score that is defined: scoring.{cond.score.of} is missing"))
        for op in ("all", "any"):
            for i, item in enumerate(getattr(cond, op, None) or []):
                check_condition(f"{path}.{op}[{i}]", item)

    for sn, san in s.sanctions.items():
        p = f"sanctions.{sn}"
        check_condition(f"{p}.when", san.when)
        if san.reaches == "dependants" and s.population.dependants is None:
            out.append((f"{p}.reaches", "population.dependants to be declared (no citizen has dependants to reach)"))
        for i, a in enumerate(san.attempts):
            one_of(f"{p}.attempts[{i}]", a, list(s.behaviours), "a behaviour")
            if a in s.behaviours and s.behaviours[a].kind != "attempt":
                out.append((f"{p}.attempts[{i}]", f"a behaviour of kind 'attempt' ({a!r} is {s.behaviours[a].kind!r})"))

    for rn, resp in s.responses.items():
        p = f"responses.{rn}"
        for i, b in enumerate(resp.behaviours):
            one_of(f"{p}.behaviours[{i}]", b, list(s.behaviours), "a behaviour")
        for i, ln in enumerate(resp.lists):
            one_of(f"{p}.lists[{i}]", ln, list(s.lists), "a list")
        if resp.effect == "reduce_rate" and not (resp.kinds or resp.behaviours):
            out.append((p, "reduce_rate needs kinds or behaviours to act on"))
        if resp.effect == "cut_ties" and resp.trigger != "contact_listed":
            out.append((f"{p}.trigger", "cut_ties works on trigger 'contact_listed'"))

    if s.redress is not None:
        heard: dict[str, str] = {}
        for bn, body in s.redress.appeals.items():
            p = f"redress.appeals.{bn}"
            for i, ln in enumerate(body.lists):
                one_of(f"{p}.lists[{i}]", ln, list(s.lists), "a list")
                if ln in s.lists and s.lists[ln].entry.records is None:
                    out.append((f"{p}.lists[{i}]", f"a list entered by records ({ln!r} is entered by grades: "
                                "an objection retracts a record, and a grade list has none to retract)"))
                if ln in heard:
                    out.append((f"{p}.lists[{i}]", f"a list no other body hears ({ln!r} is heard by {heard[ln]!r})"))
                heard.setdefault(ln, bn)
            check_table(f"{p}.success_by", body.success_by)
            if body.reconsideration is not None:
                one_of(f"{p}.reconsideration", body.reconsideration, list(s.redress.appeals), "an appeal body")
        out.extend(reconsideration_problems(s))
        for ln in s.redress.notice_by_list:
            one_of(f"redress.notice_by_list.{ln}", ln, list(s.lists), "a list")
        if s.redress.repair is not None:
            for i, ln in enumerate(s.redress.repair.lists):
                one_of(f"redress.repair.lists[{i}]", ln, list(s.lists), "a list")

    for iname, inv in s.investigations.items():
        p = f"investigations.{iname}"
        one_of(f"{p}.records", inv.records, list(s.behaviours), "a behaviour")
        one_of(f"{p}.truth.trait", inv.truth.trait, list(traits), "a trait")
        check_table(f"{p}.false_finding_by", inv.false_finding_by)
        if inv.rank_by != "random" and getattr(s.scoring, inv.rank_by) is None:
            out.append((f"{p}.rank_by", f"a score that is defined: scoring.{inv.rank_by} is missing "
                        "(or rank_by: random)"))

    out += check_economy(s, one_of, check_table)

    tr = s.run
    for i, cid in enumerate(tr.trace_ids):
        if cid >= s.population.size:
            out.append((f"run.trace_ids[{i}]", f"a citizen id below population.size {s.population.size} (got {cid})"))
    return out
