"""Sweeps: many policy variants x replicates, each an ordinary run directory, one catalog.

``credsim sweep SCENARIO SWEEP.yaml --out DIR`` expands the spec into design points
(a grid, random or Latin-hypercube samples), crosses them with replicate seeds and runs
every (point, seed) -- on a local process pool (spawned processes) or on Ray -- into
``DIR/runs/pNNNN-sS``. With ``baseline: true`` each distinct scenario also runs once
*without responses* under the same seed (``DIR/baselines/``): the paired counterfactual
from which compliance gained (infractions deterred) and chilling are measured with
common random numbers.

Resumable: a run whose directory holds a complete manifest for the same resolved scenario
and seed is skipped; a run directory made from a *different* scenario is an error, never
silently reused. Runs are written atomically by :func:`credsim.store.write_run`, so a
killed sweep leaves complete runs and no half-written one.

``DIR/sweep.duckdb`` holds the table ``runs`` (parameters + headline outputs per run),
``points`` (means over replicates), ``pareto`` (the non-dominated policies) and a view
``metrics`` over every run's time series with its ``run_id``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from credsim.experiments.spec import SpecError, SweepSpec, check_paths
from credsim.scenario.keypath import dump
from credsim.scenario.load import ScenarioError, load_scenario, scenario_hash
from credsim.scenario.schema import Scenario

HEADLINES = ("attempts", "denied", "wrongful", "missed", "infractions", "speech", "listed_end", "population",
             "days", "denied_rate", "wrongful_rate", "wrongful_share", "infraction_rate", "disparate_impact")
PAIRED = ("compliance_gain", "chilling")


@dataclass
class Task:
    """One run to do: a resolved scenario (as data), a seed and where it goes."""

    run_id: str
    kind: str  # "run" | "baseline"
    point: int
    replicate: int
    seed: int
    params: dict[str, Any]
    scenario: dict[str, Any]
    dir: Path
    scen_hash: str
    baseline_id: str | None = None


# -- design -------------------------------------------------------------------------------------
def _from_unit(u: np.ndarray, p: Any) -> list[Any]:
    lo, hi = p.range
    x = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))) if p.log else lo + u * (hi - lo)
    return [int(round(v)) if p.integer else float(v) for v in x]


def design_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The parameter values of every design point, in a fixed order."""
    names = list(spec.parameters)
    if spec.design == "grid":
        axes: list[list[Any]] = []
        for name in names:
            p = spec.parameters[name]
            if p.values is not None:
                axes.append(list(p.values))
            else:
                axes.append(_from_unit(np.linspace(0.0, 1.0, int(p.levels or 2)), p))
        grid = np.stack(np.meshgrid(*[np.arange(len(a)) for a in axes], indexing="ij"), -1).reshape(-1, len(axes))
        return [{n: axes[j][int(row[j])] for j, n in enumerate(names)} for row in grid]
    d = len(names)
    if spec.design == "lhs":
        from scipy.stats import qmc

        unit = qmc.LatinHypercube(d=d, seed=spec.seed).random(spec.samples)
    else:
        from credsim.rng import static_key, uniforms_range

        unit = np.stack([uniforms_range(static_key(spec.seed, f"sweep:{n}"), 0, spec.samples) for n in names], 1)
    cols = [_from_unit(unit[:, j], spec.parameters[n]) for j, n in enumerate(names)]
    return [{n: cols[j][i] for j, n in enumerate(names)} for i in range(spec.samples)]


def plan_tasks(scenario: str | Path | Scenario, spec: SweepSpec, out: Path, file: str,
               points: list[dict[str, Any]] | None = None, seeds: list[int] | None = None) -> list[Task]:
    """Validate every varied scenario up front; return the runs (baselines first, deduplicated)."""
    scen0 = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    check_paths(spec, dump(scen0), file)
    based = load_scenario(scen0, spec.base_overrides())  # a bad value: ScenarioError naming the spec line
    points = design_points(spec) if points is None else points
    seeds = spec.replicate_seeds() if seeds is None else seeds
    runs: list[Task] = []
    baselines: dict[str, Task] = {}
    problems: list[str] = []
    for i, values in enumerate(points):
        try:
            scen = load_scenario(based, [spec.override(name, v) for name, v in values.items()])
        except ScenarioError as exc:
            problems.append(f"design point {i} {values}: {exc}")
            continue
        for r, seed in enumerate(seeds):
            sdata = dump(scen)
            sdata["run"]["seed"] = seed
            s = load_scenario(sdata)
            t = Task(f"p{i:04d}-s{seed}", "run", i, r, seed, dict(values), sdata, out / "runs" / f"p{i:04d}-s{seed}",
                     scenario_hash(s))
            if spec.baseline:
                bdata = json.loads(json.dumps(sdata))
                bdata["responses"] = {}
                b = load_scenario(bdata)
                h = scenario_hash(b)
                bid = f"b-{h[:12]}-s{seed}"
                if bid not in baselines:
                    baselines[bid] = Task(bid, "baseline", -1, r, seed, {}, bdata, out / "baselines" / bid, h)
                t.baseline_id = bid
            runs.append(t)
    if problems:
        raise SpecError(file, problems)
    return list(baselines.values()) + runs


