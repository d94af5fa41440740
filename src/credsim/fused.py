"""The fused day: one kernel per execution block for scenarios of the points shape.

Why: for a scenario like the toy points model, a day at 10^7 citizens is ~30,000 events, and the
staged loop (behave -> observe -> file -> classify -> respond -> measure) visits each event's
citizen once per stage, builds the typed :class:`~credsim.day.Day` columns between stages and counts
the metrics from them afterwards. When none of the machinery that crosses citizens or days is in
use (:func:`obstacles` names it), everything that happens to a citizen today depends only on that
citizen, so one kernel can take each execution block from its events to its metric deltas:

    sample -> observe -> file -> regrade -> lists -> responses -> counters -> metric flows and stock deltas

Why the numbers are the same, bit for bit:

- Events are drawn by the sampler's own block function (:func:`credsim.sampling._sample_block`,
  inlined here): the same keys, counters, RNG chunks and order. Thinning reads the start-of-day
  ``resp_day``; a response triggered today is written after the citizen's events are drawn, as
  the staged ``respond`` writes it after every event is drawn.
- Everything after sampling is per citizen (no delays, caps, expiry within the run, cures, terms,
  graph, sanctions: see :func:`obstacles`), so doing citizen after citizen leaves each citizen's
  columns as stage after stage does. Within a citizen the order is the staged one: official
  records (in event order), then shadow-only records, then view 0 regraded before view 1.
  Float32 scores therefore see the same additions in the same order.
- Metric sums are fixed-point integers (:mod:`credsim.stages.measure`): per-block sums added in any
  order give the same bits as the staged counts.
- The ``Day`` parts observers read are rebuilt in the staged order: events (block segments in
  block order), grade changes (view 0, then view 1), list changes (per list: entries then exits,
  each view 0 then view 1), responses; observations and filed records only when an observer
  needs them (:attr:`FusedDay.parts`: the traced sample does; the event log and the metrics do not).

Blocks touch disjoint citizens, so they run in parallel as the sampler's do. A block whose events
overflow its buffer has drawn but changed nothing; it is drawn again, with room, serially.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from credsim import names as nm
from credsim import threads
from credsim.day import Day, Events, Filed, GradeChanges, ListChanges, Observations, Responses
from credsim.exchange import Exchange
from credsim.names import KINDS, TRIGGERS
from credsim.plan import Plan
from credsim.prefetch import prefetch, prefetch2, prefetch3
from credsim.rng import key_on_day, run_key, uniform
from credsim.sampling import Coverage, Hints, People, RateTables, Sampler, Today, _sample_block, code_bits
from credsim.stages.measure import SCALE, Metrics
from credsim.state import C, Records, State

MAX_ACCUMULATOR = 1 << 22  # int64 cells of the per-block metric accumulators (32 MB)
HINT_AHEAD = 6  # events between the prefetch of an event's lines and its use (about ten lines an event)


def obstacles(plan: Plan, days: int) -> list[str]:
    """Why the scenario's day cannot be fused (empty: it is points-shaped and can).

    Each condition is what makes a citizen's day depend on nothing but that citizen and today:
    no delay or expiry puts work on another day, no cap or window makes the order across days
    matter, no graph, sanction, money or appeal reaches other citizens or other stages' books."""
    why: list[str] = []

    def need(ok: bool, reason: str) -> None:
        if not ok:
            why.append(reason)

    scen, econ = plan.scen, plan.econ
    live = plan.rule_points != 0
    need(plan.has_points, "no points score")
    need(not plan.has_model and not plan.features, "a model score")
    need(not plan.grades or plan.grade_source == "points", "grades from a model score")
    need(plan.cap_period == 0, "a cap on points per period")
    need(not live.any() or int(plan.rule_expiry[live].min()) >= days, "points expire inside the run")
    need(not plan.entry_types.any(), "a list entered by a count of records")
    need(not plan.cure_types.any(), "a list left by a cure record")
    need(not (plan.exit_term > 0).any() and not plan.list_grounds, "a fixed list term or listing grounds")
    need(not (plan.assoc_points != 0).any(), "association records")
    need(not plan.resp_cut.any() and all(TRIGGERS[int(t)] == "own_listed" for t in plan.resp_trigger),
         "a response other than the citizen's own listing lowering its own rates")
    need(not (plan.sen_false > 0).any(), "false records")
    need(not (plan.sen_delay > 0).any(), "a sensor delay")
    need(not (plan.sen_suppress > 0).any(), "a censor")
    need(not plan.sanctions and not (plan.beh_kind == KINDS.index("attempt")).any(), "sanctions or attempts")
    need(not scen.investigations, "investigations")
    need(scen.redress is None, "redress")
    need(econ is None or (not econ.active and econ.n_cond == 0 and not econ.beh_has_state.any()),
         "money, outcomes or state-dependent rates")
    need(not plan.beh_schedule, "rate schedules")
    need(not (plan.beh_only_listed >= 0).any(), "a behaviour only listed citizens do")
    return why


