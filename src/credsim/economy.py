"""Money, outcomes of attempts and state-dependent rates, compiled to index tables.

Why apart from :mod:`credsim.plan`: these keys are optional and used by few scenarios; one small
typed bundle (:class:`Economy`) keeps them together, and a scenario without them compiles to an
inactive bundle, so it runs exactly the stages and draws it always did.

**State conditions** (a score range, grades, a list, a money balance) are compiled into a table of
distinct conditions; :func:`conditions` evaluates them for a set of citizens against the state
*at the start of the day*. The behave stage evaluates them for today's events before any other
stage runs (so the state is yesterday's end state) and hands the result on in ``Day.events``;
outcomes read the rows of their attempts from there. Nothing decided today can change a rate or
an outcome probability of today: there is no same-day cycle.

**State-dependent rates** are drawn by thinning. The behaviour's stream is sampled at
``rate x M`` (``M`` = the largest product of its state multipliers, at least 1), then an event is
kept with probability ``m_i / M`` (``m_i`` = the product of the multipliers whose conditions the
citizen meets), a draw of the stream ``state:<behaviour>`` keyed by (seed, day, citizen). So
P(event) = min(1, r x M) x m_i / M, which is exactly ``r x m_i`` whenever ``r x M <= 1`` (the
scenario check refuses a base rate with ``rate x M > 1``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from credsim.scenario.economy import COMPENSATED, ENGINE_MONEY, REFUNDED, TAKEN, StateFactor
from credsim.scenario.schema import Scenario

# condition kinds (column 0 of Economy.cond)
C_LIST, C_GRADES, C_POINTS, C_MODEL, C_MONEY = 0, 1, 2, 3, 4


@dataclass
class Economy:
    """The scenario's money, outcomes and state factors as arrays (see the module docstring)."""

    money: list[str]  # money columns: declared ones, then taken, refunded, compensated (empty: no money)
    # distinct state factors' conditions: each factor is a conjunction of rows of ``cond``
    cond_kind: np.ndarray  # (C,) one of C_*
    cond_ref: np.ndarray  # (C,) list index, money column or -1
    cond_lo: np.ndarray  # (C,) lower bound (score: inclusive; money: exclusive) or -inf
    cond_hi: np.ndarray  # (C,) upper bound (score: exclusive; money: inclusive) or +inf
    cond_grades: np.ndarray  # (C, G) bool
    # factors: (multiplier, conditions) -- factor f holds when every condition in fac_conds[f] holds
    fac_mult: np.ndarray  # (F,)
    fac_conds: list[np.ndarray]  # F arrays of condition indices
    beh_factors: list[np.ndarray]  # (B) factor indices of each behaviour's rate
    beh_state_max: np.ndarray  # (B,) M: the largest product of a behaviour's state multipliers (>= 1)
    # outcomes, flattened in declared order: behaviour, probability, group multipliers, factors, effects
    out_names: list[str]  # "<behaviour>.<outcome>"
    out_beh: np.ndarray  # (O,)
    out_p: np.ndarray  # (O,)
    out_group: np.ndarray  # (O, D, V)
    out_factors: list[np.ndarray]
    out_rtype: np.ndarray  # (O,) record type filed or -1
    out_delay: np.ndarray  # (O,)
    out_money: np.ndarray  # (O, M) amounts added
    # clawbacks: sanctions with effect clawback
    claw_names: list[str]
    claw_list: np.ndarray  # (K,)
    claw_amount: np.ndarray  # (K,)
    claw_share: np.ndarray  # (K, M)
    claw_comp: np.ndarray  # (K,)
    n_cond: int = 0
    beh_has_state: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))

    @property
    def active(self) -> bool:
        """Whether the money/outcomes stage runs (outcomes, clawbacks or money declared)."""
        return bool(self.money) or bool(self.out_names) or bool(self.claw_names)

    def col(self, name: str) -> int:
        return self.money.index(name)


def max_product(mults: list[float]) -> float:
    """The largest product of any subset of the multipliers (at least 1: no factor applies)."""
    return float(np.prod([m for m in mults if m > 1.0])) if any(m > 1.0 for m in mults) else 1.0


