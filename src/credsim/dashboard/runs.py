"""The runs behind the dashboard: paired runs started from the page, and run folders to browse.

A run started from the page is an **audit directory**, the same layout ``credsim audit``
writes (so ``credsim report``, ``credsim compare`` and ``credsim explain`` work on it)::

    <runs root>/<scenario>-<stamp>/
        scenario.yaml          the scenario as edited on the page
        audit.json, report.html
        runs/system-s<seed>/   the scenario, with the page's settings
        runs/baseline-s<seed>/ its counterfactual: same citizens and seed, no system

The two runs share their random numbers (same seed), so differences between them are the
system's effect. The counterfactual does not depend on most policy knobs, so baseline runs
are kept in ``<runs root>/.dashboard-cache/<scenario hash>`` and copied, not re-run, when the
same one is needed again (the hash covers everything that determines the run).

Every user-supplied run name goes through :mod:`credsim.security` before a file is read, and
runs are read through :func:`credsim.store.connect`, whose DuckDB views are built in memory
over each run's own Parquet files (:mod:`credsim.catalog`), never from a stranger's
``results.duckdb``; JSON files are read size- and type-checked (:mod:`credsim.safeio`).
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback
import uuid
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from credsim import security
from credsim.api import run as run_api
from credsim.audit.paired import assemble, counterfactual, load_result
from credsim.dashboard import live
from credsim.engine import DEFAULT_BLOCK
from credsim.memory import MemoryRefused, check_memory
from credsim.report import write_report
from credsim.report.html import PLOTLY_FILE
from credsim.report.labels import from_scenario
from credsim.safeio import AUDIT_JSON_BYTES, MANIFEST_BYTES, read_json_object, read_text
from credsim.scenario.keypath import dump
from credsim.scenario.load import ScenarioError, dump_yaml, scenario_hash
from credsim.scenario.schema import Scenario

CACHE_DIR = ".dashboard-cache"
MAX_LISTED = 500
MAX_DEPTH = 4
MAX_JOBS = 50  # finished jobs remembered for the page's polling


@dataclass
class Job:
    """One paired run started from the page, watched by the page's progress bar."""

    id: str
    scenario: Scenario
    out: Path
    name: str  # the audit directory's name under the runs root
    total: int  # days to simulate in all (system + baseline)
    days: int = 0  # days of one run (the page says "day d of days" for the run under way)
    done: int = 0
    phase: str = "starting"
    error: str | None = None
    finished: bool = False
    started: float = field(default_factory=time.perf_counter)
    wall_clock: float = field(default_factory=time.time)  # the same moment, for the run process's audit.json
    wall: float = 0.0
    baseline_cached: bool = False
    cancelled: bool = False  # asked to stop: the run ends after its current day
    report_written: bool = False  # report.html is written after the job finishes (the page does not wait)
    partial: live.Snapshot | None = None  # the policy run's series so far, replaced every few days while it runs
    labels: dict[str, Any] = field(default_factory=dict)  # the scenario's plain words, for the live charts

    @property
    def stage_day(self) -> int:
        """The day reached by the run under way (the policy run first, then the baseline)."""
        if not self.days:
            return min(self.done, self.total)
        return min(self.done, self.days) if self.done <= self.days else min(self.done - self.days, self.days)

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def run_threads(population: int) -> int | None:
    """Threads for a dashboard run: one while the population fits in one block of the engine, else the default.

    The engine's sampler runs its blocks in parallel, so a one-block run gains nothing from a second thread,
    and every parallel region must wait for it to be scheduled: on a busy 2-core machine (load 6) that cost
    about 12 ms a region, and 20,000 citizens x 90 days simulated in 6.0 s on two threads against 1.2 s on
    one. The engine gives the same result for any number of threads.
    """
    return 1 if population <= DEFAULT_BLOCK else None


def _json_default(o: Any) -> Any:
    return o.item() if hasattr(o, "item") else str(o)


class JobCancelled(Exception):
    """Raised from a run's day callback once its job is cancelled (nothing of the job is kept)."""


# The runs go in a process of their own, never a thread of the server: the page's polls and chart drawing
# are pure Python, and a run thread had to win the GIL back from them after each of its many short
# releases (numba kernels, I/O). With the live charts being drawn, a 40,000-citizen x 360-day pair took
# over 180 s instead of 15 s. "spawn": forking a server that runs threads (werkzeug, numba) is unsafe.
_CTX = multiprocessing.get_context("spawn")
_WARM_SIZE, _WARM_DAYS = 500, 10


