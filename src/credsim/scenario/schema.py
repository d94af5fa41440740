"""The typed schema of a scenario file.

A scenario declares everything a run depends on. Every section is a pydantic model with
``extra="forbid"``, so a misspelt key is an error, not a silently ignored setting.
Cross-references between sections (a sensor observing a behaviour, a sanction naming a
list) are checked afterwards by :mod:`credsim.scenario.check`, which reports the key path
of every broken name. Nothing in a scenario is ever evaluated as code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from credsim.scenario.economy import MoneyRange as MoneyRange
from credsim.scenario.economy import Outcome, StateFactor
from credsim.scenario.economy import ScoreRange as ScoreRange
from credsim.scenario.strict import Strict

STANDARD_DOMAINS = (
    "finance",
    "court",
    "traffic",
    "commerce",
    "speech",
    "civic",
    "family",
    "travel",
    "lodging",
    "employment",
)
ASSOCIATION_DOMAIN = "association"

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Multiplier = Annotated[float, Field(ge=0.0, le=1e6, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e9, le=1e9)]
Days = Annotated[int, Field(strict=True, ge=1, le=36_500)]
Name = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")]
DottedName = Annotated[
    str, Field(min_length=3, max_length=120, pattern=r"^[a-z][a-z0-9_]*\.[a-z0-9_.\-]+$")
]
# A reader's words for a name (reports, dashboard, explain): plain text on one line, no markup.
Label = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^<>&\x00-\x1f\x7f]*\S[^<>&\x00-\x1f\x7f]*$")]

# dimension -> value -> multiplier (or share, or shift)
GroupTable = dict[Name, dict[Name, Multiplier]]
BehaviourKind = Literal["infraction", "good_deed", "speech", "attempt", "cure", "other"]


class Trait(Strict):
    """A latent trait, normal with the given mean and sd, shifted (in sd units) by group."""

    mean: Finite = 0.0
    sd: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 1.0
    shift: dict[Name, dict[Name, Finite]] = {}


class GroupLabels(Strict):
    """Readers' words for a group dimension and its values (the names stay the scenario's keys)."""

    label: Label | None = None
    values: dict[Name, Label] = {}


class Dependants(Strict):
    """Family ties: each citizen has 0, 1, 2, ... dependants (children), drawn once from declared shares."""

    shares: list[Probability] = Field(min_length=1, max_length=21, description="share of citizens with 0, 1, 2, "
                                      "... dependants (index = number of dependants); they sum to 1")

    @field_validator("shares")
    @classmethod
    def _sum_to_one(cls, v: list[float]) -> list[float]:
        total = sum(v)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"shares must sum to 1, they sum to {total:.6g}")
        return v


class Population(Strict):
    size: Annotated[int, Field(strict=True, ge=1, le=2_000_000_000)]
    groups: dict[Name, dict[Name, Probability]]
    traits: dict[Name, Trait] = {}
    dependants: Dependants | None = Field(default=None, description="family ties (none by default)")
    reference: dict[Name, Name] = Field(
        default={},
        description="the reference group of a dimension for disparate-impact ratios (default: the largest "
        "declared share, ties broken by declaration order)",
    )
    labels: dict[Name, GroupLabels] | None = None

    @model_validator(mode="after")
    def _labels_exist(self) -> Population:
        for dim, gl in (self.labels or {}).items():
            if dim not in self.groups:
                raise ValueError(f"labels names dimension {dim!r}, which is not in groups "
                                 f"(expected one of {', '.join(self.groups)})")
            for g in gl.values:
                if g not in self.groups[dim]:
                    raise ValueError(f"labels.{dim}.values names {g!r}, which is not a group of {dim!r} "
                                     f"(expected one of {', '.join(self.groups[dim])})")
        return self

    @model_validator(mode="after")
    def _reference_exists(self) -> Population:
        for dim, g in self.reference.items():
            if dim not in self.groups:
                raise ValueError(f"reference names dimension {dim!r}, which is not in groups "
                                 f"(expected one of {', '.join(self.groups)})")
            if g not in self.groups[dim]:
                raise ValueError(f"reference.{dim} is {g!r}, which is not a group of {dim!r} "
                                 f"(expected one of {', '.join(self.groups[dim])})")
        return self

    @field_validator("groups")
    @classmethod
    def _shares_sum_to_one(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        if len(v) > 16:
            raise ValueError("at most 16 group dimensions")
        for dim, shares in v.items():
            if not 1 <= len(shares) <= 250:
                raise ValueError(f"dimension {dim!r} needs 1 to 250 values")
            total = sum(shares.values())
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                raise ValueError(f"shares of {dim!r} must sum to 1, they sum to {total:.6g}")
        return v


class Graph(Strict):
    contacts: Annotated[int, Field(strict=True, ge=0, le=1000)] = 0
    homophily: dict[Name, Probability] = {}

    @field_validator("homophily")
    @classmethod
    def _homophily_total(cls, v: dict[str, float]) -> dict[str, float]:
        if sum(v.values()) > 1.0 + 1e-9:
            raise ValueError("homophily shares must sum to at most 1")
        return v


class Step(Strict):
    """From ``from_day`` on (until the next step), the behaviour's rate is multiplied by ``multiplier``."""

    from_day: Annotated[int, Field(strict=True, ge=0, le=36_500)]
    multiplier: Probability


