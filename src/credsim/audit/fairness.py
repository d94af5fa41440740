"""Disparate impact: rate ratios between each group and a reference group.

Outcomes, per citizen over the whole run (:data:`OUTCOMES`):

- ``surveillance``: official records held about the citizen (records per capita);
- ``sanctioned``: share of citizens denied at least one attempt (official view);
- ``wrongfully_sanctioned``: share denied at least once where the shadow view would not have;
- ``denied_travel``: share denied at least one ``travel.*`` attempt.

The reference group of a dimension is its largest group unless given. A ratio beyond the
**four-fifths rule** is flagged: below 0.8 or above 1/0.8 = 1.25 (these outcomes are harms,
so a ratio above 1.25 means the group is burdened; the classic rule states 0.8 for
favourable outcomes). Each ratio carries Katz's 95% log interval (Poisson form for
per-capita counts); a flag is ``significant`` when that interval excludes 1.

Intersectional groups (e.g. ``region x hukou`` -> ``rural x migrant``) are pairs of
dimensions; their reference is the largest cell.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import duckdb

from credsim.audit.stats import Z95

FOUR_FIFTHS = 0.8

# name -> (SQL expression over the citizen audit table, per-capita count (True) or share (False), label)
OUTCOMES: dict[str, tuple[str, bool, str]] = {
    "surveillance": ("records", True, "official records per citizen"),
    "sanctioned": ("sanctioned", False, "share denied at least once"),
    "wrongfully_sanctioned": ("wrongfully_sanctioned", False, "share wrongfully denied at least once"),
    "denied_travel": ("denied_travel", False, "share denied travel at least once"),
}


def citizen_table_sql(has_events: bool) -> str:
    """The per-citizen audit table (groups and outcomes) as SQL over a run's catalog."""
    travel = ("coalesce(t.n, 0) > 0" if has_events else "NULL")
    join = ("LEFT JOIN (SELECT citizen, count(*) AS n FROM events WHERE kind = 'denial' "
            "AND view IN ('both', 'official') AND item LIKE 'travel.%' GROUP BY citizen) t USING (citizen)"
            if has_events else "")
    return ("SELECT c.*, (n_records_true + n_records_false) AS records, (n_denied > 0)::INT AS sanctioned, "
            f"(n_wrongful > 0)::INT AS wrongfully_sanctioned, ({travel})::INT AS denied_travel "
            f"FROM citizens c {join}")


def _dims(con: duckdb.DuckDBPyConnection) -> list[str]:
    skip = {"grade", "shadow_grade"}
    return [r[0] for r in con.execute("DESCRIBE citizens").fetchall()
            if r[1] == "VARCHAR" and r[0] not in skip]


def _ratio(a: float, n1: float, c: float, n2: float, per_capita: bool) -> tuple[float, float, float]:
    if n1 <= 0 or n2 <= 0 or c <= 0:
        return math.nan, math.nan, math.nan
    r = (a / n1) / (c / n2)
    if a <= 0:
        return r, math.nan, math.nan
    var = 1 / a + 1 / c if per_capita else max(1 / a - 1 / n1 + 1 / c - 1 / n2, 0.0)
    se = math.sqrt(var)
    return r, r * math.exp(-Z95 * se), r * math.exp(Z95 * se)


def _rows(con: duckdb.DuckDBPyConnection, cols: list[str], ref: str | None, min_pop: int) -> list[dict[str, Any]]:
    key = " || ' × ' || ".join(f"CAST({c} AS VARCHAR)" for c in cols)
    sums = ", ".join(f"sum({expr})" for expr, _pc, _l in OUTCOMES.values())
    res = con.execute(f"SELECT {key} AS g, count(*) AS pop, {sums} FROM audit_citizens GROUP BY g "
                      "ORDER BY pop DESC, g").fetchall()
    if not res:
        return []
    by = {r[0]: r for r in res}
    ref_row = by.get(ref) if ref is not None else None
    if ref_row is None:
        ref_row = res[0]
    out = []
    dim = " × ".join(cols)
    for r in res:
        if r[1] < min_pop:
            continue
        for j, (name, (_expr, per_capita, label)) in enumerate(OUTCOMES.items()):
            a, c = r[2 + j], ref_row[2 + j]
            if a is None or c is None:
                continue
            ratio, lo, hi = _ratio(float(a), r[1], float(c), ref_row[1], per_capita)
            flag = bool(math.isfinite(ratio) and (ratio < FOUR_FIFTHS or ratio > 1 / FOUR_FIFTHS))
            sig = bool(flag and math.isfinite(lo) and (lo > 1 or hi < 1))
            out.append({"dimension": dim, "group": r[0], "outcome": name, "label": label,
                        "population": int(r[1]), "count": float(a), "rate": float(a) / r[1],
                        "reference": ref_row[0], "reference_rate": float(c) / ref_row[1],
                        "ratio": ratio, "lo": lo, "hi": hi, "flag": flag, "significant": sig})
    return out


def disparate_impact(con: duckdb.DuckDBPyConnection, has_events: bool, reference: dict[str, str] | None = None,
                     intersections: list[tuple[str, str]] | None = None, min_pop: int = 30) -> dict[str, Any]:
    """Rate ratios per dimension and per intersection of two dimensions (see the module docstring)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW audit_citizens AS {citizen_table_sql(has_events)}")
    dims = _dims(con)
    reference = reference or {}
    single: list[dict[str, Any]] = []
    for d in dims:
        single += _rows(con, [d], reference.get(d), min_pop)
    pairs = intersections if intersections is not None else list(combinations(dims, 2))
    inter: list[dict[str, Any]] = []
    for a, b in pairs:
        inter += _rows(con, [a, b], None, min_pop)
    return {"outcomes": {k: v[2] for k, v in OUTCOMES.items()}, "dimensions": dims,
            "single": single, "intersectional": inter, "min_population": min_pop}
