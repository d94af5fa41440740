"""Audit figures for due process: time to redress, wrongful days before correction, backlog,
appeal success by group, and what-if comparisons of redress rules as paired runs.

Why these figures: a wrongful listing harms for as long as it lasts, so what due process is
worth is measured in days -- how long a citizen listed on a false record stays listed before
the correction, and how that changes with prior notice, an enforced deadline or more appeal
capacity. Everything is read from a run's ``cases.parquet`` and ``stays.parquet`` (the redress
stage) and ``metrics.parquet``:

- **time to exit by route** (per list, per route, overall and per group): Kaplan-Meier curves
  of stay lengths where an exit by *this* route is the event and every other ending -- another
  route, or still listed at the end of the run -- is censored (cause-specific curves: the
  median is the time by which half would have left by this route if no other route existed;
  it is not the share that actually left by it, which ``exits`` counts);
- **time to redress**: for upheld objections, days from the listing to the correction exit,
  and from the notice to it; for upheld objections to *false* records, days from the record's
  filing to its correction (comparable across notice rules: with prior notice many false
  records are corrected before any listing, which a time from listing cannot show);
- **wrongful days before correction**: days listed on a *false* record before an upheld
  objection ended the stay (sum, mean, count);
- **backlog**: cases waiting at the end of each day per body (the ``appeal_backlog`` stock);
- **appeal success by group**: upheld / decided per body, split by whether the record was
  false, per value of every group dimension, with Wilson 95% intervals (binomial counts).

**What-if** (:func:`what_if`): the scenario as it is and three variants -- prior notice
(``notice.at: filing``, no delay), every body's decision deadline enforced (D4's 15 days where
none is declared) and doubled appeal capacity -- each run with seeds ``seed .. seed+k-1``, and
each paired with its own no-false-records counterfactual (same seed). *Wrongful days* of a run
= the sum over citizens of days listed in the run minus days listed in that counterfactual,
citizen by citizen (net: a citizen listed longer without false records counts negative, shown
as it is). Variants are compared with the scenario as it is by the t interval of the paired
per-seed differences (:func:`credsim.audit.stats.interval`).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from credsim.api import run as run_api
from credsim.audit.counterfactuals import BY_HARM, apply
from credsim.audit.money import net_taken_wrongly
from credsim.audit.stats import interval, kaplan_meier, km_quantile
from credsim.names import APPEAL_BACKLOG, EXIT_ROUTES, INVESTIGATED, INVESTIGATED_TRUE, trait_column
from credsim.partitions import table_files
from credsim.scenario.keypath import dump
from credsim.scenario.load import load_scenario
from credsim.scenario.schema import Scenario
from credsim.store import connect, read_manifest

D4_DECISION_DAYS = 15  # D4: the court reviews an objection within 15 days
WHAT_IF_FILE = "what_if.json"


@dataclass(frozen=True)
class Share:
    """k of n with a Wilson 95% interval (a binomial proportion; exact enough for n of tens and up)."""

    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else math.nan

    def wilson(self, z: float = 1.959964) -> tuple[float, float]:
        if self.n == 0:
            return math.nan, math.nan
        p, n = self.rate, self.n
        mid = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        # the Wilson bounds lie in [0, 1] exactly; only floating-point rounding can step outside
        return max(0.0, mid - half), min(1.0, mid + half)

    def as_dict(self) -> dict[str, float | str]:
        lo, hi = self.wilson()
        return {"upheld": self.k, "decided": self.n, "rate": self.rate, "lo": lo, "hi": hi,
                "interval": "Wilson 95%"}


def _km(dur: np.ndarray, obs: np.ndarray) -> dict[str, float]:
    times, surv = kaplan_meier(dur, obs)
    return {"n": int(dur.shape[0]), "events": int(obs.sum()), "median_days": km_quantile(times, surv, 0.5),
            "p90_days": km_quantile(times, surv, 0.9)}


def _correction_days(scen: dict[str, Any]) -> dict[str, int]:
    appeals = (scen.get("redress") or {}).get("appeals") or {}
    return {b: int(a.get("correction_days", 1)) for b, a in appeals.items()}


def figures(run_dir: str | Path) -> dict[str, Any]:
    """The redress figures of one run (empty when the scenario has no redress section)."""
    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    if not table_files(man.get("files", []), "cases.parquet"):
        return {}  # investigations alone: see investigation_figures
    scen, days = man["scenario"], int(man["days"])
    dims = list(scen["population"]["groups"])
    con = connect(run_dir)
    try:
        st = con.execute("SELECT s.cit, s.lst::VARCHAR, s.since, s.exit, coalesce(s.route::VARCHAR, ''), "
                         + ", ".join(f'c."{d}"::VARCHAR' for d in dims)
                         + " FROM stays s JOIN citizens c ON c.citizen = s.cit ORDER BY s.lst, s.cit, s.since"
                         ).fetchall()
        cs = con.execute("SELECT k.cit, k.lst::VARCHAR, k.body::VARCHAR, k.false_record, k.notice, k.filed, k.decided, "
                         "k.upheld, k.rid, " + ", ".join(f'c."{d}"::VARCHAR' for d in dims)
                         + " FROM cases k JOIN citizens c ON c.citizen = k.cit ORDER BY k.filed, k.cit").fetchall()
        backlog = {}
        for body in _correction_days(scen):
            rows = con.execute("SELECT day, value FROM metrics WHERE metric = ? AND dimension = 'all' ORDER BY day",
                               [APPEAL_BACKLOG(body)]).fetchall()
            vals = np.array([v for _d, v in rows], dtype=np.float64)
            backlog[body] = {"max": float(vals.max()) if vals.size else 0.0,
                             "mean": float(vals.mean()) if vals.size else 0.0,
                             "end": float(vals[-1]) if vals.size else 0.0, "series": vals.tolist()}
    finally:
        con.close()
    return {"exit_time": _exit_times(st, dims, days), **_cases(st, cs, dims, _correction_days(scen), days),
            "backlog": backlog}


def _exit_times(st: list[tuple[Any, ...]], dims: list[str], days: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not st:
        return out
    lst = np.array([r[1] for r in st])
    dur = np.array([(r[3] if r[3] >= 0 else days) - r[2] for r in st], dtype=np.float64)
    route = np.array([r[4] for r in st])
    for ln in sorted(set(lst.tolist())):
        on = lst == ln
        per: dict[str, Any] = {}
        for r in EXIT_ROUTES:
            if not (route[on] == r).any():
                continue
            obs = route == r
            per[r] = {"all": _km(dur[on], obs[on])}
            for k, dim in enumerate(dims):
                g = np.array([row[5 + k] for row in st])
                per[r][dim] = {v: _km(dur[on & (g == v)], obs[on & (g == v)]) for v in sorted(set(g[on].tolist()))}
        out[ln] = per
    return out


def _cases(st: list[tuple[Any, ...]], cs: list[tuple[Any, ...]], dims: list[str],
           correction: dict[str, int], days: int) -> dict[str, Any]:
    """Time to redress and wrongful days (upheld cases matched to the stay their correction ended), and success."""
    ended = {(r[0], r[1], r[3]): r[2] for r in st if r[4] == "appeal"}
    to_redress: list[float] = []
    from_notice: list[float] = []
    from_filing: list[float] = []  # false records: days from filing to the correction
    wrongful: list[float] = []
    success: dict[str, Any] = {}
    for body in correction:
        mine = [r for r in cs if r[2] == body and r[6] >= 0]
        by: dict[str, Any] = {}
        for label, false in (("false_record", 1), ("true_record", 0)):
            sel = [r for r in mine if r[3] == false]
            entry: dict[str, Any] = {"all": Share(sum(r[7] == 1 for r in sel), len(sel)).as_dict()}
            for k, dim in enumerate(dims):
                entry[dim] = {v: Share(sum(r[7] == 1 for r in sel if r[9 + k] == v),
                                       sum(1 for r in sel if r[9 + k] == v)).as_dict()
                              for v in sorted({r[9 + k] for r in sel})}
            by[label] = entry
        success[body] = by
    for r in cs:
        if r[7] != 1:
            continue
        exit_day = r[6] + correction[r[2]]
        if r[3] == 1 and exit_day < days:
            from_filing.append(exit_day - (r[8] >> 32))
        since = ended.get((r[0], r[1], exit_day))
        if since is None:  # the correction came after the stay had ended otherwise, or after the run
            continue
        to_redress.append(exit_day - since)
        from_notice.append(exit_day - r[4])
        if r[3] == 1:
            wrongful.append(exit_day - since)

    def summary(x: list[float]) -> dict[str, float]:
        a = np.array(x, dtype=np.float64)
        return {"n": int(a.size), "mean": float(a.mean()) if a.size else math.nan,
                "median": float(np.median(a)) if a.size else math.nan, "sum": float(a.sum())}

    return {"time_to_redress": {"from_listing": summary(to_redress), "from_notice": summary(from_notice),
                                "false_record_from_filing": summary(from_filing)},
            "wrongful_days_before_correction": summary(wrongful), "appeal_success": success}


# -- pooled over the replicates of an audit ----------------------------------------------------------

BACKLOG_POINTS = 8  # days shown of a backlog series in the report (evenly spaced, the last day included)


def pool(figs: list[dict[str, Any]]) -> dict[str, Any]:
    """The redress figures of an audit's replicates side by side, for the report.

    Per-run figures (wrongful days, corrections, mean days to correction, Kaplan-Meier medians, the
    backlog's peak) get a t interval over the replicates (:func:`credsim.audit.stats.interval`); the
    backlog series is the replicates' mean day by day; appeal success adds the replicates' binomial
    counts (upheld of decided) and gives a Wilson 95% interval of the pooled counts -- said so in
    ``how`` wherever it is shown. Empty when the runs have no redress tables."""
    figs = [f for f in figs if f]
    if not figs:
        return {}
    tr = [f["time_to_redress"] for f in figs]
    out: dict[str, Any] = {
        "replicates": len(figs),
        "wrongful_days": interval([f["wrongful_days_before_correction"]["sum"] for f in figs]).as_dict(),
        "wrongful_citizens": interval([float(f["wrongful_days_before_correction"]["n"]) for f in figs]).as_dict(),
        "corrected": interval([float(t["from_listing"]["n"]) for t in tr]).as_dict(),
        "days_to_redress": interval([t["from_listing"]["mean"] for t in tr]).as_dict(),
        "false_record_days": interval([t["false_record_from_filing"]["mean"] for t in tr]).as_dict(),
        "exit_routes": {}, "backlog": {}, "success": {},
        "how": {"per_run": "mean over replicates [95% t interval]",
                "success": "upheld / decided, counts added over replicates, Wilson 95% interval"}}
    for ln in figs[0]["exit_time"]:
        routes: dict[str, Any] = {}
        for r in EXIT_ROUTES:
            cells = [f["exit_time"].get(ln, {}).get(r) for f in figs]
            if not any(cells):
                continue
            routes[r] = {"exits": sum(c["all"]["events"] for c in cells if c),
                         "stays": sum(c["all"]["n"] for c in cells if c),
                         "median_days": interval([c["all"]["median_days"] if c else math.nan for c in cells]).as_dict()}
        out["exit_routes"][ln] = routes
    for body in figs[0]["backlog"]:
        series = [np.array(f["backlog"][body]["series"], dtype=np.float64) for f in figs]
        n = min(len(x) for x in series)
        mean = np.mean([x[:n] for x in series], axis=0) if n else np.zeros(0)
        days = sorted({int(round(i * (n - 1) / (BACKLOG_POINTS - 1))) for i in range(BACKLOG_POINTS)}) if n else []
        out["backlog"][body] = {"days": days, "mean": [float(mean[d]) for d in days],
                                "max": interval([f["backlog"][body]["max"] for f in figs]).as_dict()}
    for body, by in figs[0]["appeal_success"].items():
        per: dict[str, Any] = {}
        for label in by:
            entry: dict[str, Any] = {}
            for key in by[label]:
                if key == "all":
                    k = sum(f["appeal_success"][body][label]["all"]["upheld"] for f in figs)
                    n = sum(f["appeal_success"][body][label]["all"]["decided"] for f in figs)
                    entry["all"] = Share(k, n).as_dict()
                    continue
                groups = sorted({g for f in figs for g in f["appeal_success"][body][label].get(key, {})})
                entry[key] = {}
                for g in groups:
                    cs = [f["appeal_success"][body][label].get(key, {}).get(g) for f in figs]
                    entry[key][g] = Share(sum(c["upheld"] for c in cs if c), sum(c["decided"] for c in cs if c)
                                          ).as_dict()
            per[label] = entry
        out["success"][body] = per
    return out


# -- investigations ---------------------------------------------------------------------------------


def investigation_figures(run_dir: str | Path) -> dict[str, Any]:
    """Per investigation: precision (truly has it / investigated), share of picks by group, and per group
    the flag rate of those without it (investigated without it / members without it), each with a
    Wilson 95% interval, and its ratio to the scenario's reference group (``population.reference``,
    else the largest share). Empty when the scenario declares no investigations.

    The flag rate counts investigations, not citizens (a citizen can be investigated again after
    ``repeat_after_days``): over a run shorter than that they are the same."""
    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    scen = man["scenario"]
    invs = scen.get("investigations") or {}
    if not invs:
        return {}
    groups: dict[str, dict[str, float]] = scen["population"]["groups"]
    ref_decl = scen["population"].get("reference") or {}
    refs = {d: ref_decl.get(d, max(vals, key=lambda g: vals[g])) for d, vals in groups.items()}
    con = connect(run_dir)
    out: dict[str, Any] = {}
    try:
        def total(metric: str, dim: str = "all", group: str = "all") -> int:
            row = con.execute('SELECT coalesce(sum(value), 0) FROM metrics WHERE metric = ? AND dimension = ? '
                              'AND "group" = ?', [metric, dim, group]).fetchone()
            return int(round(row[0])) if row else 0

        for name, spec in invs.items():
            trait, above = spec["truth"]["trait"], float(spec["truth"]["above"])
            n, t = total(INVESTIGATED(name)), total(INVESTIGATED_TRUE(name))
            fig: dict[str, Any] = {"rank_by": spec.get("rank_by", "model"), "investigated": n,
                                   "precision": Share(t, n).as_dict(), "groups": {}}
            for dim, vals in groups.items():
                rows = con.execute(f'SELECT "{dim}"::VARCHAR, count(*) FILTER (WHERE "{trait_column(trait)}" <= ?) '
                                   f'FROM citizens GROUP BY 1', [above]).fetchall()
                without = {g: int(k) for g, k in rows}
                per: dict[str, Any] = {}
                for g in vals:
                    gn, gt = total(INVESTIGATED(name), dim, g), total(INVESTIGATED_TRUE(name), dim, g)
                    per[g] = {"share_of_picks": Share(gn, n).as_dict(),
                              "precision": Share(gt, gn).as_dict(),
                              "flag_rate_without": Share(gn - gt, without.get(g, 0)).as_dict()}
                ref = per[refs[dim]]["flag_rate_without"]["rate"]
                for g in vals:
                    rate = per[g]["flag_rate_without"]["rate"]
                    per[g]["flag_ratio_to_reference"] = rate / ref if ref else math.nan
                fig["groups"][dim] = {"reference": refs[dim], "by": per}
            out[name] = fig
    finally:
        con.close()
    return out


# -- what-if -----------------------------------------------------------------------------------------

Data = dict[str, Any]


def _prior_notice(data: Data) -> None:
    data["redress"]["notice"] = {**(data["redress"].get("notice") or {}), "at": "filing", "delay_days": 0}
    for ln, rule in (data["redress"].get("notice_by_list") or {}).items():
        data["redress"]["notice_by_list"][ln] = {**rule, "at": "filing", "delay_days": 0}


def _enforced_deadline(data: Data) -> None:
    for body in (data["redress"].get("appeals") or {}).values():
        body["deadline_enforced"] = True
        if body.get("decide_within_days") is None:
            body["decide_within_days"] = D4_DECISION_DAYS


def _double_capacity(data: Data) -> None:
    for body in (data["redress"].get("appeals") or {}).values():
        body["capacity_per_day"] = 2 * body["capacity_per_day"]


VARIANTS: dict[str, tuple[str, Callable[[Data], None] | None]] = {
    "as_is": ("the scenario as it is", None),
    "prior_notice": ("notice served when the record is filed (no delay), before the listing", _prior_notice),
    "enforced_deadline": (f"every appeal body decides within its deadline ({D4_DECISION_DAYS} days, D4, where none "
                          "is declared), beyond its capacity if need be", _enforced_deadline),
    "double_capacity": ("every appeal body decides twice as many cases a day", _double_capacity),
}


def variant(scen: Scenario, key: str) -> Scenario:
    """``scen`` under the what-if ``key`` (one of :data:`VARIANTS`)."""
    if scen.redress is None:
        raise ValueError(f"scenario {scen.name!r} has no redress section: nothing to compare (add `redress:` with "
                         "notice and appeals)")
    _words, transform = VARIANTS[key]
    if transform is None:
        return scen
    data = dump(scen)
    data = copy.deepcopy(data)
    transform(data)
    data["name"] = f"{scen.name}-{key.replace('_', '-')}"
    data["description"] = f"{scen.name}: {VARIANTS[key][0]} (what-if)"
    return load_scenario(data)


def days_listed(run_dir: Path) -> dict[int, float]:
    """Official days listed per citizen (every list, stays still running counted to the end of the run)."""
    man = read_manifest(run_dir)
    con = connect(run_dir)
    try:
        rows = con.execute("SELECT cit, sum(CASE WHEN exit >= 0 THEN exit ELSE ? END - since) FROM stays GROUP BY cit",
                           [int(man["days"])]).fetchall()
    finally:
        con.close()
    return {int(c): float(v) for c, v in rows}


def wrongful_days(run_dir: Path, no_false: Path | None) -> float:
    """Sum over citizens of days listed in the run minus days listed without false records (same seed)."""
    mine = days_listed(run_dir)
    if no_false is None:
        return 0.0
    theirs = days_listed(no_false)
    return float(sum(mine.get(c, 0.0) - theirs.get(c, 0.0) for c in set(mine) | set(theirs)))


def what_if(scenario: str | Path | Scenario, out: str | Path, *, replicates: int = 5, population: int | None = None,
            days: int | None = None, seed: int | None = None, threads: int | None = None,
            on_run: Callable[[str, int], None] | None = None) -> dict[str, Any]:
    """Run the scenario and its redress variants paired by seed; write and return ``what_if.json``."""
    scen = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    out = Path(out)
    first = scen.run.seed if seed is None else seed
    seeds = [first + i for i in range(replicates)]
    per: dict[str, dict[str, list[float]]] = {k: {"wrongful_days": [], "days_to_correction": [],
                                                  "corrected_false": [], "wrongful_days_before_correction": []}
                                              for k in VARIANTS}
    for s in seeds:
        for key in VARIANTS:
            v = variant(scen, key)
            cf = apply(BY_HARM["wrongful"], v)
            runs: dict[str, Path | None] = {}
            for label, sc in (("run", v), ("no_false", cf)):
                if sc is None:
                    runs[label] = None
                    continue
                if on_run is not None:
                    on_run(f"{key} {label}", s)
                runs[label] = run_api(sc, out=out / "runs" / f"{key}-{label}-s{s}", population=population, days=days,
                                      seed=s, threads=threads, overwrite=True).dir
            main = runs["run"]
            assert main is not None
            fig = figures(main)
            per[key]["wrongful_days"].append(wrongful_days(main, runs["no_false"]))
            ttc = fig["time_to_redress"]["false_record_from_filing"]
            per[key]["days_to_correction"].append(ttc["mean"])
            per[key]["corrected_false"].append(float(ttc["n"]))
            per[key]["wrongful_days_before_correction"].append(fig["wrongful_days_before_correction"]["sum"])
            money = net_taken_wrongly(main, runs["no_false"])  # a sum of per-citizen differences (money.py)
            if money is not None:
                per[key].setdefault("money_taken_wrongly", []).append(money)
    result: dict[str, Any] = {"scenario": scen.name, "seeds": seeds, "population": population, "days": days,
                              "variants": {k: w for k, (w, _t) in VARIANTS.items()},
                              "wrongful_days_means": "sum over citizens of days listed minus days listed in the "
                              "same variant without false records, same seed (net, citizen by citizen)",
                              "days_to_correction_means": "mean days from the filing of a false record to its "
                              "correction, over upheld objections corrected within the run",
                              "intervals": "mean and 95% t interval across seeds; differences are paired by seed",
                              "figures": {}}
    base = per["as_is"]
    for key, vals in per.items():
        row: dict[str, Any] = {}
        for name, xs in vals.items():
            row[name] = {**interval(xs).as_dict(), "per_seed": xs}
            if key != "as_is":
                diff = [a - b for a, b in zip(xs, base[name], strict=True)]
                row[name]["change_vs_as_is"] = {**interval(diff).as_dict(), "per_seed": diff}
        result["figures"][key] = row
    out.mkdir(parents=True, exist_ok=True)
    (out / WHAT_IF_FILE).write_text(json.dumps(result, indent=2, default=float, allow_nan=True))
    return result