def is_done(t: Task) -> bool:
    """A complete run of the same resolved scenario and seed; a different one is an error."""
    man = t.dir / "manifest.json"
    if not man.exists():
        return False
    try:
        m = json.loads(man.read_text())
    except (OSError, ValueError):
        return False
    if m.get("status") != "complete":
        return False
    if m.get("scenario_hash") != t.scen_hash or m.get("seed") != t.seed:
        raise SpecError(str(t.dir), [f"run {t.run_id} holds a different scenario or seed than this sweep asks "
                                     "for (was the sweep file changed?); use a new --out or delete that run"])
    return True


# -- execution ------------------------------------------------------------------------------------
def run_task(scenario: dict[str, Any], out: str, threads: int) -> float:
    """One run in a worker (a spawned process or a Ray task); returns its wall time."""
    import credsim

    t0 = time.perf_counter()
    credsim.run(scenario, out=out, threads=threads, overwrite=True)
    return time.perf_counter() - t0


def execute(tasks: list[Task], *, workers: int = 2, ray: bool = False, address: str | None = None,
            threads: int = 1, on_done: Callable[[Task, float], None] | None = None) -> dict[str, float]:
    """Run the tasks that are not done yet; return wall time per run id."""
    todo = [t for t in tasks if not is_done(t)]
    walls: dict[str, float] = {}
    if not todo:
        return walls
    if ray:
        _execute_ray(todo, address, threads, walls, on_done, workers)
        return walls
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=get_context("spawn")) as pool:
        pending: dict[Future[float], Task] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < 2 * max(1, workers):
                t = queue.pop(0)
                pending[pool.submit(run_task, t.scenario, str(t.dir), threads)] = t
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for f in done:
                t = pending.pop(f)
                walls[t.run_id] = f.result()
                if on_done is not None:
                    on_done(t, walls[t.run_id])
    return walls


def _execute_ray(todo: list[Task], address: str | None, threads: int, walls: dict[str, float],
                 on_done: Callable[[Task, float], None] | None, workers: int) -> None:
    import ray

    own = False
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False, configure_logging=False)
        own = True
    try:
        remote = ray.remote(num_cpus=1)(run_task)
        refs = {remote.remote(t.scenario, str(t.dir), threads): t for t in todo}  # type: ignore[attr-defined]
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                t = refs.pop(ref)
                walls[t.run_id] = float(ray.get(ref))
                if on_done is not None:
                    on_done(t, walls[t.run_id])
    finally:
        if own:
            ray.shutdown()


