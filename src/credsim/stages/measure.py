"""Stage 8, measure: daily aggregates by group, from sparse changes only.

Every group value of every dimension is a *slot* (``region=rural``, ``hukou=migrant``,
...), plus one slot ``all``. Each citizen also has a *cell*: the combination of all their
group values. Flows (events, records, denials) are added to the cells of the citizens
concerned and projected onto slots once a day (each cell adds to its slots: one pass over
the cells, no sparse matrix product); stocks (list sizes, grade counts, score sums) are kept
per cell from the same deltas, so measuring a day never touches the whole population.

The result is a long table ``(day, dimension, group, metric, value)``.

Sums are kept in **fixed point** (int64 units of ``1/SCALE``), not float64: integer
addition is associative, so the same citizens counted in any order, or split over any
number of shards and added up, give the same bits (``credsim.distributed`` relies on it).
Counts are exact; a weighted value (a score, a cross-context share) is rounded to
``1/SCALE`` once, per citizen, before it is summed.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from credsim import arrowcols
from credsim import names as nm
from credsim import population as pop_mod
from credsim.day import Day
from credsim.graph import is_cut
from credsim.names import KINDS
from credsim.plan import Plan
from credsim.prefetch import AHEAD, prefetch
from credsim.state import State

MAX_CELLS = 200_000
SCALE = 1 << 20  # fixed-point unit of every metric sum (see the module docstring)


def fixed(w: np.ndarray | float) -> np.ndarray:
    """Values in fixed point: ``round(w * SCALE)`` as int64."""
    return np.rint(np.asarray(w, dtype=np.float64) * SCALE).astype(np.int64)


@njit(cache=True)
def _bincount_fx(keys: np.ndarray, w: np.ndarray, size: int, unit: int) -> np.ndarray:
    """Exact int64 bincount; ``w`` empty means every key counts ``unit``."""
    out = np.zeros(size, dtype=np.int64)
    if w.shape[0] == 0:
        for k in range(keys.shape[0]):
            out[keys[k]] += unit
    else:
        for k in range(keys.shape[0]):
            out[keys[k]] += w[k]
    return out


_NO_W = np.zeros(0, dtype=np.int64)
DENSE_BLOCK = 1 << 20  # citizens per pass of a stock recomputed from a whole column (8 MB temporaries)


@njit(cache=True)
def _add_fx(out: np.ndarray, row: int, cell: np.ndarray, cit: np.ndarray, w: np.ndarray, unit: int) -> None:
    """``out[row, cell[cit[k]]] += w[k]`` (``unit`` when ``w`` is empty; every citizen in cell 0 when
    ``cell`` is empty), in place: a day's flows and stock deltas cost what its citizens cost, never a
    pass over all cells, and integer sums in any order give the same bits."""
    n = cit.shape[0]
    one = cell.shape[0] == 0
    for k in range(n):
        c = 0
        if not one:
            if k + AHEAD < n:
                prefetch(cell, cit[k + AHEAD])
            c = cell[cit[k]]
        out[row, c] += unit if w.shape[0] == 0 else w[k]


@njit(cache=True)
def _close_flows(cells: np.ndarray, rows: np.ndarray, cell_slots: np.ndarray, out: np.ndarray) -> None:
    """``out[r, s] += cells[r, c]`` for each slot ``s`` of each cell ``c`` of the flow rows counted today
    (``rows``), and those rows cleared for the next day. One pass over their cells: a day's fixed cost in a
    small run (an audit of 2,000 citizens over years of days) is this pass, which a sparse matrix product
    over every row paid several times over."""
    for j in range(rows.shape[0]):
        r = rows[j]
        for c in range(cells.shape[1]):
            v = cells[r, c]
            if v != 0:
                for k in range(cell_slots.shape[1]):
                    out[r, cell_slots[c, k]] += v
                cells[r, c] = 0


@njit(cache=True)
def _project_stocks(cells: np.ndarray, rows: np.ndarray, cell_slots: np.ndarray, out: np.ndarray) -> None:
    """``out[r] =`` the slot sums of stock row ``r``'s cells, for each ``r`` in ``rows`` (integer sums: the
    same bits in any order)."""
    for j in range(rows.shape[0]):
        r = rows[j]
        out[r, :] = 0
        for c in range(cells.shape[1]):
            v = cells[r, c]
            if v != 0:
                for k in range(cell_slots.shape[1]):
                    out[r, cell_slots[c, k]] += v


@njit(cache=True)
def _active_degree(indptr: np.ndarray, cut: np.ndarray, cit: np.ndarray, lo: int) -> np.ndarray:
    """Active ties of each citizen in ``cit`` (ties cut by a response no longer carry posts); rows held
    from citizen ``lo`` on."""
    out = np.zeros(cit.shape[0], dtype=np.int64)
    for j in range(cit.shape[0]):
        i = cit[j] - lo
        for e in range(indptr[i], indptr[i + 1]):
            out[j] += 1 - is_cut(cut, e)
    return out


@njit(cache=True)
def _group_by(key: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``argsort(key, kind="stable")`` and the cut of each value ``0..k-1`` (``searchsorted`` of the sorted
    keys), for keys in ``[0, k)``, by counting: linear in the rows, where a sort is not."""
    cuts = np.zeros(k + 1, dtype=np.int64)
    for j in range(key.shape[0]):
        cuts[key[j] + 1] += 1
    for b in range(k):
        cuts[b + 1] += cuts[b]
    fill = cuts[:k].copy()
    order = np.empty(key.shape[0], dtype=np.int64)
    for j in range(key.shape[0]):
        order[fill[key[j]]] = j
        fill[key[j]] += 1
    return order, cuts


