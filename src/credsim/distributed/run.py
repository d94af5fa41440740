"""Drive K shards day by day, locally or as Ray actors, and write one ordinary run directory.

The driver owns no citizens. Each day it calls every shard's ``begin_day``, delivers the
messages of each round (one round per ``cut_ties`` response), then ``end_day``; shards
never talk to each other directly, so the exchange is easy to count and to replay.
At the end it adds up the shards' fixed-point metric tables (exact), concatenates their
citizen columns in id order and writes the run with :func:`credsim.store.write_run` --
so ``metrics.parquet`` and ``citizens.parquet`` are byte-identical to a single-process run.

The driver (:class:`ShardedDriver`) has the interface of one loop, so :mod:`credsim.resumable`
drives sharded runs like single-process ones: checkpoints, ``--max-days``, ``--time-budget``,
Ctrl-C and ``credsim resume`` (the manifest records the :class:`Layout`).

Failure: with checkpoints, every shard writes a checkpoint of its loop
(:mod:`credsim.checkpoint`) every that many days. When a Ray worker dies, the driver
restarts every shard from the last checkpoint they all hold and replays from there
(replaying is deterministic); without checkpoints, or after ``max_restarts``, the run
stops with :class:`ShardFailure` naming the shard and day. Never a silently wrong result.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from credsim import checkpoint as ckpt
from credsim import store
from credsim.distributed.shard import Shard, boundaries
from credsim.engine import DEFAULT_BLOCK, Result, rounds_per_day
from credsim.eventlog import EventLog
from credsim.exchange import deliver
from credsim.graph import Graph
from credsim.partitions import Partitioned
from credsim.plan import Plan, compile_plan
from credsim.scenario.schema import Scenario
from credsim.stages.measure import Metrics
from credsim.state import State
from credsim.tracing import Tracer

# A shard worker's environment (read when NumPy and PyArrow are first used in it):
# - A shard's per-citizen columns are written only in its range (the rest stays zero pages). NumPy asks the
#   kernel for transparent huge pages on every large array, and a 2 MB page backs the whole page around each
#   row's range ends: about 1.5 MB wasted per row of every column (70 MB a shard of city-points). A shard's
#   worker asks for none.
# - PyArrow's default pool (mimalloc) keeps what it freed for reuse; a shard uses Arrow once, to write its
#   parts, so the memory stays resident for nothing (measured: 24 MB more at the peak of writing 250,000
#   citizens, 12 MB at 10,000). glibc's malloc returns blocks of 256 KiB and more at once (credsim.allocator).
SHARD_ENV = {"NUMPY_MADVISE_HUGEPAGE": "0", "ARROW_DEFAULT_MEMORY_POOL": "system"}


class ShardFailure(RuntimeError):
    """A shard was lost and the run could not recover; the message says which and when."""


class _Local:
    """Shards as plain objects in this process (debugging, tests without Ray)."""

    def __init__(self, make: Callable[[int], Shard], k: int) -> None:
        self.make = make
        self.k = k
        self.shards: list[Shard] = []
        self.restart()

    def call(self, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        return [getattr(s, method)(*a) for s, a in zip(self.shards, args, strict=True)]

    def restart(self) -> None:
        """Every shard built afresh, the ties they open towards each other swapped."""
        self.shards = [self.make(i) for i in range(self.k)]
        for r in range(max(s.swap_rounds() for s in self.shards)):
            outs = [s.ties_out(r) for s in self.shards]
            for j, s in enumerate(self.shards):
                s.ties_in(*(out[j] for out in outs))
        for s in self.shards:
            s.connect()

    def close(self) -> None:
        self.shards = []


class _ShardActor:
    """A Ray actor holding one :class:`Shard` (methods forwarded by name)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.shard = Shard(*args, **kw)

    def call(self, method: str, *args: Any) -> Any:
        return getattr(self.shard, method)(*args)

    def pid(self) -> int:
        return os.getpid()

    def rss(self) -> int:
        """Resident bytes of this worker now (benchmarks)."""
        return _status_kb("VmRSS") * 1024

    def peak_rss(self) -> int:
        return _status_kb("VmHWM") * 1024

    def rss_kinds(self) -> dict[str, int]:
        """Resident bytes of this worker now by kind (benchmarks): ``anon`` (its own arrays), ``file`` (mapped
        files: the libraries' code, shared with every process that maps them) and ``shmem`` (Ray's object
        store pages)."""
        return rss_kinds()


