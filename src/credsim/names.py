"""One source for every name credsim writes and reads back.

Behaviour kinds, response triggers and sanction effects are spelled here once; the schema's
``Literal`` types, the compiled plan and the stages take them from this module. Metric names
are built here too, by the same functions when a run writes ``metrics.parquet`` and when the
audit, the CLI summary, sweeps or the dashboard read it, so a renamed metric cannot leave a
reader behind. :data:`METRIC_FAMILIES` says in plain words what each family counts; the
documentation and the report's glossary are generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KINDS: Final = ("infraction", "good_deed", "speech", "attempt", "cure", "other")
TRIGGERS: Final = ("own_sanction", "own_listed", "contact_listed")
SANCTION_EFFECTS: Final = ("deny", "reward", "clawback")
RESPONSE_EFFECTS: Final = ("reduce_rate", "cut_ties")
LIST_KINDS: Final = ("black", "red")
SCORE_SOURCES: Final = ("points", "model")
VIEWS: Final = ("official", "shadow")
RETRACTION_REASONS: Final = ("appeal", "correction")  # why a record left the dossier before its time
# How a stay on a list ended (the redress stage attributes each official exit to one route):
# a cure record filed (compliance, payment), a retraction (an objection upheld), credit repair,
# the fixed term run out, the grade recovered, or something else (a retraction of another reason).
EXIT_ROUTES: Final = ("compliance", "appeal", "repair", "term", "grade", "other")
NOTICE_AT: Final = ("listing", "filing", "denial")
APPEAL_ORDERS: Final = ("fifo", "lifo")

ALL: Final = "all"  # the dimension and group of the whole-population rows of metrics.parquet


@dataclass(frozen=True)
class Family:
    """A family of metrics: ``prefix.<name>`` (or a fixed name when ``prefix`` has no placeholder)."""

    prefix: str
    kind: str  # "flow" (per day) or "stock" (level at the end of the day)
    meaning: str

    def __call__(self, name: str = "") -> str:
        return f"{self.prefix}.{name}" if name else self.prefix

    def like(self) -> str:
        """A SQL ``LIKE`` pattern matching every member of the family."""
        return f"{self.prefix}.%"

    def member(self, metric: str) -> str | None:
        """``name`` if ``metric`` is ``prefix.name``, else None."""
        head = self.prefix + "."
        return metric[len(head):] if metric.startswith(head) else None


EVENTS = Family("events", "flow", "true events of the behaviour (what citizens did, seen or not)")
OBSERVED = Family("observed", "flow", "true events the sensor recorded")
FALSE_OBSERVED = Family("false_observed", "flow", "false records the sensor made (misattributed or misread)")
ENTRIES = Family("entries", "flow", "citizens entering the list in the official view")
EXITS = Family("exits", "flow", "citizens leaving the list in the official view")
SHADOW_ENTRIES = Family("shadow_entries", "flow", "entries in the shadow view (every true event, nothing false)")
SHADOW_EXITS = Family("shadow_exits", "flow", "exits in the shadow view")
LISTED = Family("listed", "stock", "citizens on the list (official view)")
SHADOW_LISTED = Family("shadow_listed", "stock", "citizens on the list in the shadow view")
GRADE = Family("grade", "stock", "citizens holding the grade (official view)")
SHADOW_GRADE = Family("shadow_grade", "stock", "citizens holding the grade in the shadow view")
ATTEMPTS = Family("attempts", "flow", "attempts at the activity (e.g. buying a flight ticket)")
DENIED = Family("denied", "flow", "attempts denied by a sanction in the official view")
SHADOW_DENIED = Family("shadow_denied", "flow", "attempts the same rules deny in the shadow view")
REWARDED = Family("rewarded", "flow", "attempts rewarded (e.g. a discount) in the official view")
WRONGFUL = Family("wrongful", "flow", "attempts denied officially but allowed in the shadow view")
MISSED = Family("missed", "flow", "attempts allowed officially but denied in the shadow view")
RESPONSE = Family("response", "flow", "citizens in whom the response was triggered")
REACH = Family("reach", "flow", "contacts the posts of a speech behaviour reached (the poster's active ties, "
               "less those a censor hid them from); written only when a sensor suppresses posts")
REACH_LOST = Family("reach_lost", "flow", "contacts the posts of a speech behaviour did not reach because a "
                    "censor hid them (reach suppressed, no record made)")
NOTICES = Family("notices", "flow", "citizens served notice of a listing (or of a record counting towards it), by list")
APPEALS_FILED = Family("appeals_filed", "flow", "objections filed with the appeal body")
APPEALS_DECIDED = Family("appeals_decided", "flow", "objections the appeal body decided")
APPEALS_UPHELD = Family("appeals_upheld", "flow", "objections upheld (the contested record is retracted)")
APPEALS_UPHELD_FALSE = Family("appeals_upheld_false", "flow", "objections upheld whose contested record was false")
APPEALS_OVERDUE = Family("appeals_overdue", "flow", "objections decided after the body's declared deadline")
APPEAL_BACKLOG = Family("appeal_backlog", "stock", "objections waiting for a decision at the end of the day")
APPEAL_COST = Family("appeal_cost", "flow", "money citizens paid to file objections")
INVESTIGATED = Family("investigated", "flow", "citizens investigated (the day's k riskiest, or a random check)")
INVESTIGATED_TRUE = Family("investigated_true", "flow", "citizens investigated who truly have what is looked for "
                           "(found or not)")
INVESTIGATION_FOUND = Family("investigation_found", "flow", "investigations that found what they look for (true "
                             "findings)")
INVESTIGATION_FALSE = Family("investigation_false", "flow", "investigations that 'found' it in a citizen without it "
                             "(false records)")
OUTCOMES = Family("outcomes", "flow", "allowed attempts that had the outcome: <behaviour>.<outcome> (e.g. a claim "
                  "paid, a loan defaulted)")
MONEY = Family("money", "flow", "money added to the balance that day (negative: taken off), by column: a benefit "
               "paid, a clawback (taken), its refund (refunded), compensation (compensated)")
CLAWBACKS = Family("clawbacks", "flow", "clawbacks taken by the sanction (a stay on its list began)")
EXITS_BY = Family("exits_by", "flow", "official list exits by route: <list>.<route> (compliance, appeal, repair, "
                  "term, grade, other)")


def exit_route(lst: str, route: str) -> str:
    """The metric of official exits from ``lst`` by ``route`` (one of :data:`EXIT_ROUTES`)."""
    if route not in EXIT_ROUTES:
        raise ValueError(f"exit route {route!r} is not one of {', '.join(EXIT_ROUTES)}")
    return EXITS_BY(f"{lst}.{route}")

TRAIT_PREFIX: Final = "trait_"


def trait_column(name: str) -> str:
    """The citizens.parquet column of the trait ``name`` (``trait_conscientiousness``, ...)."""
    return f"{TRAIT_PREFIX}{name}"


def money_column(name: str) -> str:
    """The citizens.parquet column of the money balance ``name`` (``money_taken``, ``money_benefits``, ...)."""
    return f"money_{name}"


POPULATION: Final = "population"
RECORDS_OFFICIAL_TRUE: Final = "records.official_true"
RECORDS_OFFICIAL_FALSE: Final = "records.official_false"
RECORDS_SHADOW: Final = "records.shadow"
POINTS_LOST: Final = "points.lost"
SCORE_SUM: Final = "score_sum"
SHADOW_SCORE_SUM: Final = "shadow_score_sum"
MODEL_SCORE_SUM: Final = "model_score_sum"
SHADOW_MODEL_SCORE_SUM: Final = "shadow_model_score_sum"
DENIED_CROSS_CONTEXT_SUM: Final = "denied.cross_context_sum"
DENIED_ASSOCIATION_ONLY: Final = "denied.association_only"
ASSOCIATION_RECORDS: Final = "association_records"
TIES_CUT: Final = "ties_cut"

SINGLE_METRICS: Final[dict[str, str]] = {
    POPULATION: "citizens alive in the group",
    RECORDS_OFFICIAL_TRUE: "records of true events filed in the official dossier",
    RECORDS_OFFICIAL_FALSE: "false records filed in the official dossier",
    RECORDS_SHADOW: "records filed in the shadow view (every true event of an in-scope behaviour)",
    POINTS_LOST: "points deducted by records filed that day (official view)",
    SCORE_SUM: "sum of official points scores",
    SHADOW_SCORE_SUM: "sum of shadow points scores",
    MODEL_SCORE_SUM: "sum of official model scores",
    SHADOW_MODEL_SCORE_SUM: "sum of shadow model scores",
    DENIED_CROSS_CONTEXT_SUM: "sum over denials of the share of points behind the denial from other domains",
    DENIED_ASSOCIATION_ONLY: "denials that would not have happened without association records",
    ASSOCIATION_RECORDS: "records filed because a contact was listed (guilt by association)",
    TIES_CUT: "contact ties cut because a contact was listed",
}

# The single metrics that are levels at the end of the day (the others count what happened that day).
SINGLE_STOCKS: Final = frozenset({POPULATION, SCORE_SUM, SHADOW_SCORE_SUM, MODEL_SCORE_SUM, SHADOW_MODEL_SCORE_SUM})

FAMILIES: Final = (EVENTS, OBSERVED, FALSE_OBSERVED, ENTRIES, EXITS, SHADOW_ENTRIES, SHADOW_EXITS, LISTED,
                   SHADOW_LISTED, GRADE, SHADOW_GRADE, ATTEMPTS, DENIED, SHADOW_DENIED, REWARDED, WRONGFUL, MISSED,
                   RESPONSE, REACH, REACH_LOST, NOTICES, APPEALS_FILED, APPEALS_DECIDED, APPEALS_UPHELD,
                   APPEALS_UPHELD_FALSE, APPEALS_OVERDUE, APPEAL_BACKLOG, APPEAL_COST, EXITS_BY, INVESTIGATED,
                   INVESTIGATED_TRUE, INVESTIGATION_FOUND, INVESTIGATION_FALSE, OUTCOMES, MONEY, CLAWBACKS)
METRIC_FAMILIES: Final[dict[str, str]] = {f.prefix: f.meaning for f in FAMILIES}


def describe(metric: str) -> str:
    """Plain words for a metric name (``events.traffic.jaywalk`` -> what it counts)."""
    if metric in SINGLE_METRICS:
        return SINGLE_METRICS[metric]
    for f in sorted(FAMILIES, key=lambda f: -len(f.prefix)):
        name = f.member(metric)
        if name is not None:
            return f"{f.meaning}: {name}"
    raise KeyError(f"unknown metric {metric!r}")