def _serve(conn: Connection, cancel: EventType, warm: Scenario | None) -> None:
    """The run process: warm up on ``warm`` (if given), say ``ready``, then run each job sent until the pipe closes.

    A job is ``(scenario, changes, out, started)`` (``started``: ``time.time()`` when the page asked); what
    it does comes back as ``(kind, value)`` messages (:meth:`Runner._apply` reads them), ending with ``end``.
    """
    if warm is not None:
        _warm_up(warm)
    conn.send(("ready", None))
    while True:
        try:
            scen, changes, out, started = conn.recv()
        except (EOFError, OSError):  # the server has gone: so does this process
            return
        _run_job(scen, changes, out, started, lambda kind, value=None: conn.send((kind, value)), cancel)
        conn.send(("end", None))


def _warm_up(scen: Scenario) -> None:
    """Run ``scen`` tiny and assemble it: the first real run then loads no kernel and no module."""
    with tempfile.TemporaryDirectory(prefix="credsim-warm-") as tmp:
        try:
            small = scen.model_copy(update={
                "population": scen.population.model_copy(update={"size": min(_WARM_SIZE, scen.population.size)}),
                "run": scen.run.model_copy(update={"days": min(_WARM_DAYS, scen.run.days), "trace": 0,
                                                   "trace_ids": []})})
            run_api(small, out=Path(tmp) / "warm", threads=run_threads(scen.population.size))
            assemble([(Path(tmp) / "warm", None)])
        except Exception:  # a failed warm-up only means a slower first run
            traceback.print_exc()


def _run_job(scen: Scenario, changes: list[str], out: Path, started: float, tell: Callable[..., None],
             cancel: EventType) -> None:
    """The paired run of one job, told as messages: the result (or error) first, then the report file."""
    try:
        result = _pair(scen, changes, out, tell, cancel)
        result["meta"]["wall_s"] = round(time.time() - started, 2)
        (out / "audit.json").write_text(json.dumps(result, indent=1, default=_json_default))
    except JobCancelled:
        shutil.rmtree(out, ignore_errors=True)  # a half-made audit directory is of no use
        tell("error", "cancelled: nothing was kept")
        return
    except (ScenarioError, MemoryRefused, FileExistsError, OSError, ValueError) as exc:
        tell("error", str(exc))
        return
    except Exception as exc:  # shown on the page as a message; the details go to the server log
        traceback.print_exc()
        tell("error", f"the run failed: {type(exc).__name__}: {exc}")
        return
    tell("result", result)
    try:  # the page draws its own charts from the result, so the reader need not wait for the file
        write_report(result, out / "report.html")  # plotly.js beside it, as credsim audit writes it
    except Exception:  # the report is served from the result instead; the details go to the server log
        traceback.print_exc()
    tell("report")


def _pair(scen: Scenario, changes: list[str], out: Path, tell: Callable[..., None],
          cancel: EventType) -> dict[str, Any]:
    days, seed = scen.run.days, scen.run.seed
    (out / "runs").mkdir(parents=True)
    header = "".join(f"#   {c}\n" for c in changes) or "#   (none: the scenario's own settings)\n"
    (out / "scenario.yaml").write_text(f"# {scen.name}, as edited in the credsim dashboard. Changes:\n{header}"
                                       + dump_yaml(scen), encoding="utf-8")
    sys_dir = out / "runs" / f"system-s{seed}"
    base_dir = out / "runs" / f"baseline-s{seed}"

    def progress(offset: int) -> Callable[[int, int], None]:
        def on_day(day: int, _total: int) -> None:
            if cancel.is_set():
                raise JobCancelled
            tell("done", offset + day + 1)

        return on_day

    tell("phase", f"{scen.name}: simulating {scen.population.size:,} citizens")
    tell("labels", from_scenario(dump(scen)))
    threads = run_threads(scen.population.size)
    run_api(scen, out=sys_dir, threads=threads, on_day=progress(0),
            on_metrics=live.watcher(days, lambda snap: tell("partial", snap)))
    base = counterfactual(scen)
    cached = out.parent / CACHE_DIR / scenario_hash(base)
    if (cached / "manifest.json").is_file():
        tell("baseline_cached", True)
        tell("phase", "baseline (no system): reusing an identical earlier run")
        shutil.copytree(cached, base_dir)
    else:
        tell("phase", "baseline (no system): same citizens, same seed")
        run_api(base, out=base_dir, threads=threads, on_day=progress(days))
        tmp = cached.with_name(cached.name + f".tmp-{uuid.uuid4().hex[:8]}")
        shutil.copytree(base_dir, tmp)
        try:
            tmp.rename(cached)
        except OSError:  # another copy got there first
            shutil.rmtree(tmp, ignore_errors=True)
    tell("done", 2 * days)
    tell("phase", "computing the audit figures")
    result = assemble([(sys_dir, base_dir)], root=out)
    result["meta"].update({"against": "baseline", "dashboard_changes": changes})
    return result


