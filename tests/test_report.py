"""The HTML report: self-contained, renders in headless Chromium with its charts and headline numbers."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

import credsim
from credsim.cli import app

from .conftest import WRONGFUL_PRONE

pytest.importorskip("plotly")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Start tags of the page (script bodies are not parsed as markup)."""
    out: list[tuple[str, dict[str, str | None]]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            out.append((tag, dict(attrs)))

    P().feed(html)
    return out


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    a = credsim.run("city-points", population=4000, days=150, seed=2, out=tmp / "a", overrides=WRONGFUL_PRONE).dir
    b = credsim.run("baseline", population=4000, days=150, seed=2, out=tmp / "b").dir
    return a, b


def test_report_is_self_contained(runs: tuple[Path, Path]) -> None:
    a, b = runs
    r = CliRunner().invoke(app, ["report", str(a), "--against", str(b)])
    assert r.exit_code == 0, r.output
    html = (a / "report.html").read_text()
    tags = _tags(html)
    assert not [a for t, a in tags if t == "script" and "src" in a], "scripts must be inline"
    assert not [a for t, a in tags if t == "link" and str(a.get("href", "")).startswith("http")]
    assert sum(1 for t, _a in tags if t == "script") == 1 + html.count("Plotly.newPlot")  # plotly.js once
    assert html.count("Plotly.newPlot") >= 8
    assert 'data-figure="denied.total"' in html and 'data-figure="effect.events.speech.total.rel"' in html


def test_compare(runs: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = runs
    out = tmp_path / "cmp.html"
    r = CliRunner().invoke(app, ["compare", str(a), str(b), "--out", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert "a vs b" in html and "share their random numbers" in html
    assert "data-figure='denied.total'" in html and "Plotly.newPlot" in html
    assert "denied.total" in r.output


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium (scripts/setup-browser)")
def test_report_renders_in_headless_chromium(runs: tuple[Path, Path]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    a, b = runs
    path = a / "report-browser.html"
    from credsim.audit import load_result
    from credsim.report import write_report

    res = load_result(a, b)
    write_report(res, path)
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda req: requests.append(req.url))
            page.goto(path.resolve().as_uri())
            page.wait_for_selector(".chart .main-svg", timeout=30_000)
            page.wait_for_timeout(500)
            charts = page.locator(".chart").count()
            drawn = page.locator(".chart .main-svg").count()
            headline = page.locator('[data-headline="sanctioned"]').inner_text()
            figures = page.eval_on_selector_all(".num[data-figure]", "els => els.map(e => [e.dataset.figure, "
                                                                     "e.dataset.value, e.offsetWidth > 0])")
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests  # nothing from the network
    assert charts >= 8 and drawn >= charts
    assert "citizens" in headline and re.search(r"\d", headline)
    shown = {k: float(v) for k, v, visible in figures if visible}
    assert shown["denied.total"] == pytest.approx(res["intervals"]["denied.total"]["mean"])
    assert "wrongful.total" in shown and "effect.events.infraction.total.rel" in shown
    assert (ARTIFACTS / "report.png").stat().st_size > 50_000
