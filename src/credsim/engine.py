"""The day loop and the objects a run hands back.

One simulated day (``describe_loop()`` prints it with what each stage reads and writes)::

    behave -> observe -> file -> score -> [investigate] -> classify -> sanction -> [redress] -> respond | measure,
    events    records    dossier  model    top-k checks     grades,     attempts    notices,     ties,    trace,
                                  scores   (records later)  lists                   objections   assoc.   event log

(``investigate``, ``money`` and ``redress`` only for scenarios that declare investigations, money/outcomes/
clawbacks or a ``redress`` section; ``money`` runs between ``sanction`` and ``redress``.)

Each stage is an object from :mod:`credsim.stages` with ``name``, ``reads``, ``writes`` and
``run(state, day, exchange)``; it reads and updates the columns of :class:`~credsim.state.State`
and fills its part of the typed :class:`~credsim.day.Day`. After the last stage the observers
(metrics, the traced sample, the event log) see the finished day. The loop only iterates.

One loop runs every mode: a shard is a :class:`Loop` over the citizens ``[lo, hi)`` whose
exchange routes what crosses citizens to other shards (:mod:`credsim.distributed`); a
single-process run is the one-range case, whose exchange hands everything straight back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from credsim import arrowcols, names, shard_graph
from credsim import graph as graph_mod
from credsim import population as pop_mod
from credsim import threads as threads_mod
from credsim.day import Day, DayObserver, Stage
from credsim.eventlog import EventLog
from credsim.exchange import Exchange
from credsim.fused import CountedDay, FusedDay, run_obstacles
from credsim.plan import Plan, compile_plan
from credsim.scenario.schema import Scenario
from credsim.stages import classify as classify_mod
from credsim.stages import score
from credsim.stages.behave import Behave
from credsim.stages.classify import Classify
from credsim.stages.dossier import File
from credsim.stages.investigate import Investigate
from credsim.stages.measure import Metrics
from credsim.stages.money import Money
from credsim.stages.observe import Observer
from credsim.stages.redress import Redress
from credsim.stages.respond import Respond
from credsim.stages.sanction import Sanction
from credsim.state import COUNTERS, State, check_counters, initial_state
from credsim.tracing import Tracer, trace_ids

STAGE_TYPES: tuple[type[Stage], ...] = (Behave, Observer, File, score.Score, Investigate, Classify, Sanction, Money,
                                        Redress, Respond)
# timing keys; "measure" times the observers, "fused" the one-kernel day of points-shaped scenarios
STAGES = tuple(s.name for s in STAGE_TYPES) + ("measure", FusedDay.name)
DEFAULT_BLOCK = 1 << 16


def build_stages(plan: Plan, st: State, seed: int, days: int, block: int, lo: int, hi: int) -> list[Stage]:
    """The stages of a day, in order, for the citizens ``[lo, hi)``; ``investigate`` and ``redress`` only
    when the scenario declares them, so scenarios without them run exactly the stages they always did."""
    due_process: list[Stage] = [Redress(plan, st, seed, lo, hi)] if plan.scen.redress is not None else []
    enforcement: list[Stage] = [Investigate(plan, st, seed, lo, hi)] if plan.scen.investigations else []
    money: list[Stage] = [Money(plan, st, seed)] if plan.econ is not None and plan.econ.active else []
    # only the range's RNG chunks draw events: every event is drawn by exactly one range, with the same numbers
    return [Behave(plan, st, seed, block, lo, hi), Observer(plan, st, seed, block, lo, hi), File(plan, days),
            score.Score(plan), *enforcement, Classify(plan, lo, hi, seed), Sanction(plan), *money, *due_process,
            Respond(plan, seed)]


def describe_loop() -> str:
    """The order of a day: each stage with the Day parts and State columns it reads and writes."""
    lines = ["One day, in order (day.* = the typed Day hand-off, state.* = State columns):"]
    for i, s in enumerate(STAGE_TYPES, 1):
        lines.append(f"{i}. {s.name:<9} reads  {', '.join(s.reads)}")
        lines.append(f"   {'':<9} writes {', '.join(s.writes)}")
    lines.append("then the observers see the finished day (timed as 'measure'): metrics (Metrics.observe), "
                 "the traced sample (Tracer.observe), the event log (EventLog.observe)")
    lines.append(f"A points-shaped scenario (credsim.fused.obstacles is empty) runs stages 1-10 and the metric counts "
                 f"as one kernel instead ('{FusedDay.name}'); the observers see the same Day")
    return "\n".join(lines)


@dataclass
class Loop:
    """Runs the day's stages over a state, then its observers; see the module docstring."""

    plan: Plan
    st: State
    seed: int
    days: int
    block: int
    metrics: Metrics
    tracer: Tracer
    events: EventLog  # audit: status changes of everyone (eventlog.py)
    exchange: Exchange
    stages: list[Stage]
    fused: FusedDay | None = None  # the whole day as one kernel, when the scenario is points-shaped (see prepare)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @property
    def observers(self) -> tuple[DayObserver, ...]:
        # a fused day has counted the metrics in its kernel: their observer only closes the day
        return (self.metrics if self.fused is None else CountedDay(self.metrics), self.tracer, self.events)

    def day_rounds(self, day: int, d: Day | None = None) -> Iterator[None]:
        """Run ``day`` (filling ``d``, a fresh :class:`Day` when None), pausing at each barrier of the
        exchange (a sharded driver swaps messages there). A fused day has no barrier: it is never sharded."""
        if not 0 <= day < self.days:  # the state's day columns (state.day_dtype) and metric rows end there
            raise ValueError(f"day {day} is outside this run's days 0-{self.days - 1}")
        d = Day(day) if d is None else d
        for stage in self.stages if self.fused is None else [self.fused]:
            t = time.perf_counter()
            rounds = stage.run(self.st, d, self.exchange)
            if rounds is not None:
                for _ in rounds:
                    self.timings[stage.name] += time.perf_counter() - t
                    yield
                    t = time.perf_counter()
            self.timings[stage.name] += time.perf_counter() - t
        t = time.perf_counter()
        for obs in self.observers:
            obs.observe(self.st, d)
        self.timings["measure"] += time.perf_counter() - t

    def step(self, day: int) -> Day:
        """Run one day in this process (at each barrier what was sent comes straight back); return the
        day's hand-offs, for tests and tools that read what each stage passed on."""
        d = Day(day)
        for _ in self.day_rounds(day, d):
            self.exchange.loopback()
        return d



