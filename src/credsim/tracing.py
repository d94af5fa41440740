"""The traced sample: the full history of a few citizens, for explanation (``traces.parquet``).

An observer of the day: it reads the day's hand-offs and the state, never changes them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from credsim import arrowcols
from credsim.day import Day
from credsim.plan import Plan
from credsim.rng import static_key, uniform
from credsim.state import State


def _words(values: str | list[str] | np.ndarray, k: int) -> np.ndarray:
    """``k`` strings as an object array whose entries refer to a few shared ``str`` objects.

    Why: ``np.full(k, "official", dtype=object)``, and an array of NumPy strings cast to ``object``, make a new
    Python string for every entry (56 B each). The traced sample adds a few hundred rows a day, a few such
    columns each, for every day of the run: 90 kB a day of ``integrated``, 330 MB over ten years, for the
    same few dozen words."""
    if isinstance(values, str):
        out = np.empty(k, dtype=object)
        out.fill(values)
        return out
    arr = np.asarray(values)
    if arr.dtype == object:
        return arr
    uniq, inv = np.unique(arr, return_inverse=True)
    return np.array(uniq.tolist(), dtype=object)[inv.reshape(-1)]


class Tracer:
    """Full history of a small sample of citizens, for explanation."""

    def __init__(self, plan: Plan, n: int, ids: np.ndarray) -> None:
        self.plan = plan
        self.mask = np.zeros(n, dtype=np.bool_)
        self.mask[ids] = True
        self.ids = ids
        self.rows: dict[str, list[np.ndarray]] = {k: [] for k in (
            "day", "citizen", "stage", "item", "value", "view", "true", "source")}

    def add(self, day: int, cit: np.ndarray, stage: str, item: str | list[str] | np.ndarray,
            value: np.ndarray, view: str | list[str] | np.ndarray, true: np.ndarray | None = None,
            source: list[str] | np.ndarray | None = None) -> None:
        k = cit.shape[0]
        if k == 0:
            return
        r = self.rows
        r["day"].append(np.full(k, day, np.int32))
        r["citizen"].append(cit.astype(np.int64))
        r["stage"].append(_words(stage, k))
        r["item"].append(_words(item, k))
        r["value"].append(np.asarray(value, dtype=np.float64))
        r["view"].append(_words(view, k))
        r["true"].append(np.full(k, -1, np.int8) if true is None else np.asarray(true, dtype=np.int8))
        r["source"].append(_words("" if source is None else source, k))

    def pick(self, cit: np.ndarray) -> np.ndarray:
        return np.flatnonzero(self.mask[cit]) if cit.shape[0] else np.zeros(0, np.int64)

    def to_arrow(self) -> pa.Table:
        empty = {"day": np.int32, "citizen": np.int64, "value": np.float64, "true": np.int8}
        cols = {k: (np.concatenate(v) if v else np.zeros(0, dtype=empty.get(k, object)))
                for k, v in self.rows.items()}
        return pa.table({
            "day": arrowcols.numeric(cols["day"], np.int32),
            "citizen": arrowcols.numeric(cols["citizen"], np.int64),
            "stage": arrowcols.encoded(cols["stage"]),
            "item": arrowcols.encoded(cols["item"]),
            "value": arrowcols.numeric(cols["value"], np.float64),
            "view": arrowcols.encoded(cols["view"]),
            "true": arrowcols.numeric(cols["true"], np.int8),
            "source": arrowcols.encoded(cols["source"]),
        })

    def observe(self, st: State, d: Day) -> None:
        """Add the traced citizens' rows of the day: events, records, grades, lists, sanctions, scores."""
        p, day = self.plan, d.day
        if self.ids.shape[0] == 0:
            return
        beh_names = np.array(p.beh, dtype=object)
        cit, beh = d.events.cit, d.events.beh
        k = self.pick(cit)
        self.add(day, cit[k], "event", beh_names[beh[k]], np.ones(k.shape[0]), "truth", np.ones(k.shape[0]))
        self._records(d)
        g = d.grades
        k = self.pick(g.cit)
        if k.shape[0] and p.grades:
            self.add(day, g.cit[k], "grade", np.array(p.grades, dtype=object)[g.new[k]], g.new[k].astype(np.float64),
                     np.where(g.mode[k] == 0, "official", "shadow"))
        lc = d.lists
        k = self.pick(lc.cit)
        if k.shape[0]:
            self.add(day, lc.cit[k], "list", np.array(p.lists, dtype=object)[lc.lst[k]],
                     lc.direction[k].astype(np.float64), np.where(lc.mode[k] == 0, "official", "shadow"))
        a = d.attempts
        k = self.pick(a.cit)
        if k.shape[0]:
            den, rew = a.denied, a.rewarded
            outcome = np.where(den[k, 0] == 1, -1.0, np.where(rew[k, 0] == 1, 1.0, 0.0))
            sh = np.where(den[k, 1] == 1, -1, np.where(rew[k, 1] == 1, 1, 0))
            self.add(day, a.cit[k], "sanction", beh_names[a.beh[k]], outcome, "official", None,
                     np.array([p.sanctions[f] if f >= 0 else "" for f in a.first[k]], dtype=object))
            self.add(day, a.cit[k], "sanction", beh_names[a.beh[k]], sh.astype(np.float64), "shadow")
        if d.money is not None and p.econ is not None:
            self._money(d)
        ids = self.ids
        for kind, sc in (("points", st.score), ("model", st.mscore)):
            if kind == "model" and not p.has_model:
                continue
            for mode, view in ((0, "official"), (1, "shadow")):
                self.add(day, ids, "score", kind,
                         sc[mode, ids].astype(np.float64), view)

    def _money(self, d: Day) -> None:
        """Outcomes of attempts (value 1, item ``<behaviour>.<outcome>``) and money moved (value = amount)."""
        econ, r = self.plan.econ, d.money
        assert econ is not None and r is not None
        k = self.pick(r.out_cit)
        if k.shape[0]:
            self.add(d.day, r.out_cit[k], "outcome", np.array(econ.out_names, dtype=object)[r.out_idx[k]],
                     np.ones(k.shape[0]), "official", np.ones(k.shape[0]))
        k = self.pick(r.move_cit)
        if k.shape[0]:
            self.add(d.day, r.move_cit[k], "money", np.array(econ.money, dtype=object)[r.move_col[k]],
                     r.move_amount[k], "official")

    def _records(self, d: Day) -> None:
        p, rec, applied = self.plan, d.filed.records, d.filed.applied
        k = self.pick(rec.cit)
        if k.shape[0] == 0:
            return
        view = np.where(rec.official[k] & rec.shadow[k], "both", np.where(rec.official[k] == 1, "official", "shadow"))
        sens = np.array(p.sensors + ["(shadow)"], dtype=object)[np.where(rec.sensor[k] >= 0, rec.sensor[k], -1)]
        sens = np.where(rec.rtype[k] >= p.n_beh, "(association)", sens)
        self.add(d.day, rec.cit[k], "record", np.array(p.rtypes, dtype=object)[rec.rtype[k]],
                 np.where(rec.official[k] == 1, applied[k, 0], applied[k, 1]), view, rec.true[k], sens)


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
