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
import os
import shutil
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


class Runner:
    """Starts paired runs in a background thread, one at a time, and browses the runs root.

    A run's memory estimate (system and counterfactual) is checked *before* it starts, so a
    request that cannot fit is refused at once, not after a thread has begun; a started run
    can be cancelled (it stops after its current day and its directory is removed).
    """

    def __init__(self, root: str | Path, max_memory: float | None = None) -> None:
        self.root = Path(root).resolve()
        self.max_memory = max_memory
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._busy: Job | None = None
        self._results: OrderedDict[tuple[str, float], dict[str, Any]] = OrderedDict()

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
        threading.Thread(target=self._work, args=(job, changes), daemon=True, name=f"credsim-{name}").start()
        return job

    def cancel(self, job_id: object) -> Job | None:
        """Ask a running job to stop after its current day; the job, or None if there is no such running job."""
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None or job.finished:
            return None
        job.cancelled = True
        job.phase = "cancelling after the current day"
        return job

    def _progress(self, job: Job, offset: int) -> Callable[[int, int], None]:
        def on_day(day: int, _total: int) -> None:
            if job.cancelled:
                raise JobCancelled
            job.done = offset + day + 1

        return on_day

    def _work(self, job: Job, changes: list[str]) -> None:
        result: dict[str, Any] | None = None
        try:
            result = self._pair(job, changes)
        except JobCancelled:
            shutil.rmtree(job.out, ignore_errors=True)  # a half-made audit directory is of no use
            job.error = "cancelled: nothing was kept"
        except (ScenarioError, MemoryRefused, FileExistsError, OSError, ValueError) as exc:
            job.error = str(exc)
        except Exception as exc:  # shown on the page as a message; the details go to the server log
            traceback.print_exc()
            job.error = f"the run failed: {type(exc).__name__}: {exc}"
        finally:
            job.wall = time.perf_counter() - job.started
            job.finished = True
        if result is not None:
            self._write_report(job, result)

    def _write_report(self, job: Job, result: dict[str, Any]) -> None:
        """The audit directory's report.html, written after the page has its numbers.

        The page draws its own charts from the result, so the reader need not wait for the file;
        until it exists, the report link renders the same page on request (the write is atomic).
        """
        try:
            write_report(result, job.out / "report.html")  # plotly.js beside it, as credsim audit writes it
        except Exception:  # the report is served from the result instead; the details go to the server log
            traceback.print_exc()
        finally:
            job.report_written = True

    def _pair(self, job: Job, changes: list[str]) -> dict[str, Any]:
        scen, out = job.scenario, job.out
        days, seed = scen.run.days, scen.run.seed
        (out / "runs").mkdir(parents=True)
        header = "".join(f"#   {c}\n" for c in changes) or "#   (none: the scenario's own settings)\n"
        (out / "scenario.yaml").write_text(f"# {scen.name}, as edited in the credsim dashboard. Changes:\n{header}"
                                           + dump_yaml(scen), encoding="utf-8")
        sys_dir = out / "runs" / f"system-s{seed}"
        base_dir = out / "runs" / f"baseline-s{seed}"

        job.phase = f"{scen.name}: simulating {scen.population.size:,} citizens"
        job.labels = from_scenario(dump(scen))

        def keep(snap: live.Snapshot) -> None:
            job.partial = snap  # one reference swapped: the page's poll reads whole snapshots only

        threads = run_threads(scen.population.size)
        run_api(scen, out=sys_dir, threads=threads, on_day=self._progress(job, 0), on_metrics=live.watcher(days, keep))
        base = counterfactual(scen)
        cached = self.root / CACHE_DIR / scenario_hash(base)
        if (cached / "manifest.json").is_file():
            job.baseline_cached = True
            job.phase = "baseline (no system): reusing an identical earlier run"
            shutil.copytree(cached, base_dir)
        else:
            job.phase = "baseline (no system): same citizens, same seed"
            run_api(base, out=base_dir, threads=threads, on_day=self._progress(job, days))
            tmp = cached.with_name(cached.name + f".tmp-{uuid.uuid4().hex[:8]}")
            shutil.copytree(base_dir, tmp)
            try:
                tmp.rename(cached)
            except OSError:  # another copy got there first
                shutil.rmtree(tmp, ignore_errors=True)
        job.done = job.total
        job.phase = "computing the audit figures"
        result = assemble([(sys_dir, base_dir)], root=out)
        result["meta"].update({"against": "baseline", "dashboard_changes": changes,
                               "wall_s": round(time.perf_counter() - job.started, 2)})
        (out / "audit.json").write_text(json.dumps(result, indent=1, default=_json_default))
        self._remember(out, result)
        job.phase = "done"
        return result

    def warm_up(self, scen: Scenario) -> threading.Thread:
        """Run ``scen`` tiny (500 citizens, 10 days) and assemble it, in the background, once at server start.

        The first run of a fresh process otherwise pays for loading (or compiling) the engine's kernels
        and the audit's imports, which the page would count in its first result's time. Nothing is kept.
        """
        def work() -> None:
            with tempfile.TemporaryDirectory(prefix="credsim-warm-") as tmp:
                try:
                    small = scen.model_copy(update={
                        "population": scen.population.model_copy(update={"size": min(500, scen.population.size)}),
                        "run": scen.run.model_copy(update={"days": min(10, scen.run.days), "trace": 0,
                                                           "trace_ids": []})})
                    run_api(small, out=Path(tmp) / "warm", threads=run_threads(scen.population.size))
                    assemble([(Path(tmp) / "warm", None)])
                except Exception:  # a failed warm-up only means a slower first run
                    traceback.print_exc()

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