def rss_kinds() -> dict[str, int]:
    """This process's resident bytes now, by kind: anonymous, file-backed, shared memory (``/proc/self/status``)."""
    return {k: _status_kb(f) * 1024 for k, f in (("anon", "RssAnon"), ("file", "RssFile"), ("shmem", "RssShmem"))}


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class _Ray:
    """Shards as Ray actors, each asking for ``num_cpus`` or, if K such actors would not fit the
    cluster's nodes, the largest share of a CPU that lets them all fit (:func:`actor_cpus`).

    An actor that asks for a whole CPU on a cluster with fewer CPUs than shards is never
    scheduled, and the run would wait for it forever; on a big cluster each still gets its own core.
    The shards are built at the same time: a shard's set-up is range-local
    (O(N/K) memory), so K builds together peak no higher than one whole population.
    """

    def __init__(self, ctor: tuple[Scenario, list[int], dict[str, Any]], k: int, address: str | None,
                 num_cpus: float) -> None:
        import ray

        self.ray = ray
        self.own_init = False
        if not ray.is_initialized():
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            self.own_init = True
        self.wanted = num_cpus
        self.num_cpus = num_cpus
        self.cls = ray.remote(max_restarts=0)(_ShardActor)
        self.ctor = ctor
        self.k = k
        self.actors: list[Any] = []
        self.restart()

    def restart(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        scen, cuts, kw = self.ctor
        # the share is worked out again at each restart: the cluster may have lost or gained nodes
        self.num_cpus = actor_cpus(self.wanted, node_cpus(self.ray), self.k)
        cls: Any = self.cls.options(num_cpus=self.num_cpus,  # type: ignore[attr-defined]
                                    runtime_env={"env_vars": dict(SHARD_ENV)})
        self.actors = [cls.remote(scen, i, cuts, swap_ties=True, **kw) for i in range(self.k)]
        self.ray.get([a.pid.remote() for a in self.actors])
        # each shard's ties towards shard j go to j as object references, never through this process (at
        # country scale they are gigabytes), a round at a time: the object store keeps every page it was
        # ever given in the shards' resident memory, so only one round's worth is ever in flight
        k = self.k
        rounds = max(self.ray.get([a.call.remote("swap_rounds") for a in self.actors]))
        for r in range(rounds):
            outs = [a.call.options(num_returns=k).remote("ties_out", r) for a in self.actors]
            refs = [list(o) if k > 1 else [o] for o in outs]
            self.ray.get([a.call.remote("ties_in", *(x[j] for x in refs)) for j, a in enumerate(self.actors)])
            del outs, refs
        self.ray.get([a.call.remote("connect") for a in self.actors])

    def memory(self) -> list[int]:
        """Resident bytes of each shard's worker process (for benchmarks)."""
        return list(self.ray.get([a.rss.remote() for a in self.actors]))

    def peak_memory(self) -> list[int]:
        """Peak resident bytes of each shard's worker process so far (for benchmarks)."""
        return list(self.ray.get([a.peak_rss.remote() for a in self.actors]))

    def memory_kinds(self) -> list[dict[str, int]]:
        """Each shard's worker's resident bytes now by kind (:func:`rss_kinds`; for benchmarks)."""
        return list(self.ray.get([a.rss_kinds.remote() for a in self.actors]))

    def call(self, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        return list(self.ray.get([a.call.remote(method, *x) for a, x in zip(self.actors, args, strict=True)]))

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
        if self.own_init:
            self.ray.shutdown()


def actor_cpus(wanted: float, node_cpus: list[float], shards: int) -> float:
    """CPUs one shard actor asks for: ``wanted`` if the K actors fit the nodes so, else the largest
    share that lets all K fit (each node holds ``floor(node CPUs / share)`` actors).

    Ray places an actor only on a node where its whole request fits, so K actors of one CPU each
    on a machine with fewer than K CPUs would wait forever, and so would three actors of 2/3 CPU
    on two one-CPU nodes. Shards that share a core take turns on it, as processes do."""
    if sum(node_cpus) <= 0:
        raise ShardFailure("the Ray cluster reports no CPUs: no shard could ever be scheduled")

    def fits(share: float) -> bool:
        return sum(math.floor(c / share + 1e-9) for c in node_cpus) >= shards

    candidates = [wanted] + [c / j for c in node_cpus for j in range(1, shards + 1) if 0 < c / j <= wanted]
    share = max(x for x in candidates if fits(x)) if any(fits(x) for x in candidates) else 1e-4
    return max(math.floor(share * 10_000) / 10_000, 1e-4)  # Ray counts CPUs in units of 1e-4


def node_cpus(ray: Any) -> list[float]:
    """CPUs of every live node of the connected cluster."""
    return [float(n.get("Resources", {}).get("CPU", 0.0)) for n in ray.nodes() if n.get("Alive")]


def _lost_worker(exc: BaseException) -> bool:
    try:
        import ray.exceptions as rex
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, rex.RayActorError | rex.WorkerCrashedError | rex.ActorDiedError)


@dataclass(frozen=True)
class Layout:
    """How a run is split: what the manifest records so that ``credsim resume`` rebuilds the same shards."""

    shards: int
    ray: bool = False
    address: str | None = None
    num_cpus: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: Any) -> Layout:
        if not isinstance(data, dict) or not isinstance(data.get("shards"), int) or data["shards"] < 1:
            raise ckpt.CheckpointError(f"manifest.json: layout {data!r} is not a shard layout")
        return Layout(int(data["shards"]), bool(data.get("ray", False)), data.get("address") or None,
                      float(data.get("num_cpus", 1.0)))


