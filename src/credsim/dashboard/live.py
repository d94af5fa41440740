"""Charts of a run while it goes: the report's own time-series charts, drawn from partial metrics.

The engine keeps its daily metrics table in memory while it runs (:class:`credsim.stages.measure.Metrics`).
Every few days (:func:`every`, about :data:`POINTS` snapshots per run, never every day) the
dashboard's run process copies the whole-population rows of the few series the charts need into
an immutable :class:`Snapshot` and sends it to the server; the page's poll draws the newest one with
the report's own chart functions, so the live lines are exactly the final ones cut at the day reached. A snapshot is a
pure function of the run's metrics up to its day, so a run shows the same lines every time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class LiveChart(NamedTuple):
    """One live chart with what a reader who cannot see it needs: a sentence and the numbers drawn."""

    key: str
    title: str  # the takeaway so far
    fig: go.Figure | None
    caption: str
    alt: str  # the takeaway, what is drawn and the latest value of every line
    head: list[str]  # the data table: one row per day, one column per line
    rows: list[list[str]]


def _value(v: Any) -> str:
    return "" if v is None else f"{float(v):,.6g}"


def table(fig: go.Figure) -> tuple[list[str], list[list[str]]]:
    """The lines of a time-series figure as one row per day (a wide table: a long one repeats every day per line)."""
    lines = [t for t in fig.data if t.x is not None and t.y is not None and t.hoverinfo != "skip"]
    days = sorted({int(d) for t in lines for d in t.x})
    cols = [dict(zip((int(d) for d in t.x), t.y, strict=False)) for t in lines]
    return (["day"] + [str(t.name) for t in lines],
            [[str(d)] + [_value(c.get(d)) for c in cols] for d in days])


def alternative(title: str, snap: Snapshot, head: list[str], rows: list[list[str]]) -> str:
    """A sentence for screen readers: the takeaway so far, the day reached and each line's latest value."""
    last = rows[-1] if rows else []
    latest = "; ".join(f"{name} {val}" for name, val in zip(head[1:], last[1:], strict=False) if val)
    return (f"Chart, partial: {title} (day {snap.day} of {snap.days}). {len(head) - 1} lines over "
            f"{len(rows)} days" + (f"; on the latest day: {latest}" if latest else "")
            + ". The table below the chart lists every value.")


def figures(snap: Snapshot, labels: dict[str, Any]) -> list[LiveChart]:
    """Each live chart, its text alternative and data table, with the day axis fixed to the whole run."""
    res = {"meta": {"population": snap.population, "labels": labels, "replicates": 1},
           "first": {"series": snap.series, "grades": snap.grades, "lists": snap.lists}, "replicates": []}
    out: list[LiveChart] = []
    for fn in LIVE_CHARTS:
        if not snap.series["day"]:
            break
        title, fig, caption = fn(res)
        head: list[str] = []
        rows: list[list[str]] = []
        if fig is not None:
            fig.update_xaxes(range=[0, snap.days - 1])  # the line grows across a fixed axis
            fig.update_layout(uirevision=fn.__name__)  # keep the reader's zoom while the line grows
            head, rows = table(fig)
        out.append(LiveChart(fn.__name__, title, fig, caption, alternative(title, snap, head, rows) if fig else caption,
                             head, rows))
    return out
