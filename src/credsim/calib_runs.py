"""Calibration runs: many (parameters, seed) evaluations, in parallel and cached on disk.

A fit across seeds and an ABC-SMC posterior both need hundreds of independent runs. They are
spread over a process pool (spawned, as in sweeps: Numba's threads do not survive a fork), and
each finished evaluation is written to ``cache/<key>.json`` at once, so an interrupted
``credsim calibrate`` started again skips everything already computed. The key is the SHA-256
of the configured scenario (:func:`credsim.scenario.load.scenario_hash`: parameters, size, days
and seed included) and the target definitions, so a changed scenario, seed or target never
reads a stale result. Results come back in the order asked, whatever finishes first, so a
calibration does not depend on the number of workers.

With ``ray=True`` the runs are Ray tasks instead (a local Ray is started unless one is running).
Each task asks for half a CPU and at most ``workers`` are in flight: a whole-CPU request can wait
for ever on a small machine whose CPUs Ray counts as taken (e.g. by shard actors), while the
window keeps the parallelism what was asked for.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from credsim.calibrate import Evaluation, TargetsFile, configure, measure
from credsim.scenario.load import scenario_hash
from credsim.scenario.schema import Scenario


@dataclass(frozen=True)
class Point:
    """One evaluation to run: parameter values and the seed of the run."""

    params: dict[str, float]
    seed: int


def cache_key(s: Scenario, tf: TargetsFile) -> str:
    """What an evaluation is stored under: the configured scenario and what is measured from it."""
    # a tolerance or a note changes no run; what is read from the run does
    measured = {"metric", "kind", "from_day", "to_day", "value", "group", "minus", "per", "per_group"}
    specs = {"targets": {k: v.model_dump(include=measured, exclude_none=True) for k, v in tf.targets.items()},
             "checks": {k: v.model_dump(include=measured, exclude_none=True) for k, v in tf.checks.items()},
             "real_population": tf.real_population}
    blob = scenario_hash(s) + json.dumps(specs, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _to_json(ev: Evaluation) -> dict[str, object]:
    return {"params": ev.params, "simulated": ev.simulated, "scaled": ev.scaled, "seconds": ev.seconds,
            "checked": ev.checked, "check_scaled": ev.check_scaled, "seeds": list(ev.seeds)}


def _from_json(d: dict[str, object]) -> Evaluation:
    return Evaluation(dict(d["params"]), dict(d["simulated"]), dict(d["scaled"]),  # type: ignore[call-overload]
                      float(d["seconds"]), dict(d["checked"]), dict(d["check_scaled"]),  # type: ignore[arg-type,call-overload]
                      tuple(d["seeds"]))  # type: ignore[arg-type]


def _run_one(s: Scenario, tf: TargetsFile, params: dict[str, float], threads: int | None) -> Evaluation:
    """The work of one pool task (module level: a spawned worker imports it by name)."""
    return measure(s, tf, params, threads=threads)


@dataclass
class Runner:
    """Evaluates points of one scenario against one targets file at one size."""

    scen: Scenario
    tf: TargetsFile
    population: int | None = None
    days: int | None = None
    threads: int | None = None
    workers: int = 1
    cache: Path | None = None
    on_result: Callable[[Evaluation, bool], None] | None = None  # (evaluation, came from the cache)
    runs: int = 0  # simulations actually run (not read from the cache)
    cached: int = 0
    ray: bool = False  # Ray tasks instead of a process pool
    _pool: ProcessPoolExecutor | None = None  # kept between batches: a spawned worker takes seconds to start
    _ray: _RayTasks | None = None

    def close(self) -> None:
        """Stop the worker processes (a calibration makes hundreds of small batches with one pool)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        if self._ray is not None:
            self._ray.close()
            self._ray = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, batch: list[tuple[dict[str, float], int]]) -> list[Evaluation]:
        """The batch evaluator :func:`credsim.calibrate.fit` and the ABC sampler take."""
        return self.run([Point(p, s) for p, s in batch])

    def run(self, points: list[Point]) -> list[Evaluation]:
        """Every point's evaluation, in the order given; cached ones are read, the rest run."""
        configured = [configure(self.scen, self.tf, p.params, population=self.population, days=self.days,
                                seed=p.seed) for p in points]
        keys = [cache_key(s, self.tf) for s in configured]
        out: list[Evaluation | None] = [None] * len(points)
        todo: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            hit = self._read(k)
            if hit is not None:
                hit.params = dict(points[i].params)
                out[i] = hit
                self.cached += 1
                if self.on_result is not None:
                    self.on_result(hit, True)
            else:
                todo.setdefault(k, []).append(i)  # the same point twice is run once
        if todo:
            order = list(todo)
            if self.ray:
                if self._ray is None:
                    self._ray = _RayTasks(self.workers)
                for k, ev in self._ray.run([(configured[todo[k][0]], self.tf, points[todo[k][0]].params,
                                              self.threads, k) for k in order]):
                    self._done(k, ev, todo[k], points, out)
            elif self.workers > 1 and len(order) > 1:
                if self._pool is None:
                    self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"))
                futs: dict[Future[Evaluation], str] = {
                    self._pool.submit(_run_one, configured[todo[k][0]], self.tf, points[todo[k][0]].params,
                                      self.threads): k for k in order}
                for f in as_completed(futs):  # cached as soon as finished: an interruption loses little
                    k = futs[f]
                    self._done(k, f.result(), todo[k], points, out)
            else:
                for k in order:
                    i = todo[k][0]
                    self._done(k, _run_one(configured[i], self.tf, points[i].params, self.threads), todo[k],
                               points, out)
        return [e for e in out if e is not None]

    def _done(self, key: str, ev: Evaluation, idx: list[int], points: list[Point],
              out: list[Evaluation | None]) -> None:
        self.runs += 1
        self._write(key, ev)
        for i in idx:
            out[i] = Evaluation(dict(points[i].params), ev.simulated, ev.scaled, ev.seconds, ev.checked,
                                ev.check_scaled, ev.seeds)
        if self.on_result is not None:
            self.on_result(ev, False)

    def _read(self, key: str) -> Evaluation | None:
        if self.cache is None:
            return None
        f = self.cache / f"{key}.json"
        try:
            return _from_json(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or half-written: run it again

    def _write(self, key: str, ev: Evaluation) -> None:
        if self.cache is None:
            return
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = self.cache / f"{key}.json.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(_to_json(ev)), encoding="utf-8")
        tmp.replace(self.cache / f"{key}.json")


RAY_CPUS_PER_RUN = 0.5


class _RayTasks:
    """Calibration runs as Ray tasks, at most ``workers`` in flight, each asking for half a CPU."""

    def __init__(self, workers: int) -> None:
        import ray  # heavy and optional: only a calibration with --ray pays for importing it

        self.ray = ray
        self.workers = workers
        self.own_init = not ray.is_initialized()
        if self.own_init:
            # local and loopback only, no dashboard
            ray.init(num_cpus=max(1, math.ceil(workers * RAY_CPUS_PER_RUN)), include_dashboard=False,
                     log_to_driver=False, configure_logging=False, _node_ip_address="127.0.0.1")
        self.task = ray.remote(num_cpus=RAY_CPUS_PER_RUN, max_retries=0)(_run_one)

    def run(self, jobs: list[tuple[Scenario, TargetsFile, dict[str, float], int | None, str]]
            ) -> Iterator[tuple[str, Evaluation]]:
        """(key, evaluation) of each job as it finishes."""
        waiting = list(jobs)
        flying: dict[object, str] = {}
        while waiting or flying:
            while waiting and len(flying) < self.workers:
                s, tf, params, threads, key = waiting.pop(0)
                flying[self.task.remote(s, tf, params, threads)] = key  # type: ignore[attr-defined]
            done, _ = self.ray.wait(list(flying), num_returns=1)
            for ref in done:
                yield flying.pop(ref), self.ray.get(ref)

    def close(self) -> None:
        if self.own_init:
            self.ray.shutdown()
