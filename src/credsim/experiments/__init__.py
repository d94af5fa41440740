"""Experiments over many runs: sweeps (grid or sampled) with one catalog, sensitivity, trade-offs.

- :mod:`credsim.experiments.spec`: the YAML specs and key paths (dots in names allowed);
- :mod:`credsim.experiments.sweep`: plan, run (process pool or Ray, resumable), catalog, Pareto front;
- :mod:`credsim.experiments.sensitivity`: Sobol and Morris indices with SALib;
- :mod:`credsim.experiments.charts`: offline HTML pages.
"""

from credsim.experiments.spec import SensitivitySpec, SpecError, SweepSpec, load_spec
from credsim.experiments.sweep import connect, pareto_front, sweep

__all__ = ["SensitivitySpec", "SpecError", "SweepSpec", "connect", "load_spec", "pareto_front", "sweep"]
