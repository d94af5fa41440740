"""Every metric a run writes, in plain words: the page ``docs/metrics.md``.

Generated from :mod:`credsim.names`, the one place metric names are built and read back, so
the page lists exactly the families a run can write, each with what it counts, whether it is
a daily count (flow) or an end-of-day level (stock), and what its ``<name>`` part names.
"""

from __future__ import annotations

from typing import Final

from credsim import names

# What the part after a family's prefix names (``events.<behaviour>``).
MEMBER: Final[dict[str, str]] = {
    names.EVENTS.prefix: "behaviour",
    names.OBSERVED.prefix: "sensor",
    names.FALSE_OBSERVED.prefix: "sensor",
    names.ENTRIES.prefix: "list",
    names.EXITS.prefix: "list",
    names.SHADOW_ENTRIES.prefix: "list",
    names.SHADOW_EXITS.prefix: "list",
    names.LISTED.prefix: "list",
    names.SHADOW_LISTED.prefix: "list",
    names.GRADE.prefix: "grade",
    names.SHADOW_GRADE.prefix: "grade",
    names.ATTEMPTS.prefix: "attempt",
    names.DENIED.prefix: "attempt",
    names.SHADOW_DENIED.prefix: "attempt",
    names.REWARDED.prefix: "attempt",
    names.WRONGFUL.prefix: "attempt",
    names.MISSED.prefix: "attempt",
    names.RESPONSE.prefix: "response",
    names.REACH.prefix: "behaviour",
    names.REACH_LOST.prefix: "behaviour",
    names.NOTICES.prefix: "list",
    names.APPEALS_FILED.prefix: "body",
    names.APPEALS_DECIDED.prefix: "body",
    names.APPEALS_UPHELD.prefix: "body",
    names.APPEALS_UPHELD_FALSE.prefix: "body",
    names.APPEALS_OVERDUE.prefix: "body",
    names.APPEAL_BACKLOG.prefix: "body",
    names.APPEAL_COST.prefix: "body",
    names.EXITS_BY.prefix: "list>.<route",
    names.INVESTIGATED.prefix: "investigation",
    names.INVESTIGATED_TRUE.prefix: "investigation",
    names.INVESTIGATION_FOUND.prefix: "investigation",
    names.INVESTIGATION_FALSE.prefix: "investigation",
    names.OUTCOMES.prefix: "attempt>.<outcome",
    names.MONEY.prefix: "money column",
    names.CLAWBACKS.prefix: "sanction",
}

KIND_WORDS: Final = {"flow": "flow (per day)", "stock": "stock (end of day)"}

INTRO: Final = """# Metrics: what every number in a run counts

<!-- Generated from credsim.names by `python -m credsim.docgen`; do not edit. -->

A run writes its daily figures to `metrics.parquet` (DuckDB view `metrics`), in long form:
`day, dimension, group, metric, value`. For every day there is one row per metric for the whole
population (`dimension = 'all'`, `group = 'all'`) and one per value of every group dimension
(`dimension = 'hukou'`, `group = 'migrant'`). The view `daily` has the same rows with one
column per metric, handy for plots.

- A **flow** counts what happened that day (events, records, denials); sum it over days for a
  total. A **stock** is a level at the end of the day (citizens on a list, holding a grade); do
  not sum it over days.
- The **official** view is what the simulated authority knows: records from shared sensors,
  including false ones, and what its rules do with them. The **shadow** view applies the same
  rules to every true event of an in-scope behaviour and nothing false: what the system would
  do if it were right. Metrics named `shadow_...` are the shadow view; the rest are official.
  *Wrongful* and *missed* compare the two, citizen by citizen, on the same attempt.
- Harms are measured against a **counterfactual run** with the same seed (`credsim audit`),
  citizen by citizen, not read off one run; these metrics are the raw material.

`<name>` is the name the scenario gives the behaviour, sensor, list, grade, attempt or
response; for example `listed.court_defaulters`, `denied.travel.flight_attempt`.
"""


def glossary_markdown() -> str:
    """The metrics page: families, then single metrics, each with kind and meaning."""
    lines = [INTRO, "## Families", "", "| metric | kind | counts |", "|---|---|---|"]
    for fam in names.FAMILIES:
        lines.append(f"| `{fam.prefix}.<{MEMBER[fam.prefix]}>` | {KIND_WORDS[fam.kind]} | {fam.meaning} |")
    lines += ["", "## Single metrics", "", "| metric | kind | counts |", "|---|---|---|"]
    for metric, meaning in names.SINGLE_METRICS.items():
        kind = "stock" if metric in names.SINGLE_STOCKS else "flow"
        lines.append(f"| `{metric}` | {KIND_WORDS[kind]} | {meaning} |")
    lines += ["", "In code, build and read these names with `credsim.names` (`names.LISTED('court_defaulters')`, "
              "`names.describe(metric)`), never by spelling them.", ""]
    return "\n".join(lines)
