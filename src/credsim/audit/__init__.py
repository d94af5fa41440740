"""The audit: what a scoring system does to people, measured on paired runs.

- :func:`audit` runs a scenario and its no-system counterfactual with common random
  numbers, over replicate seeds, and writes ``audit.json`` and ``report.html``;
- :func:`run_figures` computes every figure of one run directory with SQL;
- :func:`explain` tells one traced citizen's story, with counterfactual record removals.
"""

from credsim.audit.explain import explain, find_cases
from credsim.audit.metrics import run_figures
from credsim.audit.paired import assemble, audit, counterfactual

__all__ = ["assemble", "audit", "counterfactual", "explain", "find_cases", "run_figures"]
