"""Stage 7, money: outcomes of allowed attempts, clawbacks when a stay begins, refunds when retracted.

Why a stage of its own, after ``sanction``: what an allowed attempt leads to -- a benefit paid, a
claim queried, a bill missed -- is known only once the attempt is allowed, and the money it moves
is citizen state that later rates and outcomes read (poverty after a clawback raises arrears). A
scenario with no money, no outcomes and no clawback does not run it.

A day, in order:

1. **Records behind clawbacks**: every official record filed today that counts towards a list with a
   clawback becomes the citizen's latest such record of that list (its id: ``day << 32 | row``).
2. **Refunds**: a clawback whose record was retracted today in the official view (an upheld objection)
   is refunded exactly: what it took of each balance goes back to that balance (the benefits are the
   citizen's again, so a later, rightful clawback can take them), ``refunded`` += the amount taken,
   and the sanction's flat ``compensation`` is paid (``compensated``); each clawback at most once.
3. **Clawbacks**: each official stay beginning today on a list with a clawback sanction takes
   ``amount`` plus ``share_of`` x each named balance (which goes down by that much) into ``taken``,
   tied to the citizen's latest record of that list (the record the stay rests on).
4. **Outcomes**: each allowed attempt (not denied in the official view) of a behaviour with outcomes
   draws ``u`` from the stream ``outcome:<behaviour>`` keyed by (seed, day, citizen) and has the first
   outcome, in declared order, whose cumulative probability exceeds ``u``. An outcome's probability is
   its ``probability`` x group multipliers x state multipliers; the cumulative sum is capped at 1, so
   when multipliers push it past 1 the later outcomes lose what is left (said, not hidden). The
   state multipliers read the start-of-day state (``Day.events.cond``, filled by behave). An outcome
   files its record ``delay_days`` later (true, official and shadow) and adds its money amounts now.

Every draw is a pure function of (seed, stream, day, citizen); nothing crosses citizens, so a
sharded run gives the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from credsim import rng
from credsim.day import Day, MoneyDay
from credsim.economy import COMPENSATED, REFUNDED, TAKEN, Economy, factor_product
from credsim.exchange import Exchange
from credsim.names import KINDS
from credsim.plan import Plan
from credsim.state import F_RETRACTED_OFFICIAL, State

CLAW_COLUMNS = ("rid", "cit", "san", "day", "amount", "refunded")


def _empty_claws() -> tuple[np.ndarray, ...]:
    return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
            np.zeros(0, np.float64), np.zeros(0, np.int64))


@dataclass
class MoneyBook:
    """What the stage remembers (checkpointed with the loop): per clawback list and citizen the latest
    official record counting towards it (-1: none), and every clawback taken (:data:`CLAW_COLUMNS`;
    ``refunded`` is the day it was refunded, -1 while it stands) with what it took of each balance
    (``parts``, one row per clawback, one column per money column)."""

    last_rid: np.ndarray
    parts: np.ndarray
    claws: tuple[np.ndarray, ...] = field(default_factory=_empty_claws)


class Money:
    """Stage 7: outcomes of allowed attempts, clawbacks and their refunds, as money balances."""

    name: str = "money"
    reads: tuple[str, ...] = ("day.attempts", "day.events", "day.filed", "day.lists", "day.retracted",
                              "state.groups")
    writes: tuple[str, ...] = ("day.money", "state.money", "state.records")

    def __init__(self, plan: Plan, st: State, seed: int) -> None:
        assert plan.econ is not None
        self.plan = plan
        self.econ: Economy = plan.econ
        self.seed = seed
        self.claw_lists = np.unique(self.econ.claw_list)
        self.book = MoneyBook(np.full((self.claw_lists.shape[0], st.n), -1, np.int64),
                              np.zeros((0, len(self.econ.money)), np.float64))

    @staticmethod
    def _move(st: State, r: MoneyDay, cit: np.ndarray, col: int, amount: np.ndarray) -> None:
        """Add ``amount`` to balance ``col`` of each citizen (a citizen may appear more than once)."""
        if cit.shape[0] == 0:
            return
        np.add.at(st.money[col], cit, amount)
        r.move_cit = np.concatenate([r.move_cit, cit.astype(np.int64)])
        r.move_col = np.concatenate([r.move_col, np.full(cit.shape[0], col, np.int64)])
        r.move_amount = np.concatenate([r.move_amount, amount.astype(np.float64)])

    # -- 1: records behind clawbacks ------------------------------------------------------------
    def _track(self, d: Day) -> None:
        rec = d.filed.records
        if len(rec) == 0 or self.claw_lists.shape[0] == 0:
            return
        rid = (np.int64(d.day) << np.int64(32)) | np.arange(len(rec), dtype=np.int64)
        off = rec.official == 1
        for k, li in enumerate(self.claw_lists.tolist()):
            sel = off & self.plan.entry_types[rec.rtype, li]
            np.maximum.at(self.book.last_rid[k], rec.cit[sel], rid[sel])

    # -- 2: refunds -----------------------------------------------------------------------------
    def _refund(self, st: State, d: Day, r: MoneyDay) -> None:
        econ, claws = self.econ, self.book.claws
        gone = d.retracted.rid
        if gone.shape[0] == 0 or claws[0].shape[0] == 0:
            return
        found, fday, row = st.ledger.lookup(gone)
        flags = st.ledger.column(2, fday[found], row[found])
        official = gone[found][(flags & F_RETRACTED_OFFICIAL) != 0]
        hit = np.flatnonzero(np.isin(claws[0], official) & (claws[5] < 0))
        if hit.shape[0] == 0:
            return
        cit, amount, san = claws[1][hit], claws[4][hit], claws[2][hit]
        claws[5][hit] = d.day
        parts = self.book.parts[hit]
        for c in np.flatnonzero(parts.any(axis=0)).tolist():
            self._move(st, r, cit, c, parts[:, c])
        self._move(st, r, cit, econ.col(REFUNDED), amount)
        comp = econ.claw_comp[san]
        paid = comp > 0
        self._move(st, r, cit[paid], econ.col(COMPENSATED), comp[paid])
        r.refund_cit, r.refund_amount = cit, amount

    # -- 3: clawbacks ---------------------------------------------------------------------------
    def _clawback(self, st: State, d: Day, r: MoneyDay) -> None:
        econ, lc = self.econ, d.lists
        cc, cs, ca = [], [], []
        for k in range(len(econ.claw_names)):
            li = int(econ.claw_list[k])
            cit = lc.cit[(lc.mode == 0) & (lc.direction == 1) & (lc.lst == li)]
            if cit.shape[0] == 0:
                continue
            amount = np.full(cit.shape[0], econ.claw_amount[k])
            parts = np.zeros((cit.shape[0], len(econ.money)))
            for c in np.flatnonzero(econ.claw_share[k]).tolist():
                parts[:, c] = econ.claw_share[k, c] * st.money[c, cit]
                self._move(st, r, cit, c, -parts[:, c])
                amount = amount + parts[:, c]
            self.book.parts = np.concatenate([self.book.parts, parts])
            self._move(st, r, cit, econ.col(TAKEN), amount)
            rid = self.book.last_rid[int(np.searchsorted(self.claw_lists, li)), cit]
            n = cit.shape[0]
            self.book.claws = tuple(np.concatenate([a, b]) for a, b in zip(self.book.claws, (
                rid, cit, np.full(n, k, np.int64), np.full(n, d.day, np.int64), amount, np.full(n, -1, np.int64)),
                strict=True))
            cc.append(cit)
            cs.append(np.full(n, k, np.int64))
            ca.append(amount)
        if cc:
            r.claw_cit, r.claw_san, r.claw_amount = np.concatenate(cc), np.concatenate(cs), np.concatenate(ca)

    # -- 4: outcomes ----------------------------------------------------------------------------
    def _outcomes(self, st: State, d: Day, r: MoneyDay) -> None:
        econ, p, a = self.econ, self.plan, d.attempts
        if not econ.out_names or a.cit.shape[0] == 0:
            return
        att = p.beh_kind[d.events.beh] == KINDS.index("attempt")
        cond = d.events.cond[att] if d.events.cond.shape[0] else np.zeros((a.cit.shape[0], 0), np.bool_)
        allowed = a.denied[:, 0] == 0
        oc, oi = [], []
        for b in np.unique(econ.out_beh).tolist():
            sel = np.flatnonzero(allowed & (a.beh == b))
            if sel.shape[0] == 0:
                continue
            cit = a.cit[sel]
            u = rng.uniforms(rng.day_key(self.seed, f"outcome:{p.beh[b]}", d.day), cit.astype(np.int64))
            chosen = np.full(sel.shape[0], -1, np.int64)
            cum = np.zeros(sel.shape[0])
            for o in np.flatnonzero(econ.out_beh == b).tolist():
                prob = np.full(sel.shape[0], econ.out_p[o])
                for dim in range(econ.out_group.shape[1]):
                    prob = prob * econ.out_group[o, dim, st.groups[dim][cit].astype(np.int64)]
                if econ.out_factors[o].shape[0]:
                    prob = prob * factor_product(econ, econ.out_factors[o], cond[sel])
                cum = np.minimum(cum + prob, 1.0)
                chosen = np.where((chosen < 0) & (u < cum), o, chosen)
            for o in np.unique(chosen[chosen >= 0]).tolist():
                who = cit[chosen == o]
                oc.append(who)
                oi.append(np.full(who.shape[0], o, np.int64))
                self._effects(st, r, d.day, o, who)
        if oc:
            r.out_cit, r.out_idx = np.concatenate(oc), np.concatenate(oi)

    def _effects(self, st: State, r: MoneyDay, day: int, o: int, who: np.ndarray) -> None:
        econ = self.econ
        t = int(econ.out_rtype[o])
        if t >= 0:
            n = who.shape[0]
            one = np.ones(n, np.uint8)
            st.records.push(day + int(econ.out_delay[o]), who.astype(np.int64), np.full(n, t, np.int64),
                            np.full(n, -1, np.int64), np.full(n, day, np.int64), one, one, one)
        for c in np.flatnonzero(econ.out_money[o]).tolist():
            self._move(st, r, who, c, np.full(who.shape[0], econ.out_money[o, c]))

    def run(self, st: State, d: Day, x: Exchange) -> None:
        r = MoneyDay()
        self._track(d)
        self._refund(st, d, r)
        self._clawback(st, d, r)
        self._outcomes(st, d, r)
        d.money = r