def run_obstacles(plan: Plan, days: int, n: int, block: int, sharded: bool, metrics: Metrics) -> list[str]:
    """:func:`obstacles` plus what this run adds: one process (the exchange's barriers belong to the
    staged loop) and metric cells few enough for per-block accumulators."""
    why = obstacles(plan, days)
    if sharded:
        why.append("a sharded run")
    if metrics.by_slot:
        why.append("metrics counted by slot (too many group cells)")
    nb = (n + block - 1) // block
    if nb * 2 * len(metrics.names) * metrics.n_cells > MAX_ACCUMULATOR:
        why.append("too many metric cells for per-block accumulators")
    return why


def points_shaped(plan: Plan, days: int) -> bool:
    """Whether the scenario can take the fused day (see :func:`obstacles`)."""
    return not obstacles(plan, days)


class FusedRules(NamedTuple):
    """The scenario as the fused kernel takes it: kinds, sensors, points, grades, lists, responses, and the
    metric rows each count goes to."""

    n_beh: int
    beh_kind: np.ndarray  # (B,)
    k_inf: int
    k_speech: int
    counter_rows: np.ndarray  # events, infractions, speech, records_true, records_adverse, times_listed, days_listed
    cov_keys: np.ndarray  # (S,) sensors
    cov: np.ndarray
    cov_group: np.ndarray
    det: np.ndarray
    surv: np.ndarray
    obs: np.ndarray  # (S, B)
    shared: np.ndarray
    in_scope: np.ndarray  # (B,)
    rule_points: np.ndarray  # (R,)
    rtype_neg_row: np.ndarray  # (R,) row of neg_by_domain of each record type's domain (plan.neg_row)
    rtype_adverse: np.ndarray
    grade_mins: np.ndarray
    n_grades: int
    list_by_grade: np.ndarray  # (L,)
    entry_grades: np.ndarray  # (L, G)
    exit_on_recovery: np.ndarray  # (L,)
    resp_lists: np.ndarray  # (Q, L): own_listed responses started by an official entry on the list
    row_events: np.ndarray  # (B,) metric rows (flows unless named stock)
    row_observed: np.ndarray  # (S,)
    row_rec: np.ndarray  # records official true, records shadow, points lost; stocks score sum, shadow score sum
    row_grade: np.ndarray  # (2, G) stocks
    row_entries: np.ndarray  # (2, L) flows
    row_exits: np.ndarray  # (2, L) flows
    row_listed: np.ndarray  # (2, L) stocks
    row_response: np.ndarray  # (Q,) flows


class FusedColumns(NamedTuple):
    """The state columns the fused day changes, and the metrics' cell of each citizen (empty: one cell)."""

    counters: np.ndarray
    score: np.ndarray
    neg_by_domain: np.ndarray
    grade: np.ndarray
    listed: np.ndarray
    listed_since: np.ndarray
    resp_day: np.ndarray
    groups: np.ndarray
    cell: np.ndarray


class Slots(NamedTuple):
    """Per-block output slots: block j owns events ``[start, start + cap)``, grade rows ``2 x`` that and list
    rows ``2 L x`` that (each citizen changes grade at most once per view a day, and list at most once per view
    and list)."""

    buf: np.ndarray  # (E,) event codes citizen << code_bits(B) | behaviour, as the sampler writes them
    seen: np.ndarray  # (E, S) uint8
    filer: np.ndarray  # (E,) sensor filing the official record, or -1
    applied: np.ndarray  # (E, 2) float32 points applied per view
    grades: np.ndarray  # (4, 2E) cit, mode, old, new
    lists: np.ndarray  # (6, 2LE) cit, mode, list, direction, since, order key
    acc: np.ndarray  # (blocks, 2, M, cells) fixed-point flows (0) and stock deltas (1)


