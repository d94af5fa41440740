"""The HTML report and comparison: small, offline, plain words, honest signs, shared axes."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

import credsim
from credsim.cli import app

from .conftest import WRONGFUL_PRONE

pytest.importorskip("plotly")

from credsim.report import charts  # noqa: E402
from credsim.report import html as report_html  # noqa: E402
from credsim.report.findings import change_words  # noqa: E402
from credsim.report.html import PLOTLY_FILE  # noqa: E402
from credsim.report.labels import Labels, words  # noqa: E402

MAX_REPORT_BYTES = 2_000_000


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    """Start tags of the page (script bodies are not parsed as markup)."""
    out: list[tuple[str, dict[str, str | None]]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            out.append((tag, dict(attrs)))

    P().feed(html)
    return out


def _figures(html: str) -> dict[str, dict[str, object]]:
    """Every figure's layout as written in the page, by div id (the JSON Plotly.newPlot draws)."""
    dec = json.JSONDecoder()
    out = {}
    for m in re.finditer(r"Plotly\.newPlot\(", html):
        pos = m.end()
        values = []
        for _ in range(3):  # div id, data, layout
            while html[pos] in " \n\t,":
                pos += 1
            v, pos = dec.raw_decode(html, pos)
            values.append(v)
        out[values[0]] = values[2]
    return out


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("report")
    a = credsim.run("city-points", population=4000, days=150, seed=2, out=tmp / "a", overrides=WRONGFUL_PRONE).dir
    b = credsim.run("baseline", population=4000, days=150, seed=2, out=tmp / "b").dir
    c = credsim.run("city-points", population=2000, days=150, seed=2, out=tmp / "c", overrides=WRONGFUL_PRONE).dir
    return a, b, c


def test_labels_are_words() -> None:
    assert words("travel.hsr_attempt") == "high-speed rail"
    assert words("key_person_travel_ban") == "key person travel ban"
    assert words("60_plus") == "60 and over" and words("18_29") == "18–29"
    lab = Labels()
    assert lab.group("occupation", "journalist") == "occupation: journalist"
    assert lab.group("age × income", "18_29 × q1") == "age: 18–29 & income: lowest income fifth"
    for metric in ("denied.travel.hsr_attempt", "denied.cross_context_sum", "listed.key_persons.end",
                   "harm.wrongful.citizens", "effect.events.speech.total.rel", "citizens.sanctioned"):
        text = lab.metric(metric)
        assert not re.search(r"[A-Za-z][._=][A-Za-z]", text), (metric, text)  # no program name left in the words
    assert Labels({"travel.hsr_attempt": "train tickets"}).name("travel.hsr_attempt") == "train tickets"


def test_sign_wording_is_consistent() -> None:
    # a fall is said as a fall, interval included: no negative bound next to the word "fell"
    assert change_words(-0.0063, -0.0076, -0.0049, 3) == "fell by 0.63% (95% CI: fell by 0.49% to 0.76%)"
    assert change_words(0.02, 0.01, 0.03, 3) == "rose by 2.00% (95% CI: rose by 1.00% to 3.00%)"
    crossing = change_words(-0.003, -0.018, 0.013, 2)
    assert "no clear change" in crossing and "-" not in crossing
    assert change_words(-0.5) == "fell by 50.00%"  # one replicate: no interval is claimed


