"""The dashboard in a real browser: Debian's Chromium, headless, driven through Playwright.

The server runs in a background thread on a free loopback port over a temporary runs
root. Each test moves knobs the way a user would and checks that the headline numbers
and the charts change the way the rules imply; bad input and path traversal must give an
inline message, never a traceback. Screenshots go to ``test-artifacts/`` (gitignored).

All runs use the scenarios' fixed seeds, so every number here is reproducible.
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dash")
sync_api = pytest.importorskip("playwright.sync_api")

from werkzeug.serving import make_server  # noqa: E402

from credsim import security  # noqa: E402
from credsim.dashboard.app import Dashboard  # noqa: E402
from credsim.scenario.load import load_scenario  # noqa: E402
from tests.browser import CHROMIUM, chromium  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
RUN_TIMEOUT = 180_000  # ms; a paired run takes a few seconds on an idle machine

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian chromium (scripts/setup-browser)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Dashboard]]:
    d = Dashboard(tmp_path_factory.mktemp("dashboard") / "runs")
    srv = make_server("127.0.0.1", 0, security.guard_for(d.app.server, "127.0.0.1"), threaded=True)  # as served
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}", d
    finally:
        srv.shutdown()
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium(sync_api)


@pytest.fixture
def page(browser: Any, server: tuple[str, Dashboard]) -> Iterator[Any]:
    base, _d = server
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    outside: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: None if r.url.startswith((base, "data:", "blob:", "about:")) else outside.append(r.url))
    yield pg
    ctx.close()
    assert not errors, errors  # no JavaScript error on the page
    assert not outside, outside  # everything is served locally: no CDN, no network


def knob(pg: Any, kid: str) -> Any:
    return pg.locator(f'[data-knob="{kid}"] input')


def figure(pg: Any, name: str, col: str = "system", table: str = "#headline-table") -> float:
    v = pg.get_attribute(f'{table} td[data-figure="{name}"][data-col="{col}"]', "data-value")
    assert v not in (None, ""), f"{name} ({col}) not shown"
    return float(v)


def axis_ranges(pg: Any, gid: str) -> list[float] | None:
    """The drawn x and y ranges of a chart (None when it shows its no-data sentence)."""
    r = pg.evaluate("id => { const e = document.getElementById(id); if (!e) return null;"
                    " const g = e.classList.contains('js-plotly-plot') ? e : e.querySelector('.js-plotly-plot');"
                    " return g && g._fullLayout ? [...g._fullLayout.xaxis.range, ...g._fullLayout.yaxis.range]"
                    " : null; }", gid)
    return None if r is None else [float(v) for v in r]


def run(pg: Any, before: str | None, click: bool = True) -> str:
    """Press Run (unless already pressed) and wait for a new run's numbers and charts; return its name."""
    if click:
        pg.click("#run")
    try:
        pg.wait_for_function("old => { const t = document.querySelector('#headline-table');"
                             " return t && t.dataset.run && t.dataset.run !== old; }", arg=before or "",
                             timeout=RUN_TIMEOUT)
    except Exception as exc:  # what the page showed, for the failure's message
        state = pg.evaluate("() => ['#progress-text', '#message', '#results'].map(s => "
                            "(document.querySelector(s)?.innerText || '').slice(0, 300))")
        raise AssertionError(f"no new run's numbers on the page: {state}") from exc
    name = pg.get_attribute("#headline-table", "data-run")
    pg.wait_for_selector(f'.charts[data-run="{name}"]', timeout=RUN_TIMEOUT)
    assert "done in" in pg.inner_text("#progress-text")
    assert pg.get_attribute("#progress", "aria-valuenow") == "100"
    return str(name)


def wait_text(pg: Any, selector: str, part: str = "") -> str:
    """Wait until ``selector`` exists and its text contains ``part`` (any text when empty); return the text."""
    pg.wait_for_function("([sel, part]) => { const e = document.querySelector(sel);"
                         " return !!e && e.innerText.length > 0 && e.innerText.includes(part); }", arg=[selector, part])
    return str(pg.inner_text(selector))