@njit(inline="always", cache=True)
def _fx(x: float) -> np.int64:
    """``measure.fixed`` of one value."""
    return np.int64(np.rint(x * SCALE))


@njit(cache=True)
def _apply(blk: int, start: int, k: int, gstart: int, lstart: int, day: int, det_keys: np.ndarray,
           rules: FusedRules, cols: FusedColumns, out: Slots) -> tuple[int, int]:
    """Observe, file, regrade, list, respond and count the block's ``k`` events (``out.buf[start:start + k]``,
    sorted by citizen); return the grade and list rows written.

    What the stages' helpers do (``covered``, ``group_factor``, ``_band``, filing a record) is written out
    here, with every array taken out of its tuple once: an inlined call that takes arrays, inside a loop
    with branches, keeps a reference count update per array per call, which cost more than the work."""
    B, beh_kind, k_inf, k_speech, cr = rules.n_beh, rules.beh_kind, rules.k_inf, rules.k_speech, rules.counter_rows
    cov_keys, cov, cov_group, det, surv = rules.cov_keys, rules.cov, rules.cov_group, rules.det, rules.surv
    obs, shared, in_scope = rules.obs, rules.shared, rules.in_scope
    rule_points, rtype_neg_row, rtype_adverse = rules.rule_points, rules.rtype_neg_row, rules.rtype_adverse
    mins, n_grades, by_grade = rules.grade_mins, rules.n_grades, rules.list_by_grade
    entry_grades, exit_on_recovery, resp_lists = rules.entry_grades, rules.exit_on_recovery, rules.resp_lists
    row_events, row_observed, row_rec, row_grade = rules.row_events, rules.row_observed, rules.row_rec, rules.row_grade
    row_entries, row_exits, row_listed = rules.row_entries, rules.row_exits, rules.row_listed
    row_response = rules.row_response
    counters, score, neg_by_domain, grade = cols.counters, cols.score, cols.neg_by_domain, cols.grade
    listed, listed_since, resp_day = cols.listed, cols.listed_since, cols.resp_day
    groups, cells = cols.groups, cols.cell
    buf, seen_out, filer_out, applied = out.buf, out.seen, out.filer, out.applied
    grades_out, lists_out = out.grades, out.lists
    acc = out.acc[blk]
    S, L, Q, D, G1 = obs.shape[0], listed.shape[1], resp_lists.shape[0], groups.shape[0], mins.shape[0]
    c_events, c_inf, c_speech, c_true, c_adverse, c_times, c_days = cr[0], cr[1], cr[2], cr[3], cr[4], cr[5], cr[6]
    r_off_true, r_shadow, r_lost, r_sum0, r_sum1 = row_rec[0], row_rec[1], row_rec[2], row_rec[3], row_rec[4]
    has_neg = neg_by_domain.shape[0] > 0
    one_cell = cells.shape[0] == 0
    sb = code_bits(B)  # an event's code: citizen << sb | behaviour
    bmask = (1 << sb) - 1
    ng = 0
    nl = 0
    end = start + k
    hinted = start
    j = start
    while j < end:
        i = buf[j] >> sb
        j1 = j + 1
        while j1 < end and buf[j1] >> sb == i:
            j1 += 1
        while hinted < min(j1 + HINT_AHEAD, end):  # the lines each event's day touches, a few events ahead
            ih, bh = buf[hinted] >> sb, buf[hinted] & bmask
            prefetch2(counters, c_events, ih)
            if beh_kind[bh] == k_inf:
                prefetch2(counters, c_inf, ih)
            prefetch2(counters, c_true, ih)
            if rtype_adverse[bh]:
                prefetch2(counters, c_adverse, ih)
                if has_neg:
                    prefetch2(neg_by_domain, rtype_neg_row[bh], ih)
            prefetch2(score, 0, ih)
            prefetch2(score, 1, ih)
            prefetch2(grade, 0, ih)
            prefetch2(grade, 1, ih)
            for li in range(L):
                prefetch3(listed, 0, li, ih)
                prefetch3(listed, 1, li, ih)
            if not one_cell:
                prefetch(cells, ih)
            hinted += 1
        cell = 0 if one_cell else cells[i]
        nrec = 0
        for e in range(j, j1):  # behave's counters, observe (covered, then detected)
            b = buf[e] & bmask
            counters[c_events, i] += 1
            if beh_kind[b] == k_inf:
                counters[c_inf, i] += 1
            elif beh_kind[b] == k_speech:
                counters[c_speech, i] += 1
            acc[0, row_events[b], cell] += SCALE
            filer = -1
            for s in range(S):
                seen = 0
                if obs[s, b]:
                    fc = 1.0
                    for d in range(D):
                        fc *= cov_group[s, d, groups[d, i]]
                    if uniform(cov_keys[s], np.uint64(i)) < min(1.0, cov[s] * fc):
                        fs = 1.0
                        for d in range(D):
                            fs *= surv[s, d, groups[d, i]]
                        if uniform(det_keys[s, b], np.uint64(i)) < min(1.0, det[s] * fs):
                            seen = 1
                            acc[0, row_observed[s], cell] += SCALE
                            if shared[s] and filer < 0:
                                filer = s
                seen_out[e, s] = seen
            filer_out[e] = filer
            applied[e, 0] = 0.0
            applied[e, 1] = 0.0
            if filer >= 0 or in_scope[b]:
                nrec += 1
        # file: official records first (the observe stage queues them first), then shadow-only ones
        for rnd in range(2):
            for e in range(j, j1):
                t = buf[e] & bmask
                official = filer_out[e] >= 0
                if official != (rnd == 0) or not (official or in_scope[t]):
                    continue
                if official:
                    if t < B:
                        counters[c_true, i] += 1
                        if rtype_adverse[t]:
                            counters[c_adverse, i] += 1
                    acc[0, r_off_true, cell] += SCALE
                acc[0, r_shadow, cell] += SCALE
                pts = rule_points[t]
                if pts != 0.0:
                    for m in range(0 if official else 1, 2):
                        a = pts
                        score[m, i] += a
                        applied[e, m] = a
                        if m == 0 and a < 0 and has_neg:
                            neg_by_domain[rtype_neg_row[t], i] += -a
                a0 = np.float64(applied[e, 0])
                if a0 < 0:
                    acc[0, r_lost, cell] += _fx(-a0)
                acc[1, r_sum0, cell] += _fx(a0)
                acc[1, r_sum1, cell] += _fx(np.float64(applied[e, 1]))
        j = j1
        if nrec == 0 or n_grades == 0:
            continue
        new0 = -1  # regrade: view 0, then view 1 (classify's _band)
        new1 = -1
        for m in range(2):
            x = np.float64(score[m, i])
            g = G1
            if x == x:
                g = 0
                for q in range(G1):
                    if mins[q] > x:
                        g += 1
            old = grade[m, i]
            if g == old:
                continue
            grade[m, i] = g
            gs = gstart + ng
            grades_out[0, gs] = i
            grades_out[1, gs] = m
            grades_out[2, gs] = old
            grades_out[3, gs] = g
            ng += 1
            acc[1, row_grade[m, old], cell] -= SCALE
            acc[1, row_grade[m, g], cell] += SCALE
            if m == 0:
                new0 = g
            else:
                new1 = g
        for li in range(L):  # lists entered by grade: entries, then exits on recovery
            if not by_grade[li]:
                continue
            for m in range(2):
                new = new0 if m == 0 else new1
                if new < 0:
                    continue
                into = entry_grades[li, new]
                if into and listed[m, li, i] == 0:
                    listed[m, li, i] = 1
                    listed_since[m, li, i] = day
                    since = day
                    direction = 1
                    acc[0, row_entries[m, li], cell] += SCALE
                    acc[1, row_listed[m, li], cell] += SCALE
                    if m == 0:
                        counters[c_times, i] += 1
                        for q in range(Q):  # respond: own listing
                            if resp_lists[q, li]:
                                resp_day[q, i] = day + 1  # the day plus 1 (state.resp_day)
                                acc[0, row_response[q], cell] += SCALE
                elif not into and exit_on_recovery[li] and listed[m, li, i] == 1:
                    listed[m, li, i] = 0
                    since = int(listed_since[m, li, i])
                    direction = -1
                    acc[0, row_exits[m, li], cell] += SCALE
                    acc[1, row_listed[m, li], cell] -= SCALE
                    if m == 0:
                        counters[c_days, i] += day - since
                else:
                    continue
                ls = lstart + nl
                lists_out[0, ls] = i
                lists_out[1, ls] = m
                lists_out[2, ls] = li
                lists_out[3, ls] = direction
                lists_out[4, ls] = since
                lists_out[5, ls] = li * 4 + (0 if into else 2) + m
                nl += 1
    return ng, nl


