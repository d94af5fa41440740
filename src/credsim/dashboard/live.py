"""Charts of a run while it goes: the report's own time-series charts, drawn from partial metrics.

The engine keeps its daily metrics table in memory while it runs (:class:`credsim.stages.measure.Metrics`).
Every few days (:func:`every`, about :data:`POINTS` snapshots per run, never every day) the
dashboard's worker thread copies the whole-population rows of the few series the charts need into
an immutable :class:`Snapshot`; the page's progress poll draws the newest one with the report's own
chart functions, so the live lines are exactly the final ones cut at the day reached. A snapshot is a
pure function of the run's metrics up to its day, so a run shows the same lines every time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from credsim import names as nm
from credsim.report import charts
from credsim.stages.measure import SCALE, Metrics

POINTS = 15  # snapshots per run: enough for a line that visibly grows, few enough to cost nothing
LIVE_CHARTS = (charts.list_sizes, charts.grade_mix)


def every(days: int) -> int:
    """Days between two snapshots of a run of ``days`` days (at least 1)."""
    return max(1, -(-days // POINTS))


@dataclass(frozen=True)
class Snapshot:
    """The series of one run up to ``day`` (days done), in the report's ``series`` layout."""

    day: int
    days: int
    population: int
    grades: list[str]
    lists: list[str]
    series: dict[str, list[float]]


def take(metrics: Metrics, done: int, days: int) -> Snapshot:
    """The whole-population rows of the charted series for days ``[0, done)`` (a copy: the run goes on)."""
    plan = metrics.plan
    wanted = ([nm.GRADE(g) for g in plan.grades] + [nm.SHADOW_GRADE(g) for g in plan.grades]
              + [nm.LISTED(li) for li in plan.lists] + [nm.SHADOW_LISTED(li) for li in plan.lists])
    rows = [metrics.idx[w] for w in wanted]
    values = metrics.table[:done, rows, -1].astype(np.float64) / SCALE  # "all" is the last slot
    series: dict[str, list[float]] = {"day": list(range(done))}
    for j, w in enumerate(wanted):
        series[w] = values[:, j].tolist()
    return Snapshot(done, days, metrics.hi - metrics.lo, list(plan.grades), list(plan.lists), series)


def watcher(days: int, keep: Callable[[Snapshot], None]) -> Callable[[int, Metrics], None]:
    """An ``on_metrics`` callback that hands ``keep`` a snapshot every :func:`every` days and on the last day."""
    step = every(days)

    def on_metrics(day: int, metrics: Metrics) -> None:
        done = day + 1
        if done % step == 0 or done == days:
            keep(take(metrics, done, days))

    return on_metrics


def figures(snap: Snapshot, labels: dict[str, Any]) -> list[tuple[str, go.Figure | None, str]]:
    """(key, figure or None, caption) of each live chart, with the day axis fixed to the whole run."""
    res = {"meta": {"population": snap.population, "labels": labels, "replicates": 1},
           "first": {"series": snap.series, "grades": snap.grades, "lists": snap.lists}, "replicates": []}
    out: list[tuple[str, go.Figure | None, str]] = []
    for fn in LIVE_CHARTS:
        if not snap.series["day"]:
            break
        _title, fig, caption = fn(res)
        if fig is not None:
            fig.update_xaxes(range=[0, snap.days - 1])  # the line grows across a fixed axis
            fig.update_layout(uirevision=fn.__name__)  # keep the reader's zoom while the line grows
        out.append((fn.__name__, fig, caption))
    return out