class Behaviour(Strict):
    """A daily Bernoulli behaviour: P(event) = rate x group multipliers x exp(trait betas).

    ``schedule`` (policy eras) scales the rate from given days on; multipliers are at most 1,
    so ``rate`` is the peak rate, and a lower era keeps a subset of the peak's events
    (common random numbers stay monotone).
    """

    kind: BehaviourKind
    rate: Probability
    label: Label | None = None
    by: GroupTable = {}
    traits: dict[Name, Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)]] = {}
    only_listed: Name | None = Field(
        default=None, description="only citizens on this (official) list can do it, e.g. a cure"
    )
    schedule: list[Step] = []
    lawful: bool | None = Field(
        default=None,
        description="whether doing it breaks a law; unset means every kind but 'infraction' is lawful. "
        "The audit measures punishment for lawful acts and, for unlawful ones only, enforcement missed",
    )
    state: list[StateFactor] = Field(
        default=[], description="multipliers of the rate by the citizen's start-of-day state (score range, grade, "
        "list, money balance), e.g. arrears more likely after a clawback")
    outcomes: dict[Name, Outcome] = Field(
        default={}, description="mutually exclusive outcomes of an allowed attempt (kind 'attempt' only), in "
        "declared order; what is left of probability 1 is no outcome")

    @property
    def is_lawful(self) -> bool:
        """Declared lawfulness, else by kind: only infractions break a law."""
        return self.kind != "infraction" if self.lawful is None else self.lawful

    @field_validator("schedule")
    @classmethod
    def _ascending(cls, steps: list[Step]) -> list[Step]:
        days = [s.from_day for s in steps]
        if any(a >= b for a, b in zip(days, days[1:], strict=False)):
            raise ValueError(f"schedule from_day values must be strictly ascending, got {days}")
        return steps


class Sensor(Strict):
    """Turns true events into records, misses some, and invents some (false records).

    A sensor with ``suppress`` set is a censor, not a recorder: the reporting describes posts
    whose reach is cut by region with no sanction on the person, so such a sensor files no
    record in any dossier (it cannot be in ``sharing``) and instead hides each post it catches
    from a share of the poster's contacts, which the run measures as reach.
    """

    observes: list[DottedName] = Field(min_length=1)
    label: Label | None = None
    coverage: Probability = 1.0
    coverage_by: GroupTable = {}
    detection: Probability = 1.0
    false_rate: Probability = 0.0
    delay_days: Annotated[int, Field(strict=True, ge=0, le=365)] = 0
    surveillance: GroupTable = {}
    suppress: Probability | None = Field(
        default=None,
        description="make this sensor a censor: a post it catches is hidden from this share of the "
        "poster's contacts (1 = from all) and no record is filed; the sensor may observe only "
        "behaviours of kind 'speech' and must not be listed in 'sharing'. Unset: an ordinary "
        "sensor that files records",
    )


class PointsRule(Strict):
    points: Finite
    expiry_days: Days | None = None


class Cap(Strict):
    period_days: Days = 30
    max_loss: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = math.inf
    max_gain: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = math.inf


def _one_dimension(table: Mapping[str, Mapping[str, float]], key: str) -> None:
    if len(table) > 1:
        raise ValueError(f"{key} takes one group dimension (got {', '.join(table)}): a citizen belongs to "
                         "one group of each dimension, so two would give two values")


