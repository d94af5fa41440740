"""Runs that survive interruption: status in ``manifest.json``, checkpoints, limits, Ctrl-C, resume.

Two ways to run:

- **plain** (no checkpoint options): nothing is written until the run has finished, then
  :func:`credsim.store.write_run` puts the whole run directory in place atomically. Ctrl-C
  still stops cleanly at the end of the current day and writes a resumable checkpoint.
- **durable** (``--checkpoint-every D``, ``--max-days K`` or ``--time-budget S``): the run
  directory exists from the start with ``manifest.json`` status ``running``; a checkpoint
  is written every D days; the run ends ``complete``, ``interrupted`` (Ctrl-C, SIGTERM,
  a limit reached: with the command that resumes it) or ``failed`` (with the reason). A
  SIGKILL leaves ``running`` and the last checkpoint; :func:`resume` continues either way.

Either way, the loop (or each shard) keeps its audit event log on disk as the days go, in an
anonymous file in the run directory or, for a plain run, the folder that will hold it
(:mod:`credsim.spool`: it has no name, and the kernel frees it however the process ends).

The final outputs are written to ``RUN_DIR/.final`` first and moved in one file at a time
(each rename atomic), ``manifest.json`` last: a run is complete exactly when its manifest
says so, and readers (:func:`credsim.store.connect`) refuse anything else.

A lock (``checkpoint/lock``, ``flock``) stops two processes from driving one run; the
kernel releases it when a process dies, so a killed run can be resumed at once.

A session drives a :class:`Driver`: one loop in this process (:class:`LoopDriver`) or K shards
(:class:`credsim.distributed.run.ShardedDriver`, recorded in the manifest as ``layout``), so
checkpoints, limits, signals and resume work the same for both.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from credsim import checkpoint, engine, outdir, store
from credsim.distributed.run import Layout, ShardedDriver
from credsim.memory import available_bytes, check_memory
from credsim.partitions import Partitioned
from credsim.scenario.keypath import dump
from credsim.scenario.load import load_scenario, scenario_hash
from credsim.scenario.schema import Scenario
from credsim.stages.measure import Metrics

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None  # type: ignore[assignment]

FINAL_DIR = ".final"


class RunStopped(Exception):
    """The run stopped between two days (Ctrl-C, SIGTERM, ``--max-days``, ``--time-budget``)."""

    def __init__(self, run_dir: Path, done: int, days: int, reason: str, *, resumable: bool, by_signal: bool):
        self.run_dir, self.done, self.days, self.reason = run_dir, done, days, reason
        self.resumable, self.by_signal = resumable, by_signal
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"stopped after day {self.done} of {self.days} ({self.reason})"
        if self.resumable:
            return f"{head}; checkpoint saved in {self.run_dir}/checkpoint. Resume with: credsim resume {self.run_dir}"
        return f"{head}; nothing was written"


class RunBusy(checkpoint.CheckpointError):
    """Another process is driving this run directory."""


@dataclass
class Limits:
    checkpoint_every: int | None = None  # days between checkpoints
    max_days: int | None = None  # days to simulate in this session, then stop with a checkpoint
    time_budget: float | None = None  # seconds for this session, then stop with a checkpoint

    def __post_init__(self) -> None:
        for name in ("checkpoint_every", "max_days"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and 1 <= v <= 10_000_000):
                raise ValueError(f"{name} must be a whole number of days >= 1 (got {v!r})")
        t = self.time_budget
        if t is not None and not (isinstance(t, int | float) and 0 < t < 1e9):
            raise ValueError(f"time_budget must be a number of seconds > 0 (got {t!r})")

    @property
    def durable(self) -> bool:
        return any(v is not None for v in (self.checkpoint_every, self.max_days, self.time_budget))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_manifest(run_dir: Path, data: dict[str, Any]) -> None:
    """Replace ``manifest.json`` atomically and durably (temp file, fsync, rename, fsync folder)."""
    path = Path(run_dir) / "manifest.json"
    tmp = path.with_name(f".manifest.json.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(data, indent=2, default=str))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    checkpoint._fsync_dir(path.parent)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``checkpoint/lock`` exclusively, or raise :class:`RunBusy`."""
    d = checkpoint.checkpoint_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "lock", "a+") as fh:
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RunBusy(f"{run_dir} is being run by another process right now") from None
        yield


