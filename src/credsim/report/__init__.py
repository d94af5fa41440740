"""The offline HTML report: findings in plain sentences with numbers, then charts.

- :func:`write_report` renders an assembled audit result (see :mod:`credsim.audit.paired`);
- :func:`load_result` reads an audit directory (``audit.json``) or assembles one run
  directory (optionally paired with a counterfactual run directory);
- :func:`write_compare` puts two results side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from credsim.safeio import AUDIT_JSON_BYTES, read_json_object


def write_report(result: dict[str, Any], path: str | Path) -> Path:
    from credsim.report.html import report_html

    path = Path(path)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(report_html(result), encoding="utf-8")
    tmp.replace(path)
    return path


def _inside(audit_dir: Path, name: object) -> Path:
    """A run named by an audit.json: it must lie inside the audit directory (a stranger's file cannot
    point the report or the dashboard at other runs on this machine)."""
    base = audit_dir.resolve()
    target = (base / str(name)).resolve()
    if not isinstance(name, str) or base not in target.parents:
        raise FileNotFoundError(f"{audit_dir}/audit.json: run {str(name)[:80]!r} is not inside the audit directory")
    return target


def audit_pairs(audit_dir: str | Path, res: dict[str, Any] | None = None) -> list[tuple[Path, Path | None]]:
    """(system run, counterfactual run or None) of each replicate of an audit directory, inside it."""
    audit_dir = Path(audit_dir)
    if res is None:
        res = read_json_object(audit_dir / "audit.json", AUDIT_JSON_BYTES)
    try:
        pairs = res["meta"]["pairs"]
        return [(_inside(audit_dir, a), _inside(audit_dir, b) if b else None) for a, b in pairs]
    except (KeyError, TypeError, ValueError):
        raise FileNotFoundError(f"{audit_dir}/audit.json: expected meta.pairs, a list of [run, counterfactual] "
                                "directory names") from None


def load_result(run_dir: str | Path, against: str | Path | None = None) -> dict[str, Any]:
    """An assembled result for an audit directory or a single run directory."""
    from credsim.audit.paired import assemble

    run_dir = Path(run_dir)
    if (run_dir / "audit.json").exists() and against is None:
        res: dict[str, Any] = read_json_object(run_dir / "audit.json", AUDIT_JSON_BYTES)
        # re-assemble from the run directories, so the page always matches the files
        pairs = audit_pairs(run_dir, res)
        fresh = assemble(pairs, root=run_dir)
        fresh["meta"].update({k: v for k, v in res["meta"].items() if k not in fresh["meta"]})
        return fresh
    if not (run_dir / "manifest.json").exists():
        raise FileNotFoundError(f"{run_dir}: neither a run directory (manifest.json) "
                                "nor an audit directory (audit.json)")
    return assemble([(run_dir, Path(against) if against is not None else None)])


def write_compare(a: str | Path, b: str | Path, path: str | Path) -> Path:
    from credsim.report.html import compare_html

    ra, rb = load_result(a), load_result(b)
    path = Path(path)
    path.write_text(compare_html(ra, rb, Path(a).name, Path(b).name), encoding="utf-8")
    return path


__all__ = ["audit_pairs", "load_result", "write_compare", "write_report"]