class Points(Strict):
    base: Finite = 1000.0
    base_by: dict[Name, dict[Name, Finite]] = Field(
        default={}, description="starting scores by group of one dimension (groups not named start at base)")
    rules: dict[DottedName, Finite | PointsRule] = {}
    expiry_days: Days = 365
    cap: Cap | None = None

    @field_validator("base_by")
    @classmethod
    def _base_one_dim(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        _one_dimension(v, "base_by")
        return v


class Feature(Strict):
    """A dossier feature for a model score: exactly one source."""

    records: list[DottedName] | None = None
    group: dict[Name, dict[Name, Finite]] | None = None
    trait: Name | None = None
    contacts_listed: Name | None = None
    expiry_days: Days = 365

    @model_validator(mode="after")
    def _one_source(self) -> Feature:
        given = [
            k
            for k in ("records", "group", "trait", "contacts_listed")
            if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a feature needs exactly one of records, group, trait, contacts_listed"
                f" (got {given or 'none'})"
            )
        return self


class Dimension(Strict):
    weight: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    features: dict[Name, Finite]


class ModelScore(Strict):
    """Commercial-style score: score = clip(center + scale * sum_d w_d * sum_f c_f * x_f)."""

    range: tuple[Finite, Finite] = (350.0, 950.0)
    center: Finite = 650.0
    scale: Finite = 100.0
    every_days: Days = 30
    features: dict[Name, Feature]
    dimensions: dict[Name, Dimension]

    @model_validator(mode="after")
    def _check(self) -> ModelScore:
        lo, hi = self.range
        if not lo < hi:
            raise ValueError(f"range must be [low, high] with low < high, got {list(self.range)}")
        return self


class Band(Strict):
    name: Name
    min: Finite | None = None
    label: Label | None = None


class Grades(Strict):
    score: Literal["points", "model"] = "points"
    bands: list[Band] = Field(min_length=1, max_length=60)

    @field_validator("bands")
    @classmethod
    def _descending(cls, bands: list[Band]) -> list[Band]:
        mins = [b.min for b in bands]
        if mins[-1] is not None:
            raise ValueError("the last (lowest) band must have no min, so every score has a grade")
        if any(m is None for m in mins[:-1]):
            raise ValueError("every band but the last needs a min")
        vals = [m for m in mins[:-1] if m is not None]
        if any(a <= b for a, b in zip(vals, vals[1:], strict=False)):
            raise ValueError(f"band mins must be strictly descending, got {vals}")
        return bands


class Scoring(Strict):
    points: Points | None = None
    model: ModelScore | None = None
    grades: Grades | None = None


class ListEntry(Strict):
    records: list[DottedName] | None = None
    count: Annotated[int, Field(strict=True, ge=1, le=10_000)] = 1
    window_days: Days = 365
    grace_days: Annotated[int, Field(strict=True, ge=0, le=3650)] = 0
    grades: list[Name] | None = None
    count_by: dict[Name, dict[Name, Annotated[int, Field(strict=True, ge=1, le=10_000)]]] = Field(
        default={}, description="records needed to enter, by group of one dimension (groups not named need count)")

    @model_validator(mode="after")
    def _one_rule(self) -> ListEntry:
        if (self.records is None) == (self.grades is None):
            raise ValueError("entry needs exactly one of records (with count/window) or grades")
        if self.count_by and self.records is None:
            raise ValueError("count_by needs an entry by records (a list entered by grades counts no records)")
        return self

    @field_validator("count_by")
    @classmethod
    def _count_one_dim(cls, v: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        _one_dimension(v, "count_by")
        return v


class Ground(Strict):
    """A listing ground (D1): a share of listings whose term is extended, or that have no fixed term."""

    share: Probability = Field(description="share of entries listed on this ground (drawn per entry)")
    extend_days: tuple[Days, Days] | None = Field(
        default=None, description="[shortest, longest] extension of the term, drawn uniformly in whole days")
    no_term: bool = Field(default=False, description="no fixed term: the stay ends only by a cure (or an appeal, "
                          "a repair)")

    @model_validator(mode="after")
    def _one_effect(self) -> Ground:
        if (self.extend_days is None) == (not self.no_term):
            raise ValueError("a ground needs exactly one of extend_days or no_term: true")
        if self.extend_days is not None and self.extend_days[0] > self.extend_days[1]:
            raise ValueError(f"extend_days must be [shortest, longest] (got {list(self.extend_days)})")
        return self


class ListExit(Strict):
    cure: list[DottedName] = []
    term_days: Days | None = None
    on_grade_recovery: bool = False
    grounds: dict[Name, Ground] = Field(
        default={}, description="listing grounds that change the term of a share of entries; the other entries "
        "keep term_days")

    @field_validator("grounds")
    @classmethod
    def _shares(cls, v: dict[str, Ground]) -> dict[str, Ground]:
        total = sum(g.share for g in v.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"ground shares must sum to at most 1 (they sum to {total:.6g})")
        return v


class ListSpec(Strict):
    kind: Literal["black", "red"] = "black"
    domain: Name
    label: Label | None = None
    entry: ListEntry
    exit: ListExit = ListExit()
    association_points: Finite = 0.0


_ATOMS = ("list", "grades", "score")


def _given(obj: Strict, keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if getattr(obj, "list_" if k == "list" else k) is not None]


class Condition(Strict):
    """One test of a citizen's state: on a list, holding one of some grades, or a score in a range."""

    list_: Name | None = Field(default=None, alias="list")
    grades: list[Name] | None = None
    score: ScoreRange | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        given = _given(self, _ATOMS)
        if len(given) != 1:
            raise ValueError(f"a condition needs exactly one of list, grades, score (got {given or 'none'})")
        return self


class ConditionGroup(Strict):
    """An item of a top-level ``all``/``any``: a single test, or an ``all``/``any`` of single tests."""

    list_: Name | None = Field(default=None, alias="list")
    grades: list[Name] | None = None
    score: ScoreRange | None = None
    all: list[Condition] | None = Field(default=None, min_length=1, max_length=32)
    any: list[Condition] | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _one(self) -> ConditionGroup:
        given = _given(self, (*_ATOMS, "all", "any"))
        if len(given) != 1:
            raise ValueError("an item of all/any needs exactly one of list, grades, score, all, any "
                             f"(got {given or 'none'}; all/any nest one level deep)")
        return self


class SanctionWhen(Strict):
    list_: Name | None = Field(default=None, alias="list")
    grades: list[Name] | None = None
    score: ScoreRange | None = None
    all: list[ConditionGroup] | None = Field(default=None, min_length=1, max_length=32)
    any: list[ConditionGroup] | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _one(self) -> SanctionWhen:
        given = _given(self, (*_ATOMS, "all", "any"))
        if len(given) != 1:
            raise ValueError(f"when needs exactly one of list, grades, score, all, any (got {given or 'none'})")
        return self

    @property
    def compound(self) -> bool:
        """Whether the condition needs the general evaluator (anything but one list or one set of grades)."""
        return self.list_ is None and self.grades is None


class Sanction(Strict):
    when: SanctionWhen
    label: Label | None = None
    attempts: list[DottedName] = []
    effect: Literal["deny", "reward", "clawback"] = "deny"
    severity: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 1.0
    reaches: Literal["citizen", "dependants"] = Field(
        default="citizen", description="who a denial harms: the citizen, or also the citizen's dependants (D10: "
        "children barred from high-fee schools); needs population.dependants")
    own_domain: bool = Field(
        default=False,
        description="use only records of each attempt's own domain: a list applies only to attempts of "
        "the list's domain; a points grade is taken from the base score less the points lost in that domain "
        "(the audit's cross-context counterfactual sets it on every sanction)",
    )
    amount: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = Field(
        default=0.0, description="clawback: a flat amount taken from the citizen when a stay on the list begins")
    share_of: dict[Name, Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]] = Field(
        default={}, description="clawback: shares of money balances taken back as well (e.g. benefits: 1.0 takes "
        "back every benefit kept); the balance goes down by what is taken")
    compensation: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = Field(
        default=0.0, description="clawback: a flat sum paid, besides the refund, when the record behind the "
        "clawback is retracted (e.g. NL5's 30,000)")

    @model_validator(mode="after")
    def _attempts_for_effect(self) -> Sanction:
        if self.effect == "clawback" and self.attempts:
            raise ValueError("a clawback acts on the citizen when a stay on the list begins, not on attempts: "
                             "leave attempts out")
        if self.effect != "clawback" and not self.attempts:
            raise ValueError(f"effect {self.effect!r} needs attempts (at least one behaviour of kind 'attempt')")
        return self


class Response(Strict):
    effect: Literal["reduce_rate", "cut_ties"]
    trigger: Literal["own_sanction", "own_listed", "contact_listed"]
    kinds: list[BehaviourKind] = []
    behaviours: list[DottedName] = []
    size: Probability = 0.0
    half_life_days: Annotated[float, Field(gt=0, le=36_500, allow_inf_nan=False)] = 90.0
    probability: Probability = 0.0
    lists: list[Name] = []


class Truth(Strict):
    """Who really has what an investigation looks for: a latent trait above a threshold."""

    trait: Name = Field(description="the latent trait that carries the truth (shift it by group for group base rates)")
    above: Finite = Field(description="a citizen has it when the trait is above this value")


class Investigation(Strict):
    """Capacity-limited enforcement: each day the k citizens ranked riskiest are investigated."""

    records: DottedName = Field(description="the record type (a behaviour) filed when the investigation finds "
                                "something, true or false")
    capacity_per_day: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] = Field(
        description="citizens investigated per day (a fraction: one every 1/capacity days)")
    per_100k: bool = Field(default=False, description="capacity_per_day is per 100,000 citizens of the run")
    rank_by: Literal["model", "points", "random"] = Field(
        default="model", description="the risk ranking: the official model score, the official points score, "
        "or a random draw (the random checks a model is compared with)")
    riskiest: Literal["high", "low"] = Field(
        default="high", description="which end of the score is investigated first")
    truth: Truth
    found: Probability = Field(default=1.0, description="probability the investigation finds it when it is there")
    false_finding: Probability = Field(
        default=0.0, description="probability the investigation 'finds' it when it is not there (a false record)")
    false_finding_by: GroupTable = Field(
        default={}, description="multipliers of false_finding by group (investigators' own bias); capped at 1")
    repeat_after_days: Days = Field(default=365, description="a citizen is not investigated again for this long")
    delay_days: Annotated[int, Field(strict=True, ge=1, le=365)] = Field(
        default=1, description="days from the investigation until its record is filed")


