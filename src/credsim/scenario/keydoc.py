"""What every key of a scenario file means, in words, with its units and an example.

The schema (:mod:`credsim.scenario.schema`) says what a value may be; this table says what it
*does*. The scenario-language reference, the JSON Schema's descriptions and ``credsim schema``
are generated from both. The table is kept apart from the schema so that the schema stays a
readable list of types; a test checks that every field of every schema model has an entry
here and that no entry names a field that no longer exists, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class KeyDoc(NamedTuple):
    """The words for one key: what it does, its unit (if it has one) and an example value (YAML)."""

    meaning: str
    units: str = ""
    example: str = ""


# Keys the loader reads before the schema sees the document (scenario/load.py).
EXTENDS: Final = KeyDoc(
    "build on another scenario: a built-in name or a file in the same folder. This file's keys are merged "
    "over it (mappings key by key, everything else replaced); a key set to `null` deletes the inherited one. "
    "At most 4 levels.", "", "city-points")

def _label(what: str, example: str) -> KeyDoc:
    """The one wording of every ``label`` key (they all feed the same dictionary of readers' words)."""
    return KeyDoc(f"readers' words for {what} in the report, the comparison, the dashboard and `explain` "
                  "(plain text, no markup; default: made from the name)", "", example)


# Section introductions, by model name (the reference's headings).
MODELS: Final[dict[str, str]] = {
    "Scenario": "The top level of a scenario file.",
    "Population": "Who lives in the simulated society: how many citizens, their groups and latent traits.",
    "GroupLabels": "Readers' words for a group dimension and its values; the scenario keeps its names.",
    "Dependants": "Family ties: how many dependants (children) each citizen has, drawn once per citizen id from "
                  "the declared shares (the same family in every shard layout and population size).",
    "Trait": "A latent trait of every citizen (standard normal unless given otherwise), shifted by group.",
    "Graph": "The social contact graph, used by association penalties, contact responses and contact features.",
    "Behaviour": "Something a citizen may do on any day, at a daily probability.",
    "Step": "One policy era of a behaviour's schedule.",
    "Sensor": "A platform or agency that sees some behaviours, misses some events and invents some records.",
    "Scoring": "How the authority turns a dossier into scores and grades.",
    "Points": "A points score (city style): a base, plus or minus points per record while the record lives.",
    "PointsRule": "Points for one record type, with its own expiry.",
    "Cap": "A cap on the points a citizen can lose or gain within a period.",
    "ModelScore": "A weighted model score (commercial style), recomputed on a schedule from dossier features.",
    "Feature": "One input of the model score; exactly one of `records`, `group`, `trait`, `contacts_listed`.",
    "Dimension": "A weighted group of features of the model score (e.g. 'credit history').",
    "Grades": "Grades from score bands.",
    "Band": "One grade band: the grade held by scores at or above `min`.",
    "ListSpec": "A blacklist (or red list) with its rules for entry and exit.",
    "ListEntry": "When a citizen enters the list: by records counted in a window, or by holding grades.",
    "ListExit": "How a citizen leaves the list.",
    "Sanction": "What a list or grade does to a citizen's attempts (deny them or reward them).",
    "SanctionWhen": "Who a sanction applies to: exactly one of `list`, `grades`, `score`, `all`, `any`. "
                    "`all` holds when every item holds, `any` when at least one does; an item is one test or an "
                    "`all`/`any` of single tests (one level of nesting). Every test reads the state the sanction "
                    "stage sees: today's lists and grades after classify, in the same view (official or shadow), "
                    "so a condition cannot depend on itself within a day.",
    "ConditionGroup": "An item of a top-level `all`/`any`: exactly one of `list`, `grades`, `score`, or an "
                      "`all`/`any` of single tests.",
    "Condition": "A single test inside a nested `all`/`any`: exactly one of `list`, `grades`, `score`.",
    "ScoreRange": "A score range: the score is at or above `min` and strictly below `below` (the bands' "
                  "convention); at least one of the two.",
    "Response": "How citizens change their behaviour or ties after a sanction or listing.",
    "Redress": "Due process: when citizens learn of a listing, and the bodies that hear their objections "
               "(the redress stage, between sanction and respond).",
    "Investigation": "Capacity-limited enforcement: each day the k citizens ranked riskiest (by a score, or at "
                     "random for the random checks a model is compared with) are investigated; what is found "
                     "(or falsely found) is filed as a record.",
    "Truth": "The latent truth an investigation looks for: a trait above a threshold (shift the trait by group "
             "for group base rates).",
    "Ground": "A listing ground (D1): a share of a list's entries whose term is extended (`extend_days`) or "
              "that have no fixed term (`no_term`: exit only by a cure, an appeal or a repair). The ground of an "
              "entry is drawn when the citizen is listed.",
    "Repair": "Credit repair: after some days on a list, a citizen may apply and be restored (the stay ends).",
    "Notice": "When a citizen learns of a listing; only a notified citizen can object.",
    "AppealBody": "A court or agency hearing objections to listings: a queue with a daily capacity, a served "
                  "order, deadlines and success probabilities; an upheld objection retracts the record.",
    "StateFactor": "A multiplier of a rate or an outcome probability that applies while the citizen's state at "
                   "the start of the day (yesterday's end state) meets every condition given: a list, grades, a "
                   "score range, a money balance. Reading yesterday's state means nothing decided today changes "
                   "today's rates: there is no same-day cycle.",
    "MoneyRange": "A range of a money balance: `above < balance <= below`.",
    "Outcome": "One of the mutually exclusive outcomes of an allowed attempt (the `money` stage, after "
               "sanction): drawn in declared order from one uniform per attempt; it can file a record and move "
               "money.",
    "RunSpec": "Defaults of a run (the command line's `-d`, `--seed` override them) and the traced sample.",
}

FIELDS: Final[dict[str, KeyDoc]] = {
    # Scenario
    "Scenario.name": KeyDoc("the scenario's name, shown in reports and stored in the manifest", "", "my-city"),
    "Scenario.label": KeyDoc("readers' words for the scenario in report titles (default: made from the name)", "",
                             '"Rongcheng points"'),
    "Scenario.description": KeyDoc("what the scenario models, in words; its first line is shown by "
                                   "`credsim scenarios`", "", "A points system after Rongcheng 2018."),
    "Scenario.sources": KeyDoc("where the scenario's numbers come from (fact ids of docs/sources.md, or "
                               "references); free text, one item per source", "", '["R1, R3-R6: Rongcheng"]'),
    "Scenario.domains": KeyDoc("the contexts of life records and sanctions belong to; a behaviour's domain is "
                               "the part of its name before the first dot. Cross-context sanctions are measured "
                               "across these", "", "[finance, court, traffic, travel]"),
    "Scenario.population": KeyDoc("the simulated citizens", "", "{size: 10000, groups: {region: {city: 1.0}}}"),
    "Scenario.graph": KeyDoc("the contact graph (none by default)", "", "{contacts: 8}"),
    "Scenario.behaviours": KeyDoc("what citizens may do, by name `<domain>.<what>`", "",
                                  "{traffic.jaywalk: {kind: infraction, rate: 0.002}}"),
    "Scenario.sensors": KeyDoc("what is observed, by sensor name", "", "{cameras: {observes: [traffic.jaywalk]}}"),
    "Scenario.sharing": KeyDoc("the sensors whose records reach the authority's dossier; the others collect "
                               "data nobody acts on. Absent or `null`: every sensor shares", "", "[cameras, banks]"),
    "Scenario.scoring": KeyDoc("scores and grades (none by default: records then only feed lists)", "",
                               "{points: {base: 1000}}"),
    "Scenario.lists": KeyDoc("blacklists and red lists, by name", "", "{defaulters: {domain: court, ...}}"),
    "Scenario.sanctions": KeyDoc("what lists and grades do to attempts, by name", "",
                                 "{flight_ban: {when: {list: defaulters}, attempts: [travel.flight]}}"),
    "Scenario.responses": KeyDoc("behavioural responses (deterrence, chilling, cutting ties), by name", "",
                                 "{deterred: {effect: reduce_rate, trigger: own_sanction, kinds: [infraction]}}"),
    "Scenario.run": KeyDoc("run length, seed and traced sample", "", "{days: 365, seed: 1}"),
    # Population
    "Population.size": KeyDoc("number of citizens (the command line's `-n` overrides it)", "citizens", "100000"),
    "Population.groups": KeyDoc("group dimensions (e.g. region, hukou, occupation), each a mapping of value to "
                                "population share; the shares of a dimension sum to 1. Every citizen holds one "
                                "value per dimension, drawn independently", "share (0-1)",
                                "{hukou: {local: 0.73, migrant: 0.27}}"),
    "Population.dependants": KeyDoc("family ties: dependants per citizen (none by default); sanctions with "
                                    "`reaches: dependants` harm them, and the audit counts children affected",
                                    "", "{shares: [0.45, 0.35, 0.2]}"),
    "Dependants.shares": KeyDoc("share of citizens with 0, 1, 2, ... dependants (the index is the number); they "
                                "sum to 1", "shares", "[0.45, 0.35, 0.2]"),
    "Population.traits": KeyDoc("latent traits by name; they scale behaviour rates through a behaviour's "
                                "`traits` and can feed a model score", "", "{conscientiousness: {}}"),
    # Trait
    "Population.labels": KeyDoc("readers' words for group dimensions and their values, by dimension (each "
                                "dimension and value must exist in `groups`)", "",
                                '{occupation: {label: occupation, values: {ngo: "NGO worker"}}}'),
    "GroupLabels.label": KeyDoc("readers' words for the dimension (default: made from its name)", "",
                                '"age group"'),
    "GroupLabels.values": KeyDoc("readers' words for values of the dimension, by value", "",
                                 '{60_plus: "60 or older"}'),
    "Population.reference": KeyDoc("the reference group of each dimension for disparate-impact ratios (default: "
                                   "the largest declared share, ties broken by declaration order; the same in "
                                   "every replicate)", "", "{income: q3, occupation: employee}"),
    "Trait.mean": KeyDoc("mean of the trait before group shifts", "trait units", "0.0"),
    "Trait.sd": KeyDoc("standard deviation of the trait", "trait units", "1.0"),
    "Trait.shift": KeyDoc("shift of the mean for members of a group, per dimension and value", "trait sd",
                          "{income: {q1: 0.8, q5: -0.8}}"),
    # Graph
    "Graph.contacts": KeyDoc("mean number of contacts per citizen; 0 builds no graph, and neither does a "
                             "scenario none of whose stages reads one (no response to a contact's listing, "
                             "association points, model feature on contacts or censor)", "contacts", "8"),
    "Graph.homophily": KeyDoc("share of contacts drawn from the citizen's own value of a group dimension "
                              "(the rest at random); the shares sum to at most 1", "share (0-1)",
                              "{region: 0.5, occupation: 0.2}"),
    # Behaviour
    "Behaviour.label": _label("the behaviour or activity", '"high-speed rail ticket"'),
    "Behaviour.kind": KeyDoc("what the behaviour is: `infraction` (breaks a rule), `good_deed`, "
                             "`speech` (lawful expression), `attempt` (an activity a sanction can "
                             "deny or reward, e.g. buying a flight ticket), `cure` (takes a citizen off a list, "
                             "e.g. paying a debt) or `other`", "", "infraction"),
    "Behaviour.rate": KeyDoc("baseline probability that a citizen does it on a given day, before group "
                             "multipliers, traits, responses and schedule", "per citizen per day", "0.002"),
    "Behaviour.by": KeyDoc("rate multipliers per group dimension and value (values not named: 1)", "multiplier",
                           "{region: {tier1_city: 1.3, rural: 0.7}}"),
    "Behaviour.traits": KeyDoc("log-rate coefficients on traits: the rate is multiplied by "
                               "exp(sum of coefficient x trait)", "per trait unit", "{conscientiousness: -0.3}"),
    "Behaviour.only_listed": KeyDoc("only citizens on this (official) list can do it, e.g. a cure such as "
                                    "complying with a court order", "", "court_defaulters"),
    "Behaviour.schedule": KeyDoc("policy eras: from each `from_day` on, the rate is multiplied by the step's "
                                 "`multiplier` (at most 1, so `rate` is the peak)", "",
                                 "[{from_day: 730, multiplier: 0.8}]"),
    # Step
    "Behaviour.lawful": KeyDoc("whether doing it is lawful; unset means every kind but `infraction` is lawful. The "
                               "audit measures punishment for lawful acts, and missed enforcement for unlawful "
                               "ones only", "", "true"),
    "Step.from_day": KeyDoc("first day of the era (day 0 is the first simulated day); strictly ascending",
                            "day", "730"),
    "Step.multiplier": KeyDoc("factor on the behaviour's rate from that day on", "factor (0-1)", "0.8"),
    # Sensor
    "Sensor.label": _label("the sensor", '"traffic cameras"'),
    "Sensor.observes": KeyDoc("the behaviours this sensor can see", "", "[traffic.violation, traffic.jaywalk]"),
    "Sensor.coverage": KeyDoc("probability that a citizen is covered at all (a fixed draw per citizen: a "
                              "camera network watches the same people every day)", "probability", "0.6"),
    "Sensor.coverage_by": KeyDoc("coverage multipliers per group dimension and value", "multiplier",
                                 "{region: {tier1_city: 1.5, rural: 0.3}}"),
    "Sensor.detection": KeyDoc("probability that a covered citizen's event is recorded", "probability", "0.5"),
    "Sensor.false_rate": KeyDoc("false records (misattributed camera matches, benign posts flagged) per covered "
                                "citizen, day and observed behaviour; they enter the official dossier only",
                                "per citizen per day", "0.000002"),
    "Sensor.delay_days": KeyDoc("days between an event and its record entering the dossier", "days", "7"),
    "Sensor.surveillance": KeyDoc("multipliers on detection and on false records per group (watched groups)",
                                  "multiplier", "{occupation: {journalist: 3.0, lawyer: 2.0}}"),
    # Scoring
    "Sensor.suppress": KeyDoc("make this sensor a censor: a post it catches is hidden from this share of the "
                              "poster's contacts (1 = from all) and no record is filed; it may observe only "
                              "`speech` behaviours and must not be in `sharing`. Unset: an ordinary sensor",
                              "share of contacts", "0.8"),
    "Scoring.points": KeyDoc("a points score", "", "{base: 1000, rules: {traffic.jaywalk: -5}}"),
    "Scoring.model": KeyDoc("a model score", "", "{features: {...}, dimensions: {...}}"),
    "Scoring.grades": KeyDoc("grades from bands of one of the scores", "",
                             "{score: points, bands: [{name: A, min: 960}, {name: B}]}"),
    # Points
    "Points.base": KeyDoc("every citizen's starting score (unless `base_by` gives its group another)", "points",
                          "1000"),
    "Points.base_by": KeyDoc("starting scores by group of ONE dimension; a group not named starts at `base`. "
                             "The cross-context counterfactual's 'base score less points lost in the domain' uses "
                             "the citizen's own starting score", "points", "{hukou: {migrant: 950}}"),
    "Points.rules": KeyDoc("points per record type (a behaviour, or `association.<list>`): negative deducts, "
                           "positive adds; either a number or `{points, expiry_days}`", "points per record",
                           "{traffic.jaywalk: -5, civic.volunteer: 5}"),
    "Points.expiry_days": KeyDoc("how long a record's points count (then they are given back)", "days", "365"),
    "Points.cap": KeyDoc("a cap on points lost or gained per period (none by default)", "",
                         "{period_days: 30, max_loss: 100, max_gain: 30}"),
    # PointsRule
    "PointsRule.points": KeyDoc("points of one record of this type", "points", "-50"),
    "PointsRule.expiry_days": KeyDoc("expiry of this record type (default: the points score's `expiry_days`)",
                                     "days", "730"),
    # Cap
    "Cap.period_days": KeyDoc("length of a cap period (periods start on day 0)", "days", "30"),
    "Cap.max_loss": KeyDoc("most points a citizen can lose in one period (default: no cap)", "points", "100"),
    "Cap.max_gain": KeyDoc("most points a citizen can gain in one period (default: no cap)", "points", "30"),
    # ModelScore
    "ModelScore.range": KeyDoc("lowest and highest score; the score is clipped to it", "score points",
                               "[350, 950]"),
    "ModelScore.center": KeyDoc("the score of a citizen whose features are all 0", "score points", "650"),
    "ModelScore.scale": KeyDoc("score points per unit of the weighted feature sum", "score points", "100"),
    "ModelScore.every_days": KeyDoc("the score is recomputed on days that are multiples of this", "days", "30"),
    "ModelScore.features": KeyDoc("the score's inputs, by name", "",
                                  "{arrears: {records: [finance.card_arrears]}}"),
    "ModelScore.dimensions": KeyDoc("weighted groups of features: score = clip(center + scale x sum over "
                                    "dimensions of weight x sum over features of coefficient x feature)", "",
                                    "{history: {weight: 0.35, features: {arrears: -0.5}}}"),
    # Feature
    "Feature.records": KeyDoc("the feature is the number of the citizen's live records of these types",
                              "records", "[finance.card_arrears]"),
    "Feature.group": KeyDoc("the feature is a value looked up by the citizen's group (values not named: 0)",
                            "feature units", "{income: {q1: -1.0, q5: 1.0}}"),
    "Feature.trait": KeyDoc("the feature is the citizen's value of this trait", "trait units",
                            "financial_fragility"),
    "Feature.contacts_listed": KeyDoc("the feature is the share of the citizen's contacts on this list",
                                      "share (0-1)", "court_defaulters"),
    "Feature.expiry_days": KeyDoc("how long a record counts for a `records` feature", "days", "365"),
    # Dimension
    "Dimension.weight": KeyDoc("the dimension's weight in the score", "share (0-1)", "0.35"),
    "Dimension.features": KeyDoc("coefficient of each feature within the dimension", "per feature unit",
                                 "{arrears: -0.5, on_time: 0.2}"),
    # Grades
    "Grades.score": KeyDoc("which score the bands apply to: `points` or `model`", "", "points"),
    "Grades.bands": KeyDoc("grade bands from the highest down; every band but the last has a `min`, with "
                           "strictly descending mins, and the last (lowest) band has none", "",
                           "[{name: AAA, min: 1050}, {name: A, min: 960}, {name: D}]"),
    # Band
    "Band.name": KeyDoc("the grade's name", "", "AAA"),
    "Band.label": _label("the grade", '"AAA (exemplary)"'),
    "Band.min": KeyDoc("the lowest score holding this grade (absent for the lowest band)", "score points", "1050"),
    # ListSpec
    "ListSpec.kind": KeyDoc("`black` (a list of the discredited) or `red` (a list of the trustworthy)", "",
                            "black"),
    "ListSpec.label": _label("the list", '"list of dishonest judgment debtors"'),
    "ListSpec.domain": KeyDoc("the context the list belongs to; a sanction by this list on an attempt of "
                              "another domain is cross-context", "", "court"),
    "ListSpec.entry": KeyDoc("the entry rule", "", "{records: [court.judgment_default], count: 1}"),
    "ListSpec.exit": KeyDoc("the exit rules (a list entered by records needs a cure or a term)", "",
                            "{cure: [court.comply], term_days: 730}"),
    "ListSpec.association_points": KeyDoc("points filed against every contact of a newly listed citizen, as a "
                                          "record of type `association.<list>` (guilt by association; 0: none)",
                                          "points", "-10"),
    # ListEntry
    "ListEntry.records": KeyDoc("record types that count towards entry", "", "[court.judgment_default]"),
    "ListEntry.count": KeyDoc("records needed within the window to enter", "records", "3"),
    "ListEntry.count_by": KeyDoc("records needed by group of ONE dimension (a group not named needs `count`); only "
                                 "for lists entered by records. Retraction and expiry compare with the citizen's "
                                 "own group's count", "records", "{income: {q1: 1}}"),
    "ListEntry.window_days": KeyDoc("how long a record counts towards entry", "days", "365"),
    "ListEntry.grace_days": KeyDoc("days between reaching the count and being listed (a cure in between "
                                   "cancels the entry)", "days", "30"),
    "ListEntry.grades": KeyDoc("instead of records: holding one of these grades puts a citizen on the list",
                               "", "[C, D]"),
    # ListExit
    "ListExit.cure": KeyDoc("record types that take a citizen off the list and clear the count (e.g. "
                            "compliance with a judgment)", "", "[court.comply]"),
    "ListExit.term_days": KeyDoc("days after entry when the listing ends by itself (default: no term)", "days",
                                 "730"),
    "ListExit.grounds": KeyDoc("listing grounds by name (D1): each a share of entries (drawn per entry from the "
                               "stream `list:ground:<list>`) whose term is extended by a whole number of days "
                               "drawn uniformly in `extend_days`, or that have no fixed term; the shares sum to "
                               "at most 1 and the remaining entries keep `term_days`. Only for lists entered by "
                               "records", "", "{refuses: {share: 0.2, no_term: true}, serious: {share: 0.1, "
                               "extend_days: [365, 1095]}}"),
    "Ground.share": KeyDoc("share of the list's entries on this ground", "probability", "0.1"),
    "Ground.extend_days": KeyDoc("[shortest, longest] extension of `term_days` (D1: 1-3 years)", "days",
                                 "[365, 1095]"),
    "Ground.no_term": KeyDoc("no fixed term on this ground (D1, ground 1: exit only by paying); needs a cure",
                             "", "true"),
    "ListExit.on_grade_recovery": KeyDoc("for lists entered by grade: leave the list when the grade is no "
                                         "longer one of the entry grades", "", "true"),
    # Sanction
    "Sanction.label": _label("the sanction", '"travel ban for key persons"'),
    "Sanction.when": KeyDoc("who the sanction applies to", "", "{list: court_defaulters}"),
    "Sanction.attempts": KeyDoc("the attempts (behaviours of kind `attempt`) it acts on", "",
                                "[travel.flight_attempt, travel.hsr_attempt]"),
    "Sanction.effect": KeyDoc("`deny` the attempt, or `reward` it (a discount, a fast track); a denial wins "
                              "over a reward; `clawback` takes money when an official stay on the list begins "
                              "(no attempts) and refunds it when the record behind it is retracted", "", "deny"),
    "Sanction.severity": KeyDoc("how heavy the sanction is, on the scenario's own scale; the audit weighs it "
                                "against the points behind a denial (proportionality)", "severity units", "2"),
    # SanctionWhen
    "Sanction.reaches": KeyDoc("who a denial harms: `citizen`, or also the citizen's `dependants` (D10: children "
                               "barred from high-fee schools). The audit counts children affected (dependants of "
                               "citizens so denied), wrongly (denied only with false records, against the "
                               "no-false-records run) and by the system (against the system switched off), by "
                               "group; needs population.dependants", "", "dependants"),
    "Sanction.own_domain": KeyDoc("use only records of each attempt's own domain: a list applies only to attempts "
                                  "of the list's domain; a points grade is taken from the base score less the "
                                  "points lost in that domain (the audit's cross-context counterfactual sets it on "
                                  "every sanction)", "", "false"),
    "SanctionWhen.list": KeyDoc("citizens on this list", "", "court_defaulters"),
    "SanctionWhen.grades": KeyDoc("citizens holding one of these grades", "", "[C, D]"),
    "SanctionWhen.score": KeyDoc("citizens whose score is in this range", "", "{of: points, below: 850}"),
    "SanctionWhen.all": KeyDoc("citizens for whom every item holds (items in declared order)", "",
                               "[{list: court_defaulters}, {score: {below: 900}}]"),
    "SanctionWhen.any": KeyDoc("citizens for whom at least one item holds", "",
                               "[{list: court_defaulters}, {all: [{grades: [D]}, {score: {below: 700}}]}]"),
    "ConditionGroup.list": KeyDoc("on this list", "", "court_defaulters"),
    "ConditionGroup.grades": KeyDoc("holding one of these grades", "", "[C, D]"),
    "ConditionGroup.score": KeyDoc("score in this range", "", "{below: 850}"),
    "ConditionGroup.all": KeyDoc("every one of these single tests holds", "", "[{grades: [D]}, {score: {below: 700}}]"),
    "ConditionGroup.any": KeyDoc("at least one of these single tests holds", "", "[{list: a}, {list: b}]"),
    "Condition.list": KeyDoc("on this list", "", "court_defaulters"),
    "Condition.grades": KeyDoc("holding one of these grades", "", "[D]"),
    "Condition.score": KeyDoc("score in this range", "", "{min: 600, below: 700}"),
    "ScoreRange.of": KeyDoc("which score: `points` or `model` (it must be defined under scoring)", "", "points"),
    "ScoreRange.min": KeyDoc("lowest score in the range (inclusive)", "score units", "600"),
    "ScoreRange.below": KeyDoc("the range holds scores strictly below this", "score units", "850"),
    # Response
    "Response.effect": KeyDoc("`reduce_rate` (deterrence, chilling: lower the rate of some behaviours) or "
                              "`cut_ties` (drop contacts who were listed)", "", "reduce_rate"),
    "Response.trigger": KeyDoc("what starts it: `own_sanction` (the citizen was denied), `own_listed` (the "
                               "citizen was listed) or `contact_listed` (a contact was listed)", "",
                               "own_sanction"),
    "Response.kinds": KeyDoc("for `reduce_rate`: the behaviour kinds whose rates fall", "", "[infraction]"),
    "Response.behaviours": KeyDoc("for `reduce_rate`: individual behaviours whose rates fall", "",
                                  "[speech.post_critical]"),
    "Response.size": KeyDoc("for `reduce_rate`: the fraction of the rate removed right after the trigger; it "
                            "fades as 1 - size x 0.5^(days since trigger / half life)", "fraction (0-1)", "0.3"),
    "Response.half_life_days": KeyDoc("days for the effect to halve", "days", "90"),
    "Response.probability": KeyDoc("for `cut_ties`: probability that a contact drops the tie to a newly "
                                   "listed citizen", "probability", "0.2"),
    "Response.lists": KeyDoc("the lists whose listings trigger it (empty: every list)", "", "[court_defaulters]"),
    "Scenario.redress": KeyDoc("notice and appeals (none by default: citizens cannot object)", "",
                               "{notice: {at: listing}, appeals: {court_objection: {...}}}"),
    "Scenario.investigations": KeyDoc("capacity-limited investigations, by name (the `investigate` stage, after "
                                      "score)", "", "{fraud_unit: {records: welfare.claim_error, ...}}"),
    # Investigation
    "Investigation.records": KeyDoc("the record type (a behaviour, usually of rate 0) filed when something is "
                                    "found", "", "welfare.claim_error"),
    "Investigation.capacity_per_day": KeyDoc("citizens investigated per day; a fraction investigates one every "
                                             "1/capacity days (day d: floor((d+1)c) - floor(dc))", "citizens per day",
                                             "3"),
    "Investigation.per_100k": KeyDoc("read capacity_per_day per 100,000 citizens of the run", "", "true"),
    "Investigation.rank_by": KeyDoc("the risk ranking: `model` (official model score), `points` (official points "
                                    "score) or `random` (random checks); ties by citizen id", "", "model"),
    "Investigation.riskiest": KeyDoc("which end of the score is investigated first: `high` or `low`", "", "high"),
    "Investigation.truth": KeyDoc("who really has what is looked for", "", "{trait: claim_error, above: 0.5}"),
    "Investigation.found": KeyDoc("probability it is found when it is there", "probability", "0.9"),
    "Investigation.false_finding": KeyDoc("probability it is 'found' when it is not (a false record)", "probability",
                                          "0.02"),
    "Investigation.false_finding_by": KeyDoc("multipliers of false_finding by group (investigators' bias); the "
                                             "product is capped at 1", "multiplier", "{origin: {foreign: 1.5}}"),
    "Investigation.repeat_after_days": KeyDoc("days before the same citizen can be investigated again", "days",
                                              "365"),
    "Investigation.delay_days": KeyDoc("days from the investigation until its record is filed (at least 1)", "days",
                                       "7"),
    # Truth
    "Truth.trait": KeyDoc("the latent trait that carries the truth", "", "claim_error"),
    "Truth.above": KeyDoc("a citizen has it when the trait is above this value", "trait units", "0.5"),
    # Redress
    "Redress.notice": KeyDoc("when citizens learn of listings", "", "{at: listing, delay_days: 7}"),
    "Redress.notice_by_list": KeyDoc("a notice rule of its own for some lists, by list name (the others follow "
                                     "`notice`); the what-if's prior notice applies to every rule", "",
                                     "{key_persons: {at: denial, probability: 0}}"),
    "Redress.appeals": KeyDoc("appeal bodies, by name; each list is heard by at most one body", "",
                              "{court_objection: {lists: [court_defaulters], capacity_per_day: 20, ...}}"),
    "Redress.repair": KeyDoc("credit repair: restoration from a list after some days on it (none by default)", "",
                             "{lists: [court_defaulters], after_days: 90, daily_probability: 0.002}"),
    # Repair
    "Repair.lists": KeyDoc("the lists a citizen can be restored from", "", "[court_defaulters]"),
    "Repair.after_days": KeyDoc("days on the list before an application can succeed (D12: 3 months minimum "
                                "for administrative penalties)", "days", "90"),
    "Repair.daily_probability": KeyDoc("daily probability that an eligible listed citizen applies and is "
                                       "restored; the stay ends the next day (exit route `repair`)",
                                       "probability per day", "0.002"),
    "Repair.schedule": KeyDoc("policy eras of the repair probability: from each step's `from_day` on, "
                              "`daily_probability` is multiplied by its `multiplier` (before the first step: x1)",
                              "", "[{from_day: 0, multiplier: 1.0}, {from_day: 2191, multiplier: 0.2}]"),
    # Notice
    "Notice.at": KeyDoc("what serves notice: `listing` (after the official entry, D2), `filing` (prior notice, "
                        "when a record counting towards the list is filed: an objection can then stop the entry "
                        "during its grace days) or `denial` (never served; learnt at a refused attempt)", "",
                        "listing"),
    "Notice.delay_days": KeyDoc("days from the listing (or filing) until the notice reaches the citizen", "days",
                                "7"),
    "Notice.probability": KeyDoc("share of listings (or records) whose notice is served at all; the others are "
                                 "learnt of only at a refused attempt (if `learn_on_denial`)", "probability", "0.8"),
    "Notice.learn_on_denial": KeyDoc("an official denial by a list's sanction tells the citizen he is on that "
                                     "list, that day", "", "true"),
    # AppealBody
    "AppealBody.lists": KeyDoc("the lists (entered by records) whose listings this body hears at first instance; "
                               "empty for a body that only reconsiders another body's rejections", "",
                               "[court_defaulters]"),
    "AppealBody.reconsideration": KeyDoc(
        "the body that reconsiders this body's rejections (D4: the next court). From the day after a rejection, "
        "while the listing and the record stand, the citizen files there with THAT body's filing probability "
        "and within ITS `file_within_days` counted from the rejection (D4: 10); the case keeps the record and "
        "the notice day, and waits in that body's queue under its capacity, deadline (D4: 15) and success. "
        "Chains must end (a cycle is refused); unset: a rejection is final", "", "next_court"),
    "AppealBody.capacity_per_day": KeyDoc("cases decided per day at most; overdue cases under an enforced "
                                          "deadline are decided beyond it. A fraction decides one case every "
                                          "1/capacity days: day d decides floor((d+1)c) - floor(dc)",
                                          "cases per day", "0.5"),
    "AppealBody.per_100k": KeyDoc("read capacity_per_day per 100,000 citizens of the run (a run with -n keeps "
                                  "the same load on the body)", "", "true"),
    "AppealBody.order": KeyDoc("served order of waiting cases: `fifo` (filed first, decided first) or `lifo`",
                               "", "fifo"),
    "AppealBody.file_probability": KeyDoc("daily probability that a notified citizen whose contestable record "
                                          "still counts (and who is listed or has an entry pending) files an "
                                          "objection, while the filing deadline runs", "probability per day",
                                          "0.05"),
    "AppealBody.file_probability_false": KeyDoc("the daily filing probability when the contested record is false "
                                                "(a wrongly listed citizen knows it and objects more readily); unset: "
                                                "file_probability", "probability per day", "0.05"),
    "AppealBody.file_within_days": KeyDoc("days after the notice within which an objection can be filed (unset: "
                                          "any time while the record counts)", "days", "10"),
    "AppealBody.decide_within_days": KeyDoc("declared deadline for a decision, days after filing (D4: 15); "
                                            "decisions later than it are counted as appeals_overdue", "days", "15"),
    "AppealBody.deadline_enforced": KeyDoc("decide every case on the day its deadline is reached, beyond the "
                                           "capacity if need be", "", "false"),
    "AppealBody.success_false": KeyDoc("probability an objection is upheld when the contested record is false",
                                       "probability", "0.8"),
    "AppealBody.success_true": KeyDoc("probability an objection is upheld when the contested record is true "
                                      "(an error of the body)", "probability", "0.05"),
    "AppealBody.success_by": KeyDoc("multipliers of the success probability by group (e.g. access to a lawyer); "
                                    "the product is capped at 1", "multiplier", "{income: {q1: 0.5, q5: 1.3}}"),
    "AppealBody.correction_days": KeyDoc("days from an upheld decision until the record is retracted (D4: "
                                         "within 3 working days); at least 1", "days", "3"),
    "AppealBody.cost": KeyDoc("what filing costs the citizen, counted in appeal_cost", "money units", "100"),
    # money, outcomes of attempts, state-dependent rates
    "Scenario.money": KeyDoc("money balances kept per citizen (written to citizens.parquet as money_<name>); "
                             "`taken`, `refunded` and `compensated` are added by the engine whenever the scenario "
                             "has money, outcomes with money or a clawback", "", "[benefits, arrears]"),
    "Behaviour.state": KeyDoc("multipliers of the rate while the citizen's start-of-day state meets a condition; "
                              "the stream is drawn at rate x M (M = the largest product of the multipliers) and "
                              "thinned to the citizen's product, so rate x M must be at most 1", "",
                              "[{money: {column: taken, above: 0}, multiplier: 4}]"),
    "Behaviour.outcomes": KeyDoc("mutually exclusive outcomes of an allowed (not officially denied) attempt, in "
                                 "declared order; their probabilities sum to at most 1, the rest is no outcome",
                                 "", "{paid: {probability: 0.97, money: {benefits: 1000}}}"),
    "Sanction.amount": KeyDoc("for `clawback`: a flat amount taken (into `taken`) when an official stay on the "
                              "list begins", "money units", "500"),
    "Sanction.share_of": KeyDoc("for `clawback`: shares of money balances taken back as well; each balance goes "
                                "down by its share", "fraction (0-1)", "{benefits: 1.0}"),
    "Sanction.compensation": KeyDoc("for `clawback`: a flat sum paid (into `compensated`) when the record the stay "
                                    "rests on is retracted; the clawback itself is refunded exactly (into "
                                    "`refunded`)", "money units", "30000"),
    "StateFactor.multiplier": KeyDoc("multiplies the rate or probability while every condition holds (factors "
                                     "multiply)", "multiplier", "4"),
    "StateFactor.list": KeyDoc("the citizen is on this list (official view)", "", "clawback"),
    "StateFactor.grades": KeyDoc("the citizen holds one of these grades (official view)", "", "[C, D]"),
    "StateFactor.score": KeyDoc("the official score is in this range", "", "{of: points, below: 900}"),
    "StateFactor.money": KeyDoc("a money balance is in this range", "", "{column: taken, above: 0}"),
    "MoneyRange.column": KeyDoc("a money column: one declared in `money`, or `taken`, `refunded`, `compensated`",
                                "", "taken"),
    "MoneyRange.above": KeyDoc("the balance must be greater than this", "money units", "0"),
    "MoneyRange.below": KeyDoc("the balance must be at most this", "money units", "1000"),
    "Outcome.probability": KeyDoc("probability of this outcome for an allowed attempt, before multipliers; the "
                                  "cumulative probability in declared order is capped at 1", "probability", "0.03"),
    "Outcome.by": KeyDoc("multipliers of the probability by group", "multiplier", "{income: {low: 1.5}}"),
    "Outcome.state": KeyDoc("multipliers of the probability by the citizen's start-of-day state", "",
                            "[{money: {column: taken, above: 0}, multiplier: 4}]"),
    "Outcome.records": KeyDoc("a record of this type (a behaviour) is filed, true, in the official and shadow "
                              "dossiers, so its points, features and lists follow as usual", "", "finance.arrears"),
    "Outcome.delay_days": KeyDoc("days from the attempt until the record is filed (at least 1)", "days", "1"),
    "Outcome.money": KeyDoc("amounts added to declared money balances (negative: taken off)", "money units",
                            "{benefits: 1000}"),
    # RunSpec
    "RunSpec.days": KeyDoc("days to simulate (the command line's `-d` overrides it)", "days", "365"),
    "RunSpec.seed": KeyDoc("random seed (the command line's `--seed` overrides it); the same seed gives the "
                           "same citizens and draws in any scenario", "", "2018"),
    "RunSpec.trace": KeyDoc("size of the evenly spread sample of citizens whose full history is written to "
                            "traces.parquet (`credsim explain` tells their story)", "citizens", "100"),
    "RunSpec.trace_ids": KeyDoc("citizen ids traced in addition to the sample", "", "[4711]"),
}