@njit(inline="always", cache=True)
def _day_block(j: int, blocks: np.ndarray, starts: np.ndarray, caps: np.ndarray, counts: np.ndarray, n: int,
               block: int, day: int, rates: RateTables, people: People, today: Today, coverage: Coverage,
               hints: Hints, det_keys: np.ndarray, rules: FusedRules, cols: FusedColumns, out: Slots) -> None:
    """Block ``blocks[j]``'s whole day; ``counts[j]`` = (events, grade rows, list rows). A block whose events
    do not fit its slot changes nothing (it is drawn again with room); its metric rows ``out.acc[blk]`` start at
    zero."""
    blk = blocks[j]
    L = max(cols.listed.shape[1], 1)
    k = _sample_block(blk, starts[j], caps[j], out.buf, n, block, day, rates, people, today, coverage, hints)
    counts[j, 0] = k
    counts[j, 1] = 0
    counts[j, 2] = 0
    if k > caps[j]:
        return
    ng, nl = _apply(blk, starts[j], k, 2 * starts[j], 2 * L * starts[j], day, det_keys, rules, cols, out)
    counts[j, 1] = ng
    counts[j, 2] = nl


@njit(cache=True)
def _day_serial(blocks: np.ndarray, starts: np.ndarray, caps: np.ndarray, counts: np.ndarray, n: int, block: int,
                day: int, rates: RateTables, people: People, today: Today, coverage: Coverage, hints: Hints,
                det_keys: np.ndarray, rules: FusedRules, cols: FusedColumns, out: Slots) -> None:
    for j in range(blocks.shape[0]):
        _day_block(j, blocks, starts, caps, counts, n, block, day, rates, people, today, coverage, hints, det_keys,
                   rules, cols, out)


