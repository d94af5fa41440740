"""The long fuzz run of the scenario loader: ``python -m benchmarks.fuzz [--cases N] [--seconds S]``.

The same mutations as ``tests/test_fuzz.py`` (see ``tests/fuzzing.py``), driven by a seeded
RNG instead of Hypothesis, for many more cases. Each case must end in a Scenario or a
``ScenarioError`` within ``--limit`` seconds; anything else is recorded with the seed that
reproduces it (``--seed K --cases 1``). Exits 1 if any case failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.fuzzing

from tests.fuzzing import RandomChooser, Tally, one_case, time_limit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20_000, help="number of mutated scenarios (default 20000)")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--seed", type=int, default=0, help="first case seed (case i uses seed + i)")
    ap.add_argument("--limit", type=float, default=20.0, help="seconds one case may take before it is a hang")
    ap.add_argument("--json", type=Path, default=None, help="also write the tally here")
    args = ap.parse_args(argv)
    tally = Tally()
    failures: dict[str, int] = {}
    slowest = (0.0, -1)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.cases):
            if args.seconds is not None and time.perf_counter() - t0 > args.seconds:
                break
            seed = args.seed + i
            t = time.perf_counter()
            try:
                with time_limit(args.limit):
                    one_case(RandomChooser(seed), Path(d), tally)
            except Exception as exc:  # noqa: BLE001 - every other outcome is a finding
                tally.tried += 1
                tally.other += 1
                key = f"{type(exc).__name__}: {str(exc)[:200]}"
                if key not in failures:
                    failures[key] = seed
                    print(f"FAIL seed {seed}: {key}", file=sys.stderr)
                    traceback.print_exc(limit=-4)
            dt = time.perf_counter() - t
            slowest = max(slowest, (dt, seed))
            if (i + 1) % 1000 == 0:
                print(f"  {i + 1} cases, {time.perf_counter() - t0:.0f} s: {tally.line()}", file=sys.stderr)
    wall = time.perf_counter() - t0
    print(tally.line())
    print(f"wall {wall:.1f} s ({tally.tried / max(wall, 1e-9):.0f} cases/s); slowest case {slowest[0]:.2f} s "
          f"(seed {slowest[1]}); distinct failures: {len(failures)}")
    print("mutations applied: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.kinds.items())))
    for key, seed in failures.items():
        print(f"  reproduce with --seed {seed} --cases 1: {key}")
    if args.json is not None:
        args.json.write_text(json.dumps({"tried": tally.tried, "refused": tally.refused, "accepted": tally.accepted,
                                         "other": tally.other, "wall_s": round(wall, 1), "failures": failures,
                                         "kinds": dict(tally.kinds)}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
