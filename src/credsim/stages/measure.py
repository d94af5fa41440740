"""Stage 8, measure: daily aggregates by group, from sparse changes only.

Every group value of every dimension is a *slot* (``region=rural``, ``hukou=migrant``,
...), plus one slot ``all``. Flows (events, records, denials) are counted with one
``bincount`` over the slots of the citizens concerned; stocks (list sizes, grade counts,
score sums) are kept up to date from the same deltas, so measuring a day never touches
the whole population.

The result is a long table ``(day, dimension, group, metric, value)``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from credsim.plan import KINDS, Plan
from credsim.state import State


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
        self.table = np.zeros((days, len(self.names), self.n_slots), dtype=np.float64)
        self.stock = np.zeros((len(self.names), self.n_slots), dtype=np.float64)

    def slots(self, cit: np.ndarray) -> np.ndarray:
        """(D+1, len(cit)) slot indices of the given citizens, the last row being 'all'."""
        s = self.groups[:, cit].astype(np.int64) + self.offsets[:, None]
        return np.vstack([s, np.full((1, cit.shape[0]), self.n_slots - 1, dtype=np.int64)])

    def _bins(self, cit: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        s = self.slots(cit)
        w = None if weights is None else np.broadcast_to(weights, s.shape).ravel()
        return np.bincount(s.ravel(), weights=w, minlength=self.n_slots)

    def count(self, day: int, name: str, cit: np.ndarray, weights: np.ndarray | None = None) -> None:
        if cit.shape[0]:
            self.table[day, self.idx[name]] += self._bins(cit, weights)

    def add_stock(self, name: str, cit: np.ndarray, weights: np.ndarray | float = 1.0) -> None:
        if cit.shape[0]:
            w = np.broadcast_to(np.asarray(weights, dtype=np.float64), cit.shape)
            self.stock[self.idx[name]] += self._bins(cit, w)

    def set_stock_dense(self, name: str, values: np.ndarray) -> None:
        """Recompute a stock from a full per-citizen array (model-score days only)."""
        out = np.zeros(self.n_slots)
        for d in range(self.groups.shape[0]):
            out += np.bincount(self.groups[d].astype(np.int64) + self.offsets[d], weights=values,
                               minlength=self.n_slots)
        out[-1] = float(values.sum(dtype=np.float64))
        self.stock[self.idx[name]] = out

    def close_day(self, day: int) -> None:
        self.table[day, self.stock_idx] = self.stock[self.stock_idx]

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
            "value": self.table[:d].ravel(),
        })