def chart(pg: Any, gid: str) -> list[dict[str, Any]] | None:
    """The traces a report chart drew (name, x, y), or None when it shows its no-data sentence instead."""
    return pg.evaluate("id => { const e = document.getElementById(id); if (!e) return 'missing';"
                       " const g = e.classList.contains('js-plotly-plot') ? e : e.querySelector('.js-plotly-plot');"
                       " return g ? g.data.map(t => ({name: t.name, x: t.x, y: t.y})) : null; }", gid)


# Resolves once the live list-size chart, read at two moments while progress < 100 %, has more points the
# second time ({before, after, progress}); resolves with after = -1 if the run ends first (the assert then fails).
LIVE_GROWS = """() => {
  const e = document.getElementById('live-list_sizes');
  const g = e && (e.classList.contains('js-plotly-plot') ? e : e.querySelector('.js-plotly-plot'));
  const n = g && g.data ? g.data.reduce((s, t) => s + (t.x ? t.x.length : 0), 0) : 0;
  const p = Number(document.querySelector('#progress').getAttribute('aria-valuenow'));
  const caption = document.querySelector('#live-caption').innerText;
  const alt = document.querySelector('#live-list_sizes-alt').textContent;
  const described = e && e.closest('[aria-describedby="live-list_sizes-alt"]') !== null;
  const days = document.querySelectorAll('#live-list_sizes-table tbody tr').length;
  if (p >= 100) return {before: window.liveBefore || 0, after: -1, progress: p, caption};
  if (n > 0 && window.liveBefore === undefined) window.liveBefore = n;
  if (window.liveBefore !== undefined && n > window.liveBefore) return {before: window.liveBefore, after: n,
                                                                        progress: p, caption, alt, described, days};
  return false;
}"""


def wait_chart(pg: Any, gid: str) -> None:
    pg.wait_for_function("id => { const e = document.getElementById(id); if (!e) return false;"
                         " if (e.tagName === 'P') return true;"
                         " const g = e.classList.contains('js-plotly-plot') ? e : e.querySelector('.js-plotly-plot');"
                         " return !!(g && g.data); }", arg=gid)


