"""The day loop, readable top to bottom, and the objects a run hands back.

One simulated day::

    population -> behave -> observe -> file -> score -> classify -> sanction -> respond -> measure

:func:`simulate` builds the population and graph, then runs :meth:`Loop.step` once per
day. Each stage lives in :mod:`credsim.stages` and reads or updates the columns of
:class:`~credsim.state.State`; the loop only passes today's sparse results from one
stage to the next and times each stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numba
import numpy as np
import pyarrow as pa
from numba import njit

from credsim import graph as graph_mod
from credsim import population as pop_mod
from credsim.eventlog import EventLog
from credsim.plan import KINDS, Plan, compile_plan
from credsim.rng import static_key, uniform
from credsim.scenario.schema import Scenario
from credsim.stages import behave as behave_mod
from credsim.stages import classify as classify_mod
from credsim.stages import dossier, respond, sanction, score
from credsim.stages.measure import Metrics
from credsim.stages.observe import Observer
from credsim.state import COUNTERS, C, State, initial_state

STAGES = ("behave", "observe", "file", "score", "classify", "sanction", "respond", "measure")
DEFAULT_BLOCK = 1 << 16


@njit(cache=True)
def _count_events(counters: np.ndarray, cit: np.ndarray, kinds: np.ndarray, c_all: int, c_inf: int,
                  k_inf: int, c_speech: int, k_speech: int) -> None:
    for j in range(cit.shape[0]):
        i = cit[j]
        counters[c_all, i] += 1
        if kinds[j] == k_inf:
            counters[c_inf, i] += 1
        elif kinds[j] == k_speech:
            counters[c_speech, i] += 1


class Tracer:
    """Full history of a small sample of citizens, for explanation."""

    def __init__(self, plan: Plan, n: int, ids: np.ndarray) -> None:
        self.plan = plan
        self.mask = np.zeros(n, dtype=np.bool_)
        self.mask[ids] = True
        self.ids = ids
        self.rows: dict[str, list[np.ndarray]] = {k: [] for k in (
            "day", "citizen", "stage", "item", "value", "view", "true", "source")}

    def add(self, day: int, cit: np.ndarray, stage: str, item: list[str] | np.ndarray,
            value: np.ndarray, view: str | list[str] | np.ndarray, true: np.ndarray | None = None,
            source: list[str] | np.ndarray | None = None) -> None:
        k = cit.shape[0]
        if k == 0:
            return
        r = self.rows
        r["day"].append(np.full(k, day, np.int32))
        r["citizen"].append(cit.astype(np.int64))
        r["stage"].append(np.full(k, stage, dtype=object))
        r["item"].append(np.asarray(item, dtype=object))
        r["value"].append(np.asarray(value, dtype=np.float64))
        r["view"].append(np.full(k, view, dtype=object) if isinstance(view, str) else np.asarray(view, dtype=object))
        r["true"].append(np.full(k, -1, np.int8) if true is None else np.asarray(true, dtype=np.int8))
        r["source"].append(np.full(k, "", dtype=object) if source is None else np.asarray(source, dtype=object))

    def pick(self, cit: np.ndarray) -> np.ndarray:
        return np.flatnonzero(self.mask[cit]) if cit.shape[0] else np.zeros(0, np.int64)

    def to_arrow(self) -> pa.Table:
        empty = {"day": np.int32, "citizen": np.int64, "value": np.float64, "true": np.int8}
        cols = {k: (np.concatenate(v) if v else np.zeros(0, dtype=empty.get(k, object)))
                for k, v in self.rows.items()}
        return pa.table({
            "day": pa.array(cols["day"], pa.int32()),
            "citizen": pa.array(cols["citizen"], pa.int64()),
            "stage": pa.array(cols["stage"], pa.string()).dictionary_encode(),
            "item": pa.array(cols["item"], pa.string()).dictionary_encode(),
            "value": pa.array(cols["value"], pa.float64()),
            "view": pa.array(cols["view"], pa.string()).dictionary_encode(),
            "true": pa.array(cols["true"], pa.int8()),
            "source": pa.array(cols["source"], pa.string()).dictionary_encode(),
        })


@dataclass
class Loop:
    """Runs the daily pipeline over a state; see the module docstring for the order."""

    plan: Plan
    st: State
    seed: int
    days: int
    block: int
    metrics: Metrics
    tracer: Tracer
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def __post_init__(self) -> None:
        self.sampler = behave_mod.make_sampler(self.plan, self.st, self.seed)
        self.observer = Observer(self.plan, self.st, self.seed)
        self.kind_of = self.plan.beh_kind
        self.events = EventLog(self.plan)  # audit: status changes of everyone (eventlog.py)

    def _t(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timings[stage] += t1 - t0
        return t1

    def step(self, day: int) -> None:
        p, st = self.plan, self.st
        t = time.perf_counter()

        # 1. behave: true events
        cit, beh = behave_mod.behave(p, st, day, self.block, self.sampler)
        t = self._t("behave", t)

        # 2. observe: sensors make records (queued until their delay has passed)
        _new, seen, fcit, fsen = self.observer.observe(st, cit, beh, day, self.block)
        t = self._t("observe", t)

        # 3. file: due records enter the dossier, expired ones leave it
        dossier.reset_caps(p, st, day)
        filed, applied, cures = dossier.file_records(p, st, day, self.days)
        exp_cit, exp_mode, exp_amt = dossier.expire(p, st, day)
        t = self._t("file", t)

        # 4. score: points are already current; model scores on their schedule
        model_day = score.recompute_model(p, st, day)
        t = self._t("score", t)

        # 5. classify: grades, then list entries and exits
        if model_day and p.grade_source == "model":
            grades = classify_mod.regrade(p, st, None)
        else:
            cand = classify_mod.unique_sorted(np.concatenate([filed.cit, exp_cit]).astype(np.int64))
            grades = classify_mod.regrade(p, st, cand)
        lists = classify_mod.update_lists(p, st, day, cures, grades)
        t = self._t("classify", t)

        # 6. sanction: today's attempts against today's grades and lists
        out = sanction.sanction(p, st, cit, beh)
        t = self._t("sanction", t)

        # 7. respond: deterrence, chilling, cut ties, association penalties
        denied_cit = out["cit"][out["den"][:, 0] == 1]
        resp = respond.respond(p, st, day, self.seed, denied_cit, lists)
        t = self._t("respond", t)

        # 8. measure
        self._measure(day, cit, beh, seen, fcit, fsen, filed, applied, exp_cit, exp_mode, exp_amt,
                      model_day, grades, lists, out, resp)
        self._trace(day, cit, beh, filed, applied, grades, lists, out)
        self.events.add(day, st, grades, lists, out)  # audit event log
        self._t("measure", t)

    def _measure(self, day: int, cit: np.ndarray, beh: np.ndarray, seen: np.ndarray,
                 fcit: np.ndarray, fsen: np.ndarray, filed, applied, exp_cit, exp_mode, exp_amt,
                 model_day: bool, grades, lists, out, resp) -> None:  # type: ignore[no-untyped-def]
        p, st, m = self.plan, self.st, self.metrics
        kinds = self.kind_of[beh]
        _count_events(st.counters, cit, kinds, C["events"], C["infractions"], KINDS.index("infraction"),
                      C["speech"], KINDS.index("speech"))
        order = np.argsort(beh, kind="stable")
        bs = beh[order]
        cuts = np.searchsorted(bs, np.arange(p.n_beh + 1))
        for b in range(p.n_beh):
            m.count(day, f"events.{p.beh[b]}", cit[order[cuts[b]:cuts[b + 1]]])
        for s, name in enumerate(p.sensors):
            m.count(day, f"observed.{name}", cit[seen[:, s] == 1] if seen.shape[0] else cit[:0])
            m.count(day, f"false_observed.{name}", fcit[fsen == s])
        off = filed.official == 1
        m.count(day, "records.official_true", filed.cit[off & (filed.true == 1) & (filed.rtype < p.n_beh)])
        m.count(day, "records.official_false", filed.cit[off & (filed.true == 0)])
        m.count(day, "records.shadow", filed.cit[filed.shadow == 1])
        lost = applied[:, 0] < 0
        m.count(day, "points.lost", filed.cit[lost], -applied[lost, 0].astype(np.float64))
        for mode, name in ((0, "score_sum"), (1, "shadow_score_sum")):
            m.add_stock(name, filed.cit, applied[:, mode].astype(np.float64))
            sel = exp_mode == mode
            m.add_stock(name, exp_cit[sel], -exp_amt[sel])
        if model_day:
            m.set_stock_dense("model_score_sum", st.mscore[0].astype(np.float64))
            m.set_stock_dense("shadow_model_score_sum", st.mscore[1].astype(np.float64))
        gc, gm, gold, gnew = grades
        for mode, pre in ((0, "grade."), (1, "shadow_grade.")):
            sel = gm == mode
            for gi, g in enumerate(p.grades):
                m.add_stock(pre + g, gc[sel & (gold == gi)], -1.0)
                m.add_stock(pre + g, gc[sel & (gnew == gi)], 1.0)
        ec, em, el, ed, _es = lists
        for li, name in enumerate(p.lists):
            for mode, pre in ((0, ""), (1, "shadow_")):
                sel = (em == mode) & (el == li)
                m.count(day, f"{pre}entries.{name}", ec[sel & (ed == 1)])
                m.count(day, f"{pre}exits.{name}", ec[sel & (ed == -1)])
                m.add_stock(f"{pre}listed.{name}", ec[sel], ed[sel].astype(np.float64))
        ac, ab, den, rew = out["cit"], out["beh"], out["den"], out["rew"]
        for b in np.unique(ab) if ab.shape[0] else []:
            sel = ab == b
            name = p.beh[b]
            m.count(day, f"attempts.{name}", ac[sel])
            m.count(day, f"denied.{name}", ac[sel & (den[:, 0] == 1)])
            m.count(day, f"shadow_denied.{name}", ac[sel & (den[:, 1] == 1)])
            m.count(day, f"rewarded.{name}", ac[sel & (rew[:, 0] == 1)])
            m.count(day, f"wrongful.{name}", ac[sel & (den[:, 0] == 1) & (den[:, 1] == 0)])
            m.count(day, f"missed.{name}", ac[sel & (den[:, 0] == 0) & (den[:, 1] == 1)])
        d0 = den[:, 0] == 1
        m.count(day, "denied.cross_context_sum", ac[d0], np.nan_to_num(out["cross"][d0]))
        m.count(day, "denied.association_only", ac[out["assoc_only"] == 1])
        for q, who in resp["triggered"].items():
            m.count(day, f"response.{q}", who)
        m.add_total(day, "association_records", resp["assoc"])
        m.add_total(day, "ties_cut", resp["ties_cut"])
        m.close_day(day)

    def _trace(self, day: int, cit, beh, filed, applied, grades, lists, out) -> None:  # type: ignore[no-untyped-def]
        p, tr, st = self.plan, self.tracer, self.st
        if tr.ids.shape[0] == 0:
            return
        beh_names = np.array(p.beh, dtype=object)
        rnames = np.array(p.rtypes, dtype=object)
        k = tr.pick(cit)
        tr.add(day, cit[k], "event", beh_names[beh[k]], np.ones(k.shape[0]), "truth",
               np.ones(k.shape[0]))
        k = tr.pick(filed.cit)
        if k.shape[0]:
            view = np.where(filed.official[k] & filed.shadow[k], "both",
                            np.where(filed.official[k] == 1, "official", "shadow"))
            sens = np.array(p.sensors + ["(shadow)"], dtype=object)[np.where(filed.sensor[k] >= 0, filed.sensor[k], -1)]
            sens = np.where(filed.rtype[k] >= p.n_beh, "(association)", sens)
            tr.add(day, filed.cit[k], "record", rnames[filed.rtype[k]],
                   np.where(filed.official[k] == 1, applied[k, 0], applied[k, 1]), view, filed.true[k], sens)
        gc, gm, _go, gn = grades
        k = tr.pick(gc)
        if k.shape[0] and p.grades:
            tr.add(day, gc[k], "grade", np.array(p.grades, dtype=object)[gn[k]], gn[k].astype(np.float64),
                   np.where(gm[k] == 0, "official", "shadow"))
        ec, em, el, ed, _es = lists
        k = tr.pick(ec)
        if k.shape[0]:
            tr.add(day, ec[k], "list",
                   np.array(p.lists, dtype=object)[el[k]], ed[k].astype(np.float64),
                   np.where(em[k] == 0, "official", "shadow"))
        ac, ab, den, rew = out["cit"], out["beh"], out["den"], out["rew"]
        k = tr.pick(ac)
        if k.shape[0]:
            outcome = np.where(den[k, 0] == 1, -1.0, np.where(rew[k, 0] == 1, 1.0, 0.0))
            sh = np.where(den[k, 1] == 1, -1, np.where(rew[k, 1] == 1, 1, 0))
            tr.add(day, ac[k], "sanction", beh_names[ab[k]], outcome, "official", None,
                   np.array([p.sanctions[f] if f >= 0 else "" for f in out["first"][k]], dtype=object))
            tr.add(day, ac[k], "sanction", beh_names[ab[k]], sh.astype(np.float64), "shadow")
        ids = tr.ids
        tr.add(day, ids, "score", np.full(ids.shape[0], "points", dtype=object),
               st.score[0, ids].astype(np.float64), "official")
        tr.add(day, ids, "score", np.full(ids.shape[0], "points", dtype=object),
               st.score[1, ids].astype(np.float64), "shadow")
        if p.has_model:
            tr.add(day, ids, "score", np.full(ids.shape[0], "model", dtype=object),
                   st.mscore[0, ids].astype(np.float64), "official")
            tr.add(day, ids, "score", np.full(ids.shape[0], "model", dtype=object),
                   st.mscore[1, ids].astype(np.float64), "shadow")


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

    def citizens_table(self) -> pa.Table:
        p, st = self.plan, self.state
        cols: dict[str, pa.Array] = {"citizen": pa.array(np.arange(st.n, dtype=np.int64))}
        for d, dim in enumerate(p.dims):
            codes = st.groups[d].view(np.int8) if len(p.dim_values[d]) < 128 else st.groups[d].astype(np.int16)
            cols[dim] = pa.DictionaryArray.from_arrays(pa.array(codes),
                                                       pa.array(p.dim_values[d]))
        for t, name in enumerate(p.traits):
            cols[f"trait_{name}"] = pa.array(st.traits[t])
        cols["score"] = pa.array(st.score[0])
        cols["shadow_score"] = pa.array(st.score[1])
        if p.has_model:
            cols["model_score"] = pa.array(st.mscore[0])
            cols["shadow_model_score"] = pa.array(st.mscore[1])
        if p.grades:
            gd = pa.array(p.grades)
            cols["grade"] = pa.DictionaryArray.from_arrays(pa.array(st.grade[0]), gd)
            cols["shadow_grade"] = pa.DictionaryArray.from_arrays(pa.array(st.grade[1]), gd)
        for li, name in enumerate(p.lists):
            cols[f"on_{name}"] = pa.array(st.listed[0, li].astype(np.bool_))
            cols[f"shadow_on_{name}"] = pa.array(st.listed[1, li].astype(np.bool_))
        for c, name in enumerate(COUNTERS):
            cols[f"n_{name}"] = pa.array(st.counters[c])
        cols["traced"] = pa.array(self.tracer.mask)
        return pa.table(cols)


def trace_ids(plan: Plan, n: int, seed: int) -> np.ndarray:
    """The traced sample: the scenario's ids plus an evenly spread, seeded sample."""
    spec = plan.scen.run
    ids = [i for i in spec.trace_ids if i < n]
    k = min(spec.trace, n)
    if k:
        key = static_key(seed, "trace")
        # the k citizens with the smallest draw: first keep those below a generous cut-off
        cut = min(1.0, 4.0 * k / n + 1e-9)
        while True:
            cand, u = _below(key, n, cut)
            if cand.shape[0] >= k or cut >= 1.0:
                break
            cut = min(1.0, cut * 4)
        ids += cand[np.argsort(u, kind="stable")[:k]].tolist()
    return np.array(sorted(set(int(i) for i in ids)), dtype=np.int64)