class ShardedDriver:
    """Steps K shards day by day (the same interface as one loop: see :mod:`credsim.resumable`).

    Each day it calls every shard's ``begin_day``, delivers the messages of each round (one
    per ``cut_ties`` response), then ``end_day``. Checkpoints are one file per shard under
    ``DIR/shard-K``; when a Ray worker dies, every shard restarts from the newest day they
    all saved and the lost days are replayed (deterministically).
    """

    def __init__(self, scen: Scenario, layout: Layout, *, population: int | None = None, days: int | None = None,
                 seed: int | None = None, block: int = DEFAULT_BLOCK, threads: int | None = None,
                 max_restarts: int = 3, spool: Path | None = None) -> None:
        self.scen = scen
        n = population if population is not None else scen.population.size
        self.n = n
        self.days = days if days is not None else scen.run.days
        self.layout = layout
        self.cuts = boundaries(n, layout.shards)
        self.kw: dict[str, Any] = dict(population=population, days=days, seed=seed, block=block, threads=threads,
                                       spool=None if spool is None else str(spool))
        self.plan = compile_plan(scen)
        self.rounds = rounds_per_day(self.plan)
        self.max_restarts = max_restarts
        self.saved_in: Path | None = None  # where shard checkpoints were last written (recovery reads them)
        self.setup = 0.0  # the slowest shard's setup seconds, known with the results
        self.stats: dict[str, Any] = {"shards": layout.shards, "boundaries": self.cuts, "restarts": 0,
                                      "backend": "ray" if layout.ray else "local", "rounds_per_day": self.rounds}
        self.backend: _Local | _Ray
        if layout.ray:
            self.backend = _Ray((scen, self.cuts, self.kw), layout.shards, layout.address, layout.num_cpus)
        else:
            self.backend = _Local(lambda i: Shard(scen, i, self.cuts, swap_ties=True, **self.kw), layout.shards)
        self.t0 = time.perf_counter()

    def _step(self, day: int) -> None:
        k = self.layout.shards
        boxes = self.backend.call("begin_day", [(day,)] * k)
        for _ in range(self.rounds - 1):
            boxes = self.backend.call("next_round", [(deliver(boxes, j),) for j in range(k)])
        self.backend.call("end_day", [(deliver(boxes, j),) for j in range(k)])

    def step(self, day: int) -> None:
        """Run ``day`` on every shard, recovering from a lost worker by replaying from a checkpoint."""
        self._recovering(day, lambda: self._step(day))
        self.stats["wall_days_s"] = round(time.perf_counter() - self.t0, 4)

    def _recovering(self, day: int, work: Callable[[], Any]) -> Any:
        while True:
            try:
                return work()
            except Exception as exc:  # noqa: BLE001 - classified below
                if not _lost_worker(exc):
                    raise
                where = f"a shard worker died on day {day} ({type(exc).__name__})"
                if self.saved_in is None:
                    raise ShardFailure(f"{where}; no checkpoints were kept (set checkpoint_every to recover), "
                                       "so the run stops rather than continue with a lost shard") from exc
                if self.stats["restarts"] >= self.max_restarts:
                    raise ShardFailure(f"{where}; gave up after {self.stats['restarts']} restarts") from exc
                self.stats["restarts"] += 1
                self.backend.restart()
                common = _common_checkpoint(self.saved_in, self.layout.shards)
                start = 0 if common is None else common[0]
                if common is not None:
                    self.backend.call("load_checkpoint", [(str(p),) for p in common[1]])
                for d in range(start, day):
                    self._step(d)

    def save(self, out: Path, done: int, meta: dict[str, Any]) -> Path:
        """Every shard's checkpoint for ``done`` days under ``out/checkpoint/shard-K``; returns that folder."""
        k = self.layout.shards
        directory = ckpt.checkpoint_dir(out)
        self.backend.call("save_checkpoint", [(str(directory / f"shard-{j}"), done, meta) for j in range(k)])
        self.saved_in = directory
        return directory

    def restore_latest(self, out: Path) -> tuple[int, dict[str, Any]]:
        """Load the newest day every shard saved under ``out/checkpoint``; (0, {}) when there is none."""
        directory = ckpt.checkpoint_dir(out)
        common = _common_checkpoint(directory, self.layout.shards)
        if common is None:
            return 0, {}
        metas = self.backend.call("load_checkpoint", [(str(p),) for p in common[1]])
        self.saved_in = directory
        return common[0], dict(metas[0])

    def _summaries(self) -> list[dict[str, Any]]:
        """Every shard's metric table, timings and exchange counts; records the exchange statistics."""
        res: list[dict[str, Any]] = self._recovering(self.days, lambda: self.backend.call("summary",
                                                                                           [()] * self.layout.shards))
        sent = [int(r["sent"]) for r in res]
        self.stats["exchange_bytes"] = sum(sent)
        self.stats["exchange_bytes_per_day"] = sum(sent) / max(self.days, 1)
        # the set-up's swap of tie marks (shard_graph.Marks), the last time the shards were built
        self.stats["setup_exchange_bytes"] = sum(int(r.get("swap_sent", 0)) for r in res)
        kinds: dict[str, int] = {}
        for r in res:
            for key, v in r["sent_kind"].items():
                kinds[key] = kinds.get(key, 0) + int(v)
        self.stats["exchange_rows"] = kinds
        self.setup = max(float(r["setup"]) for r in res)
        return res

    def result(self) -> Partitioned:
        """The finished run as the metric table (the shards' tables added up, exact) and a way to have
        every shard write its own part of the citizen-level tables: no citizen row passes the driver."""
        res = self._summaries()
        metrics = Metrics(self.plan, _blank_state(self.plan), self.days)
        metrics.table = np.sum([r["table"] for r in res], axis=0, dtype=np.int64)
        k = self.layout.shards

        def write_parts(directory: Path) -> list[str]:
            t = time.perf_counter()
            names: list[list[str]] = self._recovering(
                self.days, lambda: self.backend.call("write_parts", [(str(directory),)] * k))
            self.stats["write_parts_s"] = round(time.perf_counter() - t, 4)
            return [name for shard in names for name in shard]

        return Partitioned(self.plan, metrics, _timings(res), self.days, self._seed(), self.n, write_parts,
                           has_redress=bool(res[0]["redress"]))

    def merged(self) -> Result:
        """The whole run gathered into this process (every citizen column): small runs and tests only."""
        self._summaries()
        res: list[dict[str, Any]] = self._recovering(self.days, lambda: self.backend.call("results",
                                                                                           [()] * self.layout.shards))
        return _merge(self.scen, self.plan, res, self.n, self.days, self.kw)

    def _seed(self) -> int:
        return int(self.kw["seed"] if self.kw.get("seed") is not None else self.scen.run.seed)

    def extra(self) -> dict[str, Any]:
        return {"sharded": self.stats, "layout": self.layout.to_json()}

    def close(self) -> None:
        self.backend.close()


