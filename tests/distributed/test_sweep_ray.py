"""A sweep on Ray gives the same catalog as on the process pool, and resumes after an interruption."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import credsim
from credsim.experiments import SweepSpec, connect, load_spec, sweep
from tests.test_sweep import SPEC, scenario


def rows(out: Path) -> list[Any]:
    con = connect(out)
    try:
        return con.execute("SELECT * EXCLUDE (dir) FROM runs ORDER BY run_id").fetchall()
    finally:
        con.close()


def test_ray_sweep_matches_pool_and_resumes(ray_cluster: Any, tmp_path: Path) -> None:
    spec = load_spec({**SPEC, "replicates": 1}, SweepSpec)
    scen = credsim.load_scenario(scenario())
    pool = sweep(scen, spec, tmp_path / "pool", workers=2)
    on_ray = sweep(scen, spec, tmp_path / "ray", ray=True)
    assert on_ray["ran"] == pool["ran"] == pool["runs"]
    assert rows(tmp_path / "ray") == rows(tmp_path / "pool")
    # interrupted: two runs missing -> only those two run again, on Ray
    shutil.rmtree(tmp_path / "ray" / "runs" / "p0000-s1")
    shutil.rmtree(tmp_path / "ray" / "runs" / "p0003-s1")
    again = sweep(scen, spec, tmp_path / "ray", ray=True)
    assert (again["ran"], again["skipped"]) == (2, again["runs"] - 2)
    assert rows(tmp_path / "ray") == rows(tmp_path / "pool")