class _Worker:
    """The run process and its end of the pipe; one job at a time (the caller holds the runner's worker lock)."""

    def __init__(self, warm: Scenario | None) -> None:
        self.conn, child = _CTX.Pipe()
        self.cancel = _CTX.Event()
        self.proc = _CTX.Process(target=_serve, args=(child, self.cancel, warm), daemon=True,
                                 name="credsim-dashboard-runs")
        # Ctrl-C in the terminal goes to the whole process group: the server stops, and the run process
        # must not print a KeyboardInterrupt of its own (it ends with the server). A blocked signal stays
        # blocked across fork and exec, so the process never sees it; this thread unblocks it at once.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self.ready = False
        self.closing = False  # the runner is closed: the pipe is closed as soon as nobody is waiting on it

    def wait_ready(self) -> bool:
        """Wait for the process's ``ready`` (after its warm-up); False if it died first."""
        while not self.ready:
            kind, _ = self.recv()
            if kind == "gone":
                return False
            self.ready = kind == "ready"
        return True

    def recv(self) -> tuple[str, Any]:
        try:
            msg: tuple[str, Any] = self.conn.recv()
            return msg
        except (EOFError, OSError):
            return ("gone", self.proc.exitcode)

    def alive(self) -> bool:
        return self.proc.is_alive() and not self.conn.closed

    def close(self) -> None:
        """Close the pipe (only by whoever holds the worker lock): the process ends after its current job."""
        self.conn.close()

    def close_if_closing(self) -> None:
        if self.closing:
            self.close()


