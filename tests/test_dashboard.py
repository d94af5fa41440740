"""The dashboard without a browser: knobs as scenario edits, form errors, runs, run names, HTTP routes.

The browser tests (tests/test_dashboard_browser.py) drive the same code through Chromium.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import credsim
from credsim import security
from credsim.dashboard import knobs as kn
from credsim.dashboard import live
from credsim.scenario.load import load_scenario, scenario_hash

pytest.importorskip("dash")

from dash import no_update  # noqa: E402

from credsim.dashboard.app import Dashboard, live_table  # noqa: E402
from credsim.report.html import PLOTLY_FILE  # noqa: E402


def _ids(scen: credsim.Scenario) -> set[str]:
    return {k.id for k in kn.knobs_for(scen)}


def test_knobs_exist_only_where_the_scenario_has_the_thing() -> None:
    city = _ids(load_scenario("city-points"))
    assert {"points_per_infraction", "entry_count.court_defaulters", "false_rate.traffic_cameras",
            "journalist.social_media", "sharing", "association.court_defaulters", "sanctions"} <= city
    court = _ids(load_scenario("court-defaulters"))
    # no points scoring, no cameras, nobody watching journalists: none of those knobs; the false
    # records of listings (D9) are the one false rate
    assert not any(k.startswith(("points_", "journalist.", "association.")) for k in court)
    assert {k for k in court if k.startswith("false_rate.")} == {"false_rate.enforcement_errors"}
    assert "entry_count.court_defaulters" in court
    integrated = _ids(load_scenario("integrated"))
    assert {"false_rate.face_cameras", "journalist.face_cameras", "journalist.keyword_filter",
            "journalist.search_engine", "entry_count.key_persons", "association.key_persons"} <= integrated
    commercial = _ids(load_scenario("commercial-score"))
    assert "points_per_infraction" not in commercial  # a model score: no points to scale
    assert "entry_count.featured_profiles" not in commercial  # a red list entered by grade, not records


def test_knobs_write_their_key_paths() -> None:
    base = load_scenario("city-points")
    scen = kn.apply_knobs(base, {"points_per_infraction": 2, "entry_count.court_defaulters": 2,
                                 "false_rate.traffic_cameras": 0.001, "journalist.social_media": 5,
                                 "sharing": ["courts", "banks"], "association.court_defaulters": -15,
                                 "sanctions": ["low_grade_no_loans"]})
    rules = base.scoring.points.rules  # type: ignore[union-attr]
    new = scen.scoring.points.rules  # type: ignore[union-attr]
    for r, v in rules.items():
        if isinstance(v, float | int) and v < 0 and r in base.behaviours:
            assert new[r] == 2 * v
        else:
            assert new[r] == v  # rewards untouched
    assert scen.lists["court_defaulters"].entry.count == 2
    assert scen.sensors["traffic_cameras"].false_rate == 0.001
    assert scen.sensors["social_media"].surveillance["occupation"]["journalist"] == 5
    assert scen.sharing == ["banks", "courts"]  # in the scenario's sensor order
    assert scen.lists["court_defaulters"].association_points == -15
    assert new["association.court_defaulters"] == -15
    assert list(scen.sanctions) == ["low_grade_no_loans"]
    # knobs never compound and never touch the scenario they start from
    again = kn.apply_knobs(base, {"points_per_infraction": 2})
    assert again.scoring.points.rules["traffic.violation"] == -10  # type: ignore[union-attr]
    assert scenario_hash(base) == scenario_hash(load_scenario("city-points"))
    assert scenario_hash(kn.apply_knobs(base, {})) == scenario_hash(base)


@pytest.mark.parametrize(("values", "path", "words"), [
    ({"false_rate.traffic_cameras": -0.1}, "sensors.traffic_cameras.false_rate", "greater than or equal to 0"),
    ({"false_rate.traffic_cameras": 1.5}, "sensors.traffic_cameras.false_rate", "less than or equal to 1"),
    ({"points_per_infraction": -1}, "scoring.points.rules", "at least 0"),
    ({"points_per_infraction": "lots"}, "scoring.points.rules", "a number"),
    ({"entry_count.court_defaulters": 1.5}, "lists.court_defaulters.entry.count", "whole number"),
    ({"entry_count.court_defaulters": 0}, "lists.court_defaulters.entry.count", "greater than or equal to 1"),
    ({"journalist.social_media": None}, "sensors.social_media.surveillance.occupation.journalist", "a number"),
])
def test_bad_knob_values_are_scenario_errors_naming_the_key(values: dict, path: str, words: str) -> None:
    with pytest.raises(credsim.ScenarioError) as err:
        kn.apply_knobs(load_scenario("city-points"), values)
    assert path in err.value.paths
    assert words in str(err.value)


def test_form_limits_and_unknown_scenarios(tmp_path: Path) -> None:
    d = Dashboard(tmp_path)
    with pytest.raises(credsim.ScenarioError) as err:
        d.build("city-points", {}, 5_000_000, 90, 1)
    assert "population.size" in err.value.paths and "credsim run" in str(err.value)
    with pytest.raises(credsim.ScenarioError) as err:
        d.build("city-points", {}, 1000, -3, 1)
    assert "run.days" in err.value.paths
    with pytest.raises(credsim.ScenarioError) as err:
        d.build("no-such-scenario", {}, 1000, 30, 1)
    assert "built-in scenarios" in str(err.value)
    scen, changes = d.build("city-points", {"points_per_infraction": 3}, 1000, 30, 7)
    assert (scen.population.size, scen.run.days, scen.run.seed) == (1000, 30, 7)
    assert changes == ["Points lost per infraction (x the scenario's deductions): 1 -> 3"]


def _wait(job, limit: float = 120.0, allow_error: bool = False) -> None:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    while not job.finished:
        assert time.perf_counter() - t0 < limit, "run did not finish"
        time.sleep(0.05)
    assert allow_error or job.error is None, job.error


def test_paired_runs_write_an_audit_directory_and_reuse_the_baseline(tmp_path: Path) -> None:
    d = Dashboard(tmp_path / "runs")
    warm = d.runner.warm_up(d.base_scenario("city-points"))  # what `credsim dashboard` does at start
    warm.join(120)
    assert not warm.is_alive() and list((tmp_path / "runs").iterdir()) == []  # it leaves nothing behind
    scen, changes = d.build("city-points", {"points_per_infraction": 2}, 2000, 20, 5)
    job = d.runner.start(scen, changes)
    with pytest.raises(RuntimeError, match="already in progress"):
        d.runner.start(scen, changes)  # one run at a time
    _wait(job)
    out = job.out
    assert {"audit.json", "scenario.yaml", "runs"} <= {p.name for p in out.iterdir()}
    t0 = time.perf_counter()
    while not job.report_written:  # written once the page has its numbers
        assert time.perf_counter() - t0 < 60, "report.html was not written"
        time.sleep(0.05)
    assert (out / "report.html").is_file() and (out / PLOTLY_FILE).is_file()
    # the downloaded/edited scenario is the one that ran
    assert scenario_hash(load_scenario(out / "scenario.yaml")) == scenario_hash(scen)
    meta = json.loads((out / "audit.json").read_text())["meta"]
    assert meta["paired"] and meta["seeds"] == [5] and meta["dashboard_changes"] == changes
    # a second policy shares the counterfactual: it is copied from the cache, not re-run, and is the same run
    scen2, ch2 = d.build("city-points", {"sanctions": []}, 2000, 20, 5)
    job2 = d.runner.start(scen2, ch2)
    _wait(job2)
    assert not job.baseline_cached and job2.baseline_cached
    a = credsim.Run(out / "runs" / "baseline-s5").sql("SELECT sum(n_records_true), sum(hash(citizen)) FROM citizens")
    b = credsim.Run(job2.out / "runs" / "baseline-s5").sql("SELECT sum(n_records_true), sum(hash(citizen)) "
                                                           "FROM citizens")
    assert a == b
    assert d.runner.result(job2.name)["first"]["scalars"]["denied.total"] == 0  # no sanction, no denial
    names = [r["name"] for r in d.runner.list_runs()]
    assert set(names) == {job.name, job2.name}  # the cache is not listed; runs inside an audit are not either

    # the downloaded report: a zip of the page and plotly.js beside it, under 2 MB, nothing fetched from afar
    blob = d.runner.report_zip(job.name)
    assert len(blob) <= 2_000_000
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        files = {Path(n).name: z.read(n) for n in z.namelist()}
    assert set(files) == {"report.html", PLOTLY_FILE} and len(files[PLOTLY_FILE]) > 1_000_000
    page = files["report.html"].decode()
    assert f'<script src="{PLOTLY_FILE}"' in page or f'src="{PLOTLY_FILE}"' in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # served by the dashboard, the page takes plotly.js from the server's one copy
    client = d.app.server.test_client()
    served = client.get(f"/report/{job.name}").data.decode()
    assert f'src="/report-assets/{PLOTLY_FILE}"' in served
    js = client.get(f"/report-assets/{PLOTLY_FILE}")
    assert js.status_code == 200 and len(js.data) > 1_000_000


def _wait_day(job, day: int, limit: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    while job.done < day and not job.finished:
        assert time.perf_counter() - t0 < limit, "run did not get going"
        time.sleep(0.01)


def test_runs_go_in_a_process_of_their_own_that_can_be_cancelled_or_killed(tmp_path: Path) -> None:
    # the server's threads (page polls, chart drawing) share no GIL with a run: it is another process
    d = Dashboard(tmp_path / "runs")
    scen, changes = d.build("city-points", {}, 2000, 400, 5)
    job = d.runner.start(scen, changes)
    _wait_day(job, 5)
    worker = d.runner._worker
    assert worker is not None and worker.proc.pid != os.getpid() and worker.proc.is_alive()
    # Ctrl-C in the terminal stops the server; the run process never sees it (no traceback of its own)
    status = Path(f"/proc/{worker.proc.pid}/status").read_text().splitlines()
    blocked = int(next(line for line in status if line.startswith("SigBlk:")).split()[1], 16)
    assert blocked & (1 << (signal.SIGINT - 1))
    assert d.runner.cancel(job.id) is job
    _wait(job, allow_error=True)
    assert job.error == "cancelled: nothing was kept" and job.done < 2 * 400
    t0 = time.perf_counter()
    while job.out.exists():  # removed by the run process before it says so
        assert time.perf_counter() - t0 < 30
        time.sleep(0.05)
    # a run process that dies (killed, out of memory) ends its job with a message; the next run starts a new one
    job = d.runner.start(scen, changes)
    _wait_day(job, 5)
    first = d.runner._worker
    assert first is worker and first.proc.pid is not None
    os.kill(first.proc.pid, signal.SIGKILL)
    _wait(job, allow_error=True)
    assert job.error is not None and "ended unexpectedly" in job.error and not job.out.exists()
    small, ch = d.build("city-points", {}, 1000, 10, 5)
    job = d.runner.start(small, ch)
    _wait(job)
    assert d.runner._worker is not first and (job.out / "audit.json").is_file()
    d.runner.close()
    d.runner._worker.proc.join(30)
    assert not d.runner._worker.proc.is_alive()  # the process ends once its dashboard lets it go


def test_live_snapshots_come_every_few_days_and_are_the_final_series_cut_short(tmp_path: Path) -> None:
    assert (live.every(90), live.every(31), live.every(10)) == (6, 3, 1)  # about live.POINTS snapshots a run
    snaps: list[live.Snapshot] = []
    scen = load_scenario("city-points")
    run = credsim.run(scen, out=tmp_path / "run", population=1000, days=31, seed=3,
                      on_metrics=live.watcher(31, snaps.append))
    assert [s.day for s in snaps] == [*range(3, 31, 3), 31]  # every 3 days and the last day, never every day
    final = credsim.Run(run.dir).sql("SELECT metric, day, value FROM metrics WHERE dimension = 'all' "
                                     "AND (metric LIKE 'listed.%' OR metric LIKE 'grade.%') ORDER BY 1, 2")
    stored: dict[str, list[float]] = {}
    for metric, _day, value in final:
        stored.setdefault(metric, []).append(value)
    assert stored and all(snaps[-1].series[m] == v for m, v in stored.items())  # the stored series, bit for bit
    for early in snaps[:-1]:  # an earlier snapshot is the same series cut at its day
        assert early.series["day"] == list(range(early.day))
        assert all(early.series[m] == v[:early.day] for m, v in stored.items())
    drawn = {c.key: c for c in live.figures(snaps[2], {})}
    figs = {key: c.fig for key, c in drawn.items()}
    assert figs["list_sizes"] is not None and list(figs["list_sizes"].layout.xaxis.range) == [0, 30]
    assert all(len(t.x) == 9 for t in figs["list_sizes"].data)  # 9 days drawn on the run's whole axis
    # a text alternative and a data table, like every report chart: one row per day drawn, every line's value
    lists = drawn["list_sizes"]
    assert lists.head == ["day"] + [str(t.name) for t in figs["list_sizes"].data]
    assert [r[0] for r in lists.rows] == [str(d) for d in range(9)]
    for j, t in enumerate(figs["list_sizes"].data, start=1):
        assert [float(r[j].replace(",", "")) for r in lists.rows] == pytest.approx(list(t.y), rel=1e-5)
    assert "day 9 of 31" in lists.alt and lists.title in lists.alt and f"{len(t.x)} days" in lists.alt
    table = live_table(lists)
    assert len(table.children[2].children) == 9  # the page's table: one body row per day


def test_live_charts_get_a_new_snapshot_only_once_the_last_one_is_drawn(tmp_path: Path) -> None:
    # Dash drops a callback's answer when the same callback is asked again first (plotly/dash#1613); a draw
    # slower than the poll must still land, so the poll names a new snapshot only when the page has drawn the last
    d = Dashboard(tmp_path / "runs")
    scen, changes = d.build("city-points", {}, 1000, 31, 3)
    job = d.runner.start(scen, changes)
    while not job.finished:
        time.sleep(0.01)
    assert job.error is None
    job.finished = False  # as it was mid-run, with its last snapshot (day 31) taken
    first = d.on_live_mark(1, job.id, None, None)
    assert first == f"{job.id}:31"
    assert d.on_live_mark(2, job.id, first, None) is no_update  # drawing it: nothing new until it is seen
    drawn = d.on_live(first, None, job.id)
    assert drawn[0] == {"display": "block"} and drawn[-1] == first  # drawn, and marked seen
    assert d.on_live_mark(3, job.id, first, first) is no_update  # seen, and no newer snapshot
    job.finished = True
    done = d.on_live_mark(4, job.id, first, first)
    assert done == f"{job.id}:done" and d.on_live(done, None, job.id)[0] == {"display": "none"}
    assert d.on_live_mark(5, job.id, done, done) is no_update
    assert d.on_live_mark(6, "no-such-job", None, None) is no_update


@pytest.mark.parametrize("name", ["../x", "/etc", "..", "a/../../b", ".dashboard-cache", "x\\..\\y", "%2e%2e/x",
                                  "x\x00y", "", "a" * 300])
def test_run_names_from_the_page_are_checked(tmp_path: Path, name: str) -> None:
    d = Dashboard(tmp_path / "runs")
    with pytest.raises(security.PathRefused):
        d.runner.resolve(name)


def test_report_route_refuses_traversal_and_serves_reports(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    d = Dashboard(root)
    credsim.run("city-points", population=1000, days=10, seed=1, out=root / "one")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "manifest.json").write_text("{}")
    (root / "escape").symlink_to(tmp_path / "secret")
    client = d.app.server.test_client()
    ok = client.get("/report/one")
    assert ok.status_code == 200 and b"credsim audit" in ok.data
    for bad in ("/report/..%2Fsecret", "/report/../secret", "/report/%2e%2e/secret", "/report/escape",
                "/report/one%2F..%2F..%2Fsecret", "/report/.dashboard-cache"):
        r = client.get(bad)
        assert r.status_code in (403, 404), bad
        assert b"Traceback" not in r.data


def test_cli_refuses_remote_bind_and_bad_scenarios(tmp_path: Path) -> None:
    from credsim.cli import app

    r = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0", "--runs-root", str(tmp_path)])
    assert r.exit_code == 2 and "127.0.0.1" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\npopulation: {size: -1}\n")
    r = CliRunner().invoke(app, ["dashboard", str(bad), "--runs-root", str(tmp_path)])
    assert r.exit_code == 2 and "population.size" in r.output


def test_runs_are_read_without_their_own_catalog(tmp_path: Path) -> None:
    """A stranger's results.duckdb could define views over any local file; the dashboard never uses it."""
    import duckdb

    root = tmp_path / "runs"
    credsim.run("city-points", population=1000, days=10, seed=2, out=root / "r")
    honest = Dashboard(root).runner.result("r")["first"]["scalars"]
    secret = tmp_path / "secret.csv"
    secret.write_text("citizen,n_denied\n1,999999\n")
    (root / "r" / "results.duckdb").unlink()
    con = duckdb.connect(str(root / "r" / "results.duckdb"))
    con.execute(f"CREATE VIEW citizens AS SELECT * FROM read_csv('{secret}')")
    con.execute(f"CREATE VIEW metrics AS SELECT * FROM read_csv('{secret}')")
    con.close()
    again = Dashboard(root).runner.result("r")["first"]["scalars"]
    assert again == honest
    # an audit.json whose pairs point outside the runs root is refused, not followed
    (root / "a").mkdir()
    (root / "a" / "audit.json").write_text(json.dumps({"meta": {"pairs": [["../../elsewhere", None]]}}))
    with pytest.raises(security.PathRefused):
        Dashboard(root).runner.run_dirs("a")
