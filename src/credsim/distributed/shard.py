"""One shard of a sharded run: the daily pipeline for a contiguous range of citizens.

A shard owns citizens ``[lo, hi)`` (boundaries on RNG chunks, so no random stream is
split). It runs the *same stage functions* as the single-process :class:`~credsim.engine.Loop`
-- it wraps one -- on its own citizens only:

- behave and observe sample only the shard's RNG chunks (the other chunks' rate bounds
  are zero), so every event is drawn by exactly one shard with the same random numbers;
- file, classify, sanction only ever see the shard's citizens (their inputs are);
- a model-score day regrades the shard's range instead of everyone;
- measure counts into fixed-point metrics (exact), so the shards' tables add up to the
  single-process table bit for bit.

What crosses shards happens in ``respond``, and the day is split there into rounds with a
barrier after each ``cut_ties`` response (a later response must see the ties cut by every
shard). Messages, all sparse, addressed to the owner of the citizen concerned:

- ``cut``: ties ``(contact, listed citizen)`` cut by the listed citizen's shard;
- ``resp``: contacts of a newly listed citizen whose response starts today;
- ``assoc``: association records for contacts of a newly listed citizen (filed tomorrow);
- ``listed``: today's list entries and exits, to the shards holding a contact, so a shard knows its citizens'
  contacts' list status (the model-score feature "share of contacts on a list").

Layout note (a prototype's honest limit): a shard keeps global citizen indexing, so the
stage kernels run unchanged. It *builds* the whole population and graph once (O(N) time and
a transient O(N) peak), then keeps resident only its own part of every column and graph row
(the rest are zero pages the OS never backs) plus a few bytes per citizen of groups, traits,
``indptr`` and metric cells. Work and exchange are proportional to its citizens and to
events. See docs/scale.md for what a range-generated layout would need at 1.4 billion.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from credsim import checkpoint as ckpt
from credsim.engine import DEFAULT_BLOCK, Loop, prepare
from credsim.plan import TRIGGERS
from credsim.rng import day_key
from credsim.sampling import CHUNK
from credsim.scenario.schema import Scenario
from credsim.stages import behave as behave_mod
from credsim.stages import classify as classify_mod
from credsim.stages import dossier, sanction, score
from credsim.stages.measure import Metrics
from credsim.stages.respond import _neighbours, cut_ties

Outbox = dict[int, dict[str, list[np.ndarray]]]  # destination shard -> kind -> arrays


def boundaries(n: int, shards: int) -> list[int]:
    """Shard boundaries: ``shards + 1`` ids, multiples of the RNG chunk, covering ``[0, n)``."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1 (got {shards})")
    chunks = (n + CHUNK - 1) // CHUNK
    if shards > max(chunks, 1):
        raise ValueError(f"{shards} shards for {n} citizens: at most one shard per {CHUNK} citizens "
                         f"({max(chunks, 1)} here)")
    cuts = [min(n, (chunks * k // shards) * CHUNK) for k in range(shards)] + [n]
    return cuts


class RangeMetrics(Metrics):
    """Metrics restricted to citizens ``[lo, hi)`` where the engine would touch everyone."""

    lo: int
    hi: int

    def set_stock_dense(self, name: str, values: np.ndarray) -> None:
        own = np.arange(self.lo, self.hi, dtype=np.int64)
        self.stock_cells[self.idx[name]] = self._bins(own, values[self.lo:self.hi])


@njit(cache=True)
def _apply_cuts(ci: np.ndarray, cj: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                active: np.ndarray) -> int:
    """Clear ties ``i -> j`` cut by j's shard; return how many this shard had cut too (counted twice)."""
    twice = 0
    for k in range(ci.shape[0]):
        i, j = ci[k], cj[k]
        for f in range(indptr[i], indptr[i + 1]):
            if indices[f] == j:
                if active[f]:
                    active[f] = 0
                else:
                    twice += 1
    return twice


@dataclass
class _Day:
    """What a shard carries between the rounds of one day."""

    day: int
    cit: np.ndarray
    beh: np.ndarray
    parts: dict[str, Any]
    q: int = 0
    triggered: dict[str, np.ndarray] = field(default_factory=dict)
    ties_cut: int = 0
    n_assoc: int = 0  # association records sent (counted by the listed citizen's shard)
    t0: float = 0.0


class Shard:
    """The citizens ``[lo, hi)`` of a run, stepped one day at a time by a driver."""

    def __init__(self, scen: Scenario, index: int, cuts: list[int], *, population: int | None = None,
                 days: int | None = None, seed: int | None = None, block: int = DEFAULT_BLOCK,
                 threads: int | None = None) -> None:
        self.index = index
        self.cuts = cuts
        self.lo, self.hi = cuts[index], cuts[index + 1]
        loop, self.setup = prepare(scen, population=population, days=days, seed=seed, block=block, threads=threads)
        self.loop: Loop = loop
        self._restrict()
        self._slim()
        model = scen.scoring.model
        self.needs_listed = model is not None and any(f.contacts_listed for f in model.features.values())
        self.cur: _Day | None = None
        self.sent = 0  # bytes sent to other shards (exchange volume)
        self.sent_kind: dict[str, int] = {}  # rows sent to other shards, by message kind

    # -- setup -------------------------------------------------------------------------
    def _restrict(self) -> None:
        lp, lo, hi = self.loop, self.lo, self.hi
        c0, c1 = lo // CHUNK, (hi + CHUNK - 1) // CHUNK
        for smp in (lp.sampler, lp.observer.false_sampler):
            smp.ubc[:c0] = 0.0
            smp.ubc[c1:] = 0.0
        tr = lp.tracer
        tr.ids = tr.ids[(tr.ids >= lo) & (tr.ids < hi)]
        m = lp.metrics
        m.__class__ = RangeMetrics
        assert isinstance(m, RangeMetrics)
        m.lo, m.hi = lo, hi
        m.init_stocks(lp.st, lp.plan.grades, lo, hi)

    def _slim(self) -> None:
        """Keep only this shard's part of the columns and graph rows resident.

        Each per-citizen column (and the graph's ``indices``/``active``) is copied into a
        zero-filled array whose other pages are never written, so the operating system never
        backs them with memory; groups and traits stay whole (a few bytes per citizen, read
        when counting a contact elsewhere in its group cells).
        """
        st, lo, hi = self.loop.st, self.lo, self.hi
        n = st.n
        for k, v in list(vars(st).items()):
            if k in ("groups", "traits") or not isinstance(v, np.ndarray) or v.ndim == 0 or v.shape[-1] != n:
                continue
            new = np.zeros(v.shape, v.dtype)
            new[..., lo:hi] = v[..., lo:hi]
            setattr(st, k, new)
        g = st.graph
        a, b = int(g.indptr[lo]), int(g.indptr[hi])
        for k in ("indices", "active"):
            v = getattr(g, k)
            new = np.zeros(v.shape, v.dtype)
            new[a:b] = v[a:b]
            setattr(g, k, new)

    def owner(self, cit: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.cuts[1:-1]), cit, side="right")

    def _route(self, box: Outbox, kind: str, cit: np.ndarray, *cols: np.ndarray) -> None:
        """Send rows of ``(cit, *cols)`` to their owners (own rows included, to keep one code path)."""
        if cit.shape[0] == 0:
            return
        dest = self.owner(cit)
        for d in np.unique(dest).tolist():
            sel = dest == d
            rows = [cit[sel], *(c[sel] for c in cols)]
            box.setdefault(int(d), {}).setdefault(kind, []).append(np.stack(rows).astype(np.int64))
            if d != self.index:
                self.sent += int(sum(r.nbytes for r in rows))
                self.sent_kind[kind] = self.sent_kind.get(kind, 0) + int(rows[0].shape[0])

    # -- one day ------------------------------------------------------------------------
    def begin_day(self, day: int) -> Outbox:
        """Stages 1-6 for the shard's citizens, then respond up to the first barrier."""
        lp = self.loop
        p, st = lp.plan, lp.st
        t = time.perf_counter()
        t_start = t
        cit, beh = behave_mod.behave(p, st, day, lp.block, lp.sampler)
        t = lp._t("behave", t)
        _new, seen, fcit, fsen = lp.observer.observe(st, cit, beh, day, lp.block)
        t = lp._t("observe", t)
        dossier.reset_caps(p, st, day)
        filed, applied, cures = dossier.file_records(p, st, day, lp.days)
        exp_cit, exp_mode, exp_amt = dossier.expire(p, st, day)
        t = lp._t("file", t)
        model_day = score.recompute_model(p, st, day)
        t = lp._t("score", t)
        if model_day and p.grade_source == "model":
            grades = classify_mod.regrade(p, st, np.arange(self.lo, self.hi, dtype=np.int64))
        else:
            cand = classify_mod.unique_sorted(np.concatenate([filed.cit, exp_cit]).astype(np.int64))
            grades = classify_mod.regrade(p, st, cand)
        lists = classify_mod.update_lists(p, st, day, cures, grades)
        t = lp._t("classify", t)
        out = sanction.sanction(p, st, cit, beh)
        lp._t("sanction", t)
        parts = dict(seen=seen, fcit=fcit, fsen=fsen, filed=filed, applied=applied, exp_cit=exp_cit,
                     exp_mode=exp_mode, exp_amt=exp_amt, model_day=model_day, grades=grades, lists=lists, out=out)
        self.cur = _Day(day, cit, beh, parts, t0=t_start)
        return self._respond()

    def _respond(self) -> Outbox:
        """Responses in the scenario's order until a ``cut_ties`` one (a barrier) or the end."""
        assert self.cur is not None
        lp, cur = self.loop, self.cur
        p, st, g, day = lp.plan, lp.st, lp.st.graph, cur.day
        t = time.perf_counter()
        ecit, emode, elist, edir, _ = cur.parts["lists"]
        out = cur.parts["out"]
        denied = out["cit"][out["den"][:, 0] == 1]
        box: Outbox = {}
        while cur.q < len(p.responses):
            q = cur.q
            cur.q += 1
            name = p.responses[q]
            trig = TRIGGERS[p.resp_trigger[q]]
            sel = (emode == 0) & (edir == 1) & p.resp_lists[q, elist] if ecit.shape[0] else np.zeros(0, np.bool_)
            if trig == "own_sanction":
                who = denied
            elif trig == "own_listed":
                who = ecit[sel]
            else:
                src = ecit[sel]
                if p.resp_cut[q]:
                    key = day_key(lp.seed, f"cut:{name}", day)
                    n_cut, fi, fj = cut_ties(src, key, p.resp_prob[q], g.indptr, g.indices, g.active,
                                                self.lo, self.hi)
                    cur.ties_cut += int(n_cut)
                    self._route(box, "cut", fi, fj)
                    lp._t("respond", t)
                    return box  # barrier: later responses must see every shard's cuts
                who, _o = _neighbours(src, g.indptr, g.indices, g.active)
                mine = (who >= self.lo) & (who < self.hi)
                self._route(box, "resp", who[~mine], np.full(int((~mine).sum()), q, np.int64))
                who_own = who[mine]
                if who_own.shape[0]:
                    st.resp_day[q, who_own] = day
                cur.triggered[name] = who
                continue
            if who.shape[0]:
                st.resp_day[q, who] = day
            cur.triggered[name] = who
        # association records for contacts of newly listed citizens, sent to their owners
        for li in np.flatnonzero(p.assoc_points != 0):
            for m in range(2):
                sel = (emode == m) & (edir == 1) & (elist == li)
                if not sel.any():
                    continue
                nb, _o = _neighbours(ecit[sel], g.indptr, g.indices, g.active)
                cur.n_assoc += int(nb.shape[0])
                self._route(box, "assoc", nb, np.full(nb.shape[0], int(li) * 2 + m, np.int64))
        # today's list changes, to the shards holding a contact (only a model feature reads them);
        # a tie cut later is never read again, so a stale flag behind it does not matter
        if ecit.shape[0] and self.needs_listed:
            rows = np.stack([ecit, emode, elist, edir]).astype(np.int64)
            nb, origin = _neighbours(classify_mod.unique_sorted(ecit), g.indptr, g.indices, g.active)
            dest = self.owner(nb)
            for d in np.unique(dest[dest != self.index]).tolist():
                sel = rows[:, np.isin(ecit, origin[dest == d])]
                box.setdefault(int(d), {}).setdefault("listed", []).append(sel)
                self.sent += int(sel.nbytes)
                self.sent_kind["listed"] = self.sent_kind.get("listed", 0) + int(sel.shape[1])
        lp._t("respond", t)
        return box

    @property
    def rounds_left(self) -> bool:
        return self.cur is not None and self.cur.q < len(self.loop.plan.responses)

    def next_round(self, inbox: dict[str, list[np.ndarray]]) -> Outbox:
        """Apply the cuts of the last round, then go on responding."""
        self._apply_round(inbox)
        return self._respond()

    def _apply_round(self, inbox: dict[str, list[np.ndarray]]) -> None:
        """Ties cut by other shards, and responses they started for this shard's citizens."""
        assert self.cur is not None
        st = self.loop.st
        g = st.graph
        for rows in inbox.get("cut", []):
            self.cur.ties_cut -= int(_apply_cuts(rows[0], rows[1], g.indptr, g.indices, g.active))
        for rows in inbox.get("resp", []):
            st.resp_day[rows[1], rows[0]] = self.cur.day

    def end_day(self, inbox: dict[str, list[np.ndarray]]) -> None:
        """Apply what other shards sent (responses, association records, list status), then measure."""
        assert self.cur is not None
        lp, cur = self.loop, self.cur
        p, st, day = lp.plan, lp.st, cur.day
        t = time.perf_counter()
        self._apply_round(inbox)
        assoc = inbox.get("assoc", [])
        if assoc:
            allr = np.concatenate(assoc, axis=1)
            for code in range(2 * len(p.lists)):
                nb = allr[0, allr[1] == code]
                if nb.shape[0] == 0:
                    continue
                nb = np.sort(nb, kind="stable")
                k = nb.shape[0]
                li, m = divmod(code, 2)
                one, zero = np.ones(k, np.uint8), np.zeros(k, np.uint8)
                st.records.push(day + 1, nb, np.full(k, p.n_beh + li, np.int64), np.full(k, -1, np.int64),
                                np.full(k, day, np.int64), one if m == 0 else zero, zero if m == 0 else one, one)
        for rows in inbox.get("listed", []):
            c, m, li, d = rows
            st.listed[m, li, c] = (d == 1).astype(np.uint8)
        lp._t("respond", t)
        t = time.perf_counter()
        pr = cur.parts
        resp = {"triggered": cur.triggered, "ties_cut": cur.ties_cut, "assoc": cur.n_assoc}
        lp._measure(day, cur.cit, cur.beh, pr["seen"], pr["fcit"], pr["fsen"], pr["filed"], pr["applied"],
                    pr["exp_cit"], pr["exp_mode"], pr["exp_amt"], pr["model_day"], pr["grades"], pr["lists"],
                    pr["out"], resp)
        lp._trace(day, cur.cit, cur.beh, pr["filed"], pr["applied"], pr["grades"], pr["lists"], pr["out"])
        lp.events.add(day, st, pr["grades"], pr["lists"], pr["out"])
        lp._t("measure", t)
        self.cur = None

    # -- checkpoints (credsim.checkpoint: the same format as single-process runs) -------------
    def save_checkpoint(self, run_dir: str, day: int) -> str:
        meta = {"shard": self.index, "cuts": self.cuts, "sent": self.sent, "sent_kind": self.sent_kind}
        return str(ckpt.save(Path(run_dir), self.loop, day, meta))

    def load_checkpoint(self, path: str) -> int:
        head = ckpt.restore(Path(path), self.loop, max_bytes=1 << 40)
        meta = head.get("meta", {})
        if meta.get("shard") != self.index or meta.get("cuts") != self.cuts:
            raise ckpt.CheckpointError(f"{path}: belongs to shard {meta.get('shard')} of layout "
                                       f"{meta.get('cuts')}, not shard {self.index} of {self.cuts}")
        self.sent = int(meta["sent"])
        self.sent_kind = {str(k): int(v) for k, v in meta.get("sent_kind", {}).items()}
        return int(head["day"])

    # -- results ------------------------------------------------------------------------
    def columns(self) -> dict[str, np.ndarray]:
        """The shard's slice of every per-citizen column of the state (last axis = citizen)."""
        st, lo, hi = self.loop.st, self.lo, self.hi
        out: dict[str, np.ndarray] = {}
        for k, v in vars(st).items():
            if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[-1] == st.n and k != "traced":
                out[k] = np.ascontiguousarray(v[..., lo:hi])
        out["__traced__"] = self.loop.tracer.mask[lo:hi].copy()
        return out

    def results(self) -> dict[str, Any]:
        lp = self.loop
        return {"lo": self.lo, "hi": self.hi, "table": lp.metrics.table, "columns": self.columns(),
                "trace_rows": lp.tracer.rows, "events": lp.events.parts, "timings": dict(lp.timings),
                "setup": self.setup, "sent": self.sent, "sent_kind": self.sent_kind}