@njit(parallel=True, cache=True)
def _day_parallel(blocks: np.ndarray, starts: np.ndarray, caps: np.ndarray, counts: np.ndarray, n: int, block: int,
                  day: int, rates: RateTables, people: People, today: Today, coverage: Coverage, hints: Hints,
                  det_keys: np.ndarray, rules: FusedRules, cols: FusedColumns, out: Slots) -> None:
    for j in prange(blocks.shape[0]):
        _day_block(j, blocks, starts, caps, counts, n, block, day, rates, people, today, coverage, hints, det_keys,
                   rules, cols, out)


@njit(cache=True)
def _gather(which: np.ndarray, starts: np.ndarray, counts: np.ndarray, B: int, lw: int, out: Slots, spare: Slots,
            flows: np.ndarray, stocks: np.ndarray, parts: bool):  # type: ignore[no-untyped-def]
    """The blocks' rows, in block order, from their slots (``which``: 0 the day's slots, 1 the slots of blocks
    drawn again): events as (citizen, behaviour); grade rows ordered by view and list rows by (list, entry
    or exit, view), stably (so citizens stay in order within each); observations, filing sensors and points
    applied when ``parts``. Adds the blocks' metric rows to ``flows`` and ``stocks``. One pass, in place of
    a concatenation and a sort per part and block."""
    nb = counts.shape[0]
    E, NG, NL = counts[:, 0].sum(), counts[:, 1].sum(), counts[:, 2].sum()
    S = out.seen.shape[1]
    sb = code_bits(B)  # an event's code: citizen << sb | behaviour
    bmask = (1 << sb) - 1
    cit = np.empty(E, np.int64)
    beh = np.empty(E, np.int64)
    seen = np.empty((E if parts else 0, S), np.uint8)
    filer = np.empty(E if parts else 0, np.int64)
    applied = np.empty((E if parts else 0, 2), np.float32)
    grades = np.empty((4, NG), np.int64)
    lists = np.empty((5, NL), np.int64)
    n_gkey = 2
    n_lkey = 2 * lw
    gcut = np.zeros(n_gkey + 1, np.int64)
    lcut = np.zeros(n_lkey + 1, np.int64)
    for b in range(nb):
        o = out if which[b] == 0 else spare
        s0 = starts[b]
        for r in range(counts[b, 1]):
            gcut[o.grades[1, 2 * s0 + r] + 1] += 1
        for r in range(counts[b, 2]):
            lcut[o.lists[5, lw * s0 + r] + 1] += 1
    for q in range(n_gkey):
        gcut[q + 1] += gcut[q]
    for q in range(n_lkey):
        lcut[q + 1] += lcut[q]
    e = 0
    for b in range(nb):
        o = out if which[b] == 0 else spare
        s0 = starts[b]
        for r in range(counts[b, 0]):
            code = o.buf[s0 + r]
            cit[e] = code >> sb
            beh[e] = code & bmask
            if parts:
                for s in range(S):
                    seen[e, s] = o.seen[s0 + r, s]
                filer[e] = o.filer[s0 + r]
                applied[e, 0] = o.applied[s0 + r, 0]
                applied[e, 1] = o.applied[s0 + r, 1]
            e += 1
        for r in range(counts[b, 1]):
            src = 2 * s0 + r
            dst = gcut[o.grades[1, src]]
            gcut[o.grades[1, src]] += 1
            for f in range(4):
                grades[f, dst] = o.grades[f, src]
        for r in range(counts[b, 2]):
            src = lw * s0 + r
            dst = lcut[o.lists[5, src]]
            lcut[o.lists[5, src]] += 1
            for f in range(5):
                lists[f, dst] = o.lists[f, src]
    acc = out.acc
    for b in range(acc.shape[0]):
        for m in range(acc.shape[2]):
            for c in range(acc.shape[3]):
                flows[m, c] += acc[b, 0, m, c]
                stocks[m, c] += acc[b, 1, m, c]
    return cit, beh, seen, filer, applied, grades, lists