def compile_economy(scen: Scenario, dims: list[str], maxv: int, beh: list[str], rtypes: list[str],
                    lists: list[str], grades: list[str],
                    group_table: Callable[[dict[str, dict[str, float]]], np.ndarray]) -> Economy:
    """Compile the economy keys (``group_table`` is :func:`credsim.plan._group_table` bound to the scenario)."""
    has_money = bool(scen.money) or any(s.effect == "clawback" for s in scen.sanctions.values()) or any(
        o.money for b in scen.behaviours.values() for o in b.outcomes.values())
    money = (list(scen.money) + list(ENGINE_MONEY)) if has_money else []
    G = max(len(grades), 1)
    keys: dict[tuple[object, ...], int] = {}
    kinds: list[int] = []
    refs: list[int] = []
    los: list[float] = []
    his: list[float] = []
    gmask: list[np.ndarray] = []

    def cond(kind: int, ref: int, lo: float, hi: float, gs: tuple[int, ...] = ()) -> int:
        k = (kind, ref, lo, hi, gs)
        if k not in keys:
            keys[k] = len(kinds)
            kinds.append(kind)
            refs.append(ref)
            los.append(lo)
            his.append(hi)
            m = np.zeros(G, np.bool_)
            m[list(gs)] = True
            gmask.append(m)
        return keys[k]

    fac_mult: list[float] = []
    fac_conds: list[np.ndarray] = []

    def factor(f: StateFactor) -> int:
        cs: list[int] = []
        if f.list_ is not None:
            cs.append(cond(C_LIST, lists.index(f.list_), -np.inf, np.inf))
        if f.grades is not None:
            cs.append(cond(C_GRADES, -1, -np.inf, np.inf, tuple(sorted(grades.index(g) for g in f.grades))))
        if f.score is not None:
            lo = -np.inf if f.score.min is None else float(f.score.min)
            hi = np.inf if f.score.below is None else float(f.score.below)
            cs.append(cond(C_POINTS if f.score.of == "points" else C_MODEL, -1, lo, hi))
        if f.money is not None:
            lo = -np.inf if f.money.above is None else float(f.money.above)
            hi = np.inf if f.money.below is None else float(f.money.below)
            cs.append(cond(C_MONEY, money.index(f.money.column), lo, hi))
        fac_mult.append(f.multiplier)
        fac_conds.append(np.array(cs, np.int64))
        return len(fac_mult) - 1

    bs = [scen.behaviours[b] for b in beh]
    beh_factors = [np.array([factor(f) for f in b.state], np.int64) for b in bs]
    beh_state_max = np.array([max_product([f.multiplier for f in b.state]) for b in bs], np.float64)
    out_names: list[str] = []
    ob: list[int] = []
    op: list[float] = []
    og: list[np.ndarray] = []
    of: list[np.ndarray] = []
    ort: list[int] = []
    od: list[int] = []
    om: list[np.ndarray] = []
    for bi, b in enumerate(bs):
        for on, o in b.outcomes.items():
            out_names.append(f"{beh[bi]}.{on}")
            ob.append(bi)
            op.append(o.probability)
            og.append(group_table(o.by))
            of.append(np.array([factor(f) for f in o.state], np.int64))
            ort.append(rtypes.index(o.records) if o.records is not None else -1)
            od.append(o.delay_days)
            v = np.zeros(len(money))
            for c, a in o.money.items():
                v[money.index(c)] = a
            om.append(v)
    claws = [(n, s) for n, s in scen.sanctions.items() if s.effect == "clawback"]
    share = np.zeros((len(claws), len(money)))
    for k, (_n, s) in enumerate(claws):
        for c, f in s.share_of.items():
            share[k, money.index(c)] = f
    return Economy(
        money=money,
        cond_kind=np.array(kinds, np.int64), cond_ref=np.array(refs, np.int64),
        cond_lo=np.array(los, np.float64), cond_hi=np.array(his, np.float64),
        cond_grades=np.stack(gmask) if gmask else np.zeros((0, G), np.bool_),
        fac_mult=np.array(fac_mult, np.float64), fac_conds=fac_conds,
        beh_factors=beh_factors, beh_state_max=beh_state_max,
        out_names=out_names, out_beh=np.array(ob, np.int64), out_p=np.array(op, np.float64),
        out_group=np.stack(og) if og else np.ones((0, len(dims), maxv)),
        out_factors=of, out_rtype=np.array(ort, np.int64), out_delay=np.array(od, np.int64),
        out_money=np.stack(om) if om else np.zeros((0, len(money))),
        claw_names=[n for n, _s in claws],
        claw_list=np.array([lists.index(s.when.list_ or "") for _n, s in claws], np.int64),
        claw_amount=np.array([s.amount for _n, s in claws], np.float64), claw_share=share,
        claw_comp=np.array([s.compensation for _n, s in claws], np.float64),
        n_cond=len(kinds), beh_has_state=np.array([f.shape[0] > 0 for f in beh_factors], np.bool_),
    )


def conditions(econ: Economy, listed: np.ndarray, grade: np.ndarray, score: np.ndarray, mscore: np.ndarray,
               money: np.ndarray, cit: np.ndarray) -> np.ndarray:
    """``(len(cit), C)`` bool: which state conditions each citizen meets, from the official columns given."""
    out = np.zeros((cit.shape[0], econ.n_cond), np.bool_)
    for c in range(econ.n_cond):
        kind, ref, lo, hi = int(econ.cond_kind[c]), int(econ.cond_ref[c]), econ.cond_lo[c], econ.cond_hi[c]
        if kind == C_LIST:
            out[:, c] = listed[0, ref, cit] == 1
        elif kind == C_GRADES:
            out[:, c] = econ.cond_grades[c, grade[0, cit].astype(np.int64)]
        elif kind in (C_POINTS, C_MODEL):
            v = (score if kind == C_POINTS else mscore)[0, cit].astype(np.float64)
            out[:, c] = (v >= lo) & (v < hi)
        else:
            v = money[ref, cit]
            out[:, c] = (v > lo) & (v <= hi)
    return out


def factor_product(econ: Economy, factors: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """The product, per row of ``cond``, of the multipliers of ``factors`` whose conditions all hold."""
    m = np.ones(cond.shape[0])
    for f in factors.tolist():
        cs = econ.fac_conds[f]
        holds = cond[:, cs].all(axis=1) if cs.shape[0] else np.ones(cond.shape[0], np.bool_)
        m = np.where(holds, m * econ.fac_mult[f], m)
    return m


__all__ = ["Economy", "compile_economy", "conditions", "factor_product", "TAKEN", "REFUNDED", "COMPENSATED"]
