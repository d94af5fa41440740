"""Fill numba's cache before the test workers start: ``python -m tests.warm [serial|parallel]``.

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


HALVES = ("serial", "parallel")


def warm(half: str, tmp: Path) -> None:
    """One half of the cache: the serial kernels (every scenario and the fused toy run at the default
    cut-off, and a sharded run), or the parallel twins (the same runs with every kernel forced parallel).
    Compiling the twins alone takes about as long as the rest (measured: 50-60 s each on one core)."""
    min_work = threads.MIN_PARALLEL_WORK if half == "serial" else 0
    threads.configure(2, min_parallel_work=min_work)
    names = (*BUILTIN, str(TOY))
    # the parallel half starts from the other end, so that the kernels both halves use (population,
    # graph) are compiled by one of them while the other compiles its own
    for name in names if half == "serial" else reversed(names):
        scen = credsim.load_scenario(name, SMALL)
        credsim.run(scen, out=tmp / f"{Path(name).stem}-{half}")
    simulate(credsim.load_scenario(TOY, SMALL), fused=True)
    if half == "serial":
        run_sharded(credsim.load_scenario("city-points", SMALL), tmp / "sharded", 2, threads=1)


def main(argv: list[str]) -> int:
    halves = argv or list(HALVES)
    unknown = [h for h in halves if h not in HALVES]
    if unknown:
        print(f"usage: python -m tests.warm [{'|'.join(HALVES)}] (unknown: {' '.join(unknown)})", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for half in halves:
            warm(half, Path(tmp))
    print(f"numba cache filled ({' and '.join(halves)} kernels) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
