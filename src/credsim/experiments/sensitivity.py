"""Global sensitivity analysis with SALib: which parameters drive which outputs.

``credsim sensitivity SCENARIO SPEC.yaml --out DIR`` draws a Sobol (Saltelli) or Morris
design over the parameters' ranges, runs every sample with the **same seed** (common random
numbers: differences between samples come from the parameters, not from sampling noise)
through the sweep machinery (process pool or Ray, resumable, one catalog), and computes
first-order and total Sobol indices, or Morris mu* and sigma, for each chosen output.
Results: table ``indices`` in ``DIR/sweep.duckdb``, ``DIR/sensitivity.json`` and a chart
in ``DIR/sensitivity.html``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from credsim.experiments.charts import write_sensitivity_report
from credsim.experiments.spec import SensitivitySpec, SpecError
from credsim.experiments.sweep import (
    HEADLINES,
    PAIRED,
    Task,
    build_catalog,
    execute,
    plan_tasks,
    write_design,
)
from credsim.scenario.schema import Scenario


def problem(spec: SensitivitySpec) -> dict[str, Any]:
    """SALib's problem; log-scaled parameters are sampled in log space."""
    bounds = []
    for p in spec.parameters.values():
        assert p.range is not None
        lo, hi = p.range
        bounds.append([math.log(lo), math.log(hi)] if p.log else [lo, hi])
    return {"num_vars": len(spec.parameters), "names": list(spec.parameters), "bounds": bounds}


def sample(spec: SensitivitySpec) -> np.ndarray:
    prob = problem(spec)
    if spec.method == "sobol":
        from SALib.sample import sobol as s_sobol

        return np.asarray(s_sobol.sample(prob, spec.samples, calc_second_order=False, seed=spec.seed))
    from SALib.sample import morris as s_morris

    return np.asarray(s_morris.sample(prob, spec.samples, num_levels=spec.levels, seed=spec.seed))


def to_points(spec: SensitivitySpec, x: np.ndarray) -> list[dict[str, Any]]:
    out = []
    for row in x:
        pt: dict[str, Any] = {}
        for j, (name, p) in enumerate(spec.parameters.items()):
            v = float(math.exp(row[j])) if p.log else float(row[j])
            pt[name] = int(round(v)) if p.integer else v
        out.append(pt)
    return out


def analyse(spec: SensitivitySpec, x: np.ndarray, y: dict[str, np.ndarray]) -> tuple[list[dict[str, Any]], list[str]]:
    """Indices per (output, parameter); outputs undefined for some sample (e.g. no attempts) are skipped."""
    prob = problem(spec)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for out, vals in y.items():
        if not np.all(np.isfinite(vals)):
            skipped.append(out)
            continue
        if spec.method == "sobol":
            from SALib.analyze import sobol as a_sobol

            r = a_sobol.analyze(prob, vals, calc_second_order=False, seed=spec.seed)
            for j, name in enumerate(prob["names"]):
                rows.append({"output": out, "parameter": name, "S1": float(r["S1"][j]),
                             "S1_conf": float(r["S1_conf"][j]), "ST": float(r["ST"][j]),
                             "ST_conf": float(r["ST_conf"][j])})
        else:
            from SALib.analyze import morris as a_morris

            r = a_morris.analyze(prob, x, vals, num_levels=spec.levels, seed=spec.seed)
            for j, name in enumerate(prob["names"]):
                rows.append({"output": out, "parameter": name, "mu_star": float(r["mu_star"][j]),
                             "mu_star_conf": float(r["mu_star_conf"][j]), "sigma": float(r["sigma"][j]),
                             "mu": float(r["mu"][j])})
    return rows, skipped


def sensitivity(scenario: str | Path | Scenario, spec: SensitivitySpec, out: str | Path, *, file: str = "<spec>",
                workers: int = 2, ray: bool = False, address: str | None = None, threads: int = 1,
                on_done: Callable[[Task, float], None] | None = None) -> dict[str, Any]:
    out = Path(out)
    bad = [o for o in spec.outputs if o not in (*HEADLINES, *PAIRED)]
    if bad:
        raise SpecError(file, [f"at 'outputs': unknown output(s) {bad}; choose from {[*HEADLINES, *PAIRED]}"])
    if any(o in PAIRED for o in spec.outputs) and not spec.baseline:
        raise SpecError(file, ["at 'outputs': compliance_gain and chilling need 'baseline: true'"])
    x = sample(spec)
    points = to_points(spec, x)
    tasks = plan_tasks(scenario, spec, out, file, points=points, seeds=[spec.seed])  # type: ignore[arg-type]
    write_design(out, spec, tasks)
    walls = execute(tasks, workers=workers, ray=ray, address=address, threads=threads, on_done=on_done)
    cat = build_catalog(out, tasks, spec.name, list(spec.parameters), spec.disparity_dimension)
    con = duckdb.connect(str(cat))
    try:
        y: dict[str, np.ndarray] = {}
        for o in spec.outputs:
            vals = con.execute(f'SELECT "{o}" FROM runs ORDER BY point').fetchall()
            y[o] = np.array([np.nan if v[0] is None else float(v[0]) for v in vals])
        rows, skipped = analyse(spec, x, y)
        if rows:
            cols = list(rows[0])
            ddl = ", ".join(f'"{c}" {"VARCHAR" if c in ("output", "parameter") else "DOUBLE"}' for c in cols)
            con.execute(f"CREATE OR REPLACE TABLE indices ({ddl})")
            con.executemany(f"INSERT INTO indices VALUES ({', '.join('?' for _ in cols)})",
                            [[r[c] for c in cols] for r in rows])
    finally:
        con.close()
    result = {"method": spec.method, "samples": len(points), "outputs": spec.outputs, "skipped": skipped,
              "indices": rows}
    (out / "sensitivity.json").write_text(json.dumps(result, indent=1))
    report = write_sensitivity_report(out, rows, spec.method, spec.name)
    return {**result, "ran": len(walls), "catalog": cat, "report": report}