def rounds_per_day(plan: Plan) -> int:
    """Barriers in a day (see ``Respond``): one per ``cut_ties`` response, and the end of the day."""
    return int(np.asarray(plan.resp_cut).sum()) + 1


@dataclass
class Result:
    """Everything a finished simulation produced, in memory, before it is stored."""

    plan: Plan
    state: State
    metrics: Metrics
    tracer: Tracer
    timings: dict[str, float]
    days: int
    seed: int
    n: int
    events: EventLog | None = None  # audit event log (events.parquet)
    redress: tuple[pa.Table, pa.Table] | None = None  # cases and stays (cases.parquet, stays.parquet)

    def citizens_table(self, lo: int = 0, hi: int | None = None) -> pa.Table:
        """The rows of citizens ``[lo, hi)`` (default: everyone) of ``citizens.parquet``."""
        return citizens_table(self.plan, self.state, self.tracer.mask, lo, self.state.n if hi is None else hi)


def citizen_rows(p: Plan, st: State, traced: np.ndarray) -> Callable[[int, int], pa.Table]:
    """``rows(a, b)``, the rows of :func:`citizens_table`, for a writer (:func:`credsim.partitions.write_rows`)
    that writes each table before the same thread asks for the next: the counters widened to int32 go into
    one buffer per thread, reused by that thread's next call, instead of fresh memory each time (the page
    faults of 14 new columns a row group: ~0.1 s of writing 10^7 citizens on 2 threads)."""
    local = threading.local()

    def rows(a: int, b: int) -> pa.Table:
        if st.counters.dtype == np.int32:
            return citizens_table(p, st, traced, a, b)
        buf = getattr(local, "buf", None)
        if buf is None or buf.shape[1] < b - a:
            buf = local.buf = np.empty((len(COUNTERS), b - a), np.int32)
        return citizens_table(p, st, traced, a, b, buf)
    return rows


