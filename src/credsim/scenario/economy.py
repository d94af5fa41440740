"""Scenario keys for money, outcomes of attempts and state-dependent rates, and their name checks.

Why a module of their own: they are one idea -- what an allowed attempt leads to (a claim paid,
a loan defaulted), the money that moves with it, and how the citizen's current state (a score
range, a grade, a list, a money balance) changes rates and outcome probabilities (poverty after a
clawback raises arrears). :mod:`credsim.scenario.schema` attaches them to behaviours, sanctions
and the scenario; the cross-reference checks of these keys live here next to their models.

Order, stated once: every state condition reads the citizen's state **at the start of the day**
(the end state of the day before). A rate or an outcome probability therefore never depends on
anything decided the same day, so no same-day cycle (a rate that depends on a list that depends
on that rate) can exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from credsim.scenario.strict import Strict

Name = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")]
DottedName = Annotated[str, Field(min_length=3, max_length=120, pattern=r"^[a-z][a-z0-9_]*\.[a-z0-9_.\-]+$")]
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e9, le=1e9)]
Amount = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e9)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Multiplier = Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
GroupTable = dict[Name, dict[Name, Multiplier]]

# money columns every scenario with money has, kept by the engine (a clawback, its refund, compensation)
TAKEN, REFUNDED, COMPENSATED = "taken", "refunded", "compensated"
ENGINE_MONEY = (TAKEN, REFUNDED, COMPENSATED)


class ScoreRange(Strict):
    """A score range: at or above ``min`` and strictly below ``below`` (the grade bands' convention; either
    bound may be left out). Used by state-dependent rates and by sanction conditions alike."""

    of: Literal["points", "model"] = Field(default="points", description="which official score")
    min: Finite | None = Field(default=None, description="lowest score inside the range (inclusive)")
    below: Finite | None = Field(default=None, description="score at which the range ends (exclusive)")

    @model_validator(mode="after")
    def _bounds(self) -> ScoreRange:
        if self.min is None and self.below is None:
            raise ValueError("a score range needs min and/or below")
        if self.min is not None and self.below is not None and not self.min < self.below:
            raise ValueError(f"a score range needs min < below (got min {self.min}, below {self.below})")
        return self


class MoneyRange(Strict):
    """A money balance range: ``above < balance <= below`` (either bound may be left out)."""

    column: Name = Field(description="a money column: one declared in 'money', or taken/refunded/compensated")
    above: Finite | None = Field(default=None, description="the balance must be greater than this")
    below: Finite | None = Field(default=None, description="the balance must be at most this")

    @model_validator(mode="after")
    def _bounds(self) -> MoneyRange:
        if self.above is None and self.below is None:
            raise ValueError("a money condition needs above and/or below")
        return self


class StateFactor(Strict):
    """A multiplier that applies while the citizen's start-of-day state meets every condition given."""

    multiplier: Multiplier = Field(description="multiplies the rate (or probability) while the conditions hold")
    list_: Name | None = Field(default=None, alias="list", description="the citizen is on this list (official)")
    grades: list[Name] | None = Field(default=None, description="the citizen holds one of these grades (official)")
    score: ScoreRange | None = Field(default=None, description="the official score is in this range")
    money: MoneyRange | None = Field(default=None, description="a money balance is in this range")

    @model_validator(mode="after")
    def _some(self) -> StateFactor:
        if self.list_ is None and self.grades is None and self.score is None and self.money is None:
            raise ValueError("a state factor needs at least one of list, grades, score, money")
        return self


class Outcome(Strict):
    """One of the mutually exclusive outcomes of an allowed attempt (a claim paid, a loan defaulted)."""

    probability: Probability = Field(description="probability of this outcome for an allowed attempt (before "
                                     "the group and state multipliers)")
    by: GroupTable = Field(default={}, description="multipliers of the probability by group")
    state: list[StateFactor] = Field(default=[], description="multipliers of the probability by the citizen's "
                                     "start-of-day state (score range, grade, list, money)")
    records: DottedName | None = Field(default=None, description="a record of this type (a behaviour) is filed "
                                       "(true, official and shadow) so its points, features and lists follow")
    delay_days: Annotated[int, Field(strict=True, ge=1, le=365)] = Field(
        default=1, description="days from the attempt until the record is filed (at least 1: today's dossier "
        "is already filed)")
    money: dict[Name, Finite] = Field(default={}, description="amounts added to money columns (negative takes "
                                      "money off the balance), e.g. a benefit paid")