def test_report_is_small_offline_and_plain(runs: tuple[Path, Path, Path]) -> None:
    a, b, _c = runs
    r = CliRunner().invoke(app, ["report", str(a), "--against", str(b)])
    assert r.exit_code == 0, r.output
    page = a / "report.html"
    html = page.read_text()
    assert page.stat().st_size <= MAX_REPORT_BYTES
    tags = _tags(html)
    srcs = [t.get("src") for n, t in tags if n == "script" and t.get("src")]
    assert srcs == [PLOTLY_FILE] and (a / PLOTLY_FILE).stat().st_size > 1_000_000  # plotly.js once, beside it
    assert not [t for n, t in tags if n in ("link", "script", "img") and
                str(t.get("href") or t.get("src") or "").startswith(("http:", "https:", "//"))]
    assert html.count("Plotly.newPlot") >= 6
    assert "sendDataToCloud" not in html and '"displaylogo": false' in html
    # each drawn chart: a text alternative, its data table and three downloads
    assert len(re.findall(r'<p class="sr" id="([^"]+)-alt">Chart: ', html)) == html.count("Plotly.newPlot")
    assert html.count("Table: the numbers in this chart") == html.count("Plotly.newPlot")
    for kind in ("png", "svg", "csv"):
        assert html.count(f'data-download="{kind}"') == html.count("Plotly.newPlot")
    # the story leads: three sentences and the icon array before the first chart
    first_chart = html.index("Plotly.newPlot")
    for key in ("story.denied", "story.disparity", "story.effect"):
        assert html.index(f'data-headline="{key}"') < first_chart
    assert html.index('<svg class="icons"') < first_chart and html.count("<rect ") == 1000
    assert 'data-figure="denied.total"' in html and 'data-figure="effect.events.speech.total.rel"' in html
    assert "credsim audit" not in html.split("</title>")[0]  # titled by what happened, not by the tool


def test_disparate_impact_chart_rows_ticks_and_reference(runs: tuple[Path, Path, Path]) -> None:
    from credsim.audit import load_result

    a, b, _c = runs
    res = load_result(a, b)
    c = charts.disparate_impact(res)
    assert c.fig is not None
    rows = [y for t in c.fig.data if t.name != "reference group (ratio 1)" for y in t.y]
    assert len(rows) == len(set(rows))  # one row per group and outcome: no dot hidden under another
    ratios = {y: x for t in c.fig.data if t.name != "reference group (ratio 1)" for y, x in zip(t.y, t.x,
                                                                                                 strict=True)}
    order = list(c.fig.layout.yaxis.categoryarray)
    shown = [ratios[y] for y in order if y in ratios]
    assert shown == sorted(shown, reverse=True)  # sorted, largest ratio first
    refs = [t for t in c.fig.data if t.name == "reference group (ratio 1)"]
    assert refs and all(x == 1.0 for x in refs[0].x) and all(str(y).startswith("reference: ") for y in refs[0].y)
    ticks = dict(zip(c.fig.layout.xaxis.tickvals, c.fig.layout.xaxis.ticktext, strict=True))
    assert ticks.get(0.5) in (None, "0.5") and ticks.get(2) in (None, "2") and ticks[1] == "1"
    assert c.fig.layout.xaxis.type == "log"


