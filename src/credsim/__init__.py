"""credsim: a simulation laboratory for social-credit and social-scoring systems.

Every citizen is synthetic. The public API fits on one screen::

    import credsim
    scen = credsim.load_scenario("city-points")          # or a YAML path
    run = credsim.run(scen, population=100_000, days=365, seed=1, out="runs/demo")
    run.sql("SELECT hukou, avg(on_court_defaulters::INT) FROM citizens GROUP BY 1")
"""

# First, before anything imports numba or allocates much: the threading environment and the
# allocator's mmap threshold (see credsim/threads.py and credsim/allocator.py).
from credsim import threads  # noqa: F401  # isort: skip
from credsim import allocator  # isort: skip
from credsim.api import Run, run
from credsim.memory import MemoryRefused, estimate_memory
from credsim.scenario.load import ScenarioError, builtin_names, load_scenario
from credsim.scenario.schema import Scenario
from credsim.store import connect

allocator.tune()

__version__ = "0.1.0"

__all__ = [
    "MemoryRefused",
    "Run",
    "Scenario",
    "ScenarioError",
    "__version__",
    "builtin_names",
    "connect",
    "estimate_memory",
    "load_scenario",
    "run",
]
