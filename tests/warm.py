"""Fill numba's cache before the test workers start: ``python -m tests.warm``.

Why: on a fresh checkout every kernel is compiled on first use, and the two pytest-xdist workers
(``scripts/check``) start at the same moment, so both compiled the same kernels side by side,
each paying for it. ``scripts/check`` runs this beside ruff and mypy, which leave the second core
idle, so the workers find the kernels compiled. It runs every built-in scenario and the toy
(staged and fused) small, with the serial kernels and, forced, the parallel ones, and a sharded run;
kernels it misses are compiled by the tests as before. Nothing it writes is kept but the cache.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import credsim
from credsim import threads
from credsim.distributed import run_sharded
from credsim.engine import simulate
from tests.golden import BUILTIN, TOY

SMALL = {"population.size": 4096, "run.days": 12}


def main() -> int:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for min_work in (threads.MIN_PARALLEL_WORK, 0):  # the serial twins, then the parallel ones
            threads.configure(2, min_parallel_work=min_work)
            for name in (*BUILTIN, str(TOY)):
                scen = credsim.load_scenario(name, SMALL)
                credsim.run(scen, out=Path(tmp) / f"{Path(name).stem}-{min_work}")
            simulate(credsim.load_scenario(TOY, SMALL), fused=True)
        run_sharded(credsim.load_scenario("city-points", SMALL), Path(tmp) / "sharded", 2, threads=1)
    print(f"numba cache filled in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