@njit(cache=True)
def _below(key: np.uint64, n: int, cut: float) -> tuple[np.ndarray, np.ndarray]:
    cnt = 0
    for i in range(n):
        if uniform(key, np.uint64(i)) < cut:
            cnt += 1
    cand = np.empty(cnt, dtype=np.int64)
    u = np.empty(cnt)
    k = 0
    for i in range(n):
        v = uniform(key, np.uint64(i))
        if v < cut:
            cand[k] = i
            u[k] = v
            k += 1
    return cand, u


def prepare(scen: Scenario, *, population: int | None = None, days: int | None = None,
            seed: int | None = None, block: int = DEFAULT_BLOCK, threads: int | None = None) -> tuple[Loop, float]:
    """The loop before day 0 (population, graph, state, metrics, tracer) and the setup time in seconds.

    Split from :func:`simulate` so that :mod:`credsim.checkpoint` can rebuild a loop and
    overwrite its state from a checkpoint before running the remaining days.
    """
    n = population if population is not None else scen.population.size
    days = days if days is not None else scen.run.days
    seed = seed if seed is not None else scen.run.seed
    if threads is not None:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    plan = compile_plan(scen)
    t0 = time.perf_counter()
    pop = pop_mod.generate(plan, n, seed, block)
    g = graph_mod.build(plan, pop, seed)
    st = initial_state(plan, pop, g)
    score.recompute_model(plan, st, 0)
    if plan.grades:
        src = st.score if plan.grade_source == "points" else st.mscore
        st.grade[:] = classify_mod.grade_of(src.ravel(), plan.grade_mins).reshape(2, n)
        classify_mod.enter_start_grades(plan, st)  # lists entered by grade follow the starting grades
    metrics = Metrics(plan, st, days)
    metrics.init_stocks(st, plan.grades)
    tracer = Tracer(plan, n, trace_ids(plan, n, seed))
    setup = time.perf_counter() - t0
    return Loop(plan, st, seed, days, block, metrics, tracer), setup


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
    return Result(loop.plan, loop.st, loop.metrics, loop.tracer, timings, loop.days, loop.seed, loop.st.n,
                  events=loop.events)


def simulate(scen: Scenario, *, population: int | None = None, days: int | None = None,
             seed: int | None = None, block: int = DEFAULT_BLOCK, threads: int | None = None,
             on_day: Callable[[int, int], None] | None = None) -> Result:
    """Run the daily pipeline in memory and return the result (see :func:`credsim.run`)."""
    loop, setup = prepare(scen, population=population, days=days, seed=seed, block=block, threads=threads)
    run_days(loop, 0, on_day)
    return finish(loop, setup)