def test_removing_the_court_list_sanction_stops_flight_denials(page: Any, server: tuple[str, Dashboard],
                                                               tmp_path: Path) -> None:
    base, d = server
    pg = page
    pg.goto(base + "/?scenario=city-points")
    pg.wait_for_selector('[data-knob="sanctions"]')
    # long enough that the policy run spans several draws of the live charts (a draw takes up to a second,
    # later on a loaded machine: at 90 days the first draw once came at the run's last snapshot)
    pg.fill("#population", "40000")
    pg.fill("#days", "360")
    pg.click("#run")
    # progress counts the days of the run under way: "day d of 360", never of 720
    progress = wait_text(pg, "#progress-text", " of 360 ")
    assert "of 720" not in progress
    # the policy's list sizes are drawn while it runs: the line has points, and more at a later poll, before the end
    grew = pg.wait_for_function(LIVE_GROWS, timeout=RUN_TIMEOUT).json_value()
    assert grew["before"] > 0 and grew["after"] > grew["before"] and grew["progress"] < 100, grew
    assert "Day " in grew["caption"] and " of 360 " in grew["caption"]
    # the live chart has a text alternative it is described by, and its numbers in a table (a row per day drawn)
    assert grew["described"] and "Chart, partial: " in grew["alt"] and " of 360)" in grew["alt"], grew
    assert grew["days"] > 0, grew
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "dashboard-live.png"))  # the page mid-run (the box may just have closed)
    first = run(pg, None, click=False)
    assert not pg.is_visible("#live-box")  # the full charts replace the partial ones
    done = pg.inner_text("#progress-text")
    seconds = float(done.split("done in ")[1].split(" s")[0])
    print(f"dashboard 40,000 x 360 paired run: {seconds:.1f} s wall (page says: {done})")
    flights = figure(pg, "denied.travel.flight_attempt")
    travel = flights + figure(pg, "denied.travel.hsr_attempt")
    assert flights > 0  # listed court defaulters tried to fly and were stopped
    assert figure(pg, "denied.total", "baseline") == 0  # the same citizens with no system: nobody is denied
    wait_chart(pg, "chart-wrongful_missed-system")
    wrongful = chart(pg, "chart-wrongful_missed-system")
    assert wrongful and "flight" in wrongful[0]["x"]  # plain words, not travel.flight_attempt
    assert "travel.flight_attempt" not in pg.inner_text("#results")

    # the settings are in the address: a reload brings back the same form
    assert "population=40000" in pg.url and "days=360" in pg.url and "knob.sanctions=" in pg.url

    pg.locator('[data-knob="sanctions"] input[value="court_travel_ban"]').uncheck()
    # results computed under other settings are marked as such until Run
    assert "settings changed" in wait_text(pg, "#stale-note", "changed").lower()
    assert "stale" in (pg.get_attribute("#results", "class") or "")
    second = run(pg, first)
    assert pg.inner_text("#stale-note") == ""
    assert "court_travel_ban" not in pg.url.split("knob.sanctions=")[1].split("&")[0]
    # the court list is the only thing that blocks travel in city-points: no flight or train is denied any more
    assert figure(pg, "denied.travel.flight_attempt") == 0
    assert figure(pg, "denied.travel.hsr_attempt") == 0
    assert figure(pg, "denied.travel.flight_attempt", "previous") == flights  # the previous run, for comparison
    assert figure(pg, "denied.total") == figure(pg, "denied.total", "previous") - travel
    wait_chart(pg, "chart-wrongful_missed-system")
    after = chart(pg, "chart-wrongful_missed-system")
    assert after is None or "flight" not in after[0]["x"]
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "dashboard.png"))

    # the charts can sit next to the previous run instead of the baseline: on the same axes
    pg.locator("#compare-with input[value=previous]").check()
    pg.wait_for_selector(f'.charts[data-run="{second}"] #chart-grade_mix-right')
    wait_chart(pg, "chart-denied_by_group-right")
    for key in ("denied_by_group", "list_sizes", "wrongful_missed"):
        left, right = axis_ranges(pg, f"chart-{key}-system"), axis_ranges(pg, f"chart-{key}-right")
        if left is not None and right is not None:
            assert left == pytest.approx(right), key

    # take it away: the scenario as edited, and the report of the run
    with pg.expect_download() as dl:
        pg.click("#btn-yaml")
    path = tmp_path / "edited.yaml"
    dl.value.save_as(path)
    edited = load_scenario(path)
    assert "court_travel_ban" not in edited.sanctions and edited.population.size == 40000
    with pg.expect_download() as dl:
        pg.click("#btn-report")
    dl.value.save_as(tmp_path / "report.zip")
    assert (tmp_path / "report.zip").stat().st_size <= 2_000_000  # the page and plotly.js beside it, compressed
    with zipfile.ZipFile(tmp_path / "report.zip") as z:
        page = next(z.read(n).decode() for n in z.namelist() if n.endswith("/report.html"))
    assert "What the city points system did" in page

    # reload: the address reproduces the last run's settings
    pg.reload()
    pg.wait_for_selector('[data-knob="sanctions"]')
    pg.wait_for_function("() => document.querySelector('#population')?.value === '40000'")
    assert not pg.locator('[data-knob="sanctions"] input[value="court_travel_ban"]').is_checked()
    assert pg.locator('[data-knob="sanctions"] input[value="low_grade_no_loans"]').is_checked()
    assert pg.input_value("#days") == "360"

    # browse: both runs are listed, and the address opens them side by side
    pg.click("text=Browse and compare runs")
    pg.click("#refresh")
    pg.wait_for_function("() => document.querySelector('#run-a') !== null")
    listed = [r["name"] for r in d.runner.list_runs()]
    assert first in listed and second in listed
    pg.goto(f"{base}/?run={first}&vs={second}")
    pg.wait_for_selector("#compare-table")
    assert figure(pg, "denied.travel.flight_attempt", "a", "#compare-table") == flights
    assert figure(pg, "denied.travel.flight_attempt", "b", "#compare-table") == 0
    assert "share their random numbers" in pg.inner_text("#browse-out")
    wait_chart(pg, "cmp-wrongful_missed-a")
    pg.screenshot(path=str(ARTIFACTS / "dashboard-compare.png"))


