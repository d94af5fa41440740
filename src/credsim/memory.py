"""Estimate a run's peak memory before it starts, and refuse runs that cannot fit.

The estimate adds up the dense per-citizen columns, the contact graph (including the
temporary pair array used to build it), the live records waiting to expire (from the
declared rates, detection and expiry), the metrics table, the output tables, the traced
sample's history (it grows every day until the run is written) and a fixed interpreter
baseline. It is deliberately on the high side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from credsim.graph import offsets_dtype
from credsim.partitions import GROUP
from credsim.plan import Plan, compile_plan
from credsim.scenario.schema import Scenario
from credsim.stages.dossier import lifetime
from credsim.state import LEDGER_RECORD_BYTES, bytes_per_citizen, keeps_ledger

BASELINE_BYTES = 400 * 2**20
# an expiry item: citizen int32, code int32, amount float32 (or a sequence int64 for list counts);
# 1.5x for the arrays being concatenated when a day is popped
LIVE_ITEM_BYTES = int(1.5 * 16)
# a true event filed in both views schedules its items once (marked "both"); missed detections
# (shadow only) and false records (official only) add single-view items: 1.3 covers typical rates
VIEW_FACTOR = 1.3
# a traced row (day, citizen, stage, item, value, view, true, source) while kept, concatenated and turned
# into Arrow; measured: 20,000 traced x 30 days of city-points (1.3 M rows) added 390 MB at peak
TRACE_ROW_BYTES = 320
# every traced citizen has two score rows a day (official and shadow view); each event adds about three
# (the event, its record in each view, or the sanction of an attempt)
TRACE_ROWS_PER_DAY = 2.0
TRACE_ROWS_PER_EVENT = 3.0
# the audit event log (eventlog.py): status changes are a fraction of the records filed; measured at
# 10^6 x 365 days: 0.25 rows per filed record for integrated, 0.20 for commercial-score (monthly
# re-grading included); twice the larger. A row takes 8-12 bytes (grade, list) or 40 (denial) while kept;
# written, one row group of widened columns (partitions.GROUP rows x 61 bytes) and its encoded copy are alive
# at once.
EVENT_ROWS_PER_RECORD = 0.5
EVENT_ROW_BYTES = 24
EVENT_WRITE_BYTES = 2 * GROUP * 61


class MemoryRefused(RuntimeError):
    """The run would not fit in the memory allowed; the message has the estimate."""


@dataclass
class Estimate:
    total: int
    parts: dict[str, int]

    def describe(self) -> str:
        text = ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in self.parts.items())
        if self.total < sum(self.parts.values()):
            text += "; the graph is built before the state exists, so the total is the larger phase, not the sum"
        return text


# contestable record int64, false flag uint8, notice day int32, contested record int64, open case uint8
REDRESS_BYTES_PER_LIST = 8 + 1 + 4 + 8 + 1


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def _mean_multiplier(scen: Scenario, table: dict[str, dict[str, float]]) -> float:
    """Population mean of a product of group multipliers (dimensions are drawn independently)."""
    out = 1.0
    for dim, vals in table.items():
        shares = scen.population.groups[dim]
        out *= sum(share * vals.get(v, 1.0) for v, share in shares.items())
    return out


def _queued_days(life: int, days: int) -> int:
    """Days' worth of filings whose items of lifetime ``life`` are queued at once, at the busiest moment.

    An item falling due on or after the run's last day is never queued (``dossier._file`` keeps only
    ``due < horizon``): only filings of days ``[0, days - life)`` queue one, each for ``life`` days, so at
    most ``min(life, days - life)`` days' filings are waiting together, and none when ``life >= days``
    (``commercial-score``: 365-day feature windows in a 365-day run queue nothing)."""
    return max(0, min(life, days - life))


def _live_item_days(scen: Scenario, plan: Plan) -> float:
    """Expected live expiry items per citizen at the busiest moment of the run. Each record filed in
    a view schedules one item per points rule, model feature and list counter it feeds, queued for
    that item's lifetime when it falls due before the run ends (:func:`_queued_days`)."""
    days = scen.run.days
    total = 0.0

    def item_days(rtype: int) -> float:
        t = 0.0
        if plan.rule_points[rtype] != 0:
            t += _queued_days(int(plan.rule_expiry[rtype]), days)
        for f in np.flatnonzero(plan.feat_types[rtype]):
            t += _queued_days(int(plan.feat_expiry[f]), days)
        for li in np.flatnonzero(plan.entry_types[rtype]):
            t += _queued_days(int(plan.entry_window[li]), days)
        return t

    for i, spec in enumerate(scen.behaviours.values()):
        if not plan.beh_in_scope[i]:
            continue
        trait = float(np.prod([np.exp(0.5 * (beta * scen.population.traits[t].sd) ** 2)
                               for t, beta in spec.traits.items()])) if spec.traits else 1.0
        rate = min(1.0, spec.rate * _mean_multiplier(scen, spec.by) * trait)
        total += VIEW_FACTOR * rate * item_days(i)
    for s, sen in scen.sensors.items():
        if s not in scen.shared_sensors() or sen.false_rate == 0:
            continue
        rate = sen.false_rate * _mean_multiplier(scen, sen.surveillance) * sen.coverage
        total += sum(rate * item_days(plan.beh.index(b)) for b in sen.observes)
    return total