def citizens_table(p: Plan, st: State, traced: np.ndarray, lo: int, hi: int,
                   scratch: np.ndarray | None = None) -> pa.Table:
    """One row per citizen of ``[lo, hi)`` (``citizens.parquet``, or a shard's part of it): the same
    columns and dictionaries for every range, so the parts of a sharded run concatenate to the rows
    of the single-process table. ``scratch``: int32 rows, at least ``hi - lo`` long, one a counter, to hold
    the widened counters (the table then reads them: see :func:`citizen_rows`)."""
    check_counters(st, lo, hi)
    cols: dict[str, pa.Array] = {arrowcols.CITIZEN: arrowcols.numeric(np.arange(lo, hi, dtype=np.int64))}
    for d, dim in enumerate(p.dims):
        g = st.groups[d, lo:hi]
        codes = g.view(np.int8) if len(p.dim_values[d]) < 128 else g.astype(np.int16)
        cols[dim] = arrowcols.dictionary(codes, p.dim_values[d])
    for t, name in enumerate(p.traits):
        cols[names.trait_column(name)] = arrowcols.numeric(st.traits[t, lo:hi])
    cols["score"] = arrowcols.numeric(st.score[0, lo:hi])
    cols["shadow_score"] = arrowcols.numeric(st.score[1, lo:hi])
    if p.has_model:
        cols["model_score"] = arrowcols.numeric(st.mscore[0, lo:hi])
        cols["shadow_model_score"] = arrowcols.numeric(st.mscore[1, lo:hi])
    if p.grades:
        cols["grade"] = arrowcols.dictionary(st.grade[0, lo:hi], p.grades)
        cols["shadow_grade"] = arrowcols.dictionary(st.grade[1, lo:hi], p.grades)
    for li, name in enumerate(p.lists):
        cols[f"on_{name}"] = arrowcols.numeric(st.listed[0, li, lo:hi], np.bool_)
        cols[f"shadow_on_{name}"] = arrowcols.numeric(st.listed[1, li, lo:hi], np.bool_)
    # int32 whatever state.counter_dtype holds them in. Widened by NumPy (into ``scratch`` when given): Arrow's
    # cast took 8 ms a million rows against NumPy's 17, but its pool still held 161 MB (NumPy 28) after writing
    # court-defaulters' 10^7 citizens, and the peak was 33 MB higher (a run's peak is while it writes)
    wide = st.counters[:, lo:hi]
    if scratch is not None and wide.dtype != np.int32:
        np.copyto(scratch[:, :hi - lo], wide)
        wide = scratch[:, :hi - lo]
    for c, name in enumerate(COUNTERS):
        cols[f"n_{name}"] = arrowcols.numeric(wide[c], np.int32)
    for m, name in enumerate(p.econ.money if p.econ is not None else []):
        cols[names.money_column(name)] = arrowcols.numeric(st.money[m, lo:hi])
    if st.dependants.shape[0]:  # family ties, only when the scenario declares them
        cols["dependants"] = arrowcols.numeric(st.dependants[lo:hi])
        cols["n_dependants_denied"] = arrowcols.numeric(st.dep_denied[lo:hi])
    cols["traced"] = arrowcols.numeric(traced[lo:hi])
    return arrowcols.required(cols)  # every column has a value for every citizen


@dataclass
class Begun:
    """A loop's set-up up to its contact graph: the range's population and, for a range of a sharded run
    whose stages read the graph, the ties its citizens open (:class:`credsim.shard_graph.Stubs`). A shard holds
    this while the shards swap the ties they open towards each other's citizens
    (:mod:`credsim.distributed.run`); :func:`complete` builds the rest."""

    plan: Plan
    n: int
    days: int
    seed: int
    block: int
    exchange: Exchange
    pop: pop_mod.Population
    stubs: shard_graph.Stubs | None  # only a range (not everyone) whose stages read the graph draws them
    lean: shard_graph.Lean | None  # what the stubs were drawn from: the other ranges' ties are drawn again from it
    sharded: bool  # built for a range of a sharded run (``cuts`` given)
    seconds: float  # set-up time so far