class Runner:
    """Starts paired runs, one at a time, in a run process of its own, and browses the runs root.

    A run's memory estimate (system and counterfactual) is checked *before* it starts, so a
    request that cannot fit is refused at once, not after a process has begun; a started run
    can be cancelled (it stops after its current day and its directory is removed). The run
    process is started once (:meth:`warm_up`, or the first run) and kept for the next runs.
    """

    def __init__(self, root: str | Path, max_memory: float | None = None) -> None:
        self.root = Path(root).resolve()
        self.max_memory = max_memory
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._busy: Job | None = None
        self._results: OrderedDict[tuple[str, float], dict[str, Any]] = OrderedDict()
        self._worker: _Worker | None = None
        self._worker_lock = threading.Lock()  # held by whoever talks to the run process
        # when the dashboard goes, its run process goes too (it ends once its pipe is closed)
        self._finalizer = weakref.finalize(self, Runner._close_worker, self.__dict__)

    @staticmethod
    def _close_worker(state: dict[str, Any]) -> None:
        worker: _Worker | None = state.get("_worker")
        if worker is None:
            return
        worker.closing = True
        lock: threading.Lock = state["_worker_lock"]
        if lock.acquire(blocking=False):  # else whoever talks to the process closes the pipe when done
            try:
                worker.close()
            finally:
                lock.release()

    def close(self) -> None:
        """Let the run process end (after the run under way, if any)."""
        self._finalizer()

    def _ready_worker(self, warm: Scenario | None = None) -> _Worker | None:
        """The run process, started (and warmed up on ``warm``) if there is none alive; None if it died starting.
        The caller holds ``_worker_lock``."""
        if self._worker is None or not self._worker.alive():
            try:
                self._worker = _Worker(warm)
            except Exception:  # the page says the run could not start; the details go to the server log
                traceback.print_exc()
                self._worker = None
                return None
        return self._worker if self._worker.wait_ready() else None

    # ---- running -------------------------------------------------------------------------------------------
    def start(self, scen: Scenario, changes: list[str]) -> Job:
        """Start ``scen`` and its counterfactual; raise RuntimeError while another run is going,
        :class:`MemoryRefused` if either would not fit."""
        check_memory(scen, self.max_memory)
        check_memory(counterfactual(scen), self.max_memory)
        with self._lock:
            if self._busy is not None and not self._busy.finished:
                raise RuntimeError("a run is already in progress; wait for it to finish")
            stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            name = f"{scen.name}-s{scen.run.seed}-{stamp}"
            k = 1
            while (self.root / name).exists():
                k += 1
                name = f"{scen.name}-s{scen.run.seed}-{stamp}-{k}"
            job = Job(uuid.uuid4().hex, scen, self.root / name, name, total=2 * scen.run.days, days=scen.run.days)
            self.jobs[job.id] = job
            for old in [j for j in self.jobs if self.jobs[j].finished][:-MAX_JOBS]:  # forget old finished runs
                del self.jobs[old]
            self._busy = job
        threading.Thread(target=self._watch, args=(job, changes), daemon=True, name=f"credsim-{name}").start()
        return job

    def job(self, job_id: object) -> Job | None:
        """The job of an id sent by the page (None for anything else: an old page, a forgotten job, junk)."""
        return self.jobs.get(job_id) if isinstance(job_id, str) else None

    def cancel(self, job_id: object) -> Job | None:
        """Ask a running job to stop after its current day; the job, or None if there is no such running job."""
        job = self.job(job_id)
        if job is None or job.finished:
            return None
        job.cancelled = True
        job.phase = "cancelling after the current day"
        worker = self._worker
        if worker is not None:
            worker.cancel.set()
        return job

    def _watch(self, job: Job, changes: list[str]) -> None:
        """Hand the job to the run process and mirror what it says onto ``job`` until it ends."""
        with self._worker_lock:
            worker = self._ready_worker()
            if worker is None:
                self._end(job, "the run process did not start (see the server log)")
                return
            try:
                self._talk(worker, job, changes)
            except Exception as exc:  # the page shows a message; the details go to the server log
                traceback.print_exc()
                if not job.finished:
                    self._end(job, f"the dashboard lost track of the run: {type(exc).__name__}: {exc}")
            finally:
                worker.close_if_closing()

    def _talk(self, worker: _Worker, job: Job, changes: list[str]) -> None:
        worker.cancel.clear()
        if job.cancelled:  # cancelled while the process was starting
            self._end(job, "cancelled: nothing was kept")
            return
        worker.conn.send((job.scenario, changes, job.out, job.wall_clock))
        while True:
            kind, value = worker.recv()
            if kind == "end":
                return
            if kind == "gone":  # killed (out of memory?) or crashed: the next run starts a new process
                shutil.rmtree(job.out, ignore_errors=True)
                job.report_written = True
                if not job.finished:
                    self._end(job, f"the run process ended unexpectedly (exit code {value}); nothing was kept")
                return
            self._apply(job, kind, value)

    def _apply(self, job: Job, kind: str, value: Any) -> None:
        if kind == "done":
            job.done = int(value)
        elif kind == "phase":
            if not job.cancelled:
                job.phase = str(value)
        elif kind == "partial":
            job.partial = value  # one reference swapped: the page's poll reads whole snapshots only
        elif kind == "labels":
            job.labels = value
        elif kind == "baseline_cached":
            job.baseline_cached = bool(value)
        elif kind == "result":
            job.phase = "done"
            self._remember(job.out, value)
            self._end(job, None)
        elif kind == "error":
            job.report_written = True
            self._end(job, str(value))
        elif kind == "report":
            job.report_written = True

    @staticmethod
    def _end(job: Job, error: str | None) -> None:
        job.error = error
        job.wall = time.perf_counter() - job.started
        job.finished = True

    def warm_up(self, scen: Scenario) -> threading.Thread:
        """Start the run process and run ``scen`` tiny (500 citizens, 10 days) in it, once at server start.

        The first run of a fresh process otherwise pays for loading (or compiling) the engine's kernels
        and the audit's imports, which the page would count in its first result's time. Nothing is kept.
        The thread returned ends when the process is ready.
        """
        def work() -> None:
            with self._worker_lock:
                worker = self._ready_worker(scen)
                if worker is not None:
                    worker.close_if_closing()

        t = threading.Thread(target=work, daemon=True, name="credsim-warm-up")
        t.start()
        return t

    # ---- browsing ------------------------------------------------------------------------------------------
    def list_runs(self) -> list[dict[str, Any]]:
        """Audit and run directories under the root, newest first (inside an audit, only the audit)."""
        found: list[dict[str, Any]] = []
        root = self.root
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            here = Path(dirpath)
            depth = len(here.relative_to(root).parts)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
            kind = "audit" if "audit.json" in filenames else "run" if "manifest.json" in filenames else None
            if kind is not None and here != root:
                dirnames[:] = []
                found.append(self._info(here, kind))
                if len(found) >= MAX_LISTED:
                    break
            if depth >= MAX_DEPTH:
                dirnames[:] = []
        found.sort(key=lambda r: -r["mtime"])
        return found

    def _info(self, d: Path, kind: str) -> dict[str, Any]:
        name = d.relative_to(self.root).as_posix()
        info: dict[str, Any] = {"name": name, "kind": kind, "mtime": d.stat().st_mtime, "label": name}
        try:
            if kind == "audit":
                meta = read_json_object(d / "audit.json", AUDIT_JSON_BYTES)["meta"]
                info["label"] = (f"{name}  (audit: {meta['scenario']}, {meta['population']:,} citizens x "
                                 f"{meta['days']} days)")
            else:
                man = read_json_object(d / "manifest.json", MANIFEST_BYTES)
                info["label"] = (f"{name}  (run: {man.get('scenario_name')}, {man.get('population', 0):,} citizens x "
                                 f"{man.get('days')} days, {man.get('status', '?')})")
        except (OSError, ValueError, KeyError, TypeError):
            info["label"] = f"{name}  (unreadable)"
        return info

    def resolve(self, name: object) -> Path:
        """An audit or run directory under the root, by name; :class:`credsim.security.PathRefused` otherwise."""
        d = security.resolve_run_dir(self.root, name, require_run=False)
        audit = d / "audit.json"
        if audit.is_file() and audit.resolve().parent == d:
            return d
        return security.resolve_run_dir(self.root, name)  # a run directory, or refused

    def run_dirs(self, name: object) -> tuple[Path, Path | None]:
        """(system run, baseline run or None) of a named audit or run directory."""
        d = self.resolve(name)
        if (d / "audit.json").is_file():
            pairs = read_json_object(d / "audit.json", AUDIT_JSON_BYTES)["meta"]["pairs"]
            a, b = pairs[0]
            sys_dir = security.resolve_run_dir(self.root, f"{name}/{a}")
            base = security.resolve_run_dir(self.root, f"{name}/{b}") if b else None
            return sys_dir, base
        return d, None

    def result(self, name: object) -> dict[str, Any]:
        """The assembled audit result of a named directory (cached while its files are unchanged)."""
        d = self.resolve(name)
        marker = d / "audit.json" if (d / "audit.json").is_file() else d / "manifest.json"
        key = (str(d), marker.stat().st_mtime)
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        res = load_result(d)
        self._keep(key, res)
        return res

    def _keep(self, key: tuple[str, float], res: dict[str, Any]) -> None:
        """Cache a result (the request threads share this cache: guarded by the lock)."""
        with self._lock:
            self._results[key] = res
            while len(self._results) > 16:
                self._results.popitem(last=False)

    def baseline_result(self, name: object) -> dict[str, Any] | None:
        """The counterfactual run of a named audit directory on its own (for side-by-side charts)."""
        _sys, base = self.run_dirs(name)
        if base is None:
            return None
        # keyed by what determines the run (scenario hash and seed), not by folder: every policy tried on
        # the same citizens shares one baseline, copied from the cache into each audit directory
        man = read_json_object(base / "manifest.json", MANIFEST_BYTES)
        key = (f"baseline:{man.get('scenario_hash')}:{man.get('seed')}:{man.get('status')}", 0.0)
        with self._lock:
            hit = self._results.get(key)
        if hit is not None:
            return hit
        res = assemble([(base, None)])
        self._keep(key, res)
        return res

    def report_html(self, name: object) -> str:
        """The report page of a named directory (its report.html, or rendered now with plotly.js beside it).

        The page loads plotly.js from the file named :data:`PLOTLY_FILE` beside it (older pages carry
        it inline); the server and the download supply that file, so no page leaves the machine.
        """
        d = self.resolve(name)
        page = d / "report.html"
        if page.is_file() and page.resolve().parent == d:
            return read_text(page, AUDIT_JSON_BYTES)
        from credsim.report.html import report_html

        return report_html(self.result(name), PLOTLY_FILE)

    def report_zip(self, name: object) -> bytes:
        """The report as a zip: ``report.html`` and plotly.js beside it in one folder (opens offline).

        Compressed, plotly.js is about 1.5 MB instead of 4.8 MB inline, so the download stays under 2 MB.
        """
        page = self.report_html(name)
        folder = "report-" + str(name).replace("/", "_")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            z.writestr(f"{folder}/report.html", page)
            if f'src="{PLOTLY_FILE}"' in page:
                z.writestr(f"{folder}/{PLOTLY_FILE}", get_plotlyjs())
        return buf.getvalue()

    def _remember(self, out: Path, result: dict[str, Any]) -> None:
        self._keep((str(out.resolve()), (out / "audit.json").stat().st_mtime), result)
