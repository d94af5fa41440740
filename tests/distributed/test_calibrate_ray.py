"""Calibration runs as Ray tasks: the same evaluations as one process, in the order asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from credsim.calib_runs import Point, Runner
from credsim.calibrate import load_targets
from credsim.scenario.load import load_scenario

FLIGHT_EARLY = 'behaviours["travel.flight_attempt"].schedule[0].multiplier'


def test_ray_tasks_give_the_same_evaluations_as_one_process(tmp_path: Path, ray_cluster: Any) -> None:
    """Three points at two seeds on the session's real local Ray (2 CPUs; each task asks for half a
    CPU, two in flight) equal the single-process runs figure by figure, in the order asked."""
    p = tmp_path / "t.yaml"
    p.write_text(yaml.safe_dump({
        "scenario": "court-defaulters", "real_population": 1.0e6,
        "simulate": {"population": 1500, "days": 20, "seeds": [3, 4]},
        "targets": {"flights": {"metric": "events.travel.flight_attempt", "to_day": 19, "value": 1.0e5}},
        "parameters": {"flight_early": {"path": FLIGHT_EARLY, "low": 0.01, "high": 1.0}},
    }, sort_keys=False))
    tf = load_targets(p)
    scen = load_scenario("court-defaulters")
    points = [Point({"flight_early": v}, s) for v, s in ((0.2, 3), (0.5, 4), (0.2, 4))]
    with Runner(scen, tf, threads=1, workers=2, ray=True, cache=tmp_path / "ray") as on_ray:
        got = on_ray.run(points)
        assert on_ray.runs == 3
    with Runner(scen, tf, threads=1) as here:
        want = here.run(points)
    assert [(e.params, e.seeds, e.simulated) for e in got] == [(e.params, e.seeds, e.simulated) for e in want]
    assert got[0].simulated["flights"] < got[2].simulated["flights"] * 1.5  # 0.2 at seeds 3 and 4: noise only
    assert got[1].simulated["flights"] > got[2].simulated["flights"]  # 0.5 vs 0.2 at seed 4
