"""The offline HTML report: findings in plain sentences with numbers, then charts.

- :func:`write_report` renders an assembled audit result (see :mod:`credsim.audit.paired`,
  whose ``load_result`` reads an audit or run directory into one);
- :func:`write_compare` puts two results side by side.

The report only renders results: it never imports the audit (which writes reports), so the
two packages do not depend on each other in a circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(result: dict[str, Any], path: str | Path, shared_script: bool = True) -> Path:
    """Write the report; plotly.js goes once beside it (``shared_script``) or inline in the page.

    Beside keeps the page small (a few hundred kB instead of 5 MB) and still opens offline from
    disk; inline is for a page that travels alone (the dashboard's download).
    """
    from credsim.report.html import report_html, write_plotly_beside  # plotly loaded only to render

    path = Path(path)
    src = write_plotly_beside(path) if shared_script else None
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(report_html(result, src), encoding="utf-8")
    tmp.replace(path)
    return path


def write_compare(ra: dict[str, Any], rb: dict[str, Any], name_a: str, name_b: str, path: str | Path,
                  shared_script: bool = True) -> Path:
    """Two assembled results side by side in one HTML file (plotly.js beside it, as for the report)."""
    from credsim.report.html import compare_html, write_plotly_beside  # plotly loaded only to render

    path = Path(path)
    src = write_plotly_beside(path) if shared_script else None
    path.write_text(compare_html(ra, rb, name_a, name_b, src), encoding="utf-8")
    return path


__all__ = ["write_compare", "write_report"]
