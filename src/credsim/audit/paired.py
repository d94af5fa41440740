"""Paired counterfactual runs and replicates.

An audit runs a scenario and its counterfactuals **with the same seed**: every random draw
is keyed by (seed, named stream, day, citizen), so the runs share the same citizens,
contacts and behaviour draws (common random numbers), and their difference is the effect
of what the counterfactual changed, not sampling noise. Replicates repeat the set with
seeds ``seed, seed + 1, ...``; every figure is reported as a mean with a 95% t interval
across replicates (never clipped), every effect as the interval of the *paired* differences.

Counterfactuals (:mod:`credsim.audit.counterfactuals`): the system switched off
(``against="baseline"``, or any scenario given instead) for deterrence and chilling, and one
per harm -- no false records (wrongful), perfect observation of infractions (missed),
lawful acts unpunished, own-domain sanctions (cross-context), no association penalties.
Each harm is a citizen-by-citizen difference (:mod:`credsim.audit.harms`).

The audit directory::

    audit.json                      every figure, per replicate and as intervals (``observed_by_group``:
                                    records per sensor and group, with intervals)
    report.html                     the self-contained report
    runs/system-s<seed>/            run directories (SQL: credsim sql DIR "..."); harms.parquet
    runs/baseline-s<seed>/          the system switched off
    runs/<counterfactual>-s<seed>/  one per harm whose counterfactual differs from the scenario
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from credsim import names as nm
from credsim.api import run as run_api
from credsim.audit import fairness
from credsim.audit import redress as redress_figures
from credsim.audit.counterfactuals import BY_HARM, HARMS, SYSTEM_OFF, apply, counterfactual
from credsim.audit.harms import HARMS_FILE, Replicate, harm_totals, write_harms
from credsim.audit.metrics import pool_recovery, run_figures
from credsim.audit.stats import interval
from credsim.report import write_report
from credsim.report.labels import from_scenario
from credsim.safeio import AUDIT_JSON_BYTES, read_json_object
from credsim.scenario.keypath import dump
from credsim.scenario.load import Overrides, load_scenario, run_overrides
from credsim.scenario.schema import Scenario
from credsim.store import connect, read_manifest

__all__ = ["assemble", "audit", "audit_pairs", "audit_replicates", "counterfactual", "load_result"]

REPLICATES_FOR_INTERVALS = 5  # below this, per-replicate values are shown beside every pooled figure


def audit(scenario: str | Path | Scenario, *, against: str | Path | None = "baseline", replicates: int = 1,
          population: int | None = None, days: int | None = None, seed: int | None = None,
          out: str | Path | None = None, overrides: Overrides | None = None, trace: int | None = None,
          overwrite: bool = False, report: bool = True, threads: int | None = None,
          on_run: Callable[[str, int, int], None] | None = None, reference: dict[str, str] | None = None,
          harms: bool = True) -> Path:
    """Run the scenario and its counterfactuals for ``replicates`` seeds; write audit.json (+ report.html).

    ``harms=False`` runs only the system and ``against`` (the old two-run audit: no harm figures).
    ``reference`` maps a dimension to its disparate-impact reference group (else the scenario's).
    """
    if replicates < 1:
        raise ValueError("replicates must be at least 1")
    ov = run_overrides(overrides, population=population, days=days, trace=trace)
    scen = load_scenario(scenario, ov)
    fairness.reference_groups(dump(scen), reference)  # a bad --reference fails before any run
    base: Scenario | None = None
    if against is not None:
        if str(against) == "baseline":
            base = counterfactual(scen)
        else:
            base_ov = [o for o in ov if o.keys[0] in ("population", "run")]
            base = load_scenario(against, base_ov)
    cfs = {cf.harm: apply(cf, scen) for cf in HARMS} if harms else {}
    seed0 = scen.run.seed if seed is None else seed
    out_dir = Path(out) if out is not None else Path("runs") / f"audit-{scen.name}-s{seed0}-k{replicates}"
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists; choose another --out or pass --overwrite")
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    reps: list[Replicate] = []

    def one(s: Scenario, name: str, sd: int, k: int) -> Path:
        d = out_dir / "runs" / f"{name}-s{sd}"
        if on_run:
            on_run(s.name, sd, k)
        run_api(s, out=d, seed=sd, overwrite=True, threads=threads)
        return d

    for k in range(replicates):
        s = seed0 + k
        sys_dir = one(scen, "system", s, k)
        base_dir = one(base, SYSTEM_OFF.key, s, k) if base is not None else None
        cf_dirs = {h: (one(c, BY_HARM[h].key, s, k) if c is not None else None) for h, c in cfs.items()}
        reps.append(Replicate(s, sys_dir, base_dir, cf_dirs))
    wall = time.perf_counter() - t0
    result = assemble(reps, root=out_dir, reference=reference)
    result["meta"].update({"wall_s": round(wall, 2), "against": str(against) if against is not None else None})
    (out_dir / "audit.json").write_text(json.dumps(result, indent=1, default=_json_default))
    if report:
        try:
            import plotly  # noqa: F401  (the optional report extra: no report without it)
        except ImportError:
            (out_dir / "report.txt").write_text("no report.html: install plotly (pip install 'credsim[report]') "
                                                "and run: credsim report " + str(out_dir) + "\n")
            return out_dir
        write_report(result, out_dir / "report.html")
    return out_dir


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _clean(x: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN)."""
    if isinstance(x, float):
        return None if not math.isfinite(x) else x
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def _group_events(run_dir: Path, kinds: dict[str, list[str]]) -> dict[tuple[str, str, str], float]:
    """Lifetime events of each kind (infraction, speech) per group, from the metrics table."""
    con = connect(run_dir)
    try:
        out: dict[tuple[str, str, str], float] = {}
        for kind in ("infraction", "speech"):
            names = [f"events.{b}" for b in kinds.get(kind, [])]
            if not names:
                continue
            for dim, grp, v in con.execute(
                    "SELECT dimension, \"group\", sum(value) FROM metrics WHERE metric IN (SELECT unnest(?)) "
                    "GROUP BY ALL", [names]).fetchall():
                out[(kind, dim, grp)] = float(v)
        return out
    finally:
        con.close()


def _group_observed(run_dir: Path) -> dict[tuple[str, str, str], float]:
    """Lifetime true events each sensor recorded, per group: a fine under a rule with its own
    sensor, a post a censor hid. Read per replicate so that group figures get intervals too."""
    con = connect(run_dir)
    try:
        rows = con.execute("SELECT metric, dimension, \"group\", sum(value) FROM metrics "
                           "WHERE metric LIKE ? GROUP BY ALL", [nm.OBSERVED.like()]).fetchall()
        return {(str(m), str(d), str(g)): float(v) for m, d, g, v in rows}
    finally:
        con.close()


def _observed_by_group(systems: list[Path]) -> list[dict[str, Any]]:
    """Per sensor and group: records across replicates as a 95% t interval, also per 1,000 citizens."""
    per = [_group_observed(p) for p in systems]
    pops = [_group_population(p) for p in systems]
    out = []
    for key in sorted(per[0]):
        metric, dim, grp = key
        vals = [r.get(key, 0.0) for r in per]
        rate = [1000.0 * v / pp[(dim, grp)] if pp.get((dim, grp)) else math.nan
                for v, pp in zip(vals, pops, strict=True)]
        out.append({"metric": metric, "dimension": dim, "group": grp, "count": interval(vals).as_dict(),
                    "per_1000": interval(rate).as_dict()})
    return out


def _group_population(run_dir: Path) -> dict[tuple[str, str], float]:
    """Citizens per (dimension, group) on day 0: the denominator of per-1,000 figures."""
    con = connect(run_dir)
    try:
        rows = con.execute("SELECT dimension, \"group\", value FROM metrics WHERE metric = ? AND day = 0",
                           [nm.POPULATION]).fetchall()
        return {(str(d), str(g)): float(v) for d, g, v in rows}
    finally:
        con.close()


def _as_replicate(p: Replicate | tuple[Path, Path | None]) -> Replicate:
    if isinstance(p, Replicate):
        return p
    sys_dir, base_dir = p
    return Replicate(int(read_manifest(sys_dir)["seed"]), sys_dir, base_dir)


def _harm_scalars(rep: Replicate) -> dict[str, float]:
    """Harm totals of one replicate (writing harms.parquet the first time)."""
    if not rep.counterfactuals:
        return {}
    target = rep.system / HARMS_FILE
    if not target.exists():
        return write_harms(rep)
    con = duckdb.connect()
    try:
        out = harm_totals(con, "read_parquet('" + str(target.resolve()).replace("'", "''") + "')")
    finally:
        con.close()
    for cf in HARMS:
        out[f"harm.{cf.harm}.run"] = 0.0 if rep.counterfactuals.get(cf.harm) is None else 1.0
    return out


def _warnings(k: int, sys_figs: list[dict[str, Any]]) -> list[str]:
    out = []
    if k == 2:
        out.append("2 replicates: every 95% t interval uses t(1) = 12.7 and is very wide; use -k 5 or more.")
    elif k == 1:
        out.append("1 replicate: no interval can be given; use -k 5 or more.")
    if k < REPLICATES_FOR_INTERVALS:
        out.append(f"fewer than {REPLICATES_FOR_INTERVALS} replicates: each pooled figure is shown with its "
                   "replicate values.")
    for f in sys_figs:
        for name, v in f["scalars"].items():
            if name.startswith("check.grade_rule.") and v:
                out.append(f"seed {f['run']['seed']}: {int(v)} citizens break the grade rule of list "
                           f"{name.split('.', 2)[2]} (a bug: every figure about that list is off).")
    return out


def assemble(pairs: Sequence[Replicate | tuple[Path, Path | None]], root: Path | None = None,
             reference: dict[str, str] | None = None) -> dict[str, Any]:
    """Figures of every replicate, their intervals, harms, pooled disparate impact and paired effects."""
    reps = [_as_replicate(p) for p in pairs]
    sys_figs = [run_figures(r.system, reference) for r in reps]
    for r, f in zip(reps, sys_figs, strict=True):
        f["scalars"].update(_harm_scalars(r))
    base_figs = [run_figures(r.baseline, reference) if r.baseline is not None else None for r in reps]
    first = sys_figs[0]
    names = list(first["scalars"])
    intervals = {m: interval([f["scalars"].get(m, math.nan) for f in sys_figs]).as_dict() for m in names}
    effects: dict[str, Any] = {}
    by_group: list[dict[str, Any]] = []
    paired = all(b is not None for b in base_figs)
    if paired:
        bf = [b for b in base_figs if b is not None]
        keys = [m for m in names if m.startswith("events.")]
        for m in keys:
            sv = [f["scalars"][m] for f in sys_figs]
            bv = [b["scalars"].get(m, math.nan) for b in bf]
            diff = [a - b for a, b in zip(sv, bv, strict=True)]
            rel = [(a - b) / b if b else math.nan for a, b in zip(sv, bv, strict=True)]
            effects[m] = {"system": interval(sv).as_dict(), "baseline": interval(bv).as_dict(),
                          "diff": interval(diff).as_dict(), "rel": interval(rel).as_dict()}
        ge_s = [_group_events(r.system, first["kinds"]) for r in reps]
        ge_b = [_group_events(r.baseline, first["kinds"]) for r in reps if r.baseline is not None]
        for key in sorted(ge_s[0]):
            sv = [g.get(key, 0.0) for g in ge_s]
            bv = [g.get(key, 0.0) for g in ge_b]
            rel = [(a - b) / b if b else math.nan for a, b in zip(sv, bv, strict=True)]
            by_group.append({"kind": key[0], "dimension": key[1], "group": key[2],
                             "system": interval(sv).as_dict(), "baseline": interval(bv).as_dict(),
                             "diff": interval([a - b for a, b in zip(sv, bv, strict=True)]).as_dict(),
                             "rel": interval(rel).as_dict()})
    seeds = [int(f["run"]["seed"]) for f in sys_figs]
    # one replicate: the pooled ratios are that run's own (same histograms, seed and references)
    fair = (sys_figs[0]["fairness"] if len(reps) == 1
            else fairness.disparate_impact([r.system for r in reps], seeds, reference))
    recovery = pool_recovery(sys_figs)
    for b in base_figs:
        if b is not None:
            pool_recovery([b])  # drops the duration lists

    def rel_path(p: Path | None) -> str | None:
        if p is None:
            return None
        return str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else str(p)

    harms_meta = {cf.harm: {"against": cf.against, "means": cf.means, "sign": cf.sign, "run_prefix": cf.key}
                  for cf in HARMS} if any(r.counterfactuals for r in reps) else {}
    meta = {"scenario": first["run"]["scenario"], "population": first["run"]["population"],
            "days": first["run"]["days"], "replicates": len(reps), "seeds": seeds, "paired": paired,
            "baseline_scenario": base_figs[0]["run"]["scenario"] if paired and base_figs[0] else None,
            "pairs": [[rel_path(r.system), rel_path(r.baseline)] for r in reps],
            "runs": [{"seed": r.seed, "system": rel_path(r.system), "baseline": rel_path(r.baseline),
                      "counterfactuals": {h: rel_path(d) for h, d in r.counterfactuals.items()}} for r in reps],
            "harms": harms_meta, "reference": fair["reference"], "warnings": _warnings(len(reps), sys_figs)}
    given = from_scenario(read_manifest(reps[0].system)["scenario"])
    if given:  # readers' words from the scenario's label fields (absent: words made from the names)
        meta["labels"] = given
    return _clean({"meta": meta, "first": first, "replicates": [
        {"seed": f["run"]["seed"], "system": f["scalars"], "baseline": b["scalars"] if b else None,
         **(_spread_inputs(f) if len(reps) > 1 else {})}
        for f, b in zip(sys_figs, base_figs, strict=True)],
        "intervals": intervals, "effects": effects, "effects_by_group": by_group, "fairness": fair,
        "recovery": recovery, "observed_by_group": _observed_by_group([r.system for r in reps]),
        "redress": redress_figures.pool([redress_figures.figures(r.system) for r in reps])})


def _spread_inputs(figs: dict[str, Any]) -> dict[str, Any]:
    """What the report needs of each replicate to draw its spread: stock series, per-group denials,
    per-rule cross-context shares and the grade transition counts.

    Charts over time and by group show every replicate's range, not the first replicate alone;
    kept only when there are several replicates, so a one-replicate audit.json is as before.
    """
    stocks = ("grade.", "shadow_grade.", "listed.", "shadow_listed.")
    series = {k: v for k, v in figs["series"].items() if k == "day" or k.startswith(stocks)}
    groups = [{k: g.get(k) for k in ("dimension", "group", "population", "denied.total", "wrongful.total")}
              for g in figs["groups"]]
    sanctions = [{k: r.get(k) for k in ("sanction", "denials", "cross_mean", "severity", "gravity_median",
                                        "gravity_p10", "gravity_p90")} for r in figs.get("sanctions") or []]
    return {"series": series, "groups": groups, "sanctions": sanctions,
            "transitions": figs.get("transitions") or {}}


def _inside(audit_dir: Path, name: object) -> Path:
    """A run named by an audit.json: it must lie inside the audit directory (a stranger's file cannot
    point the report or the dashboard at other runs on this machine)."""
    base = audit_dir.resolve()
    target = (base / str(name)).resolve()
    if not isinstance(name, str) or base not in target.parents:
        raise FileNotFoundError(f"{audit_dir}/audit.json: run {str(name)[:80]!r} is not inside the audit directory")
    return target


def audit_replicates(audit_dir: str | Path,
                     res: dict[str, Any] | None = None) -> list[Replicate | tuple[Path, Path | None]]:
    """Every replicate of an audit directory (system run, counterfactual runs), each checked to lie inside it."""
    audit_dir = Path(audit_dir)
    if res is None:
        res = read_json_object(audit_dir / "audit.json", AUDIT_JSON_BYTES)
    try:
        meta = res["meta"]
        if meta.get("runs"):
            return [Replicate(int(r["seed"]), _inside(audit_dir, r["system"]),
                              _inside(audit_dir, r["baseline"]) if r["baseline"] else None,
                              {h: (_inside(audit_dir, d) if d else None)
                               for h, d in (r.get("counterfactuals") or {}).items()})
                    for r in meta["runs"]]
        return [(_inside(audit_dir, a), _inside(audit_dir, b) if b else None) for a, b in meta["pairs"]]
    except (KeyError, TypeError, ValueError):
        raise FileNotFoundError(f"{audit_dir}/audit.json: expected meta.runs or meta.pairs naming the run "
                                "directories of each replicate") from None


def audit_pairs(audit_dir: str | Path, res: dict[str, Any] | None = None) -> list[tuple[Path, Path | None]]:
    """(system run, system-off counterfactual or None) of each replicate of an audit directory."""
    return [(r.system, r.baseline) if isinstance(r, Replicate) else r for r in audit_replicates(audit_dir, res)]


def load_result(run_dir: str | Path, against: str | Path | None = None) -> dict[str, Any]:
    """An assembled result for an audit directory or a single run directory (optionally paired)."""
    run_dir = Path(run_dir)
    if (run_dir / "audit.json").exists() and against is None:
        res: dict[str, Any] = read_json_object(run_dir / "audit.json", AUDIT_JSON_BYTES)
        # re-assemble from the run directories, so the page always matches the files
        meta = res["meta"]
        fresh = assemble(audit_replicates(run_dir, res), root=run_dir, reference=meta.get("reference"))
        fresh["meta"].update({k: v for k, v in meta.items() if k not in fresh["meta"]})
        return fresh
    if not (run_dir / "manifest.json").exists():
        raise FileNotFoundError(f"{run_dir}: neither a run directory (manifest.json) "
                                "nor an audit directory (audit.json)")
    return assemble([(run_dir, Path(against) if against is not None else None)])