class Notice(Strict):
    """When a citizen learns of a listing (or of a record that counts towards one): only then can he object."""

    at: Literal["listing", "filing", "denial"] = Field(
        default="listing",
        description="what serves notice: 'listing' (served after the official list entry, as the SPC "
        "rules do), 'filing' (prior notice: served when a record counting towards the list is filed, so "
        "an objection can stop the entry during its grace days) or 'denial' (never served: the citizen "
        "learns only when an attempt is refused)")
    delay_days: Annotated[int, Field(strict=True, ge=0, le=3650)] = Field(
        default=0, description="days from the listing (or filing) until the notice reaches the citizen")
    probability: Probability = Field(
        default=1.0, description="share of listings (or records) whose notice is served at all; the others "
        "are learnt of only at a refused attempt")
    learn_on_denial: bool = Field(
        default=True, description="a refused attempt tells the citizen he is listed (the journalist who "
        "learnt of his listing when a flight booking was refused)")


class AppealBody(Strict):
    """A court or agency that hears objections to listings: a queue with a daily capacity."""

    lists: list[Name] = Field(default=[], description="the lists whose listings this body hears at first "
                              "instance (empty for a body that only reconsiders another body's rejections)")
    reconsideration: Name | None = Field(
        default=None, description="the body that reconsiders this body's rejections (D4: the next court). A "
        "rejected citizen files there with that body's filing probability, within its file_within_days of the "
        "rejection; unset: a rejection is final")
    capacity_per_day: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] = Field(
        description="cases decided per day at most (except overdue cases under an enforced deadline); a "
        "fraction decides one case every 1/capacity days (day d decides floor((d+1)c) - floor(dc))")
    per_100k: bool = Field(
        default=False, description="capacity_per_day is per 100,000 citizens of the run, so a run at another "
        "population size keeps the same load per case")
    order: Literal["fifo", "lifo"] = Field(
        default="fifo", description="served order of waiting cases: first filed first (fifo) or last filed "
        "first (lifo)")
    file_probability: Probability = Field(
        description="daily probability that a notified citizen with a contestable record files an objection "
        "(while the filing deadline runs)")
    file_probability_false: Probability | None = Field(
        default=None, description="the daily filing probability when the contested record is false (a citizen "
        "knows whether he defaulted); unset: file_probability")
    file_within_days: Days | None = Field(
        default=None, description="days after the notice within which an objection can be filed; unset: any "
        "time while the record counts")
    decide_within_days: Days | None = Field(
        default=None, description="the declared deadline for a decision, in days after filing (D4: 15)")
    deadline_enforced: bool = Field(
        default=False, description="decide every case on the day its deadline is reached, beyond the "
        "capacity if need be; otherwise the deadline is only measured (cases overdue)")
    success_false: Probability = Field(
        description="probability an objection is upheld when the contested record is false")
    success_true: Probability = Field(
        default=0.0, description="probability an objection is upheld when the contested record is true")
    success_by: GroupTable = Field(
        default={}, description="multipliers of the success probability by group (e.g. access to a "
        "lawyer); the product is capped at 1")
    correction_days: Annotated[int, Field(strict=True, ge=1, le=365)] = Field(
        default=1, description="days from an upheld decision until the record is retracted (D4: within 3 "
        "working days); at least 1, since the dossier of the decision day is already filed")
    cost: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] = Field(
        default=0.0, description="what filing costs the citizen (money units, counted as appeal_cost)")

    @model_validator(mode="after")
    def _enforced_needs_deadline(self) -> AppealBody:
        if self.deadline_enforced and self.decide_within_days is None:
            raise ValueError("deadline_enforced needs decide_within_days (the deadline to enforce)")
        return self


