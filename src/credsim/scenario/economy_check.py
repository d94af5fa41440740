"""Name checks of the money, outcome and state-factor keys (:mod:`credsim.scenario.economy`).

Apart from the models so that the models need not know the whole scenario (the schema imports them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from credsim.scenario.economy import ENGINE_MONEY, StateFactor
from credsim.scenario.schema import Scenario


def check_economy(s: Scenario, one_of: Callable[[str, str, list[str], str], None],
                  check_table: Callable[[str, dict[str, dict[str, float]]], None]) -> list[tuple[str, str]]:
    """Names used by outcomes, state factors, money effects and clawbacks must be declared."""
    out: list[tuple[str, str]] = []
    lists, beh = list(s.lists), list(s.behaviours)
    grades = [b.name for b in s.scoring.grades.bands] if s.scoring.grades else []
    money = list(s.money) + list(ENGINE_MONEY)
    for i, m in enumerate(s.money):
        if m in ENGINE_MONEY:
            out.append((f"money[{i}]", f"a name other than {', '.join(ENGINE_MONEY)} (kept by the engine)"))
    if len(set(s.money)) != len(s.money):
        out.append(("money", f"distinct names (got {s.money})"))

    def factors(path: str, fs: list[StateFactor]) -> None:
        for j, f in enumerate(fs):
            p = f"{path}[{j}]"
            if f.list_ is not None:
                one_of(f"{p}.list", f.list_, lists, "a list")
            for k, g in enumerate(f.grades or []):
                one_of(f"{p}.grades[{k}]", g, grades, "a grade (scoring.grades.bands)")
            if f.score is not None and getattr(s.scoring, f.score.of) is None:
                out.append((f"{p}.score.of", f"a score that is defined: scoring.{f.score.of} is missing"))
            if f.money is not None:
                one_of(f"{p}.money.column", f.money.column, money, "a money column (money, or taken/refunded/"
                       "compensated)")

    for b, spec in s.behaviours.items():
        p = f"behaviours.{b}"
        factors(f"{p}.state", spec.state)
        big = [f.multiplier for f in spec.state if f.multiplier > 1]
        top = float(math.prod(big)) if big else 1.0
        if spec.rate * top > 1:
            out.append((f"{p}.state", f"multipliers whose largest product times the rate is at most 1 (a rate is "
                        f"a daily probability; rate {spec.rate} x {top:.6g} = {spec.rate * top:.6g})"))
        if spec.outcomes and spec.kind != "attempt":
            out.append((f"{p}.outcomes", f"outcomes only on a behaviour of kind 'attempt' ({b!r} is {spec.kind!r})"))
        total = sum(o.probability for o in spec.outcomes.values())
        if total > 1 + 1e-9:
            out.append((f"{p}.outcomes", f"outcome probabilities that sum to at most 1 (they are mutually "
                        f"exclusive; got {total:.6g})"))
        for on, o in spec.outcomes.items():
            q = f"{p}.outcomes.{on}"
            check_table(f"{q}.by", o.by)
            factors(f"{q}.state", o.state)
            if o.records is not None:
                one_of(f"{q}.records", o.records, beh, "a behaviour (the record type filed)")
            for col in o.money:
                one_of(f"{q}.money.{col}", col, list(s.money), "a money column declared in 'money'")
    for sn, san in s.sanctions.items():
        p = f"sanctions.{sn}"
        if san.effect == "clawback":
            ln = san.when.list_
            if ln is None or ln not in s.lists or s.lists[ln].entry.records is None:
                out.append((f"{p}.when", "a list entered by records for a clawback (it is taken when a stay begins "
                            "and refunded when the record behind it is retracted)"))
            for col in san.share_of:
                one_of(f"{p}.share_of.{col}", col, list(s.money), "a money column declared in 'money'")
        elif san.amount or san.share_of or san.compensation:
            out.append((f"{p}.effect", "'clawback' for amount, share_of or compensation"))
    return out
