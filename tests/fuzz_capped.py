"""The loader fuzz under hard caps, run in its own process by ``tests/test_loader_limits.py``.

Why a separate process: a memory cap (``RLIMIT_AS``) applies to a whole process, and a
case that blows past it must fail this run, not the test session. The cap is the address
space after imports plus ``--mem-mb``, so any case needing more raises MemoryError (or
aborts the process) and the test fails; each case also runs under a ``--seconds`` timer.
The last line printed is a JSON summary the test reads.

    python -m tests.fuzz_capped --examples 150 --mem-mb 512 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import Tally, one_case, time_limit


def _vm_size() -> int:
    """The address space in use now (bytes), from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


class _Chooser:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def choice(self, options: list[Any]) -> Any:
        return self.data.draw(st.sampled_from(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=150)
    ap.add_argument("--mem-mb", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--self-check", action="store_true", help="only show that the cap bites")
    args = ap.parse_args()
    base = _vm_size()
    cap = base + args.mem_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if args.self_check:
        try:
            bytearray((args.mem_mb + 64) * 2**20)
        except MemoryError:
            print(json.dumps({"capped": True}))
            return
        print(json.dumps({"capped": False}))
        return
    tally = Tally()
    slowest = [0.0]

    @settings(max_examples=args.examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.data())
    def case(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as d, time_limit(args.seconds):
            t0 = time.perf_counter()
            one_case(_Chooser(data), Path(d), tally)
            slowest[0] = max(slowest[0], time.perf_counter() - t0)

    case()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"cases": tally.tried, "refused": tally.refused, "accepted": tally.accepted,
                      "other": tally.other, "slowest_s": round(slowest[0], 3), "cap_mb": args.mem_mb,
                      "peak_rss_mb": round(peak / 2**20, 1), "kinds": dict(tally.kinds)}))


if __name__ == "__main__":
    main()
