"""Every fact id a built-in scenario or targets file cites resolves in ``docs/sources.md``.

The scenario headers and their ``sources:`` lists cite published facts by id (``R4``,
``B1-B8``); a reader must be able to look each one up in the repository, and an id must mean
one fact only.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "docs" / "sources.md"
SCENARIO_DIR = ROOT / "src" / "credsim" / "scenario"
CITING = sorted([*SCENARIO_DIR.glob("builtin/*.yaml"), *SCENARIO_DIR.glob("targets/*.yaml")])

# An id is one or two capitals and a number; a range ``B1-B8`` cites every id between.
CITATION = re.compile(r"\b([A-Z]{1,2})(\d+)(?:-\1?(\d+))?\b")
ROW = re.compile(r"^\| ([A-Z]{1,2}\d+) \|", re.M)


def defined_ids() -> list[str]:
    return ROW.findall(SOURCES.read_text(encoding="utf-8"))


def cited_ids(text: str) -> set[str]:
    out: set[str] = set()
    for prefix, first, last in CITATION.findall(text):
        lo = int(first)
        hi = int(last) if last else lo
        assert lo <= hi, f"backwards range {prefix}{lo}-{hi}"
        out.update(f"{prefix}{i}" for i in range(lo, hi + 1))
    return out


def test_ranges_expand() -> None:
    assert cited_ids("B1-B3, R3-5 and C6 (not AAA or A)") == {"B1", "B2", "B3", "R3", "R4", "R5", "C6"}


def test_source_ids_are_unique() -> None:
    ids = defined_ids()
    assert len(ids) > 50
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_every_cited_id_resolves() -> None:
    known = set(defined_ids())
    assert CITING
    for path in CITING:
        text = path.read_text(encoding="utf-8")
        missing = sorted(cited_ids(text) - known)
        assert not missing, f"{path.relative_to(ROOT)} cites {missing}, which docs/sources.md does not define"


def test_citing_files_point_to_the_sources_file() -> None:
    for path in CITING:
        text = path.read_text(encoding="utf-8")
        if cited_ids(text):
            assert "docs/sources.md" in text, f"{path.relative_to(ROOT)} cites fact ids but not docs/sources.md"
            assert "shared/reference" not in text, f"{path.relative_to(ROOT)} cites a file outside the repository"


def test_readme_scenario_table_ids_resolve() -> None:
    known = set(defined_ids())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("### Built-in scenarios"):]
    table = table[:table.index("\n\n", table.index("| name |"))]
    missing = sorted(cited_ids(table) - known)
    assert not missing, f"README's scenario table cites {missing}"
