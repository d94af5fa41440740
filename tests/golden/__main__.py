"""``python -m tests.golden [--write] [CASE ...]``: rerun the golden cases and say which changed.

Without ``--write`` it only reports (exit 1 when something changed); with it, the new hashes
replace the old ones in ``tests/golden/hashes.json`` (commit them with the intended change).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from tests.golden import HASHES, changes, compute, load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__)
    ap.add_argument("--write", action="store_true", help="store the new hashes")
    ap.add_argument("cases", nargs="*", help="only these cases (default: all)")
    args = ap.parse_args(argv)
    old = load() if HASHES.exists() else {}
    with tempfile.TemporaryDirectory(prefix="credsim-golden-") as tmp:
        new = compute(Path(tmp), args.cases or None)
    diff = changes({k: v for k, v in old.items() if k in new}, new)
    for line in diff:
        print(line)
    if not diff:
        print(f"{len(new)} golden case(s) unchanged")
    if args.write:
        HASHES.write_text(json.dumps({**old, **new}, indent=1, sort_keys=True) + "\n")
        print(f"wrote {HASHES}")
        return 0
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