def _events_per_day(scen: Scenario) -> float:
    """Expected true events per citizen and day, over every behaviour (group and trait multipliers included)."""
    total = 0.0
    for spec in scen.behaviours.values():
        trait = float(np.prod([np.exp(0.5 * (beta * scen.population.traits[t].sd) ** 2)
                               for t, beta in spec.traits.items()])) if spec.traits else 1.0
        total += min(1.0, spec.rate * _mean_multiplier(scen, spec.by) * trait)
    return total


def trace_bytes(scen: Scenario) -> int:
    """Memory for the traced sample's full history (it grows every day and is only written at the end)."""
    n = scen.population.size
    traced = min(n, scen.run.trace + len(set(scen.run.trace_ids)))
    rows = traced * scen.run.days * (TRACE_ROWS_PER_DAY + TRACE_ROWS_PER_EVENT * _events_per_day(scen))
    return int(rows * TRACE_ROW_BYTES)


def _filed_per_citizen_day(scen: Scenario, plan: Plan) -> float:
    """Expected records filed per citizen and day (true events in scope, plus false records)."""
    total = 0.0
    for i, spec in enumerate(scen.behaviours.values()):
        if plan.beh_in_scope[i]:
            total += min(1.0, spec.rate * _mean_multiplier(scen, spec.by))
    for s, sen in scen.sensors.items():
        if s in scen.shared_sensors():
            total += sen.false_rate * _mean_multiplier(scen, sen.surveillance) * sen.coverage * len(sen.observes)
    return total


