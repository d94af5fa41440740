"""The audit figures of one run, computed with SQL over the run's DuckDB catalog.

Everything here reads the run directory only (``metrics``, ``citizens``, ``events``
views), so every figure in a report can be recomputed by hand with ``credsim sql``.
:func:`run_figures` returns a JSON-able dict:

``scalars``      flat name -> number; the figures that replicates turn into intervals
``series``       daily stocks (grade mix, list sizes) of the whole population
``groups``       per group of every dimension: population and counts (denied, wrongful, ...)
``fairness``     disparate-impact rate ratios of this run alone (see :mod:`credsim.audit.fairness`;
                 an audit's headline ratios are pooled over replicates)
``sanctions``    per sanction rule: denials, cross-context share, severity vs gravity
``recovery``     time to leave a list / to regain a lost grade (Kaplan-Meier, censored)
``transitions``  start -> end grade matrix, and official vs shadow final grade matrix
"""

from __future__ import annotations

import json
import math
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from credsim import names as nm
from credsim.audit import fairness
from credsim.audit.stats import gini, kaplan_meier, km_quantile
from credsim.store import connect, read_manifest


def kinds_of(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """Behaviour names by kind (infraction, speech, attempt, ...), from the resolved scenario."""
    out: dict[str, list[str]] = {}
    for name, b in manifest["scenario"]["behaviours"].items():
        out.setdefault(b["kind"], []).append(name)
    return out


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> float:
    row = con.execute(sql, params or []).fetchone()
    v = row[0] if row else None
    return float(v) if v is not None else 0.0


def _has_view(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [name]).fetchone()[0])  # type: ignore[index]


def _metric_total(con: duckdb.DuckDBPyConnection, metric: str) -> float:
    return _one(con, "SELECT sum(value) FROM metrics_all WHERE metric = ?", [metric])


def _metric_end(con: duckdb.DuckDBPyConnection, metric: str, last: int) -> float:
    return _one(con, "SELECT value FROM metrics_all WHERE metric = ? AND day = ?", [metric, last])


# Figures of recently read runs, keyed by what identifies a run's content: the scenario hash, seed and
# status with the manifest's modification time and size (a copied run keeps them: the dashboard copies
# one cached baseline into the audit of every policy tried). Callers get copies, since they add to them.
_RECENT: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
_RECENT_MAX = 8


