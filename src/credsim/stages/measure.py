"""Stage 8, measure: daily aggregates by group, from sparse changes only.

Every group value of every dimension is a *slot* (``region=rural``, ``hukou=migrant``,
...), plus one slot ``all``. Each citizen also has a *cell*: the combination of all their
group values. Flows (events, records, denials) are counted with one ``bincount`` over the
cells of the citizens concerned and projected onto slots once a day by a fixed sparse
matrix; stocks (list sizes, grade counts, score sums) are kept per cell from the same
deltas, so measuring a day never touches the whole population.

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
import scipy.sparse as sp
from numba import njit

from credsim.plan import KINDS, Plan
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


class Metrics:
    def __init__(self, plan: Plan, st: State, days: int) -> None:
        self.plan = plan
        self.groups = st.groups
        sizes = [len(v) for v in plan.dim_values]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.n_slots = int(sum(sizes)) + 1
        self.slot_dim = [d for d, k in zip(plan.dims, sizes, strict=True) for _ in range(k)] + ["all"]
        self.slot_group = [v for vals in plan.dim_values for v in vals] + ["all"]
        names: list[str] = ["population"]
        names += [f"events.{b}" for b in plan.beh]
        names += [f"observed.{s}" for s in plan.sensors] + [f"false_observed.{s}" for s in plan.sensors]
        names += ["records.official_true", "records.official_false", "records.shadow", "points.lost"]
        stocks = ["population", "score_sum", "shadow_score_sum"]
        if plan.has_model:
            stocks += ["model_score_sum", "shadow_model_score_sum"]
        for li in plan.lists:
            names += [f"entries.{li}", f"exits.{li}", f"shadow_entries.{li}", f"shadow_exits.{li}"]
            stocks += [f"listed.{li}", f"shadow_listed.{li}"]
        stocks += [f"grade.{g}" for g in plan.grades] + [f"shadow_grade.{g}" for g in plan.grades]
        attempts = [b for b, k in zip(plan.beh, plan.beh_kind, strict=True) if KINDS[k] == "attempt"]
        for b in attempts:
            names += [f"attempts.{b}", f"denied.{b}", f"rewarded.{b}", f"wrongful.{b}", f"missed.{b}",
                      f"shadow_denied.{b}"]
        names += ["denied.cross_context_sum", "denied.association_only", "association_records",
                  "ties_cut"]
        names += [f"response.{q}" for q in plan.responses]
        self.names = list(dict.fromkeys(names + stocks))
        self.idx = {n: i for i, n in enumerate(self.names)}
        self.stock_idx = np.array([self.idx[s] for s in stocks], dtype=np.int64)
        self.days = days
        M = len(self.names)
        self.table = np.zeros((days, M, self.n_slots), dtype=np.int64)  # fixed point
        # cells: mixed-radix code of all group values; P maps cells to slots
        radix = np.concatenate([[1], np.cumprod(sizes)[:-1]]).astype(np.int64)
        self.n_cells = int(np.prod([float(s) for s in sizes]))
        self.by_slot = self.n_cells > MAX_CELLS
        if self.by_slot:
            # too many combinations: count each dimension's slots directly (slower, same result)
            self.n_cells = self.n_slots
            self.cell = np.zeros(0, dtype=np.int32)
            self.P = sp.identity(self.n_slots, format="csr", dtype=np.int64)
        else:
            self.cell = np.zeros(st.n, dtype=np.int32)
            for d in range(len(sizes)):
                self.cell += st.groups[d].astype(np.int32) * np.int32(radix[d])
            codes = (np.arange(self.n_cells)[:, None] // radix[None, :]) % np.array(sizes)[None, :]
            rows = np.hstack([codes + self.offsets[None, :], np.full((self.n_cells, 1), self.n_slots - 1)])
            cols = np.repeat(np.arange(self.n_cells), rows.shape[1])
            self.P = sp.csr_matrix((np.ones(rows.size, dtype=np.int64), (rows.ravel(), cols)),
                                   shape=(self.n_slots, self.n_cells))
        self.flow_cells = np.zeros((M, self.n_cells), dtype=np.int64)
        self._pending: list[tuple[int, np.ndarray, np.ndarray | None]] = []
        self.stock_cells = np.zeros((M, self.n_cells), dtype=np.int64)
        self.stock = self.stock_cells  # per-cell stocks; projected onto slots each day

    def _bins(self, cit: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """Fixed-point sums per cell (or slot) of ``weights`` (None: counts)."""
        w = _NO_W if weights is None else fixed(weights)
        if not self.by_slot:
            return _bincount_fx(self.cell[cit].astype(np.int64), w, self.n_cells, SCALE)
        s = self.groups[:, cit].astype(np.int64) + self.offsets[:, None]
        s = np.vstack([s, np.full((1, cit.shape[0]), self.n_slots - 1, dtype=np.int64)])
        w = w if weights is None else np.ascontiguousarray(np.broadcast_to(w, s.shape)).ravel()
        return _bincount_fx(s.ravel(), w, self.n_slots, SCALE)

    def count(self, day: int, name: str, cit: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add today's flow ``name`` for these citizens (batched: one bincount per day)."""
        if cit.shape[0] == 0:
            return
        if self.by_slot:
            self.flow_cells[self.idx[name]] += self._bins(cit, weights)
            return
        self._pending.append((self.idx[name], cit, weights))

    def _flush(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([m * self.n_cells + self.cell[c].astype(np.int64) for m, c, _w in self._pending])
        w = _NO_W
        if any(wt is not None for _m, _c, wt in self._pending):
            w = np.concatenate([np.full(c.shape[0], SCALE, np.int64) if wt is None else fixed(wt)
                                for _m, c, wt in self._pending])
        self._pending.clear()
        self.flow_cells += _bincount_fx(keys, w, self.flow_cells.size, SCALE).reshape(self.flow_cells.shape)

    def add_stock(self, name: str, cit: np.ndarray, weights: np.ndarray | float = 1.0) -> None:
        if cit.shape[0]:
            w = np.broadcast_to(np.asarray(weights, dtype=np.float64), cit.shape)
            self.stock_cells[self.idx[name]] += self._bins(cit, w)

    def set_stock_dense(self, name: str, values: np.ndarray) -> None:
        """Recompute a stock from a full per-citizen array (model-score days only)."""
        self.stock_cells[self.idx[name]] = self._bins(np.arange(values.shape[0]), values)

    def init_stocks(self, st: State, grades: list[str], lo: int = 0, hi: int | None = None) -> None:
        """Population, score sums, grade counts and list sizes at the start (one pass over citizens
        ``[lo, hi)``; a shard passes its own range). Every other stock starts at zero. Lists can be
        non-empty at the start when entered by grade (``classify.enter_start_grades``)."""
        hi = st.n if hi is None else hi
        self.stock_cells[:] = 0
        everyone = np.arange(lo, hi, dtype=np.int64)
        pop = self._bins(everyone, None)
        self.stock_cells[self.idx["population"]] = pop
        for mode, name in ((0, "score_sum"), (1, "shadow_score_sum")):
            s = st.score[mode, lo:hi]
            if hi > lo and s.min() == s.max():
                self.stock_cells[self.idx[name]] = (pop // SCALE) * fixed(float(s[0]))
            else:
                self.stock_cells[self.idx[name]] = self._bins(everyone, s.astype(np.float64))
        for mode, pre in ((0, "grade."), (1, "shadow_grade.")):
            g = st.grade[mode, lo:hi]
            if not grades:
                continue
            if hi > lo and g.min() == g.max():
                self.stock_cells[self.idx[pre + grades[int(g[0])]]] = pop
                continue
            for gi, gname in enumerate(grades):
                self.stock_cells[self.idx[pre + gname]] = self._bins(lo + np.flatnonzero(g == gi), None)
        for li, lname in enumerate(self.plan.lists):
            for mode, pre in ((0, "listed."), (1, "shadow_listed.")):
                on = np.flatnonzero(st.listed[mode, li, lo:hi])
                if on.shape[0]:
                    self.stock_cells[self.idx[pre + lname]] = self._bins(lo + on, None)

    def add_total(self, day: int, name: str, value: float) -> None:
        """A flow known only in total (the 'all' slot)."""
        self.table[day, self.idx[name], -1] += int(fixed(value))

    def _project(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray((self.P @ rows.T).T)

    def close_day(self, day: int) -> None:
        self._flush()
        live = np.flatnonzero(self.flow_cells.any(axis=1))
        if live.shape[0]:
            self.table[day, live] += self._project(self.flow_cells[live])
            self.flow_cells[live] = 0
        self.table[day, self.stock_idx] = self._project(self.stock_cells[self.stock_idx])

    def to_arrow(self, days: int | None = None) -> pa.Table:
        d = self.days if days is None else days
        M, S = len(self.names), self.n_slots
        day = np.repeat(np.arange(d, dtype=np.int32), M * S)
        metric = np.tile(np.repeat(np.arange(M), S), d)
        slot = np.tile(np.arange(S), d * M)

        def dictionary(values: list[str]) -> tuple[np.ndarray, pa.Array]:
            uniq = list(dict.fromkeys(values))
            return np.array([uniq.index(x) for x in values], dtype=np.int32), pa.array(uniq)

        dim_codes, dim_dict = dictionary(self.slot_dim)
        grp_codes, grp_dict = dictionary(self.slot_group)
        return pa.table({
            "day": day,
            "dimension": pa.DictionaryArray.from_arrays(pa.array(dim_codes[slot]), dim_dict),
            "group": pa.DictionaryArray.from_arrays(pa.array(grp_codes[slot]), grp_dict),
            "metric": pa.DictionaryArray.from_arrays(pa.array(metric.astype(np.int32)), pa.array(self.names)),
            "value": self.table[:d].ravel() / SCALE,
        })
