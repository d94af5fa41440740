"""Disparate impact: rate ratios of each group against a declared reference group, pooled over replicates.

Outcomes, per citizen over the whole run (:data:`OUTCOMES`):

- ``adverse_records``: official records that count against the citizen (points lost, a
  negative model feature, a blacklist entry), per citizen -- rewards are not in it;
- ``sanctioned``: share of citizens denied at least one attempt;
- ``wrongfully_sanctioned``: share sanctioned only because of false records (against the
  same run with every false-record rate 0, :mod:`credsim.audit.harms`); without that
  counterfactual, the in-run shadow view's disagreement;
- ``denied_travel``: share denied at least one ``travel.*`` attempt;
- ``rewarded``: share rewarded at least once (a favourable outcome, kept apart).

**Reference group.** Each dimension's reference is declared (``population.reference`` in
the scenario, or ``--reference dim=group``); otherwise it is the group with the largest
*declared* share, ties broken by declaration order. It never depends on the draw, so it is
the same in every replicate. An intersection's reference is the pair of references.

**Pooled ratio.** Counts and populations are summed over replicates, and the ratio is the
ratio of the pooled rates (never a mean of per-replicate ratios).

**Interval.** A Poisson bootstrap over citizens (each citizen weighted by an independent
Poisson(1) draw, :data:`BOOTSTRAP` times): it keeps each citizen's own count together, so
over-dispersed counts (a few citizens with many records) widen the interval as they should,
which Katz's or a Poisson interval do not. The 95% interval is the 2.5th and 97.5th
percentiles of the bootstrap ratios -- a log-scale interval, never symmetric on the linear
scale. The draws are seeded by the sorted replicate seeds and the row, so an interval does
not depend on the order of replicates.

**Too few events.** A ratio whose group or reference has fewer than :data:`MIN_EVENTS`
events (citizens with the outcome, or records) is marked ``too_few`` and never flagged or
headlined. A ratio beyond the **four-fifths rule** (below 0.8 or above 1.25) is flagged;
``significant`` when its interval excludes 1.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from credsim.audit.harms import HARMS_FILE
from credsim.store import connect, read_manifest

FOUR_FIFTHS = 0.8
MIN_EVENTS = 20
MIN_POPULATION = 30
BOOTSTRAP = 2000
SEP = " × "


@dataclass(frozen=True)
class Outcome:
    """A per-citizen outcome: its SQL over the audit table, whether it is a count, and its words."""

    sql: str
    per_capita: bool
    label: str
    favourable: bool = False


OUTCOMES: dict[str, Outcome] = {
    "adverse_records": Outcome("n_records_adverse", True, "adverse official records per citizen"),
    "sanctioned": Outcome("(n_denied > 0)::INT", False, "share denied at least once"),
    "wrongfully_sanctioned": Outcome("wrongfully_sanctioned", False,
                                     "share sanctioned only because of false records"),
    "denied_travel": Outcome("denied_travel", False, "share denied travel at least once"),
    "rewarded": Outcome("(n_rewarded > 0)::INT", False, "share rewarded at least once", favourable=True),
}


def reference_groups(scenario: dict[str, Any], declared: dict[str, str] | None = None) -> dict[str, str]:
    """The reference group of every dimension: ``declared`` (CLI), then the scenario's, then the largest share.

    ``scenario`` is the resolved scenario as JSON (a run manifest's ``scenario``). Raises
    ValueError naming the dimension when a declared group does not exist.
    """
    groups: dict[str, dict[str, float]] = scenario["population"]["groups"]
    given = {**(scenario["population"].get("reference") or {}), **(declared or {})}
    out: dict[str, str] = {}
    for dim, g in given.items():
        if dim not in groups:
            raise ValueError(f"reference: no dimension {dim!r} (expected one of {', '.join(groups)})")
        if g not in groups[dim]:
            raise ValueError(f"reference.{dim}: no group {g!r} (expected one of {', '.join(groups[dim])})")
    for dim, shares in groups.items():
        # max() keeps the first of equal shares: declaration order breaks ties
        out[dim] = given.get(dim) or max(shares, key=lambda v: shares[v])
    return out


def citizen_table_sql(has_events: bool, has_harms: bool, has_adverse: bool = True) -> str:
    """The per-citizen audit table (groups and outcomes) as SQL over a run's catalog.

    ``has_adverse`` is False for runs written before adverse records were counted: the
    outcome is then missing (NULL), not zero.
    """
    travel = "coalesce(t.n, 0) > 0" if has_events else "NULL"
    join = ("LEFT JOIN (SELECT citizen, count(*) AS n FROM events WHERE kind = 'denial' "
            "AND view IN ('both', 'official') AND item LIKE 'travel.%' GROUP BY citizen) t USING (citizen)"
            if has_events else "")
    wrong = "h.wrongful_sanctioned" if has_harms else "(c.n_wrongful > 0)::INT"
    hjoin = "JOIN (SELECT citizen, wrongful_sanctioned FROM harms) h USING (citizen)" if has_harms else ""
    adverse = "" if has_adverse else "NULL::BIGINT AS n_records_adverse, "
    return (f"SELECT c.*, {adverse}{wrong} AS wrongfully_sanctioned, ({travel})::INT AS denied_travel "
            f"FROM citizens c {join} {hjoin}")


# (dimension label, group, outcome) -> {value: citizens}
Histograms = dict[tuple[str, str, str], dict[int, int]]


# Histograms of recently read runs. One assembly reads each system run twice (its own figures and
# the pooled ratios) and the dashboard reads a cached baseline again for every policy it is paired
# with; the key holds the files' modification times, so a rewritten run is read afresh.
_RECENT: OrderedDict[tuple[Any, ...], Histograms] = OrderedDict()
_RECENT_MAX = 8


def _stamp(p: Path) -> int | None:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return None


def histograms(run_dir: str | Path, pairs: list[tuple[str, str]] | None = None) -> Histograms:
    """Per group (of each dimension and each pair of dimensions) and outcome: how many citizens had each value.

    A histogram of per-citizen values is all the pooled ratio and its bootstrap need, and
    it adds across replicates.
    """
    run_dir = Path(run_dir).resolve()
    key = (str(run_dir), _stamp(run_dir / "manifest.json"), _stamp(run_dir / HARMS_FILE),
           None if pairs is None else tuple(map(tuple, pairs)))
    hit = _RECENT.get(key)
    if hit is None:
        hit = _read_histograms(run_dir, pairs)
        _RECENT[key] = hit
        while len(_RECENT) > _RECENT_MAX:
            _RECENT.popitem(last=False)
    return {k: dict(v) for k, v in hit.items()}  # callers may merge into what they get


def _read_histograms(run_dir: Path, pairs: list[tuple[str, str]] | None) -> Histograms:
    man = read_manifest(run_dir)
    dims = list(man["scenario"]["population"]["groups"])
    con = connect(run_dir)
    try:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        has_harms = "harms" in views and (run_dir / HARMS_FILE).exists()
        citizen_cols = {r[0] for r in con.execute("DESCRIBE citizens").fetchall()}
        con.execute("CREATE OR REPLACE TEMP TABLE audit_citizens AS "
                    + citizen_table_sql("events" in views, has_harms, "n_records_adverse" in citizen_cols))
        groupings = [[d] for d in dims] + [list(p) for p in (pairs if pairs is not None else combinations(dims, 2))]
        # one statement for every grouping and outcome over a table made once: DuckDB scans the
        # citizens in one go instead of re-running the joins for each of dozens of small queries
        parts = []
        for i, cols in enumerate(groupings):
            key = f" || '{SEP}' || ".join(f'CAST("{c}" AS VARCHAR)' for c in cols)
            for j, (name, o) in enumerate(OUTCOMES.items()):
                parts.append(f"SELECT {i} AS i, {j} AS j, '{SEP.join(cols)}' AS label, {key} AS g, '{name}' AS "
                             f"outcome, CAST({o.sql} AS BIGINT) AS y, count(*) AS n FROM audit_citizens GROUP BY ALL")
        out: Histograms = {}
        rows = con.execute(" UNION ALL ".join(parts) + " ORDER BY i, j, g, y").fetchall()
        for _i, _j, label, g, name, y, n in rows:
            if y is not None:
                out.setdefault((label, g, name), {})[int(y)] = int(n)
        return out
    finally:
        con.close()


def merge(hists: list[Histograms]) -> Histograms:
    """Citizens of several replicates in one histogram per (dimension, group, outcome)."""
    out: Histograms = {}
    for h in hists:
        for k, counts in h.items():
            dst = out.setdefault(k, {})
            for y, n in counts.items():
                dst[y] = dst.get(y, 0) + n
    return out


@dataclass
class Ratio:
    """One group's pooled rate against its reference, with its bootstrap interval."""

    dimension: str
    group: str
    outcome: str
    label: str
    population: int
    count: float
    rate: float
    reference: str
    reference_population: int
    reference_count: float
    reference_rate: float
    ratio: float
    lo: float
    hi: float
    too_few: bool
    flag: bool
    significant: bool
    favourable: bool
    replicates: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _totals(counts: dict[int, int]) -> tuple[int, float]:
    return sum(counts.values()), float(sum(y * n for y, n in counts.items()))


def _boot(counts: dict[int, int], rng: np.random.Generator, b: int) -> np.ndarray:
    """Poisson-bootstrap rates: citizens with value y, reweighted, are Poisson(n_y) in total."""
    values = sorted(counts)  # a fixed order: the draws must not depend on the order replicates came in
    ys = np.array(values, dtype=np.float64)
    ns = np.array([counts[v] for v in values], dtype=np.float64)
    draws = rng.poisson(ns[None, :], size=(b, ns.shape[0])).astype(np.float64)
    pop = draws.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((draws @ ys) / pop)


def ratio_interval(group: dict[int, int], ref: dict[int, int], seed: int, b: int = BOOTSTRAP,
                   level: float = 0.95) -> tuple[float, float, float]:
    """Pooled rate ratio of ``group`` to ``ref`` (value -> citizens) and its percentile bootstrap interval."""
    n1, s1 = _totals(group)
    n2, s2 = _totals(ref)
    if n1 == 0 or n2 == 0 or s2 == 0:
        return math.nan, math.nan, math.nan
    r = (s1 / n1) / (s2 / n2)
    rng = np.random.default_rng(seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = _boot(group, rng, b) / _boot(ref, rng, b)
    boot = boot[np.isfinite(boot)]
    if boot.shape[0] < b // 2:
        return r, math.nan, math.nan
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    return r, float(lo), float(hi)


def _seed(seeds: list[int], key: tuple[str, str, str]) -> int:
    text = ",".join(map(str, sorted(seeds))) + "|" + "|".join(key)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def pooled(hists: list[Histograms], seeds: list[int], reference: dict[str, str],
           min_events: int = MIN_EVENTS, min_population: int = MIN_POPULATION) -> dict[str, Any]:
    """Pooled ratios of every group against its reference (see the module docstring)."""
    allh = merge(hists)
    single: list[dict[str, Any]] = []
    inter: list[dict[str, Any]] = []
    for (dim, g, name), counts in sorted(allh.items()):
        cols = dim.split(SEP)
        ref_g = SEP.join(reference[c] for c in cols)
        if g == ref_g:
            continue
        ref = allh.get((dim, ref_g, name))
        n1, s1 = _totals(counts)
        if ref is None or n1 < min_population:
            continue
        n2, s2 = _totals(ref)
        o = OUTCOMES[name]
        r, lo, hi = ratio_interval(counts, ref, _seed(seeds, (dim, g, name)))
        too_few = min(s1, s2) < min_events
        flag = bool(not too_few and math.isfinite(r) and (r < FOUR_FIFTHS or r > 1 / FOUR_FIFTHS))
        sig = bool(flag and math.isfinite(lo) and (lo > 1 or hi < 1))
        per_rep = []
        for h in hists:
            a, c = h.get((dim, g, name)), h.get((dim, ref_g, name))
            if a is None or c is None:
                per_rep.append(math.nan)
                continue
            (na, sa), (nc, sc) = _totals(a), _totals(c)
            per_rep.append((sa / na) / (sc / nc) if na and nc and sc else math.nan)
        row = Ratio(dim, g, name, o.label, n1, s1, s1 / n1, ref_g, n2, s2, s2 / n2 if n2 else math.nan, r, lo, hi,
                    too_few, flag, sig, o.favourable, per_rep)
        (single if len(cols) == 1 else inter).append(row.as_dict())
    return {"outcomes": {k: v.label for k, v in OUTCOMES.items()}, "reference": reference,
            "dimensions": list(reference), "single": single, "intersectional": inter,
            "min_events": min_events, "min_population": min_population, "bootstrap": BOOTSTRAP,
            "replicates": len(hists),
            "method": (f"ratio of rates pooled over {len(hists)} replicate(s); 95% interval: 2.5th-97.5th "
                       f"percentiles of {BOOTSTRAP} Poisson bootstraps over citizens")}


def disparate_impact(run_dirs: list[Path], seeds: list[int], declared: dict[str, str] | None = None,
                     pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Pooled disparate-impact ratios over the system runs of an audit (one per replicate)."""
    scen = read_manifest(run_dirs[0])["scenario"]
    ref = reference_groups(scen, declared)
    return pooled([histograms(d, pairs) for d in run_dirs], seeds, ref)


def single_run(run_dir: Path, declared: dict[str, str] | None = None,
               pairs: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Ratios of one run alone (a run directory's report), with the same reference groups."""
    man = read_manifest(run_dir)
    return pooled([histograms(run_dir, pairs)], [int(man["seed"])], reference_groups(man["scenario"], declared))