def _slots(caps: np.ndarray, S: int, L: int, acc: np.ndarray) -> tuple[Slots, np.ndarray]:
    """Output slots for blocks of these event capacities, and each block's start."""
    starts = np.concatenate([[0], np.cumsum(caps)[:-1]]).astype(np.int64)
    E = int(caps.sum())
    return Slots(np.empty(E, np.int64), np.empty((E, max(S, 1)), np.uint8), np.empty(E, np.int64),
                 np.empty((E, 2), np.float32), np.empty((4, 2 * E), np.int64),
                 np.empty((6, 2 * max(L, 1) * E), np.int64), acc), starts


class FusedDay:
    """The day of a points-shaped scenario in one kernel (see the module docstring); a stage in form."""

    name: str = "fused"
    reads: tuple[str, ...] = ("state.groups", "state.traits", "state.listed", "state.resp_day", "state.score",
                              "state.grade")
    writes: tuple[str, ...] = ("day.events", "day.grades", "day.lists", "day.responses", "state.counters",
                               "state.score", "state.neg_by_domain", "state.grade", "state.listed",
                               "state.listed_since", "state.resp_day", "metrics")

    def __init__(self, plan: Plan, seed: int, block: int, sampler: Sampler, cov_keys: np.ndarray, metrics: Metrics,
                 parts: bool) -> None:
        self.plan, self.seed, self.block, self.sampler, self.metrics = plan, seed, block, sampler, metrics
        self.parts = parts  # also hand over observations and filed records (an observer reads them)
        p, idx = plan, metrics.idx
        S, L, Q, G = len(p.sensors), len(p.lists), len(p.responses), len(p.grades)
        D = len(p.dims)
        self.S = S
        self.cov = Coverage(np.zeros(max(S, 1), np.uint64), np.zeros(max(S, 1)), np.ones((max(S, 1), D, p.maxv)))
        self.rules = FusedRules(
            p.n_beh, p.beh_kind, KINDS.index("infraction"), KINDS.index("speech"),
            np.array([C[k] for k in ("events", "infractions", "speech", "records_true", "records_adverse",
                                     "times_listed", "days_listed")], np.int64),
            cov_keys, p.sen_cov, p.sen_cov_group, p.sen_det, p.sen_surv, p.sen_obs, p.sen_shared, p.beh_in_scope,
            p.rule_points, p.rtype_neg_row, p.rtype_adverse, p.grade_mins, G,
            p.list_by_grade if L else np.zeros(1, np.bool_),
            p.entry_grades, p.exit_on_recovery if L else np.zeros(1, np.bool_),
            np.array([[TRIGGERS[int(p.resp_trigger[q])] == "own_listed" and p.resp_lists[q, li]
                       for li in range(L)] for q in range(Q)], np.bool_).reshape(Q, L),
            np.array([idx[nm.EVENTS(b)] for b in p.beh], np.int64),
            np.array([idx[nm.OBSERVED(s)] for s in p.sensors], np.int64),
            np.array([idx[k] for k in (nm.RECORDS_OFFICIAL_TRUE, nm.RECORDS_SHADOW, nm.POINTS_LOST, nm.SCORE_SUM,
                                       nm.SHADOW_SCORE_SUM)], np.int64),
            np.array([[idx[f(g)] for g in p.grades] for f in (nm.GRADE, nm.SHADOW_GRADE)], np.int64).reshape(2, G),
            np.array([[idx[f(li)] for li in p.lists] for f in (nm.ENTRIES, nm.SHADOW_ENTRIES)], np.int64).reshape(2, L),
            np.array([[idx[f(li)] for li in p.lists] for f in (nm.EXITS, nm.SHADOW_EXITS)], np.int64).reshape(2, L),
            np.array([[idx[f(li)] for li in p.lists] for f in (nm.LISTED, nm.SHADOW_LISTED)], np.int64).reshape(2, L),
            np.array([idx[nm.RESPONSE(q)] for q in p.responses], np.int64),
        )
        self._run_keys: dict[str, list[int]] = {}
        self.hint_rows = np.array([C[k] for k in ("events", "infractions", "records_true", "records_adverse")],
                                  np.int64)
        exp = sampler.expected_per_block(block)
        self.caps = (exp + 8 * np.sqrt(exp) + 64).astype(np.int64)
        nb = self.caps.shape[0]
        self.blocks = np.arange(nb, dtype=np.int64)
        self.acc = np.zeros((nb, 2, len(metrics.names), metrics.n_cells), np.int64)
        self.out, self.starts = _slots(self.caps, S, L, self.acc)
        self.counts = np.zeros((nb, 3), np.int64)
        # a candidate draw is a unit of work (threads.parallel_for); observing, filing and counting an event
        # cost a few more
        self.work = 4.0 * float(exp.sum()) + sampler.ubc.shape[0] * len(sampler.st)
        self.choice = threads.Choice(self.work)  # serial or parallel: measured, day by day

    def _keys(self, st: State, day: int) -> tuple[Today, np.ndarray]:
        """Today's keys: the behaviours' candidate and thinning streams (as :class:`Behave` draws them) and the
        sensors' detection streams (as :class:`Observer` does), from run keys kept since the first day."""
        p = self.plan
        if not self._run_keys:
            names = self.sampler.st.names
            self._run_keys = {"cand": [run_key(self.seed, f"behave:cand:{b}") for b in names],
                              "thin": [run_key(self.seed, f"behave:{b}") for b in names],
                              "detect": [run_key(self.seed, f"detect:{p.sensors[s]}:{p.beh[b]}") if p.sen_obs[s, b]
                                         else -1 for s in range(self.S) for b in range(p.n_beh)]}
        rk = self._run_keys
        cand = np.array([key_on_day(k, day) for k in rk["cand"]], dtype=np.uint64)
        thin = np.array([key_on_day(k, day) for k in rk["thin"]], dtype=np.uint64)
        det = np.zeros((max(self.S, 1), max(p.n_beh, 1)), dtype=np.uint64)
        for j, k in enumerate(rk["detect"]):
            if k >= 0:
                det[j // p.n_beh, j % p.n_beh] = key_on_day(k, day)
        return Today(cand, thin, self._listed_off(st), st.resp_day, p.resp_size, p.resp_half), det

    @staticmethod
    def _listed_off(st: State) -> np.ndarray:
        return st.listed[0] if st.listed.shape[1] else np.zeros((1, 1), dtype=np.uint8)

    def run(self, st: State, d: Day, x: Exchange) -> None:
        """Run the day; add its metric counts to the metrics; fill the Day parts observers read."""
        day, p = d.day, self.plan
        if p.n_beh == 0 or st.n == 0:
            return
        # the columns are read from the state and the metrics every day, never kept: a checkpoint restores
        # them (in place, or not), and this object holds nothing a checkpoint needs (it is not saved)
        today, det = self._keys(st, day)
        m, smp = self.metrics, self.sampler
        cols = FusedColumns(st.counters, st.score, st.neg_by_domain, st.grade, st.listed, st.listed_since,
                            st.resp_day, st.groups, m.cell)
        # what the day touches at each event beyond what sampling reads: prefetched with each candidate
        hints = Hints(st.counters, self.hint_rows, st.score, st.grade, st.listed)
        rates = RateTables(smp.ubc, smp.lg, smp.st.base, smp.st.group, smp.st.beta, smp.st.only_listed,
                           smp.st.applies, smp.st.cover_sensor)
        self.acc.fill(0)  # (zeroing a block's rows inside the parallel kernel was not reliable under numba's parfors)
        args = (st.n, self.block, day, rates, People(st.groups, st.traits), today, self.cov, hints, det, self.rules,
                cols)
        par = self.choice.parallel()
        t0 = time.perf_counter()
        if par:
            with numba.parallel_chunksize(1):  # as the sampler: a descheduled worker holds up one block
                _day_parallel(self.blocks, self.starts, self.caps, self.counts, *args, self.out)
        else:
            _day_serial(self.blocks, self.starts, self.caps, self.counts, *args, self.out)
        self.choice.record(par, time.perf_counter() - t0)
        which = np.zeros(self.blocks.shape[0], np.int64)
        starts, counts, spare = self.starts, self.counts, self.out
        over = np.flatnonzero(self.counts[:, 0] > self.caps)
        if over.shape[0]:  # rare: draw those blocks again, serially, with room for every event
            caps2 = self.counts[over, 0].copy()
            spare, starts2 = _slots(caps2, self.S, len(p.lists), self.acc)
            counts2 = np.zeros((over.shape[0], 3), np.int64)
            _day_serial(over.astype(np.int64), starts2, caps2, counts2, *args, spare)
            which[over] = 1
            starts, counts = starts.copy(), counts.copy()
            starts[over], counts[over] = starts2, counts2
        cit, beh, seen, filer, applied, g, lc = _gather(which, starts, counts, p.n_beh, 2 * max(len(p.lists), 1),
                                                        self.out, spare, m.flow_cells, m.stock_cells, self.parts)
        self._hand_over(d, cit, beh, seen, filer, applied, g, lc)

    def _hand_over(self, d: Day, cit: np.ndarray, beh: np.ndarray, seen: np.ndarray, filer: np.ndarray,
                   applied: np.ndarray, g: np.ndarray, lc: np.ndarray) -> None:
        """The Day parts in the staged loop's order (see the module docstring), from the gathered rows."""
        p = self.plan
        d.events = Events(cit, beh)
        if g.shape[1]:
            d.grades = GradeChanges(g[0], g[1], g[2], g[3])
        if lc.shape[1]:
            d.lists = ListChanges(lc[0], lc[1], lc[2], lc[3], lc[4])
        out = Responses()
        ecit, emode, elist, edir = d.lists.cit, d.lists.mode, d.lists.lst, d.lists.direction
        for q, name in enumerate(p.responses):
            sel = (emode == 0) & (edir == 1) & p.resp_lists[q, elist] if ecit.shape[0] else np.zeros(0, np.bool_)
            out.triggered[name] = ecit[sel]
        d.responses = out
        if not self.parts:
            return
        d.observations = Observations(seen[:, :self.S], np.zeros(0, np.int64), np.zeros(0, np.int64))
        off = np.flatnonzero(filer >= 0)
        sh = np.flatnonzero((filer < 0) & p.beh_in_scope[beh])
        order = np.concatenate([off, sh])
        k0, k1 = off.shape[0], sh.shape[0]
        one = np.ones(k0 + k1, np.uint8)
        official = np.concatenate([np.ones(k0, np.uint8), np.zeros(k1, np.uint8)])
        rec = Records(cit[order], beh[order], np.concatenate([filer[off], np.full(k1, -1, np.int64)]),
                      np.full(k0 + k1, d.day, np.int64), official, one, one.copy())
        d.filed = Filed(rec, applied[order])


class CountedDay:
    """The metrics observer of a fused day: the kernel has added the day's flows and stock deltas, so the day
    is only closed (projected onto the group slots), as :meth:`Metrics.observe` closes it."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def observe(self, st: State, d: Day) -> None:
        # the kernel added to flow rows the metrics table did not see counted: every row is closed
        self.metrics.live[:] = True
        self.metrics.close_day(d.day)