def test_grade_palette_is_ordered() -> None:
    cols = charts.grade_colours(5)
    # viridis: luminance rises monotonically from the best grade to the worst, readable without hue
    def lum(c: str) -> float:
        r, g, b = (int(v) for v in re.findall(r"\d+", c)[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    values = [lum(c) for c in cols]
    assert values == sorted(values) and len(set(cols)) == 5


def test_compare_header_warning_and_shared_axes(runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a, b, c = runs
    out = tmp_path / "cmp.html"
    r = CliRunner().invoke(app, ["compare", str(a), str(c), "--out", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert out.stat().st_size <= MAX_REPORT_BYTES and (tmp_path / PLOTLY_FILE).exists()
    head = html.split("Key figures")[0]
    assert "What differs between A and B" in head and "Size: A has 4,000 citizens, B has 2,000." in head
    assert "Warning: different sizes." in head
    assert "data-figure='denied.total'" in html
    table = html.split("<th class='l'>figure</th>")[1].split("</table>")[0]
    assert not re.search(r">[^<]*[A-Za-z][._=][A-Za-z][^<]*<", table), "internal names in the table"
    figs = _figures(html)
    pairs = 0
    for name in [k for k in figs if k.endswith("-a")]:
        other = name[:-2] + "-b"
        if other not in figs:
            continue
        pairs += 1
        for axis in ("xaxis", "yaxis"):
            la, lb = figs[name].get(axis, {}), figs[other].get(axis, {})
            assert la.get("range") == lb.get("range"), (name, axis)
            assert la.get("categoryarray") == lb.get("categoryarray"), (name, axis)
    assert pairs >= 3
    diff = figs["cmp-difference"]  # the difference drawn directly, before the side-by-side panels
    assert "B − A" in str(diff["xaxis"]["title"]) and html.index('"cmp-difference"') < html.index('"cmp-denied_by')

    r = CliRunner().invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / "same.html")])
    assert r.exit_code == 0, r.output
    same = (tmp_path / "same.html").read_text()
    assert "share their random numbers" in same and "Warning: different sizes" not in same
    assert "Scenario: A is city points, B is baseline." in same


LABELLED = """name: labelled
extends: city-points
label: Points city
behaviours:
  travel.flight_attempt: {label: air tickets}
lists:
  court_defaulters: {label: list of dishonest debtors}
sanctions:
  court_travel_ban: {label: travel ban for debtors}
population:
  labels:
    occupation: {label: line of work, values: {journalist: reporters}}
"""


def test_scenario_labels_reach_every_page(tmp_path: Path) -> None:
    """A scenario's own words replace the made-up ones in the result, the report and explain."""
    from credsim.audit import load_result
    from credsim.report.labels import for_run, from_result, from_scenario

    path = tmp_path / "labelled.yaml"
    path.write_text(LABELLED)
    run = credsim.run(str(path), population=800, days=20, seed=3, out=tmp_path / "run").dir
    res = load_result(run)
    lab = from_result(res)
    assert res["meta"]["labels"]["travel.flight_attempt"] == "air tickets"
    assert lab.name("court_defaulters") == "list of dishonest debtors"
    assert lab.group("occupation", "journalist") == "line of work: reporters"
    assert lab.metric("denied.travel.flight_attempt").endswith(": air tickets")
    assert for_run(run).name("court_travel_ban") == "travel ban for debtors"  # explain reads the run's scenario
    r = CliRunner().invoke(app, ["report", str(run)])
    assert r.exit_code == 0, r.output
    html = (run / "report.html").read_text()
    assert "list of dishonest debtors" in html and "line of work: " in html and "occupation:" not in html
    assert "Points city" in html.split("</title>")[0]
    # grades and values used by one dimension only are found by their bare names too
    given = from_scenario({"name": "x", "population": {"groups": {"a": {"u": 1.0}}, "labels": {"a": {"values": {
        "u": "you"}}}}, "scoring": {"grades": {"bands": [{"name": "AAA", "min": 1, "label": "top"}, {"name": "B"}]}}})
    assert given == {"a=u": "you", "u": "you", "AAA": "top"}


@pytest.mark.parametrize(("yaml_tail", "expected"), [
    ("population:\n  labels: {job: {label: work}}\n", "labels names dimension 'job'"),
    ("population:\n  labels: {occupation: {values: {poet: poets}}}\n", "labels.occupation.values names 'poet'"),
    ("lists:\n  court_defaulters: {label: '<b>debtors</b>'}\n", "lists.court_defaulters.label"),
])
def test_bad_labels_are_refused_with_the_key_path(tmp_path: Path, yaml_tail: str, expected: str) -> None:
    from credsim.scenario.load import ScenarioError, load_scenario

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nextends: city-points\n" + yaml_tail)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert expected in str(err.value)


def test_time_series_and_group_charts_show_every_replicate(tmp_path: Path) -> None:
    """With several replicates, lines are means with a min–max band and group bars carry min–max whiskers."""
    from credsim.audit.paired import assemble

    every_grade = {**WRONGFUL_PRONE, "sanctions.low_grade_no_loans.when.grades": ["AAA", "AA", "A", "B", "C", "D"]}
    dirs = [credsim.run("city-points", population=800, days=25, seed=s, out=tmp_path / f"s{s}",
                        overrides=every_grade).dir for s in (2, 3)]
    res = assemble([(d, None) for d in dirs])
    col = f"listed.{res['first']['lists'][0]}"
    per_run = [r["series"][col] for r in res["replicates"]]
    sp = charts.spread(res, col)
    assert sp is not None and sp.k == 2
    for day, (a, b) in enumerate(zip(*per_run, strict=True)):
        assert sp.lo[day] == min(a, b) and sp.hi[day] == max(a, b) and sp.mean[day] == (a + b) / 2
    chart = charts.list_sizes(res)
    assert chart.fig is not None
    filled = [t for t in chart.fig.data if t.fill == "tonexty"]
    assert filled and list(filled[0].y) == sp.hi
    assert "lowest to the highest replicate" in chart.caption and "First of" not in chart.caption
    assert list(chart.fig.data[2].y) == sp.mean  # the official line is the mean, drawn over its band
    bars = charts.denied_by_group(res)
    assert bars.fig is not None and "min–max" in bars.caption
    denied = bars.fig.data[0]
    rates = {(g["dimension"], g["group"]): [] for g in res["replicates"][0]["groups"]}
    for r in res["replicates"]:
        for g in r["groups"]:
            rates[(g["dimension"], g["group"])].append(1000 * g["denied.total"] / g["population"])
    labels = {charts.from_result(res).group(*kg): v for kg, v in rates.items()}
    for y, x, up, down in zip(denied.y, denied.x, denied.error_x.array, denied.error_x.arrayminus, strict=True):
        assert x == pytest.approx(sum(labels[y]) / 2)
        assert x + up == pytest.approx(max(labels[y])) and x - down == pytest.approx(min(labels[y]))
    # cross-context: mean share per rule over replicates, min–max whiskers, one severity dot per replicate and rule
    cross = charts.cross_context(res)
    assert cross.fig is not None and "min–max" in cross.caption and "First of" not in cross.caption
    shares: dict[str, list[float]] = {}
    for r in res["replicates"]:
        for rule in r["sanctions"]:
            if rule["denials"]:
                shares.setdefault(charts.from_result(res).name(rule["sanction"]), []).append(100 * rule["cross_mean"])
    top, dots = cross.fig.data[0], cross.fig.data[1]
    assert sorted(top.x) == sorted(shares) and len(dots.x) == sum(len(v) for v in shares.values())
    for name, y, up, down in zip(top.x, top.y, top.error_y.array, top.error_y.arrayminus, strict=True):
        assert y == pytest.approx(sum(shares[name]) / len(shares[name]))
        assert y + up == pytest.approx(max(shares[name])) and y - down == pytest.approx(min(shares[name]))
    # transitions: each cell the mean count over replicates with the lowest and highest replicate, in the table too
    trans = charts.transitions(res)
    assert trans.fig is not None and "min–max" in trans.caption and "First of" not in trans.caption
    tr = [r["transitions"] for r in res["replicates"]]
    gnames = [charts.from_result(res).name(g) for g in tr[0]["grades"]]
    for heat, key in zip(trans.fig.data, ("start_end", "official_vs_shadow"), strict=True):
        for a, y in enumerate(heat.y):
            for b, x in enumerate(heat.x):
                counts = [t[key][gnames.index(y)][gnames.index(x)] for t in tr]
                assert list(heat.customdata[a][b]) == [sum(counts) / 2, min(counts), max(counts)]
    head, rows = report_html.figure_rows(trans.fig)
    assert head[3:] == ["citizens (mean over replicates)", "lowest replicate", "highest replicate"]
    assert len(rows) == 2 * len(trans.fig.data[0].x) ** 2
    off = [sum(v for i, r in enumerate(t["official_vs_shadow"]) for j, v in enumerate(r) if i != j) for t in tr]
    mean_off = sum(off) / 2
    shown = f"{mean_off:,.0f}" if mean_off.is_integer() else f"{mean_off:,.1f}"
    assert trans.title.startswith(f"On average {shown} citizens per replicate ({min(off):,} to {max(off):,} "
                                  if min(off) < max(off) else f"{off[0]:,} citizens in each of 2 replicates")