def estimate_memory(scen: Scenario, shards: int = 1) -> Estimate:
    """The run's peak memory; with ``shards`` > 1, the sum of its shards' peaks (each holds its own
    citizens and interpreter, and a bit a group-order position of the whole population while it builds its
    graph rows, before its state exists). ``parts`` add up over the shards; with shards the total is not their sum."""
    plan = compile_plan(scen)
    total_n, days = scen.population.size, scen.run.days
    n = -(-total_n // shards)  # the citizens of one shard (everyone in one process)
    m = scen.graph.contacts // 2 if plan.reads_graph else 0  # a graph no stage reads is never built
    edges = 2 * n * m
    offsets = np.dtype(offsets_dtype(edges)).itemsize
    graph = (offsets * (n + 1) + 4 * edges + (edges + 7) // 8) if m else 0  # indptr, indices, a cut bit a tie direction
    if shards == 1:
        # building: the stub targets (int32) and the unsorted rows live together for a moment
        graph_build = (4 * n * m + 8 * n * len(scen.graph.homophily)) if m else 0
    else:
        # a shard's own stubs (int32), the ties opened towards it (int32 x 2), its rows while they are merged
        # (int32, both directions) and each reversed tie's row within its block (at most uint32) and, for the
        # whole population, a bit a group-order position and a running count a 64 while the picks within
        # groups are looked up (shard_graph.Lean: 0.25 B per citizen and homophily dimension)
        graph_build = (24 * n * m + total_n * max(len(scen.graph.homophily), 1) // 4) if m else 0
    records = int(n * _live_item_days(scen, plan) * LIVE_ITEM_BYTES)
    # the dossier's ledger keeps each filed record until its longest lifetime has passed
    ledger = int(n * _filed_per_citizen_day(scen, plan) * min(days, lifetime(plan)) * LEDGER_RECORD_BYTES) \
        if keeps_ledger(plan) else 0
    slots = sum(len(v) for v in scen.population.groups.values()) + 1
    metrics = days * slots * 8 * (40 + 8 * len(plan.beh) + 6 * len(plan.lists) + 2 * len(plan.grades))
    # numeric columns go to Arrow without copies; ids, list flags and bit-packing are copied
    output = n * (8 + 2 * len(plan.lists) + 4)
    records_filed = n * _filed_per_citizen_day(scen, plan) * days
    event_rows = EVENT_ROWS_PER_RECORD * records_filed
    parts = {
        "state": bytes_per_citizen(plan) * n,
        "graph": graph,
        "graph build (temporary)": graph_build,
        "live records": records,
        "record ledger": ledger,
        "metrics": metrics,
        "output tables": output,
        "traces": trace_bytes(scen) // shards,
        "event log": int(event_rows * EVENT_ROW_BYTES + (EVENT_WRITE_BYTES if event_rows else 0)),
        "interpreter": BASELINE_BYTES,
    }
    if scen.redress is not None:  # the redress stage's book, per list and citizen (stages/redress.py)
        parts["redress book"] = n * len(plan.lists) * REDRESS_BYTES_PER_LIST
    if scen.investigations:  # the day each citizen was last investigated, int32 (stages/investigate.py)
        parts["investigation book"] = n * len(scen.investigations) * 4
    # the graph is built before the state exists (engine.complete), so a run's peak is the larger of the two
    # phases, not their sum: while it builds, the interpreter, the population and the graph with its temporaries
    population = n * (len(plan.dims) + 4 * len(plan.traits))
    run = sum(v for k, v in parts.items() if k != "graph build (temporary)")
    if shards == 1:
        build = parts["interpreter"] + population + parts["graph"] + parts["graph build (temporary)"]
        return Estimate(max(build, run), parts)
    # a shard builds its graph rows before its state exists: its peak is the larger of the two phases
    build = parts["interpreter"] + parts["graph build (temporary)"] + population
    return Estimate(shards * max(build, run), {k: v * shards for k, v in parts.items()})


def check_memory(scen: Scenario, max_memory_gb: float | None = None, shards: int = 1) -> Estimate:
    """Raise :class:`MemoryRefused` if the estimate (of ``shards`` shards on this machine) exceeds the limit
    (or what is free)."""
    if max_memory_gb is not None and not (isinstance(max_memory_gb, int | float) and math.isfinite(max_memory_gb)
                                          and max_memory_gb > 0):
        raise ValueError(f"max_memory must be a finite number of GiB above 0 (got {max_memory_gb!r})")
    est = estimate_memory(scen, shards)
    limit = int(max_memory_gb * 2**30) if max_memory_gb is not None else available_bytes()
    source = "--max-memory" if max_memory_gb is not None else "available memory"
    if est.total > limit:
        raise MemoryRefused(
            f"refusing to start: this run needs about {est.total / 2**30:.1f} GiB "
            f"({est.describe()}) but {source} is {limit / 2**30:.1f} GiB. "
            "Try a smaller population, fewer contacts per citizen (graph.contacts), "
            "fewer traced citizens, or the distributed mode."
        )
    return est
