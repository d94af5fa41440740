"""The Python API: as small as the command line, and doing the same things."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from credsim import resumable, store
from credsim.engine import DEFAULT_BLOCK
from credsim.memory import check_memory
from credsim.scenario.load import Overrides, load_scenario, run_overrides
from credsim.scenario.schema import Scenario
from credsim.stages.measure import Metrics


@dataclass
class Run:
    """A finished run directory and ways to read it."""

    dir: Path

    @property
    def manifest(self) -> dict[str, Any]:
        return store.read_manifest(self.dir)

    def metrics(self) -> pa.Table:
        return pq.read_table(self.dir / "metrics.parquet")

    def citizens(self) -> pa.Table:
        return store.read_table(self.dir, "citizens.parquet")  # one file, or its parts (sharded, or > 1 row group)

    def traces(self) -> pa.Table:
        return store.read_table(self.dir, "traces.parquet")

    def connect(self) -> duckdb.DuckDBPyConnection:
        return store.connect(self.dir)

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run SQL over the run's catalog (views: metrics, citizens, traces, daily)."""
        con = self.connect()
        try:
            return con.execute(query, params or []).fetchall()
        finally:
            con.close()


def check_run_args(*, block_size: int = DEFAULT_BLOCK, threads: int | None = None) -> None:
    """Refuse settings that cannot work before anything starts (a zero block size divides by zero deep inside)."""
    if not (isinstance(block_size, int) and 1 <= block_size <= 1 << 30):
        raise ValueError(f"block_size must be a whole number of citizens from 1 to {1 << 30} (got {block_size!r})")
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= 4096):
        raise ValueError(f"threads must be a whole number from 1 to 4096, or None for all cores (got {threads!r})")


def default_out(scen: Scenario, seed: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{scen.name}-s{seed}-{stamp}"


def run(
    scenario: str | Path | Scenario | dict[str, Any] | None = None,
    *,
    out: str | Path | None = None,
    population: int | None = None,
    days: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    block_size: int = DEFAULT_BLOCK,
    overrides: Overrides | None = None,
    max_memory: float | None = None,
    overwrite: bool = False,
    on_day: Callable[[int, int], None] | None = None,
    checkpoint_every: int | None = None,
    max_days: int | None = None,
    time_budget: float | None = None,
    on_metrics: Callable[[int, Metrics], None] | None = None,
) -> Run:
    """Run a scenario (a built-in name, a YAML path, a dict or a loaded Scenario).

    ``overrides`` maps key paths to values (``{'behaviours["traffic.violation"].rate': 0.01}``,
    see :mod:`credsim.scenario.keypath`); a refused one is reported as the ``overrides
    argument``. ``population``, ``days`` and ``seed`` override the scenario's own values; the
    resolved scenario, with them applied, is what the manifest records.

    ``checkpoint_every`` (days), ``max_days`` (days in this call) and ``time_budget``
    (seconds) make the run durable and resumable with :func:`resume`; when a limit is
    reached, or on Ctrl-C, :class:`credsim.resumable.RunStopped` is raised after a
    checkpoint is saved (see :mod:`credsim.resumable`).

    ``on_metrics(day, metrics)`` reads the daily metrics accumulated so far after each day
    (a live chart; not called for sharded runs).
    """
    check_run_args(block_size=block_size, threads=threads)
    scen = load_scenario(scenario, run_overrides(overrides, population=population, days=days, seed=seed))
    check_memory(scen, max_memory)
    target = Path(out) if out is not None else default_out(scen, scen.run.seed)
    extra = {"block_size": block_size, "threads": threads}
    limits = resumable.Limits(checkpoint_every, max_days, time_budget)
    resumable.execute(scen, target, block=block_size, threads=threads, overwrite=overwrite, limits=limits,
                      extra=extra, on_day=on_day, on_metrics=on_metrics)
    return Run(target)


def resume(run_dir: str | Path, *, threads: int | None = None, checkpoint_every: int | None = None,
           max_days: int | None = None, time_budget: float | None = None, max_memory: float | None = None,
           on_day: Callable[[int, int], None] | None = None) -> Run:
    """Continue an interrupted, failed or killed run from its newest checkpoint (see :func:`run`)."""
    check_run_args(threads=threads)
    limits = resumable.Limits(checkpoint_every, max_days, time_budget) if any(
        v is not None for v in (checkpoint_every, max_days, time_budget)) else None
    resumable.resume(run_dir, threads=threads, limits=limits, max_memory=max_memory, on_day=on_day)
    return Run(Path(run_dir))