def begin(scen: Scenario, *, population: int | None = None, days: int | None = None, seed: int | None = None,
          block: int = DEFAULT_BLOCK, threads: int | None = None, cuts: list[int] | None = None,
          index: int = 0) -> Begun:
    """The first half of :func:`prepare`: the range's population and the ties its citizens open."""
    n = population if population is not None else scen.population.size
    days = days if days is not None else scen.run.days
    seed = seed if seed is not None else scen.run.seed
    if threads is not None:
        threads_mod.configure(threads)
    plan = compile_plan(scen)
    t0 = time.perf_counter()
    exchange = Exchange(cuts if cuts is not None else [0, n], index)
    lo, hi = exchange.lo, exchange.hi
    pop = pop_mod.generate(plan, n, seed, block, lo, hi)
    # a range draws only the ties its own citizens open; the rows it needs from elsewhere come from the
    # other ranges (or, alone, from drawing their stubs too: shard_graph.build_rows)
    ranged = (lo, hi) != (0, n) and plan.reads_graph and plan.scen.graph.contacts >= 2 and n >= 2
    # (from the lean tables: no table of the whole population's group codes or order is held)
    lean = shard_graph.lean_tables(plan, seed, n) if ranged else None
    stubs = shard_graph.draw_stubs_lean(plan, pop, seed, lo, hi, lean) if lean is not None else None
    return Begun(plan, n, days, seed, block, exchange, pop, stubs, lean, cuts is not None,
                 time.perf_counter() - t0)


def prepare(scen: Scenario, *, population: int | None = None, days: int | None = None,
            seed: int | None = None, block: int = DEFAULT_BLOCK, threads: int | None = None,
            cuts: list[int] | None = None, index: int = 0, fused: bool | None = None) -> tuple[Loop, float]:
    """The loop before day 0 (population, graph, state, metrics, tracer) and the setup time in seconds.

    Split from :func:`simulate` so that :mod:`credsim.checkpoint` can rebuild a loop and
    overwrite its state from a checkpoint before running the remaining days. ``cuts`` and
    ``index`` make it the loop of one range of a sharded run (default: everyone); alone, such a
    range draws every other range's ties towards it itself. ``fused``: None takes
    the fused day whenever :func:`credsim.fused.run_obstacles` finds nothing against it, False keeps the
    staged stages, True insists (a ValueError names what stands in the way).
    """
    return complete(begin(scen, population=population, days=days, seed=seed, block=block, threads=threads, cuts=cuts,
                          index=index), fused=fused)