class Repair(Strict):
    """Credit repair: after some days on a list a citizen may apply and be restored (D5, D12)."""

    lists: list[Name] = Field(min_length=1, description="the lists a citizen can be restored from")
    after_days: Days = Field(description="days on the list before an application can succeed (D12: at least 3 "
                             "months for administrative penalties)")
    daily_probability: Probability = Field(
        description="daily probability that an eligible listed citizen applies and is restored (the stay ends "
        "the next day)")
    schedule: list[Step] = Field(
        default=[], description="policy eras: from each step's day on, the daily probability is multiplied by its "
        "multiplier (none: constant)")

    @field_validator("schedule")
    @classmethod
    def _ascending(cls, steps: list[Step]) -> list[Step]:
        days = [s.from_day for s in steps]
        if any(a >= b for a, b in zip(days, days[1:], strict=False)):
            raise ValueError(f"schedule from_day values must be strictly ascending, got {days}")
        return steps


class Redress(Strict):
    """Due process: notice of listings, objections heard by appeal bodies, and credit repair."""

    notice: Notice = Notice()
    notice_by_list: dict[Name, Notice] = Field(
        default={}, description="a notice rule of its own for some lists (the others follow notice)")
    appeals: dict[Name, AppealBody] = Field(default={}, description="appeal bodies, by name")
    repair: Repair | None = Field(default=None, description="credit repair (none by default)")


