"""One shard of a sharded run: the engine's own :class:`~credsim.engine.Loop` over a range of citizens.

A shard owns citizens ``[lo, hi)`` (boundaries on RNG chunks, so no random stream is split).
It is the same loop as a single-process run, built by :func:`credsim.engine.prepare` for its
range: behave and observe draw only the range's RNG chunks, classify regrades the range on a
model-score day, the metrics count the range (in fixed point, so the shards' tables add up to
the single-process table bit for bit), and the stages' cross-citizen steps go through the
loop's :class:`~credsim.exchange.Exchange`. This module only drives that loop one barrier at a
time for the driver (:mod:`credsim.distributed.run`), which swaps the messages in between:

- ``cut``: ties ``(contact, listed citizen)`` cut by the listed citizen's shard;
- ``resp``: contacts of a newly listed citizen whose response starts today;
- ``assoc``: association records for contacts of a newly listed citizen (filed tomorrow);
- ``listed``: today's list entries and exits, to the shards holding a contact (the model-score
  feature "share of contacts on a list").

Layout: a shard keeps global citizen indexing in its per-citizen columns, so the stage kernels
run unchanged, but it generates, builds and writes only its own range
(:func:`credsim.engine.prepare` with ``cuts``): its citizens' groups and traits
(:func:`credsim.population.generate` with a range), its graph rows with row pointers for the
range only (from the counter-based tie rule: it draws the ties its citizens open, and learns which
of every other shard's ties point at it from their marks, a bit a stub: :meth:`Shard.ties_out`), its state
columns, metric cells and traced mask (zero pages elsewhere, which the OS never backs) and its
model scores. A contact elsewhere counted in this shard's group cells (a response it starts)
has its groups drawn again from its id. So what a shard holds grows with ``hi - lo``; only
while its graph rows are built does it hold a quarter of a byte per citizen of the population
and homophily dimension (a bit per position of the group order its stubs pick from, and a count a
64: :class:`credsim.shard_graph.Lean`).
See benchmarks/results/scale.md for the measured costs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from credsim import checkpoint as ckpt
from credsim import shard_graph
from credsim.engine import DEFAULT_BLOCK, Begun, Loop, begin, citizen_rows, complete
from credsim.exchange import Inbox, Outbox
from credsim.partitions import part_name, write_events, write_part, write_rows
from credsim.sampling import CHUNK
from credsim.scenario.schema import Scenario
from credsim.stages.redress import Redress


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


class Shard:
    """The citizens ``[lo, hi)`` of a run, stepped one barrier at a time by a driver.

    With ``swap_ties`` the set-up stops after the population and the ties the shard's citizens open
    (:func:`credsim.engine.begin`): round by round, the driver takes every shard's :meth:`ties_out` and
    hands each shard what the others open towards it (:meth:`ties_in`), then :meth:`connect` completes
    the set-up; no shard draws another's ties.
    Without it the shard is complete at once, drawing every other citizen's ties itself.

    ``spool``: the folder (the run's, which the shard writes its parts into) where its event log waits on disk
    as the days go (:meth:`credsim.eventlog.EventLog.spool_to`), as a single process's does."""

    loop: Loop

    def __init__(self, scen: Scenario, index: int, cuts: list[int], *, population: int | None = None,
                 days: int | None = None, seed: int | None = None, block: int = DEFAULT_BLOCK,
                 threads: int | None = None, swap_ties: bool = False, spool: str | None = None) -> None:
        self.index = index
        self.spool = spool
        self.cuts = cuts
        self.lo, self.hi = cuts[index], cuts[index + 1]
        self._begun: Begun | None = begin(scen, population=population, days=days, seed=seed, block=block,
                                          threads=threads, cuts=cuts, index=index)
        self.setup = self._begun.seconds
        self._received: list[list[shard_graph.Marked]] = [[] for _ in range(len(cuts) - 1)]
        self.swap_sent = 0  # bytes of tie marks sent to other shards at set-up
        self._day: Iterator[None] | None = None
        if not swap_ties:
            self._complete(None)

    # -- set-up: the ties the shards open towards each other ----------------------------------
    def swap_rounds(self) -> int:
        """How many rounds of :meth:`ties_out` this shard needs (the driver runs the largest number)."""
        b = self._live()
        if b.stubs is None:
            return 0
        return -(-(self.hi - self.lo) * b.stubs.m // shard_graph.SWAP_STUBS)

    def ties_out(self, r: int) -> list[shard_graph.Marks]:
        """For each shard in order, which stubs of this shard's round-``r`` openers point at its citizens
        (:func:`credsim.shard_graph.marks_towards`: a bit a stub, or positions when few); its own place's
        are not read. A round is a slice of the openers, so what is in flight at once stays small."""
        b = self._live()
        t = time.perf_counter()
        k = len(self.cuts) - 1
        if b.stubs is None:
            out = [shard_graph.Marks(self.lo, 0, 0, np.zeros(0, np.uint8), np.zeros(0, np.uint32))] * k
        else:
            per = max(shard_graph.SWAP_STUBS // b.stubs.m, 1)
            size = self.hi - self.lo
            out = shard_graph.marks_towards(b.stubs, self.cuts, min(r * per, size), min((r + 1) * per, size))
            self.swap_sent += sum(x.bits.nbytes + x.positions.nbytes for x in out)
        self.setup += time.perf_counter() - t
        return out

    def ties_in(self, *marks: shard_graph.Marks) -> None:
        """Draw again, by the rule every shard shares, the ties one round of every shard's marks names, up to
        their positions in the group order (one :class:`~credsim.shard_graph.Marks` per shard, in shard order;
        this shard's own place is not read); :meth:`connect` looks the positions up."""
        b = self._live()
        if len(marks) != len(self.cuts) - 1:
            raise ValueError(f"shard {self.index}: {len(marks)} tie marks for {len(self.cuts) - 1} shards")
        t = time.perf_counter()
        for j, x in enumerate(marks):
            if j != self.index and x.count and b.stubs is not None and b.lean is not None:
                got = shard_graph.marked_positions(x, b.lean, b.seed, b.n, b.stubs.m)
                if got.x.shape[0]:
                    self._received[j].append(got)
        self.setup += time.perf_counter() - t

    def connect(self) -> None:
        """Complete the set-up with the ties received (:meth:`ties_in`), their other ends looked up all at
        once (:func:`credsim.shard_graph.ties_of`): every shard's, in shard order, its own stubs at its own place."""
        b = self._live()
        t = time.perf_counter()
        marked = [x for j, got in enumerate(self._received) if j != self.index for x in got]
        found = iter(shard_graph.ties_of(b.lean, b.n, marked) if b.lean is not None and marked else [])
        ties: list[np.ndarray | None] = []
        for j, got in enumerate(self._received):
            ties += [None] if j == self.index else [next(found) for _ in got]
        self._received = []
        del marked
        self.setup += time.perf_counter() - t
        self._complete(ties)

    def _live(self) -> Begun:
        if self._begun is None:
            raise RuntimeError("this shard's set-up is already complete")
        return self._begun

    def _complete(self, ties: list[np.ndarray | None] | None) -> None:
        b = self._live()
        self.loop, seconds = complete(b, ties)
        if self.spool is not None:
            self.loop.events.spool_to(Path(self.spool))
        self._begun = None
        self.setup += seconds - b.seconds  # complete's seconds include begin's, counted already

    # -- one day, barrier by barrier ------------------------------------------------------
    def begin_day(self, day: int) -> Outbox:
        """Run ``day`` up to its first barrier; return what goes to other shards (and to itself)."""
        self._day = self.loop.day_rounds(day)
        next(self._day)
        return self.loop.exchange.collect()

    def next_round(self, inbox: Inbox) -> Outbox:
        """Deliver the last round's messages and run on to the next barrier."""
        assert self._day is not None
        self.loop.exchange.deliver(inbox)
        next(self._day)
        return self.loop.exchange.collect()

    def end_day(self, inbox: Inbox) -> None:
        """Deliver the day's last messages and finish the day (the observers measure it)."""
        assert self._day is not None
        self.loop.exchange.deliver(inbox)
        if next(self._day, StopIteration) is not StopIteration:
            raise RuntimeError("the day has more barriers than the driver delivered")
        self._day = None

    # -- checkpoints (credsim.checkpoint: the same format as single-process runs) -------------
    def save_checkpoint(self, run_dir: str, day: int, meta: dict[str, Any] | None = None) -> str:
        meta = {**(meta or {}), "shard": self.index, "cuts": self.cuts}
        return str(ckpt.save(Path(run_dir), self.loop, day, meta))

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        """Restore the loop from ``path``; return the checkpoint's meta (with its ``day``)."""
        head = ckpt.restore(Path(path), self.loop, max_bytes=1 << 40)
        meta = head.get("meta", {})
        if meta.get("shard") != self.index or meta.get("cuts") != self.cuts:
            raise ckpt.CheckpointError(f"{path}: belongs to shard {meta.get('shard')} of layout "
                                       f"{meta.get('cuts')}, not shard {self.index} of {self.cuts}")
        return {**meta, "day": int(head["day"])}

    # -- results ------------------------------------------------------------------------
    def columns(self) -> dict[str, np.ndarray]:
        """The shard's slice of every per-citizen column of the state (last axis = citizen)."""
        st, lo, hi = self.loop.st, self.lo, self.hi
        out: dict[str, np.ndarray] = {}
        for k, v in vars(st).items():
            if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[-1] == st.n:
                out[k] = np.ascontiguousarray(v[..., lo:hi])
        out["__traced__"] = self.loop.tracer.mask[lo:hi].copy()
        return out

    def write_parts(self, run_dir: str) -> list[str]:
        """Write this shard's part of ``citizens``, ``traces``, ``events`` (and ``cases``/``stays`` with a
        redress section) into ``run_dir``; return their run-relative names. Nothing citizen-level
        leaves the shard: at country scale the driver could not hold it. The shard's event log is let go once
        written (:meth:`credsim.eventlog.EventLog.release`): this is the shard's last call."""
        lp, k, out = self.loop, self.index, Path(run_dir)
        rows = citizen_rows(lp.plan, lp.st, lp.tracer.mask)

        # the event log first, then let go, as a single process does (store._write_tables): the shard peaks
        # while it writes its citizens
        events = write_events(lp.events, out, part_name("events", k), release=True)
        names = [write_rows(rows, self.lo, self.hi, out, part_name("citizens", k)),
                 write_part(lp.tracer.to_arrow(), out, part_name("traces", k)), events]
        for stage in lp.stages:
            if isinstance(stage, Redress):
                cases, stays = stage.tables(lp.st)
                names += [write_part(cases, out, part_name("cases", k)), write_part(stays, out, part_name("stays", k))]
        return names

    def summary(self) -> dict[str, Any]:
        """What the driver needs besides the parts: the metric table (added up exactly), timings, exchange counts."""
        lp, x = self.loop, self.loop.exchange
        return {"table": lp.metrics.table, "timings": dict(lp.timings), "setup": self.setup, "sent": x.sent,
                "swap_sent": self.swap_sent,
                "sent_kind": dict(x.sent_kind), "redress": any(isinstance(s, Redress) for s in lp.stages)}

    def results(self) -> dict[str, Any]:
        """Everything, citizen columns included, for an in-memory merge (:func:`simulate_sharded`; small runs)."""
        lp = self.loop
        x = lp.exchange
        return {"lo": self.lo, "hi": self.hi, "table": lp.metrics.table, "columns": self.columns(),
                "trace_rows": lp.tracer.rows, "events": lp.events.all_parts(), "timings": dict(lp.timings),
                "setup": self.setup, "sent": x.sent, "sent_kind": dict(x.sent_kind)}
