"""Paired counterfactual runs and replicates.

An audit runs a scenario and its counterfactual **with the same seed**: every random draw
is keyed by (seed, named stream, day, citizen), so the two runs share the same citizens,
contacts and behaviour draws (common random numbers), and their difference is the effect
of the system alone, not sampling noise. Replicates repeat the pair with seeds
``seed, seed + 1, ...``; every figure is reported as a mean with a 95% t interval across
replicates, and every effect as the interval of the *paired* differences.

The default counterfactual (``against="baseline"``) is the scenario itself with the system
switched off (:func:`counterfactual`): same population, graph, behaviours and sensors; no
sharing, scoring, lists, sanctions or responses; behaviours only listed citizens can do
(cures) never happen. For ``city-points`` this is exactly the built-in ``baseline``.
Any other scenario name or file can be given instead.

The audit directory::

    audit.json            every figure, per replicate and as intervals (``observed_by_group``:
                          records per sensor and group, e.g. fines under a rule, with intervals)
    report.html           the self-contained report
    runs/system-s<seed>/  run directories (SQL: credsim sql DIR "...")
    runs/baseline-s<seed>/
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credsim import names as nm
from credsim.api import run as run_api
from credsim.audit.metrics import run_figures
from credsim.audit.stats import interval
from credsim.scenario.keypath import dump
from credsim.scenario.load import Overrides, load_scenario, run_overrides
from credsim.scenario.schema import Scenario
from credsim.store import connect

SYSTEM_SECTIONS = ("scoring", "lists", "sanctions", "responses")


def counterfactual(scen: Scenario) -> Scenario:
    """``scen`` with the system switched off (see the module docstring)."""
    data = dump(scen)
    data["name"] = f"{scen.name}-baseline"
    data["description"] = f"{scen.name} with no scoring, lists, sanctions or responses (paired counterfactual)"
    data["sharing"] = []
    for key in SYSTEM_SECTIONS:
        data.pop(key, None)
    for b in data["behaviours"].values():
        if b.get("kind") == "cure" or b.get("only_listed"):
            b["rate"] = 0.0
            b["only_listed"] = None
    return load_scenario(data)


def audit(scenario: str | Path | Scenario, *, against: str | Path | None = "baseline", replicates: int = 1,
          population: int | None = None, days: int | None = None, seed: int | None = None,
          out: str | Path | None = None, overrides: Overrides | None = None, trace: int | None = None,
          overwrite: bool = False, report: bool = True, threads: int | None = None,
          on_run: Callable[[str, int, int], None] | None = None) -> Path:
    """Run the scenario and its counterfactual for ``replicates`` seeds; write audit.json (+ report.html)."""
    if replicates < 1:
        raise ValueError("replicates must be at least 1")
    ov = run_overrides(overrides, population=population, days=days, trace=trace)
    scen = load_scenario(scenario, ov)
    base: Scenario | None = None
    if against is not None:
        if str(against) == "baseline":
            base = counterfactual(scen)
        else:
            base_ov = [o for o in ov if o.keys[0] in ("population", "run")]
            base = load_scenario(against, base_ov)
    seed0 = scen.run.seed if seed is None else seed
    out_dir = Path(out) if out is not None else Path("runs") / f"audit-{scen.name}-s{seed0}-k{replicates}"
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists; choose another --out or pass --overwrite")
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pairs: list[tuple[Path, Path | None]] = []
    for k in range(replicates):
        s = seed0 + k
        sys_dir = out_dir / "runs" / f"system-s{s}"
        if on_run:
            on_run(scen.name, s, k)
        run_api(scen, out=sys_dir, seed=s, overwrite=True, threads=threads)
        base_dir = None
        if base is not None:
            base_dir = out_dir / "runs" / f"baseline-s{s}"
            if on_run:
                on_run(base.name, s, k)
            run_api(base, out=base_dir, seed=s, overwrite=True, threads=threads)
        pairs.append((sys_dir, base_dir))
    wall = time.perf_counter() - t0
    result = assemble(pairs, root=out_dir)
    result["meta"].update({"wall_s": round(wall, 2), "against": str(against) if against is not None else None})
    (out_dir / "audit.json").write_text(json.dumps(result, indent=1, default=_json_default))
    if report:
        try:
            import plotly  # noqa: F401  (the report extra)
        except ImportError:
            (out_dir / "report.txt").write_text("no report.html: install plotly (pip install 'credsim[report]') "
                                                "and run: credsim report " + str(out_dir) + "\n")
            return out_dir
        from credsim.report import write_report

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


def _observed_by_group(pairs: list[tuple[Path, Path | None]]) -> list[dict[str, Any]]:
    """Per sensor and group: records across replicates as a 95% t interval, also per 1,000 citizens."""
    per = [_group_observed(p) for p, _ in pairs]
    pops = [_group_population(p) for p, _ in pairs]
    out = []
    for key in sorted(per[0]):
        metric, dim, grp = key
        vals = [r.get(key, 0.0) for r in per]
        rate = [1000.0 * v / pp[(dim, grp)] if pp.get((dim, grp)) else math.nan
                for v, pp in zip(vals, pops, strict=True)]
        out.append({"metric": metric, "dimension": dim, "group": grp, "count": interval(vals, floor=0.0).as_dict(),
                    "per_1000": interval(rate, floor=0.0).as_dict()})
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


def assemble(pairs: list[tuple[Path, Path | None]], root: Path | None = None,
             reference: dict[str, str] | None = None) -> dict[str, Any]:
    """Figures of every replicate, their intervals, and paired effects against the counterfactual."""
    sys_figs = [run_figures(p, reference) for p, _ in pairs]
    base_figs = [run_figures(b, reference) if b is not None else None for _, b in pairs]
    first = sys_figs[0]
    names = list(first["scalars"])
    intervals = {}
    for m in names:  # figures that cannot be negative (counts, shares) get intervals bounded at 0
        vals = [f["scalars"].get(m, math.nan) for f in sys_figs]
        intervals[m] = interval(vals, floor=0.0 if all(not v < 0 for v in vals) else None).as_dict()
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
        ge_s = [_group_events(p, first["kinds"]) for p, _ in pairs]
        ge_b = [_group_events(b, first["kinds"]) for _, b in pairs if b is not None]
        for key in sorted(ge_s[0]):
            sv = [g.get(key, 0.0) for g in ge_s]
            bv = [g.get(key, 0.0) for g in ge_b]
            rel = [(a - b) / b if b else math.nan for a, b in zip(sv, bv, strict=True)]
            by_group.append({"kind": key[0], "dimension": key[1], "group": key[2],
                             "system": interval(sv).as_dict(), "baseline": interval(bv).as_dict(),
                             "diff": interval([a - b for a, b in zip(sv, bv, strict=True)]).as_dict(),
                             "rel": interval(rel).as_dict()})
    # disparate-impact ratios across replicates (single dimensions)
    di: dict[str, list[float]] = {}
    for f in sys_figs:
        for r in f["fairness"]["single"]:
            di.setdefault(f"{r['dimension']}|{r['group']}|{r['outcome']}", []).append(r["ratio"])
    di_int = {k: interval(v).as_dict() for k, v in di.items()}

    def rel_path(p: Path | None) -> str | None:
        if p is None:
            return None
        return str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else str(p)

    meta = {"scenario": first["run"]["scenario"], "population": first["run"]["population"],
            "days": first["run"]["days"], "replicates": len(pairs),
            "seeds": [f["run"]["seed"] for f in sys_figs], "paired": paired,
            "baseline_scenario": base_figs[0]["run"]["scenario"] if paired and base_figs[0] else None,
            "pairs": [[rel_path(a), rel_path(b)] for a, b in pairs]}
    return _clean({"meta": meta, "first": first, "replicates": [
        {"seed": f["run"]["seed"], "system": f["scalars"], "baseline": b["scalars"] if b else None}
        for f, b in zip(sys_figs, base_figs, strict=True)],
        "intervals": intervals, "effects": effects, "effects_by_group": by_group,
        "observed_by_group": _observed_by_group(pairs),
        "fairness_intervals": di_int})