class RunSpec(Strict):
    days: Days = 365
    seed: Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)] = 0
    trace: Annotated[int, Field(strict=True, ge=0, le=100_000)] = 100
    trace_ids: list[Annotated[int, Field(strict=True, ge=0)]] = []


class Scenario(Strict):
    name: Name
    label: Label | None = None
    description: str = ""
    sources: list[str] = []
    domains: list[Name] = list(STANDARD_DOMAINS)
    population: Population
    graph: Graph = Graph()
    behaviours: dict[DottedName, Behaviour] = Field(min_length=1)
    sensors: dict[Name, Sensor] = {}
    sharing: list[Name] | None = None
    scoring: Scoring = Scoring()
    lists: dict[Name, ListSpec] = {}
    sanctions: dict[Name, Sanction] = {}
    responses: dict[Name, Response] = {}
    redress: Redress | None = Field(
        default=None, description="notice and appeals (none by default: citizens cannot object)")
    investigations: dict[Name, Investigation] = Field(
        default={}, description="capacity-limited investigations of the riskiest citizens, by name")
    money: list[Name] = Field(
        default=[], description="money balances kept per citizen (e.g. benefits, arrears), moved by outcomes and "
        "clawbacks; taken, refunded and compensated are kept by the engine whenever there is money")
    run: RunSpec = RunSpec()

    def shared_sensors(self) -> list[str]:
        """Sensors whose records reach the authority's dossier (all but censors when unspecified)."""
        if self.sharing is None:
            return [n for n, s in self.sensors.items() if s.suppress is None]
        return list(self.sharing)
