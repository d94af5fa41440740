"""Estimate a run's peak memory before it starts, and refuse runs that cannot fit.

The estimate adds up the dense per-citizen columns, the contact graph (including the
temporary pair array used to build it), the live records waiting to expire (from the
declared rates, detection and expiry), the metrics table, the output tables and a fixed
interpreter baseline. It is deliberately on the high side.
"""

from __future__ import annotations

from dataclasses import dataclass

from credsim.plan import compile_plan
from credsim.scenario.schema import Scenario
from credsim.state import COUNTERS, bytes_per_citizen

BASELINE_BYTES = 400 * 2**20
EXPIRY_ITEM_BYTES = 7 * 8
RECORD_BYTES = 7 * 8


class MemoryRefused(RuntimeError):
    """The run would not fit in the memory allowed; the message has the estimate."""


@dataclass
class Estimate:
    total: int
    parts: dict[str, int]

    def describe(self) -> str:
        return ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in self.parts.items())


def available_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def estimate_memory(scen: Scenario) -> Estimate:
    plan = compile_plan(scen)
    n, days = scen.population.size, scen.run.days
    m = scen.graph.contacts // 2
    edges = 2 * n * m
    graph = 8 * (n + 1) + 5 * edges
    graph_build = 8 * n * m + 2 * 8 * n * len(scen.graph.homophily)
    # records per citizen-day: every in-scope true event twice (official + shadow), false records
    rate = 0.0
    for b, spec in scen.behaviours.items():
        mult = max([1.0] + [max(v.values()) for v in spec.by.values()])
        i = plan.beh.index(b)
        if plan.beh_in_scope[i]:
            rate += 2 * spec.rate * mult
    for s, sen in scen.sensors.items():
        if s in scen.shared_sensors():
            rate += sen.false_rate * len(sen.observes)
    per_record_items = 2 * (1 + len(plan.features) + len(plan.lists))
    expiry = int(plan.rule_expiry.max()) if len(plan.rule_expiry) else 365
    window = max([expiry] + [int(w) for w in plan.entry_window])
    live = rate * n * min(days, window)
    records = int(live * (RECORD_BYTES / 2 + EXPIRY_ITEM_BYTES * per_record_items / 2))
    slots = sum(len(v) for v in scen.population.groups.values()) + 1
    metrics = days * slots * 8 * (40 + 8 * len(plan.beh) + 6 * len(plan.lists) + 2 * len(plan.grades))
    output = n * (8 + len(plan.dims) * 4 + 4 * len(plan.traits) + 16 + 8 + 2 * len(plan.lists) + 4 * len(COUNTERS))
    parts = {
        "state": bytes_per_citizen(plan) * n,
        "graph": graph,
        "graph build (temporary)": graph_build,
        "live records": records,
        "metrics": metrics,
        "output tables": output,
        "interpreter": BASELINE_BYTES,
    }
    return Estimate(sum(parts.values()), parts)


def check_memory(scen: Scenario, max_memory_gb: float | None = None) -> Estimate:
    """Raise :class:`MemoryRefused` if the estimate exceeds the limit (or what is free)."""
    est = estimate_memory(scen)
    limit = int(max_memory_gb * 2**30) if max_memory_gb else available_bytes()
    source = "--max-memory" if max_memory_gb else "available memory"
    if est.total > limit:
        raise MemoryRefused(
            f"refusing to start: this run needs about {est.total / 2**30:.1f} GiB "
            f"({est.describe()}) but {source} is {limit / 2**30:.1f} GiB. "
            "Try a smaller population, fewer contacts per citizen (graph.contacts), "
            "fewer traced citizens, or the distributed mode."
        )
    return est
