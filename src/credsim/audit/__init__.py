"""The audit: what a scoring system does to people, measured on paired runs.

- :func:`audit` runs a scenario and its counterfactuals (the system off, and one per harm)
  with common random numbers, over replicate seeds, and writes ``audit.json`` and ``report.html``;
- :func:`load_result` reads an audit or run directory into an assembled result;
- :func:`run_figures` computes every figure of one run directory with SQL;
- :func:`explain` tells one traced citizen's story, with counterfactual record removals.
"""

from credsim.audit.explain import explain, find_cases
from credsim.audit.metrics import run_figures
from credsim.audit.paired import assemble, audit, counterfactual, load_result

__all__ = ["assemble", "audit", "counterfactual", "explain", "find_cases", "load_result", "run_figures"]
