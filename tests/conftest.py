"""Shared fixtures: small scenarios built as dicts, so each test shows what it varies."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import credsim

# The longest files first (seconds in a CI run, 2026-12-03): with a file per worker (--dist loadfile)
# a long file handed out last keeps one worker busy while the other has nothing left to do.
SLOW_FILES_FIRST = (
    "tests/test_readme.py",  # ~330 s: the README's commands in a core-only install
    "tests/test_report_browser.py",  # ~230 s
    "tests/test_dashboard_browser.py",  # ~200 s
    "tests/test_calibrate.py",  # ~150 s: court-defaulters at 3 fresh seeds x 200,000
    "tests/test_as_typed.py",
    "tests/test_calibrate_cli.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the slow files first; the rest keep their order (a stable sort)."""
    rank = {f: i for i, f in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


# city-points made to produce wrongful sanctions often: false camera matches and a loan ban from grade B
WRONGFUL_PRONE = {
    "sensors.traffic_cameras.false_rate": 0.003,
    "sanctions.low_grade_no_loans.when.grades": ["B", "C", "D"],
    "sanctions.low_grade_no_loans.attempts": ["finance.loan_application", "travel.hsr_attempt"],
}


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Small runs: one worker thread (results do not depend on it; parallel overhead would dominate).
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


def tiny(**changes: Any) -> dict[str, Any]:
    """A minimal valid scenario; keyword changes are dotted paths (``run__days`` style)."""
    base: dict[str, Any] = {
        "name": "tiny",
        "population": {
            "size": 2000,
            "groups": {"region": {"city": 0.6, "rural": 0.4}, "hukou": {"local": 0.7, "migrant": 0.3}},
            "traits": {"care": {}},
        },
        "behaviours": {
            "traffic.violation": {"kind": "infraction", "rate": 0.01},
            "court.default": {"kind": "infraction", "rate": 0.002},
            "court.comply": {"kind": "cure", "rate": 0.05, "only_listed": "defaulters"},
            "travel.flight": {"kind": "attempt", "rate": 0.05},
        },
        "sensors": {
            "cameras": {"observes": ["traffic.violation"]},
            "courts": {"observes": ["court.default", "court.comply"]},
        },
        "scoring": {
            "points": {"base": 1000, "rules": {"traffic.violation": -5, "court.default": -50}},
            "grades": {"bands": [{"name": "A", "min": 960}, {"name": "B", "min": 900}, {"name": "C"}]},
        },
        "lists": {
            "defaulters": {
                "domain": "court",
                "entry": {"records": ["court.default"], "count": 1, "window_days": 365},
                "exit": {"cure": ["court.comply"], "term_days": 100},
            }
        },
        "sanctions": {"flight_ban": {"when": {"list": "defaulters"}, "attempts": ["travel.flight"]}},
        "run": {"days": 30, "seed": 7, "trace": 50},
    }
    out = copy.deepcopy(base)
    for key, value in changes.items():
        cur = out
        parts = key.split("__")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        if value is None:
            cur.pop(parts[-1], None)
        else:
            cur[parts[-1]] = value
    return out


@pytest.fixture
def run_tiny(tmp_path: Path):  # type: ignore[no-untyped-def]
    counter = {"k": 0}

    def _run(scen: dict[str, Any] | str, **kw: Any) -> credsim.Run:
        counter["k"] += 1
        return credsim.run(scen, out=tmp_path / f"run{counter['k']}", **kw)

    return _run
