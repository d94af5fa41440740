"""Drive K shards day by day, locally or as Ray actors, and write one ordinary run directory.

The driver owns no citizens. Each day it calls every shard's ``begin_day``, delivers the
messages of each round (one round per ``cut_ties`` response), then ``end_day``; shards
never talk to each other directly, so the exchange is easy to count and to replay.
At the end it adds up the shards' fixed-point metric tables (exact), concatenates their
citizen columns in id order and writes the run with :func:`credsim.store.write_run` --
so ``metrics.parquet`` and ``citizens.parquet`` are byte-identical to a single-process run.

Failure: with ``checkpoint_every`` set, every shard writes a checkpoint of its loop
(:mod:`credsim.checkpoint`) every that many days. When a Ray worker dies, the driver
restarts every shard from the last checkpoint they all hold and replays from there
(replaying is deterministic); without checkpoints, or after ``max_restarts``, the run
stops with :class:`ShardFailure` naming the shard and day. Never a silently wrong result.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from credsim import checkpoint as ckpt
from credsim import store
from credsim.distributed.shard import Shard, boundaries
from credsim.engine import DEFAULT_BLOCK, Result
from credsim.eventlog import EventLog
from credsim.exchange import deliver
from credsim.graph import Graph
from credsim.plan import compile_plan
from credsim.scenario.schema import Scenario
from credsim.stages.measure import Metrics
from credsim.state import State
from credsim.tracing import Tracer


class ShardFailure(RuntimeError):
    """A shard was lost and the run could not recover; the message says which and when."""


class _Local:
    """Shards as plain objects in this process (debugging, tests without Ray)."""

    def __init__(self, make: Callable[[int], Shard], k: int) -> None:
        self.make = make
        self.shards = [make(i) for i in range(k)]

    def call(self, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        return [getattr(s, method)(*a) for s, a in zip(self.shards, args, strict=True)]

    def restart(self) -> None:
        self.shards = [self.make(i) for i in range(len(self.shards))]

    def close(self) -> None:
        self.shards = []


class _ShardActor:
    """A Ray actor holding one :class:`Shard` (methods forwarded by name)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.shard = Shard(*args, **kw)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.shard, method)(*args)

    def pid(self) -> int:
        import os

        return os.getpid()

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            import os

            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Ray:
    """Shards as Ray actors (one CPU each by default)."""

    def __init__(self, ctor: tuple[Scenario, list[int], dict[str, Any]], k: int, address: str | None,
                 num_cpus: float) -> None:
        import ray

        self.ray = ray
        self.own_init = False
        if not ray.is_initialized():
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            self.own_init = True
        self.cls = ray.remote(num_cpus=num_cpus, max_restarts=0)(_ShardActor)
        self.ctor = ctor
        self.k = k
        self.actors: list[Any] = []
        self.restart()

    def restart(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        scen, cuts, kw = self.ctor
        self.actors = []
        for i in range(self.k):  # one at a time: a shard's O(N) build peak is over before the next starts
            actor: Any = self.cls.remote(scen, i, cuts, **kw)  # type: ignore[attr-defined]
            self.ray.get(actor.pid.remote())
            self.actors.append(actor)

    def memory(self) -> list[int]:
        """Resident bytes of each shard's worker process (for benchmarks)."""
        return list(self.ray.get([a.rss.remote() for a in self.actors]))

    def call(self, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        return list(self.ray.get([a.call.remote(method, *x) for a, x in zip(self.actors, args, strict=True)]))

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
        if self.own_init:
            self.ray.shutdown()


def _lost_worker(exc: BaseException) -> bool:
    try:
        import ray.exceptions as rex
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, rex.RayActorError | rex.WorkerCrashedError | rex.ActorDiedError)


def simulate_sharded(scen: Scenario, shards: int, *, ray: bool = False, address: str | None = None,
                     population: int | None = None, days: int | None = None, seed: int | None = None,
                     block: int = DEFAULT_BLOCK, threads: int | None = None, checkpoint_every: int = 0,
                     work_dir: Path | None = None, max_restarts: int = 3, num_cpus: float = 1.0,
                     on_day: Callable[[int, Any], None] | None = None) -> tuple[Result, dict[str, Any]]:
    """Run ``scen`` on ``shards`` shards; return the merged result and exchange statistics."""
    n = population if population is not None else scen.population.size
    total = days if days is not None else scen.run.days
    cuts = boundaries(n, shards)
    kw = dict(population=population, days=days, seed=seed, block=block, threads=threads)
    plan = compile_plan(scen)
    n_cut_resp = int(np.asarray(plan.resp_cut).sum()) if len(plan.responses) else 0
    own_tmp = work_dir is None and checkpoint_every > 0
    wdir = Path(tempfile.mkdtemp(prefix="credsim-shards-")) if own_tmp else work_dir
    backend: _Local | _Ray
    if ray:
        backend = _Ray((scen, cuts, kw), shards, address, num_cpus)
    else:
        backend = _Local(lambda i: Shard(scen, i, cuts, **kw), shards)  # type: ignore[arg-type]
    stats: dict[str, Any] = {"shards": shards, "boundaries": cuts, "restarts": 0, "backend": "ray" if ray else "local",
                             "rounds_per_day": n_cut_resp + 1}
    t0 = time.perf_counter()
    try:
        day = 0
        restarts = 0
        res: list[dict[str, Any]] = []
        while not res:
            try:
                if day >= total:  # a worker lost while handing back its results is recovered like any other
                    res = backend.call("results", [()] * shards)
                    continue
                boxes = backend.call("begin_day", [(day,)] * shards)
                for _ in range(n_cut_resp):
                    boxes = backend.call("next_round", [(deliver(boxes, k),) for k in range(shards)])
                backend.call("end_day", [(deliver(boxes, k),) for k in range(shards)])
                if checkpoint_every and wdir is not None and ((day + 1) % checkpoint_every == 0):
                    backend.call("save_checkpoint", [(str(wdir / f"shard-{k}"), day + 1) for k in range(shards)])
                if on_day is not None:
                    on_day(day, backend)
                day += 1
                stats["wall_days_s"] = round(time.perf_counter() - t0, 4)
            except Exception as exc:  # noqa: BLE001 - classified below
                if not _lost_worker(exc):
                    raise
                where = f"a shard worker died on day {day} ({type(exc).__name__})"
                if not checkpoint_every or wdir is None:
                    raise ShardFailure(f"{where}; no checkpoints were kept (set checkpoint_every to recover), "
                                       "so the run stops rather than continue with a lost shard") from exc
                if restarts >= max_restarts:
                    raise ShardFailure(f"{where}; gave up after {restarts} restarts") from exc
                restarts += 1
                stats["restarts"] = restarts
                backend.restart()
                common = _common_checkpoint(wdir, shards)
                if common is None:
                    day = 0  # nothing saved yet: the fresh shards start from day 0
                else:
                    backend.call("load_checkpoint", [(str(p),) for p in common[1]])
                    day = common[0]
    finally:
        backend.close()
        if own_tmp and wdir is not None:
            shutil.rmtree(wdir, ignore_errors=True)
    sent = [int(r["sent"]) for r in res]
    stats["exchange_bytes"] = sum(sent)
    stats["exchange_bytes_per_day"] = sum(sent) / max(total, 1)
    kinds: dict[str, int] = {}
    for r in res:
        for k, v in r["sent_kind"].items():
            kinds[k] = kinds.get(k, 0) + int(v)
    stats["exchange_rows"] = kinds
    return _merge(scen, plan, res, n, total, kw), stats


def _common_checkpoint(wdir: Path, shards: int) -> tuple[int, list[Path]] | None:
    """The newest day every shard has a checkpoint for, and their files."""
    per = [{c.day: c.path for c in ckpt.list_checkpoints(wdir / f"shard-{k}")} for k in range(shards)]
    days = set.intersection(*(set(p) for p in per)) if per else set()
    if not days:
        return None
    d = max(days)
    return d, [p[d] for p in per]


def _merge(scen: Scenario, plan: Any, res: list[dict[str, Any]], n: int, days: int,
           kw: dict[str, Any]) -> Result:
    """One :class:`Result` from the shards' pieces, as the single-process engine would hold it."""
    cols: dict[str, np.ndarray] = {}
    for key in res[0]["columns"]:
        cols[key] = np.concatenate([r["columns"][key] for r in res], axis=-1)
    traced = cols.pop("__traced__")
    fields: dict[str, Any] = {k: v for k, v in cols.items() if k in State.__dataclass_fields__}
    st = replace(_blank_state(), **fields)
    st.n = n
    st.graph = Graph.empty(0)
    metrics = Metrics(plan, st, days)
    metrics.table = np.sum([r["table"] for r in res], axis=0, dtype=np.int64)
    tracer = Tracer(plan, n, np.flatnonzero(traced))
    # trace rows by day, then shard (each ``add`` call holds one day)
    parts = [(int(a[0]) if a.shape[0] else 0, s, j) for s, r in enumerate(res)
             for j, a in enumerate(r["trace_rows"]["day"])]
    order = sorted(range(len(parts)), key=lambda x: parts[x])
    for key in tracer.rows:
        flat = [arr for r in res for arr in r["trace_rows"][key]]
        tracer.rows[key] = [flat[i] for i in order]
    events = EventLog(plan)
    ev = [(int(p["day"][0]), s, j, p) for s, r in enumerate(res) for j, p in enumerate(r["events"])]
    events.parts = [p for *_k, p in sorted(ev, key=lambda x: (x[0], x[1], x[2]))]
    timings: dict[str, float] = {"setup": max(float(r["setup"]) for r in res)}
    for r in res:
        for k, v in r["timings"].items():
            timings[k] = max(timings.get(k, 0.0), float(v))
    seed = kw["seed"] if kw.get("seed") is not None else scen.run.seed
    return Result(plan, st, metrics, tracer, timings, days, seed, n, events=events)


def _blank_state() -> State:
    z = np.zeros(0)
    return State(n=0, groups=z, traits=z, graph=Graph.empty(0), score=z, mscore=z, grade=z, listed=z,
                 listed_since=z, list_count=z, cured_seq=z, pending=z, cap_used=z, resp_day=z, feat_count=z,
                 neg_by_domain=z, assoc_pts=z, counters=z)


def run_sharded(scen: Scenario, out: Path, shards: int, *, wall_start: float | None = None,
                overwrite: bool = False, **kw: Any) -> tuple[Path, dict[str, Any]]:
    """:func:`simulate_sharded` and write the run directory (manifest records the layout)."""
    t0 = wall_start if wall_start is not None else time.perf_counter()
    result, stats = simulate_sharded(scen, shards, **kw)
    extra = {"block_size": kw.get("block", DEFAULT_BLOCK), "threads": kw.get("threads"), "sharded": stats}
    store.write_run(result, scen, out, wall=time.perf_counter() - t0, extra=extra, overwrite=overwrite)
    return out, stats