def test_camera_false_matches_raise_wrongful_sanctions(page: Any, server: tuple[str, Dashboard]) -> None:
    base, _d = server
    pg = page
    pg.goto(base + "/?scenario=integrated")
    rate = knob(pg, "false_rate.face_cameras")
    rate.wait_for()
    pg.fill("#population", "5000")
    pg.fill("#days", "60")
    low = run(pg, None)
    w0, f0 = figure(pg, "wrongful.total"), figure(pg, "records.official_false")
    c0 = figure(pg, "citizens.wrongfully_sanctioned")

    rate.fill("0.005")  # from 0.00002: each covered citizen gets a false camera match about every 50 days
    high = run(pg, low)
    w1, f1 = figure(pg, "wrongful.total"), figure(pg, "records.official_false")
    assert f1 > 10 * f0 + 1000  # false records scale with the rate
    assert w1 > w0 and figure(pg, "citizens.wrongfully_sanctioned") > c0  # and they lead to wrongful denials
    assert figure(pg, "wrongful.total", "baseline") == 0
    wait_chart(pg, "chart-wrongful_missed-system")
    traces = {t["name"]: t for t in chart(pg, "chart-wrongful_missed-system") or []}
    assert sum(traces["denied, the shadow view would allow"]["y"]) == w1  # the chart draws the headline number

    # explain a traced citizen of this run
    pg.click("text=Explain a citizen")
    pg.wait_for_function("() => { const i = document.querySelector('#citizen'); return !!i && i.value !== ''; }")
    pg.click("#explain")
    pg.wait_for_selector("#explain-timeline tbody tr")
    assert "Citizen" in pg.inner_text("#explain-out")
    pg.screenshot(path=str(ARTIFACTS / "dashboard-explain.png"))
    pg.fill("#citizen", "99999999")
    pg.press("#citizen", "Enter")
    pg.click("#explain")
    wait_text(pg, "#explain-message", "does not exist")
    assert high