class StopSignals:
    """First Ctrl-C / SIGTERM: stop after the current day with a checkpoint. Second Ctrl-C: abort."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = f"interrupted by {name}"
        sys.stderr.write(f"\n{name}: stopping after the current day and saving a checkpoint "
                         "(press Ctrl-C again to abort at once)\n")

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)


class Driver(Protocol):
    """What a session needs from whatever runs the days."""

    days: int
    setup: float  # seconds to build this session's population, graph and state

    def step(self, day: int) -> None: ...

    def save(self, out: Path, done: int, meta: dict[str, Any]) -> Path: ...

    def restore_latest(self, out: Path) -> tuple[int, dict[str, Any]]: ...

    def result(self) -> engine.Result | Partitioned: ...

    def extra(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LoopDriver:
    """One :class:`~credsim.engine.Loop` in this process; checkpoints are ``RUN_DIR/checkpoint/day-N.npz``.

    ``spool``: the folder where the loop's event log keeps its parts on disk as the days go
    (:meth:`credsim.eventlog.EventLog.spool_to`: an anonymous file, gone when the process is), so that
    the log, which grows with every day, is not held in memory; None keeps it in memory."""

    def __init__(self, scen: Scenario, *, block: int, threads: int | None, spool: Path | None = None) -> None:
        self.scen, self.block, self.threads, self.spool = scen, block, threads, spool
        self.loop, self.setup = self._prepare()
        self.days = self.loop.days
        self.warnings: list[str] = []

    def _prepare(self) -> tuple[engine.Loop, float]:
        loop, setup = engine.prepare(self.scen, block=self.block, threads=self.threads)
        if self.spool is not None:
            loop.events.spool_to(self.spool)
        return loop, setup

    def step(self, day: int) -> None:
        self.loop.step(day)

    def save(self, out: Path, done: int, meta: dict[str, Any]) -> Path:
        return checkpoint.save(out, self.loop, done, meta)

    def restore_latest(self, out: Path) -> tuple[int, dict[str, Any]]:
        """The newest readable checkpoint (unreadable ones are skipped with a warning)."""
        for ck in checkpoint.list_checkpoints(out):
            try:
                head = checkpoint.restore(ck.path, self.loop, max_bytes=available_bytes())
                meta = head.get("meta", {})
                return ck.day, meta if isinstance(meta, dict) else {}
            except checkpoint.CheckpointError as exc:
                self.warnings.append(f"skipped {ck.path.name}: {exc}")
                self.close()
                self.loop, self.setup = self._prepare()
        return 0, {}

    def result(self) -> engine.Result:
        return engine.finish(self.loop, self.setup)

    def extra(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.loop.events.close_spool()


def make_driver(scen: Scenario, layout: Layout | None, *, block: int, threads: int | None,
                spool: Path | None = None) -> Driver:
    """The driver of a run, one loop or the shards of ``layout``, whose event logs wait in ``spool`` (if given)."""
    if layout is None:
        return LoopDriver(scen, block=block, threads=threads, spool=spool)
    return ShardedDriver(scen, layout, block=block, threads=threads, spool=spool)


@dataclass
class _Session:
    """One process driving a run from ``start`` (day 0 or a checkpoint) to the end or a stop."""

    scen: Scenario
    out: Path
    driver: Driver
    setup_before: float  # setup seconds of earlier sessions
    wall_before: float  # wall seconds of earlier sessions
    start: int
    manifest: dict[str, Any]
    limits: Limits
    durable: bool
    extra: dict[str, Any]
    on_day: Callable[[int, int], None] | None
    t0: float
    overwrite: bool = False  # plain runs: replace an existing run directory at the end
    on_metrics: Callable[[int, Metrics], None] | None = None  # partial metrics after each day (one process only)

    def meta(self) -> dict[str, Any]:
        m = self.manifest
        return {k: m.get(k) for k in ("scenario_hash", "seed", "population", "days", "block_size")} | {
            "setup_s": self.setup_before + self.driver.setup,
            "wall_s": self.wall_before + time.perf_counter() - self.t0, "saved": now()}

    def checkpoint(self, done: int) -> Path:
        path = self.driver.save(self.out, done, self.meta())
        self.manifest["checkpoint"] = {"day": done, "file": str(path.relative_to(self.out)), "saved": now()}
        return path

    def hook(self, sig: StopSignals) -> Callable[[int], None]:
        lim = self.limits
        days = self.driver.days

        def after_day(day: int) -> None:
            done = day + 1
            if done >= days:
                return
            reason = sig.reason
            if reason is None and lim.max_days is not None and done - self.start >= lim.max_days:
                reason = f"--max-days {lim.max_days} reached"
            if reason is None and lim.time_budget is not None and time.perf_counter() - self.t0 >= lim.time_budget:
                reason = f"--time-budget {lim.time_budget:g} s used"
            due = lim.checkpoint_every is not None and done % lim.checkpoint_every == 0
            if reason is None and not due:
                return
            if not self.durable:  # plain run: the run directory appears only now, to hold the checkpoint
                if self.out.exists():
                    raise RunStopped(self.out, done, days, f"{reason}; {self.out} already exists, so no "
                                     "checkpoint was written", resumable=False, by_signal=True)
                start_dir(self.out, self.manifest)
            self.checkpoint(done)
            if reason is None:
                write_manifest(self.out, self.manifest)
                return
            self.manifest.update(status="interrupted", reason=reason, stopped=now(),
                                 resume=f"credsim resume {self.out}")
            write_manifest(self.out, self.manifest)
            raise RunStopped(self.out, done, days, reason, resumable=True, by_signal=reason == sig.reason)

        return after_day

    def drive(self) -> Path:
        drv = self.driver
        with StopSignals() as sig:
            try:
                after_day = self.hook(sig)
                for day in range(self.start, drv.days):
                    drv.step(day)
                    if self.on_day is not None:
                        self.on_day(day, drv.days)
                    if self.on_metrics is not None and isinstance(drv, LoopDriver):
                        self.on_metrics(day, drv.loop.metrics)
                    after_day(day)
            except RunStopped:
                raise
            except BaseException as exc:
                if self.durable:
                    self._record_failure(exc)
                raise
            return self.finish()

    def _record_failure(self, exc: BaseException) -> None:
        interrupted = isinstance(exc, KeyboardInterrupt)
        self.manifest.update(status="interrupted" if interrupted else "failed",
                             reason="aborted (Ctrl-C twice)" if interrupted else f"{type(exc).__name__}: {exc}",
                             stopped=now())
        if self.manifest.get("checkpoint") or interrupted:
            self.manifest["resume"] = f"credsim resume {self.out}"
        with suppress(OSError):
            write_manifest(self.out, self.manifest)

    def finish(self) -> Path:
        wall = self.wall_before + time.perf_counter() - self.t0
        result = self.driver.result()
        result.timings["setup"] = self.setup_before + self.driver.setup
        extra = {**self.extra, **self.driver.extra(), "checkpoint_every": self.limits.checkpoint_every,
                 "sessions": self.manifest.get("sessions", 1)}
        if self.manifest.get("warnings"):
            extra["warnings"] = self.manifest["warnings"]
        if not self.durable:
            store.write_run(result, self.scen, self.out, wall=wall, extra=extra, overwrite=self.overwrite,
                            release_events=True)
            return self.out
        try:
            final = self.out / FINAL_DIR
            shutil.rmtree(final, ignore_errors=True)
            store.write_run(result, self.scen, final, wall=wall, extra=extra, release_events=True)
            files = store.read_manifest(final)["files"]
            # a sharded run's parts sit in one folder per table (citizens/part-00000.parquet): move the folder
            for top in dict.fromkeys(name.split("/")[0] for name in files):
                if top != "manifest.json":
                    if (self.out / top).is_dir():
                        shutil.rmtree(self.out / top)  # left by an earlier attempt to finish
                    os.replace(final / top, self.out / top)
            checkpoint._fsync_dir(self.out)
            os.replace(final / "manifest.json", self.out / "manifest.json")  # the commit point
            checkpoint._fsync_dir(self.out)
        except BaseException as exc:
            self._record_failure(exc)
            raise
        shutil.rmtree(final, ignore_errors=True)
        shutil.rmtree(checkpoint.checkpoint_dir(self.out), ignore_errors=True)
        return self.out


def start_dir(out: Path, manifest: dict[str, Any]) -> None:
    out.mkdir(parents=True)
    checkpoint.checkpoint_dir(out).mkdir()
    write_manifest(out, manifest)


def _base_manifest(scen: Scenario, block: int, threads: int | None, limits: Limits) -> dict[str, Any]:
    return {
        "status": "running",
        "scenario_name": scen.name,
        "scenario_hash": scenario_hash(scen),
        "seed": scen.run.seed,
        "population": scen.population.size,
        "days": scen.run.days,
        "block_size": block,
        "threads": threads,
        "checkpoint_every": limits.checkpoint_every,
        "started": now(),
        "pid": os.getpid(),
        "sessions": 1,
        "versions": store.versions(),
        "scenario": dump(scen),
    }


def execute(scen: Scenario, out: Path, *, block: int = engine.DEFAULT_BLOCK, threads: int | None = None,
            overwrite: bool = False, limits: Limits | None = None, extra: dict[str, Any] | None = None,
            on_day: Callable[[int, int], None] | None = None, layout: Layout | None = None,
            on_metrics: Callable[[int, Metrics], None] | None = None) -> Path:
    """Run ``scen`` into ``out`` (plain or durable, see the module docstring); return ``out``.

    ``on_metrics(day, metrics)`` sees the run's daily metrics table, filled up to ``day``, after
    each day, so a caller can chart a run while it goes (it must only read). Sharded runs keep
    their metrics in the shards until the end, so it is not called for them.

    The whole run holds ``out``'s claim (:func:`credsim.outdir.claim`): a second run to the
    same directory stops at once, and ``overwrite`` replaces only an idle credsim run.
    ``layout`` splits the citizens over shards (:mod:`credsim.distributed`); the manifest records it.
    """
    limits = limits or Limits()
    t0 = time.perf_counter()
    with outdir.claim(out, overwrite) as out:
        manifest = _base_manifest(scen, block, threads, limits)
        if layout is not None:
            manifest["layout"] = layout.to_json()
        if limits.durable:
            if os.path.lexists(out):
                shutil.rmtree(out)  # an idle credsim run: check_replaceable said so under the claim
            start_dir(out, manifest)
        lock = run_lock(out) if limits.durable else _nothing()
        # a plain run's directory appears only when it is complete: its log spools beside it
        out.parent.mkdir(parents=True, exist_ok=True)
        with lock:
            try:
                drv = make_driver(scen, layout, block=block, threads=threads,
                                  spool=out if limits.durable else out.parent)
            except BaseException as exc:
                if limits.durable:
                    write_manifest(out, {**manifest, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
                raise
            try:
                sess = _Session(scen, out, drv, 0.0, 0.0, 0, manifest, limits, limits.durable, dict(extra or {}),
                                on_day, t0, overwrite, on_metrics)
                return sess.drive()
            finally:
                drv.close()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def resume(run_dir: str | Path, *, threads: int | None = None, limits: Limits | None = None,
           max_memory: float | None = None, on_start: Callable[[int, int], None] | None = None,
           on_day: Callable[[int, int], None] | None = None) -> Path:
    """Continue a run from its newest readable checkpoint (or from day 0 if it has none).

    A complete run is returned as it is. ``limits`` default to the run's own checkpoint
    interval; ``on_start(day, days)`` is told where the run resumes.
    """
    out = Path(run_dir)
    t0 = time.perf_counter()
    try:
        man = store.read_manifest(out)
    except (OSError, ValueError) as exc:
        raise checkpoint.CheckpointError(f"{out} is not a run directory (manifest.json: {exc})") from None
    if not isinstance(man, dict) or not isinstance(man.get("scenario"), dict):
        raise checkpoint.CheckpointError(f"{out}/manifest.json does not describe a run")
    if man.get("status") == "complete":
        shutil.rmtree(checkpoint.checkpoint_dir(out), ignore_errors=True)
        return out
    scen = load_scenario(man["scenario"])
    if scenario_hash(scen) != man.get("scenario_hash"):
        raise checkpoint.CheckpointError(f"{out}: the scenario in manifest.json does not match its recorded hash")
    layout = Layout.from_json(man["layout"]) if man.get("layout") is not None else None
    check_memory(scen, max_memory, layout.shards if layout is not None and layout.address is None else 1)
    block = int(man.get("block_size") or engine.DEFAULT_BLOCK)
    every = man.get("checkpoint_every")
    limits = limits or Limits(checkpoint_every=every if isinstance(every, int) and every > 0 else None)
    if limits.checkpoint_every is None and isinstance(every, int) and every > 0:
        limits = Limits(every, limits.max_days, limits.time_budget)
    with run_lock(out):
        drv = make_driver(scen, layout, block=block, threads=threads, spool=out)
        try:
            start, meta = drv.restore_latest(out)
            for key in ("scenario_hash", "seed", "population", "days"):
                if start and meta.get(key) != man.get(key):
                    raise checkpoint.CheckpointError(f"{out}: checkpoint {key} {meta.get(key)!r} does not match the "
                                                     f"manifest's {man.get(key)!r}")
            warnings = list(getattr(drv, "warnings", []))
            setup_before = float(meta.get("setup_s", 0.0))
            wall_before = float(meta.get("wall_s", 0.0))
            man.update(status="running", pid=os.getpid(), resumed=now(), sessions=int(man.get("sessions", 1)) + 1,
                       resumed_from_day=start, checkpoint_every=limits.checkpoint_every)
            for k in ("reason", "stopped", "resume"):
                man.pop(k, None)
            if warnings:
                man["warnings"] = warnings
            write_manifest(out, man)
            if on_start is not None:
                on_start(start, drv.days)
            extra = {"block_size": block, "threads": threads}
            sess = _Session(scen, out, drv, setup_before, wall_before, start, man, limits, True, extra, on_day, t0)
            return sess.drive()
        finally:
            drv.close()