def complete(b: Begun, ties: list[np.ndarray | None] | None = None, *,
           fused: bool | None = None) -> tuple[Loop, float]:
    """The second half of :func:`prepare`: graph rows, state, metrics, tracer and stages.

    ``ties``: for a range with stubs, the ties every range opens towards it, in range order
    (:func:`credsim.shard_graph.ties_towards` arrays, None at its own place); without them the range draws the
    others' stubs itself (:func:`credsim.shard_graph.build_rows`)."""
    t0 = time.perf_counter()
    plan, n, days, seed, block, exchange, pop = b.plan, b.n, b.days, b.seed, b.block, b.exchange, b.pop
    lo, hi = exchange.lo, exchange.hi
    # a range builds only its own graph rows and writes only its own state: memory O(N/K) per shard
    if not plan.reads_graph:  # no stage would read it (court-defaulters: 80 million tie directions at 10^7)
        g = graph_mod.Graph.empty(hi - lo, lo)
    elif (lo, hi) == (0, n):
        g = graph_mod.build(plan, pop, seed)
    elif b.stubs is None:  # fewer than 2 contacts or citizens: no ties
        g = graph_mod.Graph.empty(hi - lo, lo)
    elif ties is None:
        g = shard_graph.build_rows(plan, pop, seed, lo, hi, b.stubs)
    else:
        g = shard_graph.rows_from(b.stubs, ties)
    b.stubs = b.lean = None
    st = initial_state(plan, pop, g, lo, hi, days)
    score.recompute_model(plan, st, 0, lo, hi)
    if plan.grades:
        if plan.grade_source == "points" and plan.points_base_dim < 0:
            # everyone starts on the same points (state.starting_points): one grade, the same grade_of
            start = np.full(1, np.float32(plan.points_base), np.float32)
            st.grade[:, lo:hi] = classify_mod.grade_of(start, plan.grade_mins)[0]
        else:
            src = st.score if plan.grade_source == "points" else st.mscore
            st.grade[:, lo:hi] = classify_mod.grade_of(src[:, lo:hi].ravel(), plan.grade_mins).reshape(2, hi - lo)
        classify_mod.enter_start_grades(plan, st, lo, hi)  # lists entered by grade follow the starting grades
    metrics = Metrics(plan, st, days, lo, hi, seed=seed)
    metrics.init_stocks(st, plan.grades)
    ids = trace_ids(plan, n, seed)
    tracer = Tracer(plan, n, ids[(ids >= lo) & (ids < hi)])  # a range marks only its own (the mask's pages)
    stages = build_stages(plan, st, seed, days, block, lo, hi)
    fused_day = _fused_day(plan, st, seed, days, block, stages, metrics, tracer, b.sharded, fused)
    setup = b.seconds + time.perf_counter() - t0
    return Loop(plan, st, seed, days, block, metrics, tracer, EventLog(plan), exchange, stages, fused_day), setup


def _fused_day(plan: Plan, st: State, seed: int, days: int, block: int, stages: list[Stage], metrics: Metrics,
               tracer: Tracer, sharded: bool, want: bool | None) -> FusedDay | None:
    """The fused day when it may and should be taken (see :func:`prepare`), else None: the staged loop."""
    if want is False:
        return None
    why = run_obstacles(plan, days, st.n, block, sharded, metrics)
    if why:
        if want:
            raise ValueError(f"this run cannot take the fused day: {'; '.join(why)}")
        return None
    behave = next(s for s in stages if isinstance(s, Behave))
    observe = next(s for s in stages if isinstance(s, Observer))
    # the traced sample reads today's events, observations and records; the metrics are counted in the
    # kernel and the event log reads only grade and list changes, which the fused day always hands over
    parts = tracer.ids.shape[0] > 0
    return FusedDay(plan, seed, block, behave.sampler, observe.cov_keys, metrics, parts)


def run_days(loop: Loop, start: int = 0, on_day: Callable[[int, int], None] | None = None,
             after_day: Callable[[Loop, int], None] | None = None) -> None:
    """Run days ``start`` to the end; ``after_day(loop, day)`` sees each completed day (checkpoints, budgets).

    ``after_day`` may raise to stop the run between two days, when the loop is consistent.
    """
    for day in range(start, loop.days):
        loop.step(day)
        if on_day is not None:
            on_day(day, loop.days)
        if after_day is not None:
            after_day(loop, day)


def finish(loop: Loop, setup: float) -> Result:
    timings = {"setup": setup, **loop.timings}
    tables = [s.tables(loop.st) for s in loop.stages if isinstance(s, Redress)]
    return Result(loop.plan, loop.st, loop.metrics, loop.tracer, timings, loop.days, loop.seed, loop.st.n,
                  events=loop.events, redress=tables[0] if tables else None)


def simulate(scen: Scenario, *, population: int | None = None, days: int | None = None,
             seed: int | None = None, block: int = DEFAULT_BLOCK, threads: int | None = None,
             on_day: Callable[[int, int], None] | None = None, fused: bool | None = None) -> Result:
    """Run the daily pipeline in memory and return the result (see :func:`credsim.run`; ``fused``: see
    :func:`prepare`)."""
    loop, setup = prepare(scen, population=population, days=days, seed=seed, block=block, threads=threads,
                          fused=fused)
    run_days(loop, 0, on_day)
    return finish(loop, setup)