def test_bad_input_and_traversal_get_inline_messages(page: Any, server: tuple[str, Dashboard],
                                                     tmp_path: Path) -> None:
    base, d = server
    pg = page
    pg.goto(base + "/")
    pg.wait_for_selector('[data-knob="false_rate.traffic_cameras"]')
    # a bad value is marked at its control, with a message there, and Run is disabled until it is fixed
    knob(pg, "false_rate.traffic_cameras").fill("-0.1")
    box = '[data-knob="false_rate.traffic_cameras"]'
    pg.wait_for_selector(f"{box}.invalid")
    assert "greater than or equal to 0" in wait_text(pg, f"{box} .field-msg")
    assert pg.is_disabled("#run")
    assert "not valid" in pg.inner_text("#invalid-note")
    border = pg.eval_on_selector(f"{box} input", "e => getComputedStyle(e).borderTopColor")
    assert border == "rgb(179, 48, 30)"  # the red mark
    assert "Traceback" not in pg.content()
    knob(pg, "false_rate.traffic_cameras").fill("0.00001")
    pg.wait_for_selector(f"{box}:not(.invalid)")
    pg.wait_for_function("() => !document.querySelector('#run').disabled")
    knob(pg, "points_per_infraction").fill("-2")
    wait_text(pg, '[data-knob="points_per_infraction"] .field-msg', "at least 0")
    assert pg.is_disabled("#run")
    pg.fill("#days", "0")
    wait_text(pg, "#days-msg", "from 1")
    knob(pg, "points_per_infraction").fill("1")
    pg.fill("#days", "30")
    pg.wait_for_function("() => !document.querySelector('#run').disabled")

    # uploads: validated like files, and size-limited
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: mine\nextends: city-points\nsensors: {traffic_cameras: {false_rate: -1}}\n")
    pg.set_input_files("#upload input[type=file]", str(bad))
    wait_text(pg, "#upload-message", "false_rate")
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 120_000)
    pg.set_input_files("#upload input[type=file]", str(big))
    wait_text(pg, "#upload-message", "limited to")
    good = tmp_path / "good.yaml"
    good.write_text("name: my-city\nextends: city-points\nsensors: {traffic_cameras: {false_rate: 0.001}}\n")
    pg.set_input_files("#upload input[type=file]", str(good))
    wait_text(pg, "#scenario", "my-city")
    pg.wait_for_function("() => document.querySelector('[data-knob=\"false_rate.traffic_cameras\"] input')"
                         "?.value === '0.001'")
    assert pg.inner_text("#upload-message") == ""

    # an unknown scenario name in the address
    pg.goto(base + "/?scenario=no-such-thing")
    assert "no-such-thing" in wait_text(pg, "#url-message", "unknown scenario")

    # path traversal through the address: refused before any file is touched, shown inline
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    (d.runner.root / "link").symlink_to(outside)
    for name in ("../../etc", "%2e%2e%2f%2e%2e%2fetc", "..%2F..%2Fetc%2Fpasswd", "/etc", ".dashboard-cache",
                 "link"):
        pg.goto(f"{base}/?run={name}")
        text = wait_text(pg, "#browse-message")
        assert "refused" in text or "no run named" in text, (name, text)
        assert "root:x:0:0" not in pg.content()
    for path in ("/report/..%2F..%2Fetc%2Fpasswd", "/report/%2e%2e/%2e%2e/etc/passwd", "/report/link",
                 "/report/..%5C..%5Cetc"):
        r = pg.request.get(base + path)
        # refused, or (when the client itself normalises %2e%2e away) the dashboard's own page: never the file
        assert r.status in (403, 404) or (r.status == 200 and "credsim dashboard" in r.text()), path
        assert "root:x:0:0" not in r.text() and "Traceback" not in r.text()


def test_run_stays_in_view_and_the_phone_layout_fits(browser: Any, server: tuple[str, Dashboard]) -> None:
    base, _d = server
    for width, height in ((1400, 1000), (390, 844)):
        ctx = browser.new_context(viewport={"width": width, "height": height})
        pg = ctx.new_page()
        outside: list[str] = []

        def note(r: Any, seen: list[str] = outside) -> None:
            if not r.url.startswith((base, "data:", "blob:", "about:")):
                seen.append(r.url)
        pg.on("request", note)
        try:
            pg.goto(base + "/?scenario=integrated")
            pg.wait_for_selector('[data-knob="false_rate.face_cameras"]')
            if width == 1400:
                # scroll the knob panel to its end: Run is still on screen
                pg.evaluate("() => { const s = document.querySelector('.side'); s.scrollTop = s.scrollHeight; }")
                pg.wait_for_timeout(200)
                box = pg.locator("#run").bounding_box()
                assert box is not None and 0 <= box["y"] <= height - box["height"], box
                # the form passes the same automated accessibility check as the report
                pg.add_script_tag(path=str(AXE))
                found = pg.evaluate(
                    "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
                    ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                    ".map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(' '))}))")
                # markup inside Dash's own components, which the page cannot change: the dropdown's hidden
                # focus target, the upload's file input (its drop zone carries the words) and the
                # checklist's option wrappers; every node of the page's own markup must pass
                dash_own = {"aria-hidden-focus": ".dash-dropdown-focus-target", "label": 'input[type="file"]',
                            "nested-interactive": "[data-option-index="}
                serious = [(v["id"], n) for v in found for n in v["nodes"]
                           if not (v["id"] in dash_own and dash_own[v["id"]] in n)]
                assert not serious, serious
            else:
                overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, overflow
                ARTIFACTS.mkdir(exist_ok=True)
                pg.screenshot(path=str(ARTIFACTS / "dashboard-390.png"))
        finally:
            ctx.close()
        assert not outside, outside