def run_figures(run_dir: str | Path, reference: dict[str, str] | None = None,
                intersections: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """All single-run audit figures of ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    st = (run_dir / "manifest.json").stat()
    key = (man.get("scenario_hash"), man.get("seed"), man.get("status"), st.st_mtime_ns, st.st_size,
           json.dumps(reference, sort_keys=True), json.dumps(intersections))
    hit = _RECENT.get(key) if man.get("scenario_hash") else None
    if hit is not None:
        out: dict[str, Any] = pickle.loads(hit)
        out["run"]["dir"] = str(run_dir)
        return out
    scen = man["scenario"]
    con = connect(run_dir)
    try:
        figs = _figures(con, run_dir, man, scen, reference, intersections)
    finally:
        con.close()
    _RECENT[key] = pickle.dumps(figs, protocol=pickle.HIGHEST_PROTOCOL)  # in-memory frozen copy (never a file)
    while len(_RECENT) > _RECENT_MAX:
        _RECENT.popitem(last=False)
    return figs


def _figures(con: duckdb.DuckDBPyConnection, run_dir: Path, man: dict[str, Any], scen: dict[str, Any],
             reference: dict[str, str] | None, intersections: list[tuple[str, str]] | None) -> dict[str, Any]:
    n, days = int(man["population"]), int(man["days"])
    last = days - 1
    kinds = kinds_of(man)
    attempts = kinds.get("attempt", [])
    lists = list((scen.get("lists") or {}).keys())
    bands = ((scen.get("scoring") or {}).get("grades") or {}).get("bands") or []
    grades = [b["name"] for b in bands]
    has_events = _has_view(con, "events")
    s: dict[str, float] = {"population": n, "days": days}
    # the totals ('all') read once into memory: hundreds of figures each scanning the Parquet file cost
    # more than the run of a small audit (16 ms a query; 700 queries a run)
    con.execute("CREATE TEMP TABLE metrics_all AS SELECT day, metric, value FROM metrics WHERE dimension = 'all'")

    # sanctions: attempts, denials, wrongful, missed, per activity and in total
    for key in ("attempts", "denied", "shadow_denied", "wrongful", "missed", "rewarded"):
        tot = 0.0
        for a in attempts:
            v = _metric_total(con, f"{key}.{a}")
            s[f"{key}.{a}"] = v
            tot += v
        s[f"{key}.total"] = tot
    s["wrongful.share_of_denied"] = s["wrongful.total"] / s["denied.total"] if s["denied.total"] else math.nan
    s["missed.share_of_shadow_denied"] = (s["missed.total"] / s["shadow_denied.total"]
                                          if s["shadow_denied.total"] else math.nan)
    s["citizens.sanctioned"] = _one(con, "SELECT count(*) FROM citizens WHERE n_denied > 0")
    s["citizens.wrongfully_sanctioned"] = _one(con, "SELECT count(*) FROM citizens WHERE n_wrongful > 0")
    s["citizens.missed"] = _one(con, "SELECT count(*) FROM citizens WHERE n_missed > 0")
    s["records.official_false"] = _metric_total(con, "records.official_false")
    s["records.official_true"] = _metric_total(con, "records.official_true")
    s["records.per_capita"] = (s["records.official_false"] + s["records.official_true"]) / n
    citizen_cols = {r[0] for r in con.execute("DESCRIBE citizens").fetchall()}
    if "n_records_adverse" in citizen_cols:  # runs written before it was counted have no such column
        s["records.adverse"] = _one(con, "SELECT sum(n_records_adverse) FROM citizens")
        s["records.adverse_per_capita"] = s["records.adverse"] / n
    for li, bad in _grade_rule_violations(con, scen, lists).items():
        s[f"check.grade_rule.{li}"] = bad

    # per sensor: true events it recorded (e.g. fines under a rule with its own sensor) and false
    # records; per speech behaviour, where a censor suppresses posts, the contacts reached and lost
    for sn in scen.get("sensors") or {}:
        s[nm.OBSERVED(sn)] = _metric_total(con, nm.OBSERVED(sn))
        s[nm.FALSE_OBSERVED(sn)] = _metric_total(con, nm.FALSE_OBSERVED(sn))
    censored = {b for v in (scen.get("sensors") or {}).values() if (v or {}).get("suppress") is not None
                for b in v.get("observes") or []}
    for b in sorted(censored):
        s[nm.REACH(b)] = _metric_total(con, nm.REACH(b))
        s[nm.REACH_LOST(b)] = _metric_total(con, nm.REACH_LOST(b))

    # cross-context detriment and association harm
    s["cross_context.mean_share"] = (_metric_total(con, "denied.cross_context_sum") / s["denied.total"]
                                     if s["denied.total"] else math.nan)
    s["association_only.denials"] = _metric_total(con, "denied.association_only")
    s["association_only.citizens"] = _one(con, "SELECT count(*) FROM citizens WHERE n_association_only > 0")

    # behaviour (compared with the baseline in paired runs)
    for kind in ("infraction", "speech"):
        tot = 0.0
        for b in kinds.get(kind, []):
            v = _metric_total(con, f"events.{b}")
            s[f"events.{b}"] = v
            tot += v
        s[f"events.{kind}.total"] = tot

    # lists and grades at the end
    for li in lists:
        s[f"listed.{li}.end"] = _metric_end(con, f"listed.{li}", last)
        s[f"shadow_listed.{li}.end"] = _metric_end(con, f"shadow_listed.{li}", last)
        s[f"entries.{li}"] = _metric_total(con, f"entries.{li}")
    for g in grades:
        s[f"grade.{g}.end"] = _metric_end(con, f"grade.{g}", last)
        s[f"shadow_grade.{g}.end"] = _metric_end(con, f"shadow_grade.{g}", last)

    # score inequality
    cols = {r[0] for r in con.execute("DESCRIBE citizens").fetchall()}
    score_col = "model_score" if "model_score" in cols and (scen.get("scoring") or {}).get("model") else "score"
    vals = con.execute(f"SELECT {score_col}, shadow_{score_col} FROM citizens").fetchnumpy()
    s["gini.score"] = gini(vals[score_col])
    s["gini.shadow_score"] = gini(vals[f"shadow_{score_col}"])
    s["score.mean"] = float(np.mean(vals[score_col])) if n else math.nan

    out: dict[str, Any] = {
        "run": {"dir": str(run_dir), "scenario": man["scenario_name"], "seed": man["seed"], "population": n,
                "days": days, "scenario_hash": man.get("scenario_hash", "")},
        "kinds": kinds, "attempts": attempts, "lists": lists, "grades": grades, "score_column": score_col,
        "scalars": s,
        "series": _series(con, lists, grades, attempts),
        "groups": _groups(con, attempts),
        "fairness": fairness.single_run(run_dir, reference, intersections),
        "sanctions": _sanctions(con, scen) if has_events else [],
        "recovery": _recovery(con, lists, grades, days) if has_events else {},
        "transitions": _transitions(con, grades) if has_events and grades else {},
    }
    for row in out["sanctions"]:
        s[f"sanction.{row['sanction']}.denials"] = row["denials"]
    return out


def _grade_rule_violations(con: duckdb.DuckDBPyConnection, scen: dict[str, Any], lists: list[str]) -> dict[str, float]:
    """Citizens whose end-of-run membership of a list entered by grade breaks the grade rule.

    The same invariant as :func:`credsim.stages.classify.grade_rule_violations`, from the
    files: in an entry grade means listed (unless a fixed term can have ended the stay), and
    listed means in an entry grade when the list exits on grade recovery. Anything but 0 is
    a bug that understates or overstates every figure about that list.
    """
    out: dict[str, float] = {}
    for li in lists:
        spec = (scen.get("lists") or {})[li]
        grades = spec["entry"].get("grades")
        if not grades:
            continue
        into = "grade IN (SELECT unnest(?))"
        parts, params = [], []
        if not spec["exit"].get("term_days"):
            parts.append(f"({into} AND NOT \"on_{li}\")")
            params.append(grades)
        if spec["exit"].get("on_grade_recovery"):
            parts.append(f"(\"on_{li}\" AND NOT {into})")
            params.append(grades)
        if parts:
            out[li] = _one(con, f"SELECT count(*) FROM citizens WHERE {' OR '.join(parts)}", params)
    return out


def _series(con: duckdb.DuckDBPyConnection, lists: list[str], grades: list[str], attempts: list[str]) -> dict[str, Any]:
    names = ([f"grade.{g}" for g in grades] + [f"shadow_grade.{g}" for g in grades]
             + [f"listed.{li}" for li in lists] + [f"shadow_listed.{li}" for li in lists]
             + [f"denied.{a}" for a in attempts] + [f"wrongful.{a}" for a in attempts]
             + [f"missed.{a}" for a in attempts])
    out: dict[str, Any] = {"day": [r[0] for r in con.execute("SELECT DISTINCT day FROM metrics ORDER BY 1").fetchall()]}
    for m in names:
        rows = con.execute("SELECT value FROM metrics_all WHERE metric = ? ORDER BY day",
                           [m]).fetchall()
        out[m] = [r[0] for r in rows]
    return out


def _groups(con: duckdb.DuckDBPyConnection, attempts: list[str]) -> list[dict[str, Any]]:
    """Per group of every dimension: population (day 0) and lifetime flows from the metrics table."""
    flows = [f"{k}.{a}" for k in ("denied", "wrongful", "missed", "attempts") for a in attempts]
    rows = con.execute(
        "SELECT dimension, \"group\", metric, sum(value) FROM metrics WHERE dimension <> 'all' AND "
        "(metric IN (SELECT unnest(?)) OR (metric = 'population' AND day = 0) OR metric LIKE 'events.%' "
        "OR metric LIKE 'observed.%' OR metric LIKE 'reach%') "
        "GROUP BY ALL", [flows]).fetchall()
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for dim, grp, metric, value in rows:
        d = table.setdefault((dim, grp), {"dimension": dim, "group": grp})
        d[metric] = value
    out = []
    for (_dim, _grp), d in sorted(table.items()):
        for k in ("denied", "wrongful", "missed", "attempts"):
            d[f"{k}.total"] = sum(d.get(f"{k}.{a}", 0.0) for a in attempts)
        out.append(d)
    return out


def _sanctions(con: duckdb.DuckDBPyConnection, scen: dict[str, Any]) -> list[dict[str, Any]]:
    """Per sanction rule: denials, wrongful share, cross-context share, and severity vs gravity."""
    rows = con.execute(
        "SELECT sanction, count(*), sum((view = 'official')::INT), avg(\"cross\"), avg((\"cross\" >= 0.5)::INT), "
        "any_value(value), quantile_cont(gravity, 0.5), quantile_cont(gravity, 0.1), quantile_cont(gravity, 0.9), "
        "avg(gravity), sum(assoc) FROM events WHERE kind = 'denial' AND view IN ('both', 'official') "
        "GROUP BY sanction ORDER BY sanction").fetchall()
    spec = scen.get("sanctions") or {}
    out = []
    for name, cnt, wrong, cross, cross_major, sev, g50, g10, g90, gmean, assoc in rows:
        when = (spec.get(name) or {}).get("when", {})
        lst = when.get("list")
        out.append({"sanction": name, "denials": cnt, "wrongful": wrong, "cross_mean": cross,
                    "cross_majority_share": cross_major, "severity": sev, "gravity_median": g50,
                    "gravity_p10": g10, "gravity_p90": g90, "gravity_mean": gmean, "association_only": assoc,
                    "trigger": f"list {lst}" if lst else f"grades {', '.join(when.get('grades') or [])}",
                    "attempts": (spec.get(name) or {}).get("attempts", [])})
    return out


def _recovery(con: duckdb.DuckDBPyConnection, lists: list[str], grades: list[str], days: int) -> dict[str, Any]:
    """Time on a list (entry to exit) and time to regain a lost grade, censored at the end of the run."""
    out: dict[str, Any] = {"lists": {}, "grade": {}}
    for li in lists:
        # every exit carries its entry day; stays without an exit are censored at the end
        done = con.execute("SELECT day - prev FROM events WHERE kind = 'list' AND view = 'official' AND item = ? "
                           "AND value < 0", [li]).fetchall()
        entries = con.execute(
            "SELECT day FROM events e WHERE kind = 'list' AND view = 'official' AND item = ? AND value > 0 "
            "AND NOT EXISTS (SELECT 1 FROM events x WHERE x.kind = 'list' AND x.view = 'official' AND x.item = e.item "
            "AND x.value < 0 AND x.citizen = e.citizen AND x.prev = e.day)", [li]).fetchall()
        # stays that began before day 0 (a list entered by grade: the starting grade) have no entry row
        start = con.execute(
            f"SELECT count(*) FROM citizens c WHERE \"on_{li}\" AND NOT EXISTS (SELECT 1 FROM events x "
            "WHERE x.kind = 'list' AND x.view = 'official' AND x.item = ? AND x.citizen = c.citizen)",
            [li]).fetchone()
        n_start = int(start[0]) if start else 0
        dur = np.array([r[0] for r in done] + [days - r[0] for r in entries] + [days] * n_start, dtype=np.float64)
        obs = np.array([1] * len(done) + [0] * (len(entries) + n_start), dtype=np.int8)
        out["lists"][li] = _km_summary(dur, obs)
    if grades:
        rows = con.execute("SELECT citizen, day, prev, value FROM events WHERE kind = 'grade' AND view = 'official' "
                           "ORDER BY citizen, day").fetchall()
        dur_l: list[float] = []
        obs_l: list[int] = []
        i = 0
        while i < len(rows):
            cit = rows[i][0]
            j = i
            while j < len(rows) and rows[j][0] == cit:
                j += 1
            seq = rows[i:j]
            k = 0
            while k < len(seq):
                _c, d0, old, new = seq[k]
                if new > old:  # a downgrade (higher index = lower grade): wait until back to ``old`` or better
                    back = next((r for r in seq[k + 1:] if r[3] <= old), None)
                    if back is None:
                        dur_l.append(days - d0); obs_l.append(0)
                        break
                    dur_l.append(back[1] - d0); obs_l.append(1)
                    k = seq.index(back) + 1
                    continue
                k += 1
            i = j
        out["grade"] = _km_summary(np.array(dur_l), np.array(obs_l, dtype=np.int8))
    return out


def _km_summary(dur: np.ndarray, obs: np.ndarray) -> dict[str, Any]:
    """Kaplan-Meier summary; the durations are kept (``durations``, ``observed``) so replicates can be pooled."""
    times, surv = kaplan_meier(dur, obs)
    return {"n": int(dur.shape[0]), "recovered": int(obs.sum()) if dur.shape[0] else 0,
            "censored": int((obs == 0).sum()) if dur.shape[0] else 0,
            "median_days": km_quantile(times, surv, 0.5), "p90_days": km_quantile(times, surv, 0.9),
            "curve_t": [float(t) for t in times], "curve_s": [float(v) for v in surv],
            "durations": [float(x) for x in dur], "observed": [int(x) for x in obs]}


def pool_recovery(figs: list[dict[str, Any]]) -> dict[str, Any]:
    """One Kaplan-Meier curve per list (and for grades) over the stays of every replicate.

    Replicates are independent populations, so their stays are pooled as one sample; the
    per-replicate duration lists are then dropped from ``figs`` (they only served the pooling).
    """
    def pooled(parts: list[dict[str, Any]]) -> dict[str, Any]:
        dur = np.array([x for p in parts for x in p.get("durations", [])], dtype=np.float64)
        obs = np.array([x for p in parts for x in p.get("observed", [])], dtype=np.int8)
        out = _km_summary(dur, obs)
        out.pop("durations")
        out.pop("observed")
        return out

    recs = [f.get("recovery") or {} for f in figs]
    result: dict[str, Any] = {"lists": {}, "grade": {}}
    for li in (recs[0].get("lists") or {}) if recs else {}:
        result["lists"][li] = pooled([r["lists"][li] for r in recs if li in r.get("lists", {})])
    if recs and recs[0].get("grade"):
        result["grade"] = pooled([r["grade"] for r in recs if r.get("grade")])
    for r in recs:
        for part in [*(r.get("lists") or {}).values(), r.get("grade") or {}]:
            part.pop("durations", None)
            part.pop("observed", None)
    return result


def _transitions(con: duckdb.DuckDBPyConnection, grades: list[str]) -> dict[str, Any]:
    """Start -> end grade counts (start = the old grade of a citizen's first change, else the end grade)."""
    g = {name: i for i, name in enumerate(grades)}
    rows = con.execute(
        "SELECT coalesce(f.start, ?) AS start_grade, c.grade, count(*) FROM citizens c LEFT JOIN ("
        "  SELECT citizen, arg_min(prev, day) AS start FROM events WHERE kind = 'grade' AND view = 'official' "
        "  GROUP BY citizen) f USING (citizen) GROUP BY ALL", [None]).fetchall()
    k = len(grades)
    start_end = np.zeros((k, k), dtype=np.int64)
    for start, end, cnt in rows:
        e = g[end]
        start_end[int(start) if start is not None else e, e] += cnt
    rows = con.execute("SELECT grade, shadow_grade, count(*) FROM citizens GROUP BY ALL").fetchall()
    off_sh = np.zeros((k, k), dtype=np.int64)
    for a, b, cnt in rows:
        off_sh[g[a], g[b]] += cnt
    return {"grades": grades, "start_end": start_end.tolist(), "official_vs_shadow": off_sh.tolist()}
