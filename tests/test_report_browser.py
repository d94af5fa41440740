"""Every built-in scenario's report, read in Debian's Chromium as a reader would, on a desk and on a phone.

Checked at 1400 px and 390 px: no JavaScript error, no request leaves the machine, no
horizontal scrolling on the phone, no internal name (``travel.hsr_attempt``,
``occupation=journalist``, ``denied.cross_context_sum``...) in the visible text (with every
``<details>`` opened), no cloud button, and no serious or critical accessibility violation
found by axe-core (vendored under ``tests/vendor``, MPL-2.0). The comparison page's
side-by-side figures must share their axis ranges, read from the drawn figures.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("plotly")
sync_api = pytest.importorskip("playwright.sync_api")

from credsim.audit import audit, load_result  # noqa: E402
from credsim.report import write_compare, write_report  # noqa: E402
from credsim.report.labels import internal_names  # noqa: E402
from credsim.scenario.load import builtin_names  # noqa: E402
from tests.browser import CHROMIUM, chromium  # noqa: E402

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WIDTHS = (1400, 390)
LOCAL = ("file:", "data:", "blob:", "about:")

pytestmark = [pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """A small audit of every built-in scenario (all counterfactuals), with its report."""
    tmp = tmp_path_factory.mktemp("reports")
    out = {}
    for name in builtin_names():
        d = audit(name, population=1500, days=30, replicates=1, out=tmp / name, threads=1)
        res = load_result(d)
        write_report(res, d / "report.html")
        out[name] = (d / "report.html", res)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium(sync_api)


def _open(browser: Any, path: Path, width: int) -> tuple[Any, Any, list[str], list[str]]:
    ctx = browser.new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    outside: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: None if r.url.startswith(LOCAL) else outside.append(r.url))
    pg.goto(path.resolve().as_uri())
    pg.wait_for_selector(".chart .main-svg", timeout=60_000)
    pg.wait_for_timeout(300)
    return ctx, pg, errors, outside


def _visible_names(text: str, names: set[str]) -> list[str]:
    return sorted(n for n in names if re.search(r"(?<![\w.=])" + re.escape(n) + r"(?![\w=])", text))


def _axe(pg: Any) -> list[dict[str, Any]]:
    pg.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = pg.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))")
    return found


@pytest.mark.parametrize("width", WIDTHS)
def test_every_builtin_report_reads_plainly(reports: dict[str, tuple[Path, dict[str, Any]]], browser: Any,
                                            width: int) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for name, (path, res) in reports.items():
        ctx, pg, errors, outside = _open(browser, path, width)
        try:
            charts = pg.locator(".chart").count()
            assert charts >= 1 and pg.locator(".chart .main-svg").count() >= charts, name
            overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (name, width, overflow)  # no horizontal scrolling, on the phone either
            assert pg.locator(".modebar-btn[data-title*='Cloud'], .modebar-btn[data-title*='Chart Studio'],"
                              " .modebar-btn[data-title*='plotly' i]").count() == 0
            pg.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
            text = pg.evaluate("document.body.innerText")
            shown = _visible_names(text, internal_names(res))
            assert not shown, (name, shown)
            assert "Of every 1,000 citizens" in text.split("\n\n")[0] + text[:2000]
            if width == 1400:
                violations = _axe(pg)
                assert not violations, (name, violations)
            pg.screenshot(path=str(ARTIFACTS / f"report-{name}-{width}.png"))
        finally:
            ctx.close()
        assert not errors, (name, errors)
        assert not outside, (name, outside)  # nothing from the network


def test_compare_shares_axes_in_the_browser(reports: dict[str, tuple[Path, dict[str, Any]]], browser: Any) -> None:
    (pa, ra), (_pb, rb) = reports["city-points"], reports["integrated"]
    out = pa.parent.parent / "compare.html"
    write_compare(ra, rb, "city-points", "integrated", out)
    for width in WIDTHS:
        ctx, pg, errors, outside = _open(browser, out, width)
        try:
            ranges = pg.evaluate(
                "() => [...document.querySelectorAll('.js-plotly-plot')].map(g => [g.id,"
                " g._fullLayout.xaxis.range, g._fullLayout.yaxis.range])")
            assert pg.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
            text = pg.evaluate("document.body.innerText")
        finally:
            ctx.close()
        by_id = {i: (x, y) for i, x, y in ranges}
        pairs = [(i, i[:-2] + "-b") for i in by_id if i.endswith("-a") and i[:-2] + "-b" in by_id]
        assert len(pairs) >= 3
        for a, b in pairs:
            flat_a, flat_b = [*by_id[a][0], *by_id[a][1]], [*by_id[b][0], *by_id[b][1]]
            assert flat_a == pytest.approx(flat_b), (a, by_id[a], by_id[b])  # equal axis ranges, both axes
        assert "What differs between A and B" in text and "Scenario: A is city points, B is integrated." in text
        assert not _visible_names(text, internal_names(ra) | internal_names(rb))
        assert not errors and not outside