# -- outputs ---------------------------------------------------------------------------------------
def headline(run_dir: Path, dimension: str | None) -> dict[str, float | None]:
    """Headline outputs of one run, from its metrics (dimension 'all') and its scenario."""
    man = json.loads((run_dir / "manifest.json").read_text())
    scen = man["scenario"]
    kinds = {b: v["kind"] for b, v in scen["behaviours"].items()}
    con = duckdb.connect()
    try:
        rows = con.execute(
            "SELECT metric, sum(value) FILTER (WHERE dimension = 'all'), "
            "arg_max(value, day) FILTER (WHERE dimension = 'all') FROM read_parquet(?) GROUP BY metric",
            [str(run_dir / "metrics.parquet")]).fetchall()
        total = {m: float(s or 0.0) for m, s, _l in rows}
        last = {m: float(v or 0.0) for m, _s, v in rows}
        dim = dimension or next((d for d in scen["population"]["groups"]), None)
        by_group: list[tuple[str, float, float]] = []
        if dim is not None:
            by_group = [(str(g), float(d or 0.0), float(p or 0.0)) for g, d, p in con.execute(
                "SELECT \"group\", sum(value) FILTER (WHERE metric LIKE 'denied.%' AND metric NOT IN "
                "('denied.cross_context_sum', 'denied.association_only')), "
                "max(value) FILTER (WHERE metric = 'population') FROM read_parquet(?) "
                "WHERE dimension = ? GROUP BY 1", [str(run_dir / "metrics.parquet"), dim]).fetchall()]
    finally:
        con.close()

    def fam(prefix: str) -> float:
        return sum(v for m, v in total.items() if m.startswith(prefix) and m not in
                   ("denied.cross_context_sum", "denied.association_only"))

    pop = float(man["population"])
    days = float(man["days"])
    out: dict[str, float | None] = {
        "attempts": fam("attempts."), "denied": fam("denied."), "wrongful": fam("wrongful."),
        "missed": fam("missed."),
        "infractions": sum(total.get(f"events.{b}", 0.0) for b, k in kinds.items() if k == "infraction"),
        "speech": sum(total.get(f"events.{b}", 0.0) for b, k in kinds.items() if k == "speech"),
        "listed_end": sum(v for m, v in last.items() if m.startswith("listed.")),
        "population": pop, "days": days,
    }
    a, d = out["attempts"] or 0.0, out["denied"] or 0.0
    out["denied_rate"] = d / a if a else None
    out["wrongful_rate"] = (out["wrongful"] or 0.0) / a if a else None
    out["wrongful_share"] = (out["wrongful"] or 0.0) / d if d else None
    out["infraction_rate"] = (out["infractions"] or 0.0) / (pop * days) * 365.0 if pop and days else None
    rates = [den / p for _g, den, p in by_group if p > 0]
    out["disparate_impact"] = (max(rates) / min(rates)) if rates and min(rates) > 0 else None
    return out


def _paired(run: dict[str, Any], base: dict[str, Any] | None) -> dict[str, float | None]:
    if base is None:
        return {"compliance_gain": None, "chilling": None}
    bi, bs = base.get("infractions") or 0.0, base.get("speech") or 0.0
    return {"compliance_gain": (bi - (run.get("infractions") or 0.0)) / bi if bi else None,
            "chilling": (bs - (run.get("speech") or 0.0)) / bs if bs else None}


def pareto_front(rows: list[dict[str, Any]], maximise: Iterable[str], minimise: Iterable[str]) -> list[bool]:
    """Whether each row is non-dominated (rows with a missing objective are never on the front)."""
    mx, mn = list(maximise), list(minimise)
    vals: list[list[float] | None] = []
    for r in rows:
        v = [r.get(k) for k in mx] + [None if r.get(k) is None else -float(r[k]) for k in mn]
        bad = any(x is None or (isinstance(x, float) and math.isnan(x)) for x in v)
        vals.append(None if bad else [float(x) for x in v])  # type: ignore[arg-type]
    out = []
    for i, a in enumerate(vals):
        if a is None:
            out.append(False)
            continue
        dominated = any(b is not None and j != i and all(x >= y for x, y in zip(b, a, strict=True))
                        and any(x > y for x, y in zip(b, a, strict=True)) for j, b in enumerate(vals))
        out.append(not dominated)
    return out


OBJECTIVES = {"maximise": ["compliance_gain"], "minimise": ["wrongful_rate", "disparate_impact"]}