class Metrics:
    """The daily table of a run (or of the citizens ``[lo, hi)`` of a shard), and the day's observer."""

    def __init__(self, plan: Plan, st: State, days: int, lo: int = 0, hi: int | None = None, seed: int = 0) -> None:
        self.plan = plan
        self.lo, self.hi = lo, st.n if hi is None else hi
        # a shard holds the groups of its own range only; a contact elsewhere counted here (a response
        # it starts) has its groups drawn again from its id with the run's ``seed``
        self.whole = (self.lo, self.hi) == (0, st.n)
        self.seed = seed
        self.groups = st.groups
        sizes = [len(v) for v in plan.dim_values]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.n_slots = int(sum(sizes)) + 1
        self.slot_dim = [d for d, k in zip(plan.dims, sizes, strict=True) for _ in range(k)] + ["all"]
        self.slot_group = [v for vals in plan.dim_values for v in vals] + ["all"]
        names: list[str] = [nm.POPULATION]
        names += [nm.EVENTS(b) for b in plan.beh]
        names += [nm.OBSERVED(s) for s in plan.sensors] + [nm.FALSE_OBSERVED(s) for s in plan.sensors]
        names += [nm.RECORDS_OFFICIAL_TRUE, nm.RECORDS_OFFICIAL_FALSE, nm.RECORDS_SHADOW, nm.POINTS_LOST]
        stocks = [nm.POPULATION, nm.SCORE_SUM, nm.SHADOW_SCORE_SUM]
        if plan.has_model:
            stocks += [nm.MODEL_SCORE_SUM, nm.SHADOW_MODEL_SCORE_SUM]
        for li in plan.lists:
            names += [nm.ENTRIES(li), nm.EXITS(li), nm.SHADOW_ENTRIES(li), nm.SHADOW_EXITS(li)]
            stocks += [nm.LISTED(li), nm.SHADOW_LISTED(li)]
        stocks += [nm.GRADE(g) for g in plan.grades] + [nm.SHADOW_GRADE(g) for g in plan.grades]
        attempts = [b for b, k in zip(plan.beh, plan.beh_kind, strict=True) if KINDS[k] == "attempt"]
        for b in attempts:
            names += [nm.ATTEMPTS(b), nm.DENIED(b), nm.REWARDED(b), nm.WRONGFUL(b), nm.MISSED(b),
                      nm.SHADOW_DENIED(b)]
        names += [nm.DENIED_CROSS_CONTEXT_SUM, nm.DENIED_ASSOCIATION_ONLY, nm.ASSOCIATION_RECORDS, nm.TIES_CUT]
        names += [nm.RESPONSE(q) for q in plan.responses]
        # reach is measured for the posts a censor watches (only speech: the scenario check says so)
        censors = plan.censors
        self.censored = [b for b in range(plan.n_beh) if (plan.sen_obs[censors, b]).any()] if censors.any() else []
        names += [f(plan.beh[b]) for b in self.censored for f in (nm.REACH, nm.REACH_LOST)]
        red = plan.scen.redress
        self.bodies: list[str] = list(red.appeals) if red is not None else []
        if red is not None:
            names += [nm.NOTICES(li) for li in plan.lists]
            names += [nm.exit_route(li, r) for li in plan.lists for r in nm.EXIT_ROUTES]
            for b in self.bodies:
                names += [nm.APPEALS_FILED(b), nm.APPEALS_DECIDED(b), nm.APPEALS_UPHELD(b),
                          nm.APPEALS_UPHELD_FALSE(b), nm.APPEALS_OVERDUE(b), nm.APPEAL_COST(b)]
            stocks += [nm.APPEAL_BACKLOG(b) for b in self.bodies]
        self.investigations = list(plan.scen.investigations)
        for q in self.investigations:
            names += [nm.INVESTIGATED(q), nm.INVESTIGATED_TRUE(q), nm.INVESTIGATION_FOUND(q), nm.INVESTIGATION_FALSE(q)]
        econ = plan.econ
        if econ is not None and econ.active:
            names += [nm.OUTCOMES(o) for o in econ.out_names] + [nm.MONEY(c) for c in econ.money]
            names += [nm.CLAWBACKS(k) for k in econ.claw_names]
        self.names = list(dict.fromkeys(names + stocks))
        self.idx = {n: i for i, n in enumerate(self.names)}
        self.stock_idx = np.array([self.idx[s] for s in stocks], dtype=np.int64)
        self.days = days
        M = len(self.names)
        self.table = np.zeros((days, M, self.n_slots), dtype=np.int64)  # fixed point
        # cells: mixed-radix code of all group values; cell_slots lists the slots each cell adds to
        radix = np.concatenate([[1], np.cumprod(sizes)[:-1]]).astype(np.int64)
        self.n_cells = int(np.prod([float(s) for s in sizes]))
        self.by_slot = self.n_cells > MAX_CELLS
        if self.by_slot:
            # too many combinations: count each dimension's slots directly (slower, same result)
            self.n_cells = self.n_slots
            self.cell = np.zeros(0, dtype=np.int32)
            self.cell_slots = np.arange(self.n_slots, dtype=np.int64)[:, None]
        else:
            # one cell (no group splits everyone): no per-citizen column to read at all; otherwise only
            # the range is written (a shard's other cells stay zero pages)
            self.cell = np.zeros(st.n if self.n_cells > 1 else 0, dtype=np.int32)
            self.radix = radix.astype(np.int32)
            own = self.cell[self.lo:self.hi]
            for d in range(len(sizes) if self.n_cells > 1 else 0):
                own += st.groups[d, self.lo:self.hi].astype(np.int32) * np.int32(radix[d])
            codes = (np.arange(self.n_cells)[:, None] // radix[None, :]) % np.array(sizes)[None, :]
            self.cell_slots = np.ascontiguousarray(np.hstack(
                [codes + self.offsets[None, :], np.full((self.n_cells, 1), self.n_slots - 1)]).astype(np.int64))
        self.flow_cells = np.zeros((M, self.n_cells), dtype=np.int64)
        self.live = np.zeros(M, dtype=np.bool_)  # the flow rows counted since the day was last closed
        self.stock_cells = np.zeros((M, self.n_cells), dtype=np.int64)  # projected onto slots each day

    def _groups_of(self, cit: np.ndarray) -> np.ndarray:
        """(D, len(cit)) group codes: held for the range, drawn again from the id for anyone else."""
        out = self.groups[:, cit]
        if self.whole:
            return out
        far = (cit < self.lo) | (cit >= self.hi)
        if far.any():
            out[:, far] = pop_mod.groups_at(self.plan, self.seed, cit[far])
        return out

    def _cells_of(self, cit: np.ndarray) -> np.ndarray:
        """Each citizen's cell: held for the range, from groups drawn again for anyone else."""
        out = self.cell[cit].astype(np.int64)
        if self.whole:
            return out
        far = (cit < self.lo) | (cit >= self.hi)
        if far.any():
            g = pop_mod.groups_at(self.plan, self.seed, cit[far]).astype(np.int64)
            out[far] = (g * self.radix[:, None].astype(np.int64)).sum(axis=0)
        return out

    def _bins(self, cit: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """Fixed-point sums per cell (or slot) of ``weights`` (None: counts)."""
        w = _NO_W if weights is None else fixed(weights)
        if not self.by_slot:
            out = np.zeros((1, self.n_cells), dtype=np.int64)
            self._add(out, 0, cit, w, SCALE)
            return out[0]
        s = self._groups_of(cit).astype(np.int64) + self.offsets[:, None]
        s = np.vstack([s, np.full((1, cit.shape[0]), self.n_slots - 1, dtype=np.int64)])
        w = w if weights is None else np.ascontiguousarray(np.broadcast_to(w, s.shape)).ravel()
        return _bincount_fx(s.ravel(), w, self.n_slots, SCALE)

    def count(self, day: int, name: str, cit: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add today's flow ``name`` for these citizens (in place, in proportion to them)."""
        if cit.shape[0] == 0:
            return
        row = self.idx[name]
        self.live[row] = True
        if self.by_slot:
            self.flow_cells[row] += self._bins(cit, weights)
            return
        self._add(self.flow_cells, row, cit, _NO_W if weights is None else fixed(weights), SCALE)

    def _add(self, out: np.ndarray, row: int, cit: np.ndarray, w: np.ndarray, unit: int) -> None:
        """``out[row, cell of cit[k]] += w[k]``: in place from the held cells, or, for a shard whose citizens
        include anyone outside its range, from cells drawn again for those."""
        if self.whole or self.n_cells == 1:
            _add_fx(out, row, self.cell, cit, w, unit)
            return
        cells = self._cells_of(cit).astype(np.int32)
        _add_fx(out, row, cells, np.arange(cit.shape[0], dtype=np.int64), w, unit)

    def add_stock(self, name: str, cit: np.ndarray, weights: np.ndarray | float = 1.0) -> None:
        if cit.shape[0] == 0:
            return
        if self.by_slot:
            w = np.broadcast_to(np.asarray(weights, dtype=np.float64), cit.shape)
            self.stock_cells[self.idx[name]] += self._bins(cit, w)
            return
        # a constant weight is one fixed-point unit for every citizen: no per-citizen array to build
        wa = np.asarray(weights, dtype=np.float64)
        if wa.ndim == 0:
            self._add(self.stock_cells, self.idx[name], cit, _NO_W, int(fixed(float(wa))))
        else:
            self._add(self.stock_cells, self.idx[name], cit, fixed(wa), SCALE)

    def set_stock_dense(self, name: str, values: np.ndarray) -> None:
        """Recompute a stock from a full per-citizen array, over this table's citizens (model-score days).

        ``DENSE_BLOCK`` citizens at a time: the sums are integers (the same bits in any order), and the
        temporaries (ids, float64 values, their fixed-point form) are one block's, not the range's
        (~32 B a citizen: 300 MB at 10^7)."""
        row = self.idx[name]
        self.stock_cells[row] = 0
        for a in range(self.lo, self.hi, DENSE_BLOCK):
            b = min(self.hi, a + DENSE_BLOCK)
            own = np.arange(a, b, dtype=np.int64)
            self.stock_cells[row] += self._bins(own, np.asarray(values[a:b], dtype=np.float64))

    def init_stocks(self, st: State, grades: list[str]) -> None:
        """Population, score sums, grade counts and list sizes at the start (one pass over this
        table's citizens). Every other stock starts at zero. Lists can be non-empty at the start
        when entered by grade (``classify.enter_start_grades``)."""
        lo, hi = self.lo, self.hi
        self.stock_cells[:] = 0
        everyone = np.arange(lo, hi, dtype=np.int64)
        pop = self._bins(everyone, None)
        self.stock_cells[self.idx[nm.POPULATION]] = pop
        for mode, name in ((0, nm.SCORE_SUM), (1, nm.SHADOW_SCORE_SUM)):
            s = st.score[mode, lo:hi]
            if hi > lo and s.min() == s.max():
                self.stock_cells[self.idx[name]] = (pop // SCALE) * fixed(float(s[0]))
            else:
                self.stock_cells[self.idx[name]] = self._bins(everyone, s.astype(np.float64))
        for mode, fam in ((0, nm.GRADE), (1, nm.SHADOW_GRADE)):
            g = st.grade[mode, lo:hi]
            if not grades:
                continue
            if hi > lo and g.min() == g.max():
                self.stock_cells[self.idx[fam(grades[int(g[0])])]] = pop
                continue
            for gi, gname in enumerate(grades):
                self.stock_cells[self.idx[fam(gname)]] = self._bins(lo + np.flatnonzero(g == gi), None)
        for li, lname in enumerate(self.plan.lists):
            for mode, lfam in ((0, nm.LISTED), (1, nm.SHADOW_LISTED)):
                on = np.flatnonzero(st.listed[mode, li, lo:hi])
                if on.shape[0]:
                    self.stock_cells[self.idx[lfam(lname)]] = self._bins(lo + on, None)

    def add_total(self, day: int, name: str, value: float) -> None:
        """A flow known only in total (the 'all' slot)."""
        self.table[day, self.idx[name], -1] += int(fixed(value))

    def close_day(self, day: int) -> None:
        live = np.flatnonzero(self.live)
        self.live[:] = False
        _close_flows(self.flow_cells, live, self.cell_slots, self.table[day])
        _project_stocks(self.stock_cells, self.stock_idx, self.cell_slots, self.table[day])

    def observe(self, st: State, d: Day) -> None:
        """Count the day: flows from today's sparse hand-offs, stocks from their deltas, then close it."""
        p, day = self.plan, d.day
        cit, beh = d.events.cit, d.events.beh
        order, cuts = _group_by(beh, p.n_beh)
        for b in range(p.n_beh):
            self.count(day, nm.EVENTS(p.beh[b]), cit[order[cuts[b]:cuts[b + 1]]])
        ob = d.observations
        for s, name in enumerate(p.sensors):
            self.count(day, nm.OBSERVED(name), cit[ob.seen[:, s] == 1] if ob.seen.shape[0] else cit[:0])
            self.count(day, nm.FALSE_OBSERVED(name), ob.false_cit[ob.false_sensor == s])
        if self.censored:
            self._reach(st, d, order, cuts)
        self._records(d)
        if d.model_day:
            self.set_stock_dense(nm.MODEL_SCORE_SUM, st.mscore[0])
            self.set_stock_dense(nm.SHADOW_MODEL_SCORE_SUM, st.mscore[1])
        self._statuses(d)
        self._attempts(d)
        for q, who in d.responses.triggered.items():
            self.count(day, nm.RESPONSE(q), who)
        self.add_total(day, nm.ASSOCIATION_RECORDS, d.responses.assoc)
        self.add_total(day, nm.TIES_CUT, d.responses.ties_cut)
        if d.redress is not None:
            self._redress(d)
        if d.money is not None:
            self._money(d)
        iv = d.investigated
        for k, q in enumerate(self.investigations):
            mine = iv.inv == k
            self.count(day, nm.INVESTIGATED(q), iv.cit[mine])
            self.count(day, nm.INVESTIGATED_TRUE(q), iv.cit[mine & (iv.has == 1)])
            self.count(day, nm.INVESTIGATION_FOUND(q), iv.cit[mine & (iv.found == 1) & (iv.has == 1)])
            self.count(day, nm.INVESTIGATION_FALSE(q), iv.cit[mine & (iv.found == 1) & (iv.has == 0)])
        self.close_day(day)

    def _reach(self, st: State, d: Day, order: np.ndarray, cuts: np.ndarray) -> None:
        """Contacts each post reached and lost: active ties of the poster, split by the censors that caught it.

        A post caught by censors with shares h_1..h_k is hidden from ``1 - prod(1 - h_j)`` of the
        poster's contacts; it makes no record (censors are never shared), only this loss of reach.
        """
        p, cit, seen = self.plan, d.events.cit, d.observations.seen
        g = st.graph
        for b in self.censored:
            sel = order[cuts[b]:cuts[b + 1]]
            if sel.shape[0] == 0:
                continue
            deg = _active_degree(g.indptr, g.cut, cit[sel], g.lo).astype(np.float64)
            kept = np.ones(sel.shape[0])
            if seen.shape[0]:
                for s in np.flatnonzero(p.sen_suppress > 0):
                    kept *= 1.0 - p.sen_suppress[s] * (seen[sel, s] == 1)
            self.count(d.day, nm.REACH(p.beh[b]), cit[sel], deg * kept)
            self.count(d.day, nm.REACH_LOST(p.beh[b]), cit[sel], deg * (1.0 - kept))

    def _records(self, d: Day) -> None:
        """Records filed, points lost, and the score sums following filing, expiry and retraction."""
        rec, applied, day = d.filed.records, d.filed.applied, d.day
        off = rec.official == 1
        self.count(day, nm.RECORDS_OFFICIAL_TRUE, rec.cit[off & (rec.true == 1) & (rec.rtype < self.plan.n_beh)])
        self.count(day, nm.RECORDS_OFFICIAL_FALSE, rec.cit[off & (rec.true == 0)])
        self.count(day, nm.RECORDS_SHADOW, rec.cit[rec.shadow == 1])
        lost = applied[:, 0] < 0
        self.count(day, nm.POINTS_LOST, rec.cit[lost], -applied[lost, 0].astype(np.float64))
        sc = d.score_changes
        for mode, name in ((0, nm.SCORE_SUM), (1, nm.SHADOW_SCORE_SUM)):
            self.add_stock(name, rec.cit, applied[:, mode].astype(np.float64))
            sel = sc.mode == mode
            self.add_stock(name, sc.cit[sel], sc.amount[sel])

    def _statuses(self, d: Day) -> None:
        """Grade counts and list sizes follow today's changes; entries and exits are flows."""
        p, day, g = self.plan, d.day, d.grades
        for mode, fam in ((0, nm.GRADE), (1, nm.SHADOW_GRADE)):
            sel = g.mode == mode
            for gi, gname in enumerate(p.grades):
                self.add_stock(fam(gname), g.cit[sel & (g.old == gi)], -1.0)
                self.add_stock(fam(gname), g.cit[sel & (g.new == gi)], 1.0)
        lc = d.lists
        for li, name in enumerate(p.lists):
            for mode, (ent, ext, lst) in ((0, (nm.ENTRIES, nm.EXITS, nm.LISTED)),
                                          (1, (nm.SHADOW_ENTRIES, nm.SHADOW_EXITS, nm.SHADOW_LISTED))):
                sel = (lc.mode == mode) & (lc.lst == li)
                self.count(day, ent(name), lc.cit[sel & (lc.direction == 1)])
                self.count(day, ext(name), lc.cit[sel & (lc.direction == -1)])
                self.add_stock(lst(name), lc.cit[sel], lc.direction[sel].astype(np.float64))

    def _attempts(self, d: Day) -> None:
        """Attempts, denials (both views), rewards, wrongful and missed denials by behaviour. The attempts are
        grouped by behaviour once (:func:`_group_by`, stable: each behaviour's in citizen order), so every count
        gets the citizens a selection of the whole day would give, without a pass over the day per behaviour."""
        p, day, a = self.plan, d.day, d.attempts
        ac, ab, den, rew = a.cit, a.beh, a.denied, a.rewarded
        if ab.shape[0]:
            order, cuts = _group_by(ab, p.n_beh)
            sc = ac[order]
            off, sha, got = den[order, 0] == 1, den[order, 1] == 1, rew[order, 0] == 1
            for b in range(p.n_beh):
                lo, hi = int(cuts[b]), int(cuts[b + 1])
                if lo == hi:  # counted only for the behaviours attempted today
                    continue
                name = p.beh[b]
                c, o, sh = sc[lo:hi], off[lo:hi], sha[lo:hi]
                self.count(day, nm.ATTEMPTS(name), c)
                self.count(day, nm.DENIED(name), c[o])
                self.count(day, nm.SHADOW_DENIED(name), c[sh])
                self.count(day, nm.REWARDED(name), c[got[lo:hi]])
                self.count(day, nm.WRONGFUL(name), c[o & ~sh])
                self.count(day, nm.MISSED(name), c[~o & sh])
        d0 = den[:, 0] == 1
        self.count(day, nm.DENIED_CROSS_CONTEXT_SUM, ac[d0], np.nan_to_num(a.cross[d0]))
        self.count(day, nm.DENIED_ASSOCIATION_ONLY, ac[a.assoc_only == 1])

    def _redress(self, d: Day) -> None:
        """Notices, objections filed and decided, the backlog per body, and official exits by route."""
        p, day, r = self.plan, d.day, d.redress
        assert r is not None
        for li, name in enumerate(p.lists):
            self.count(day, nm.NOTICES(name), r.notice_cit[r.notice_lst == li])
            for k, route in enumerate(nm.EXIT_ROUTES):
                self.count(day, nm.exit_route(name, route), r.exit_cit[(r.exit_lst == li) & (r.exit_route == k)])
        costs = p.scen.redress.appeals if p.scen.redress is not None else {}
        for b, body in enumerate(self.bodies):
            filed = r.filed_cit[r.filed_body == b]
            dec = r.decided_body == b
            self.count(day, nm.APPEALS_FILED(body), filed)
            self.count(day, nm.APPEAL_COST(body), filed, np.full(filed.shape[0], costs[body].cost))
            self.count(day, nm.APPEALS_DECIDED(body), r.decided_cit[dec])
            self.count(day, nm.APPEALS_UPHELD(body), r.decided_cit[dec & (r.decided_upheld == 1)])
            self.count(day, nm.APPEALS_UPHELD_FALSE(body),
                       r.decided_cit[dec & (r.decided_upheld == 1) & (r.decided_false == 1)])
            self.count(day, nm.APPEALS_OVERDUE(body), r.decided_cit[dec & (r.decided_overdue == 1)])
            self.add_stock(nm.APPEAL_BACKLOG(body), filed, 1.0)
            self.add_stock(nm.APPEAL_BACKLOG(body), r.decided_cit[dec], -1.0)

    def _money(self, d: Day) -> None:
        """Outcomes by attempt, money moved by column (signed amounts) and clawbacks by sanction."""
        econ, r, day = self.plan.econ, d.money, d.day
        assert econ is not None and r is not None
        for o, name in enumerate(econ.out_names):
            self.count(day, nm.OUTCOMES(name), r.out_cit[r.out_idx == o])
        for c, name in enumerate(econ.money):
            sel = r.move_col == c
            self.count(day, nm.MONEY(name), r.move_cit[sel], r.move_amount[sel])
        for k, name in enumerate(econ.claw_names):
            self.count(day, nm.CLAWBACKS(name), r.claw_cit[r.claw_san == k])

    def to_arrow(self, days: int | None = None) -> pa.Table:
        """``metrics.parquet``'s table, long form: a row for every day, metric and slot (zeros included)."""
        return self.rows(0, self.n_rows(days), days)

    def n_rows(self, days: int | None = None) -> int:
        """Rows of the long table of the first ``days`` days (default: every day)."""
        return (self.days if days is None else days) * len(self.names) * self.n_slots

    def rows(self, a: int, b: int, days: int | None = None) -> pa.Table:
        """Rows ``[a, b)`` of :meth:`to_arrow`'s table, built without the rest.

        Why: the long table repeats its day, metric and slot codes on every row, 24 B a row beside the 8 B
        value: for ``integrated`` 122 kB a day whatever the population, 446 MB for ten years, built at once
        while the run writes (its peak). A writer asks for a row group at a time instead
        (:func:`credsim.partitions.write_metrics`)."""
        M, S = len(self.names), self.n_slots
        r = np.arange(a, b, dtype=np.int64)
        day = (r // (M * S)).astype(np.int32)
        metric = ((r // S) % M).astype(np.int32)
        slot = r % S

        def dictionary(values: list[str]) -> tuple[np.ndarray, list[str]]:
            uniq = list(dict.fromkeys(values))
            return np.array([uniq.index(x) for x in values], dtype=np.int32), uniq

        dim_codes, dim_dict = dictionary(self.slot_dim)
        grp_codes, grp_dict = dictionary(self.slot_group)
        d = self.days if days is None else days
        return pa.table({
            "day": arrowcols.numeric(day),
            "dimension": arrowcols.dictionary(dim_codes[slot], dim_dict),
            "group": arrowcols.dictionary(grp_codes[slot], grp_dict),
            "metric": arrowcols.dictionary(metric, self.names),
            "value": arrowcols.numeric(self.table[:d].reshape(-1)[a:b] / SCALE),
        })