@dataclass(frozen=True)
class _Options:
    """How :func:`simulate_sharded` and :func:`run_sharded` drive the shards besides the scenario."""

    shards: int
    ray: bool = False
    address: str | None = None
    population: int | None = None
    days: int | None = None
    seed: int | None = None
    block: int = DEFAULT_BLOCK
    threads: int | None = None
    checkpoint_every: int = 0
    work_dir: Path | None = None
    max_restarts: int = 3
    num_cpus: float = 1.0
    on_day: Callable[[int, Any], None] | None = None


def _drive(scen: Scenario, o: _Options, finish: Callable[[ShardedDriver], Any]) -> Any:
    """Step every day (checkpointing every ``checkpoint_every`` days), then ``finish(driver)`` while the
    shards are still alive; the shards and a temporary checkpoint folder are gone afterwards."""
    own_tmp = o.work_dir is None and o.checkpoint_every > 0
    wdir = Path(tempfile.mkdtemp(prefix="credsim-shards-")) if own_tmp else o.work_dir
    drv = ShardedDriver(scen, Layout(o.shards, o.ray, o.address, o.num_cpus), population=o.population, days=o.days,
                        seed=o.seed, block=o.block, threads=o.threads, max_restarts=o.max_restarts)
    try:
        for day in range(drv.days):
            drv.step(day)
            if o.checkpoint_every and wdir is not None and (day + 1) % o.checkpoint_every == 0:
                drv.save(wdir, day + 1, {})
            if o.on_day is not None:
                o.on_day(day, drv.backend)
        return finish(drv)
    finally:
        drv.close()
        if own_tmp and wdir is not None:
            shutil.rmtree(wdir, ignore_errors=True)