def build_catalog(out: Path, tasks: list[Task], spec_name: str, params: list[str],
                  dimension: str | None) -> Path:
    """Write ``sweep.duckdb`` (runs, points, pareto, metrics view) atomically; return its path."""
    heads = {t.run_id: headline(t.dir, dimension) for t in tasks}
    rows: list[dict[str, Any]] = []
    for t in tasks:
        if t.kind != "run":
            continue
        h = heads[t.run_id]
        rows.append({"run_id": t.run_id, "point": t.point, "replicate": t.replicate, "seed": t.seed,
                     **{p: t.params.get(p) for p in params}, **h,
                     **_paired(h, heads.get(t.baseline_id) if t.baseline_id else None),
                     "dir": str(t.dir.relative_to(out))})
    tmp = out / f".sweep.duckdb.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        con.execute("SET file_search_path='" + str(out.resolve()).replace("'", "''") + "'")
        cols = ["run_id", "point", "replicate", "seed", *params, *HEADLINES, *PAIRED, "dir"]
        types = {"run_id": "VARCHAR", "dir": "VARCHAR", "point": "INTEGER", "replicate": "INTEGER", "seed": "BIGINT"}
        for p in params:
            v = next((r[p] for r in rows if r.get(p) is not None), 0.0)
            types[p] = "VARCHAR" if isinstance(v, str) else ("BOOLEAN" if isinstance(v, bool) else "DOUBLE")
        ddl = ", ".join(f'"{c}" {types.get(c, "DOUBLE")}' for c in cols)
        con.execute(f"CREATE TABLE runs ({ddl})")
        if rows:
            con.executemany(f"INSERT INTO runs VALUES ({', '.join('?' for _ in cols)})",
                            [[r.get(c) for c in cols] for r in rows])
        agg = ", ".join(f'avg("{h}") AS "{h}"' for h in (*HEADLINES, *PAIRED))
        keys = ", ".join(f'"{p}"' for p in params)
        con.execute(f"CREATE TABLE points AS SELECT point, {keys}, count(*) AS replicates, {agg} "
                    "FROM runs GROUP BY point, " + keys + " ORDER BY point")
        pts = [dict(zip([d[0] for d in con.description or []], r, strict=True))
               for r in con.execute("SELECT * FROM points ORDER BY point").fetchall()]
        front = pareto_front(pts, OBJECTIVES["maximise"], OBJECTIVES["minimise"])
        con.execute("CREATE TABLE pareto AS SELECT * FROM points WHERE point IN (SELECT unnest(?::INTEGER[]))",
                    [[p["point"] for p, f in zip(pts, front, strict=True) if f]])
        con.execute("CREATE TABLE sweep_info AS SELECT ? AS name, ? AS objectives",
                    [spec_name, json.dumps(OBJECTIVES)])
        files = [str((t.dir / "metrics.parquet").relative_to(out)) for t in tasks]
        if files:
            lit = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute("CREATE VIEW metrics AS SELECT split_part(m.filename, '/', -2) AS run_id, "
                        "m.* EXCLUDE (filename) FROM read_parquet([" + lit + "], filename = true) m")
    finally:
        con.close()
    final = out / "sweep.duckdb"
    os.replace(tmp, final)
    return final


def connect(out: str | Path) -> duckdb.DuckDBPyConnection:
    """Open a sweep catalog with its relative paths resolved (like :func:`credsim.connect`)."""
    out = Path(out).resolve()
    con = duckdb.connect(str(out / "sweep.duckdb"), read_only=True)
    con.execute("SET file_search_path='" + str(out).replace("'", "''") + "'")
    return con


def write_design(out: Path, spec: SweepSpec | Any, tasks: list[Task]) -> None:
    """``sweep.json``: what this directory is a sweep of; a different sweep in it is refused."""
    design = {"spec": spec.model_dump(mode="json"),
              "runs": {t.run_id: {"hash": t.scen_hash, "seed": t.seed, "params": t.params} for t in tasks}}
    path = out / "sweep.json"
    if path.exists():
        old = json.loads(path.read_text())
        prev = old.get("runs", {})
        clash = [k for k, v in design["runs"].items() if k in prev and prev[k]["hash"] != v["hash"]]
        if clash:
            raise SpecError(str(path), [f"{out} holds another sweep (runs {clash[:3]} differ); use a new --out"])
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(design, indent=1, default=str))
    os.replace(tmp, path)


def sweep(scenario: str | Path | Scenario, spec: SweepSpec, out: str | Path, *, file: str = "<spec>",
          workers: int = 2, ray: bool = False, address: str | None = None, threads: int = 1,
          on_done: Callable[[Task, float], None] | None = None) -> dict[str, Any]:
    """Plan, run (skipping finished runs) and catalog a sweep; return a summary."""
    out = Path(out)
    tasks = plan_tasks(scenario, spec, out, file)
    write_design(out, spec, tasks)
    for junk in list((out / "runs").glob(".*.partial-*")) + list((out / "baselines").glob(".*.partial-*")):
        shutil.rmtree(junk, ignore_errors=True)  # left by a killed worker: never a result
    done_before = sum(is_done(t) for t in tasks)
    t0 = time.perf_counter()
    walls = execute(tasks, workers=workers, ray=ray, address=address, threads=threads, on_done=on_done)
    wall = time.perf_counter() - t0
    cat = build_catalog(out, tasks, spec.name, list(spec.parameters), spec.disparity_dimension)
    from credsim.experiments.charts import write_sweep_report

    report = write_sweep_report(out)
    return {"runs": len(tasks), "skipped": done_before, "ran": len(walls), "wall_s": wall, "catalog": cat,
            "report": report, "run_walls": walls}
