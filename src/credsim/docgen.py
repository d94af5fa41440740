"""Write (or check) the generated documentation in ``docs/``.

    python -m credsim.docgen           # rewrite the generated files
    python -m credsim.docgen --check   # exit 1, naming the stale files, if any differs

The files are generated so that they cannot drift from the code; they are committed so that
they can be read on the web and by editors without running anything. The tests run the check.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from credsim.metrics_doc import glossary_markdown
from credsim.schema_doc import json_schema_text, reference_markdown

GENERATED: Final[dict[str, Callable[[], str]]] = {
    "docs/scenario-schema.json": json_schema_text,
    "docs/scenario-reference.md": reference_markdown,
    "docs/metrics.md": glossary_markdown,
}


def stale(root: Path) -> list[str]:
    """Generated files under ``root`` whose content is not what the code generates now."""
    out = []
    for rel, make in GENERATED.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != make():
            out.append(rel)
    return out


def write(root: Path) -> list[str]:
    """Rewrite the stale files; return their paths."""
    changed = stale(root)
    for rel in changed:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(GENERATED[rel](), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m credsim.docgen", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    args = ap.parse_args(argv)
    if args.check:
        bad = stale(args.root)
        for rel in bad:
            print(f"{rel} is out of date: run python -m credsim.docgen", file=sys.stderr)
        return 1 if bad else 0
    for rel in write(args.root):
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
