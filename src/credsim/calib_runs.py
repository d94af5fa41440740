"""Calibration runs: many (parameters, seed) evaluations, in parallel and cached on disk.

A fit across seeds and an ABC-SMC posterior both need hundreds of independent runs. They are
spread over a process pool (spawned, as in sweeps: Numba's threads do not survive a fork), and
each finished evaluation is written to ``cache/<key>.json`` at once, so an interrupted
``credsim calibrate`` started again skips everything already computed. The key is the SHA-256
of the configured scenario (:func:`credsim.scenario.load.scenario_hash`: parameters, size, days
and seed included) and the target definitions, so a changed scenario, seed or target never
reads a stale result. Results come back in the order asked, whatever finishes first, so a
calibration does not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
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
    _pool: ProcessPoolExecutor | None = None  # kept between batches: a spawned worker takes seconds to start

    def close(self) -> None:
        """Stop the worker processes (a calibration makes hundreds of small batches with one pool)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

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
            if self.workers > 1 and len(order) > 1:
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