def simulate_sharded(scen: Scenario, shards: int, **kw: Any) -> tuple[Result, dict[str, Any]]:
    """Run ``scen`` on ``shards`` shards and gather everything into one in-memory :class:`Result`
    (every citizen column passes through this process: for small runs; :func:`run_sharded` does not).

    Keywords: ``ray``, ``address``, ``population``, ``days``, ``seed``, ``block``, ``threads``,
    ``num_cpus``, ``max_restarts``, ``on_day(day, backend)``; ``checkpoint_every`` keeps shard
    checkpoints in ``work_dir`` (a temporary folder when not given) only to recover from a lost
    worker -- a durable, resumable sharded run is :func:`credsim.resumable.execute` with a
    :class:`Layout`."""
    result, stats = _drive(scen, _Options(shards, **kw), lambda drv: (drv.merged(), drv.stats))
    return result, stats


def run_sharded(scen: Scenario, out: Path, shards: int, *, wall_start: float | None = None,
                overwrite: bool = False, **kw: Any) -> tuple[Path, dict[str, Any]]:
    """Run ``scen`` on ``shards`` shards into the run directory ``out``: ``metrics.parquet`` from the
    driver, every other table as one part per shard written by the shard itself (keywords as
    :func:`simulate_sharded`; the manifest records the layout)."""
    t0 = wall_start if wall_start is not None else time.perf_counter()
    o = _Options(shards, **kw)

    def write(drv: ShardedDriver) -> dict[str, Any]:
        result = drv.result()
        extra = {"block_size": o.block, "threads": o.threads, "sharded": drv.stats, "layout": drv.layout.to_json()}
        store.write_run(result, scen, out, wall=time.perf_counter() - t0, extra=extra, overwrite=overwrite)
        return drv.stats

    stats: dict[str, Any] = _drive(scen, o, write)
    return out, stats


def _common_checkpoint(wdir: Path, shards: int) -> tuple[int, list[Path]] | None:
    """The newest day every shard has a checkpoint for, and their files."""
    per = [{c.day: c.path for c in ckpt.list_checkpoints(wdir / f"shard-{k}")} for k in range(shards)]
    days = set.intersection(*(set(p) for p in per)) if per else set()
    if not days:
        return None
    d = max(days)
    return d, [p[d] for p in per]


def _merge(scen: Scenario, plan: Plan, res: list[dict[str, Any]], n: int, days: int,
           kw: dict[str, Any]) -> Result:
    """One :class:`Result` from the shards' pieces, as the single-process engine would hold it."""
    cols: dict[str, np.ndarray] = {}
    for key in res[0]["columns"]:
        cols[key] = np.concatenate([r["columns"][key] for r in res], axis=-1)
    traced = cols.pop("__traced__")
    fields: dict[str, Any] = {k: v for k, v in cols.items() if k in State.__dataclass_fields__}
    st = replace(_blank_state(plan), **fields)
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
    timings = _timings(res)
    seed = kw["seed"] if kw.get("seed") is not None else scen.run.seed
    return Result(plan, st, metrics, tracer, timings, days, seed, n, events=events)


def _timings(res: list[dict[str, Any]]) -> dict[str, float]:
    """Per stage, the slowest shard's seconds (the shards run side by side)."""
    timings: dict[str, float] = {"setup": max(float(r["setup"]) for r in res)}
    for r in res:
        for k, v in r["timings"].items():
            timings[k] = max(timings.get(k, 0.0), float(v))
    return timings


def _blank_state(plan: Plan) -> State:
    """A state of no citizens (with the plan's group and trait dimensions, for a driver's metric table)."""
    z = np.zeros(0)
    groups, traits = np.zeros((len(plan.dims), 0), np.uint8), np.zeros((len(plan.traits), 0), np.float32)
    return State(n=0, groups=groups, traits=traits, graph=Graph.empty(0), score=z, mscore=z, grade=z, listed=z,
                 listed_since=z, list_count=z, cured_seq=z, pending=z, cap_used=z, resp_day=z, feat_count=z,
                 neg_by_domain=z, assoc_pts=z, counters=z)
