"""docs/mechanisms.md cannot rot: every key path it names exists in the named built-in scenario,
and every figure it names is produced by a small run of that scenario.

The table is parsed as a reader sees it: in the "modelled in" and "audit figure" cells a bold
name starts a scenario's part, and each backticked text after it is a key path (or a figure) of
that scenario; a figure cell without a bold name belongs to the row's first scenario.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

import credsim
from credsim.audit.metrics import run_figures
from credsim.scenario.keypath import KeyPathError, dump, get_value
from credsim.scenario.load import builtin_names, load_scenario

DOC = Path(__file__).resolve().parent.parent / "docs" / "mechanisms.md"
SMALL = {"population.size": 2000, "run.days": 30}

# every mechanism of DESIGN.md's table, and every one the reporting names, must have a row
REQUIRED = (
    "super-app data", "e-commerce data", "search history", "location tracking", "cameras",
    "political monitoring", "personal file (dang'an)", "social credit score", "blacklists",
    "sanctions across life", "cross-domain spill-over", "data-sharing", "pilots", "no notice, no way out",
    "family-planning violations", "elder-care obligation", "officials' luxury spending",
    "banned foreign TV and a travel ban", "students' political-ideology database",
    "automatic enrolment without consent", "data localisation", "geographic suppression of posts",
    "property purchase and insurance denials",
)


@dataclass(frozen=True)
class Row:
    """One mechanism: its key paths and figures, each as ``scenario -> names``."""

    mechanism: str
    paths: dict[str, list[str]]
    figures: dict[str, list[str]]


def _by_scenario(cell: str, default: str | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = default
    for m in re.finditer(r"\*\*([^*]+)\*\*|`([^`]+)`", cell):
        if m.group(1) is not None:
            current = m.group(1)
            out.setdefault(current, [])
        else:
            assert current is not None, f"a key path or figure before any scenario name: {cell!r}"
            out.setdefault(current, []).append(m.group(2))
    return out


def read_map() -> list[Row]:
    lines = [ln for ln in DOC.read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["mechanism", "what the reporting says", "modelled in", "audit figure"], header
    rows = []
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a row needs 4 cells: {ln!r}"
        paths = _by_scenario(cells[2], None)
        rows.append(Row(cells[0], paths, _by_scenario(cells[3], next(iter(paths), None))))
    return rows


ROWS = read_map()
SCENARIOS = sorted({s for r in ROWS for s in [*r.paths, *r.figures]})


def test_every_mechanism_of_the_reporting_has_a_row_with_keys_and_figures() -> None:
    names = [r.mechanism for r in ROWS]
    assert len(names) == len(set(names)), "one row per mechanism"
    missing = [m for m in REQUIRED if m not in names]
    assert not missing, f"mechanisms without a row in {DOC.name}: {missing}"
    for r in ROWS:
        assert r.paths and all(r.paths.values()), f"{r.mechanism}: names no key path"
        assert r.figures and all(r.figures.values()), f"{r.mechanism}: names no figure"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.mechanism)
def test_every_key_path_exists_in_the_named_builtin_scenario(row: Row) -> None:
    for scen_name, paths in row.paths.items():
        assert scen_name in builtin_names(), f"{row.mechanism}: {scen_name!r} is not a built-in scenario"
        data = dump(load_scenario(scen_name))
        for path in paths:
            try:
                value = get_value(data, path)
            except KeyPathError as exc:
                pytest.fail(f"{row.mechanism}: {scen_name} has no {path} ({exc})")
            assert value is not None, f"{row.mechanism}: {scen_name} {path} is unset"


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Per scenario: the audit scalars and metric names of a small run."""
    out: dict[str, set[str]] = {}
    for name in SCENARIOS:
        d = tmp_path_factory.mktemp(name)
        run = credsim.run(load_scenario(name, SMALL), out=d / "run", threads=1)
        figs = run_figures(run.dir)
        metrics = {r[0] for r in duckdb.execute(
            f"SELECT DISTINCT metric FROM read_parquet('{run.dir / 'metrics.parquet'}')").fetchall()}
        out[name] = set(figs["scalars"]) | metrics
    return out


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.mechanism)
def test_every_figure_is_produced_by_a_run_of_the_scenario(row: Row, produced: dict[str, set[str]]) -> None:
    for scen_name, figures in row.figures.items():
        sanctions = set(load_scenario(scen_name).sanctions)
        for fig in figures:
            m = re.fullmatch(r"sanction\.([^.]+)\.denials", fig)
            if m:  # written once the sanction has denied someone: the sanction must exist
                assert m.group(1) in sanctions, f"{row.mechanism}: {scen_name} has no sanction {m.group(1)}"
                continue
            assert fig in produced[scen_name], f"{row.mechanism}: a run of {scen_name} produces no {fig!r}"
