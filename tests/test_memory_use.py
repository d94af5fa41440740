"""Memory: the pre-run estimate against a measured peak, and the event log's cost per row.

Why these bounds: the estimate is meant to be on the high side (it refuses runs that would not
fit), so a measured peak above it is a bug; but an estimate far above the peak refuses runs
that would fit, so it must also stay within a factor (2 at this size, where the interpreter's
fixed ~400 MiB allowance dominates). The event log keeps grade and list rows in narrow integer
columns with broadcast constants: its kept bytes per row must stay within what the estimate
charges (``EVENT_ROW_BYTES``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import credsim
from credsim import engine, threads
from credsim.engine import simulate
from credsim.memory import EVENT_ROW_BYTES, LIVE_ITEM_BYTES, estimate_memory
from credsim.plan import compile_plan
from credsim.state import COUNTERS, C, bytes_per_citizen, counter_dtype, day_dtype, feat_dtype, list_count_dtype

ROOT = Path(__file__).resolve().parents[1]


def test_estimate_is_above_the_measured_peak_and_within_twice_it() -> None:
    """commercial-score (monthly re-grading: the biggest event log) written to disk in a fresh process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.scenarios", "commercial-score", "20000", "60"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    peak, est = res["peak_rss_bytes"], res["estimate_bytes"]
    assert peak <= est <= 2 * peak, f"peak {peak / 2**20:.0f} MiB, estimate {est / 2**20:.0f} MiB"


@pytest.mark.usefixtures("one_thread")
def test_event_log_rows_are_compact() -> None:
    res = simulate(credsim.load_scenario("commercial-score", {"population.size": 3000, "run.days": 60}))
    assert res.events is not None
    rows = res.events.rows()
    kept = sum(a.nbytes for part in res.events.parts for a in part.values() if a.strides != (0,))
    assert rows > 500, "the scenario must re-grade enough citizens to measure"
    assert kept / rows <= EVENT_ROW_BYTES, f"{kept / rows:.1f} bytes a row"
    assert res.events.to_arrow().num_rows == rows
    assert np.isin(res.events.to_arrow().column("kind").to_pylist(), ["grade", "list", "denial"]).all()


@pytest.mark.usefixtures("one_thread")
def test_live_records_are_estimated_as_queued_within_the_run() -> None:
    """An expiry item falling due after the run's last day is never queued, so the estimate of live
    records counts at most ``min(life, days - life)`` days of filings per lifetime: none for a run shorter
    than every lifetime, and the busiest day of a real run stays within it."""
    for days in (60, 200):  # points live 90 days; every list window and feature is longer than 60 days
        scen = credsim.load_scenario("integrated", {"population.size": 3_000, "run.days": days,
                                                    "scoring.points.expiry_days": 90})
        est = estimate_memory(scen).parts["live records"]
        loop, _ = engine.prepare(scen)
        busiest = 0
        for day in range(days):
            loop.step(day)
            busiest = max(busiest, loop.st.expiry.size() + loop.st.list_expiry.size())
        if days == 60:
            assert est == 0 and busiest == 0, (est, busiest)
        else:
            assert 0 < busiest * LIVE_ITEM_BYTES <= est, (busiest, est)


def _written_pages(a: np.ndarray) -> np.ndarray:
    """Whether each page of the contiguous ``a`` holds memory of this process's own: present and exclusively mapped
    in ``/proc/self/pagemap``. A page never written is absent or the shared zero page (present, not exclusive), and
    the resident set counts neither."""
    assert a.flags.c_contiguous
    page = os.sysconf("SC_PAGE_SIZE")
    first, last = a.ctypes.data // page, (a.ctypes.data + a.nbytes - 1) // page
    with open("/proc/self/pagemap", "rb") as fh:
        fh.seek(first * 8)
        ent = np.frombuffer(fh.read((last - first + 1) * 8), np.uint64)
    return ((ent >> np.uint64(63)) & (ent >> np.uint64(56)) & np.uint64(1)).astype(bool)


def unwritten_probe() -> dict[str, Any]:
    """Run commercial-score at 4,000,000 x 35 in this process, read its outputs, and report which pages of the columns
    it should never write are written (run by :func:`test_columns_a_run_never_writes_take_no_memory` in a fresh
    process: see there)."""
    threads.configure(1)
    n = 4_000_000  # a pending row (2 B a citizen) of 7.6 MiB: pages more than 2 MiB from both ends
    res = simulate(credsim.load_scenario("commercial-score", {"population.size": n, "run.days": 35}))
    st = res.state
    grade_list = res.plan.lists.index("featured_profiles")
    assert res.plan.list_by_grade[grade_list] and not res.plan.list_by_grade[1 - grade_list]
    assert res.events is not None and res.events.to_arrow().num_rows > 0
    assert res.citizens_table().num_rows == n  # the outputs read every column
    edge = (2 << 20) // os.sysconf("SC_PAGE_SIZE")
    out: dict[str, Any] = {name: int(_written_pages(a)[1:].sum()) for name, a in
                           (("score", st.score), ("graph.cut", st.graph.cut))}
    for m in range(2):
        for li, what in ((grade_list, "grade list"), (1 - grade_list, "court list")):
            inner = _written_pages(st.pending[m, li])[edge:-edge]
            out[f"pending {what} view {m}"] = [int(inner.sum()), int(inner.shape[0])]
    out["mscore unwritten"] = int((~_written_pages(st.mscore)).sum())
    out["cured"] = int((st.cured_seq != 0).sum())
    out["cured_seq written"] = int(_written_pages(st.cured_seq)[1:].sum())
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/pagemap")
def test_columns_a_run_never_writes_take_no_memory() -> None:
    """commercial-score has no points, no tie a response cuts, and a list entered by grade (no pending entries):
    its points scores, the graph's cut flags and that list's pending days are never written, so they stay zero
    pages (80 MB each at 10^7 citizens when they were filled with a start value) -- read by the run and its
    outputs, not resident; nor are the cure numbers of citizens never cured. The model scores it does write are
    resident, which shows the probe sees pages.

    The scores and the cut flags are arrays of their own: at most the allocator's first page is written. A pending
    row shares its ends with written rows, and NumPy asks for transparent huge pages (2 MiB) for large arrays, so
    only the row's pages more than 2 MiB from either end are required to be unwritten (4,000,000 citizens: a row
    of 7.6 MiB). In a fresh process, as a run is: after other work glibc serves a large request from heap it has
    freed (the mmap threshold only decides how the heap grows), and clears it, so a long test worker would show
    every page written."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    code = "import json; from tests.test_memory_use import unwritten_probe; print(json.dumps(unwritten_probe()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["score"] == 0 and got["graph.cut"] == 0, got
    for m in range(2):
        written, pages = got[f"pending grade list view {m}"]
        assert pages > 900 and written == 0, got
        assert got[f"pending court list view {m}"][0] > 0, got  # the court list's pending entries are written
    assert got["mscore unwritten"] == 0, got
    # a citizen never cured keeps cured_seq 0, in pages of its own size (no huge pages): a cure backs one page
    assert got["cured_seq written"] <= got["cured"], got


def test_feature_counts_take_int16_only_where_no_count_can_outgrow_it() -> None:
    """A citizen files at most one true record of a behaviour a day in each view, and one false record per sensor
    observing it: ``late_payments`` (two behaviours, one sensor each) holds at most 4 x 730 live records in a year,
    and 4 x 36,500 when its records live a century and the run lasts one -- past int16."""
    plan = compile_plan(credsim.load_scenario("commercial-score"))
    assert feat_dtype(plan, 365) is np.int16 and feat_dtype(plan, 36_500) is np.int16  # expiry 1,825 days at most
    long = compile_plan(credsim.load_scenario("commercial-score", {
        "scoring.model.features.late_payments.expiry_days": 36_500}))
    assert feat_dtype(long, 8_191) is np.int16 and feat_dtype(long, 8_192) is np.int32  # 4 x 8,192 > 32,767
    assert bytes_per_citizen(long, 8_192) - bytes_per_citizen(long, 8_191) == 2 * len(long.features) * 2


def test_list_counts_take_int16_only_where_no_count_can_outgrow_it() -> None:
    """The same bound for a list's entry count: the court list counts ``court.judgment_default`` (one sensor, the
    courts) within its window, so 2 x 730 at most; with a window of a century, 2 x 16,384 passes int16."""
    plan = compile_plan(credsim.load_scenario("commercial-score"))
    assert list_count_dtype(plan, 36_500) is np.int16
    long = compile_plan(credsim.load_scenario("commercial-score", {"lists.court_defaulters.entry.window_days": 36_500}))
    assert list_count_dtype(long, 16_383) is np.int16 and list_count_dtype(long, 16_384) is np.int32
    assert bytes_per_citizen(long, 16_384) - bytes_per_citizen(long, 16_383) == 2 * len(long.lists) * 2


def test_day_columns_take_uint16_while_every_day_they_hold_fits() -> None:
    """The largest day a run stores is a pending entry's due day plus 1: the last day plus the longest grace plus 1.
    The schema's longest run (36,500 days) with its longest grace (3,650) fits uint16; a run the API asks to be
    longer than 65,535 less the grace keeps int32, and a step past a loop's last day is refused rather than stored
    wrapped."""
    plan = compile_plan(credsim.load_scenario("integrated"))
    grace = int(plan.entry_grace.max())
    assert grace == 30 and day_dtype(plan, 36_500) is np.uint16
    assert day_dtype(plan, 65_535 - grace) is np.uint16 and day_dtype(plan, 65_536 - grace) is np.int32
    longest = compile_plan(credsim.load_scenario("integrated", {"lists.court_defaulters.entry.grace_days": 3_650}))
    assert day_dtype(longest, 36_500) is np.uint16
    columns = 2 * 2 * len(plan.lists) + len(plan.responses)  # since and pending per view and list; resp_day
    assert bytes_per_citizen(plan, 65_536 - grace) - bytes_per_citizen(plan, 65_535 - grace) == 2 * columns
    loop, _ = engine.prepare(credsim.load_scenario("integrated", {"population.size": 500, "run.days": 3}))
    assert loop.st.resp_day.dtype == np.uint16 and not loop.st.resp_day.any()  # 0: never (the day plus 1 else)
    with pytest.raises(ValueError, match="outside this run's days 0-2"):
        loop.step(3)


def test_counters_take_int16_only_while_no_count_can_outgrow_it() -> None:
    """``integrated`` files at most 34 true records, 27 sensor observations' false records a citizen a day (and
    no more events or attempts than its 34 behaviours): 61 x 366 fits int16 in its year; past 536 days the
    counters are int32, 2 B a counter more a citizen."""
    plan = compile_plan(credsim.load_scenario("integrated"))
    assert plan.n_beh + int(plan.sen_obs.sum()) == 61
    assert counter_dtype(plan, 365) is np.int16
    assert counter_dtype(plan, 536) is np.int16 and counter_dtype(plan, 537) is np.int32  # 61 x 538 > 32,767
    assert bytes_per_citizen(plan, 537) - bytes_per_citizen(plan, 536) == 2 * len(COUNTERS)


@pytest.mark.usefixtures("one_thread")
def test_no_counter_passes_its_bound_when_every_behaviour_is_done_every_day() -> None:
    """The bound of :func:`credsim.state.counter_dtype` checked where it is tightest: every behaviour of
    ``integrated`` done by everyone every day, every sensor reporting falsely half the time. Each counter stays
    within its own part of the bound, and the written columns are int32 whatever the state holds."""
    days = 20
    over = {f'behaviours["{b}"].rate': 1.0 for b in credsim.load_scenario("integrated").behaviours}
    scen = credsim.load_scenario("integrated", {"population.size": 400, "run.days": days, **over})
    res = engine.simulate(scen)
    plan, ctr = res.plan, res.state.counters.astype(np.int64)
    assert res.state.counters.dtype == np.int16
    records = plan.n_beh + int(plan.sen_obs.sum()) + len(plan.scen.investigations)
    assert plan.n_beh * days // 2 < ctr[C["events"]].max() <= plan.n_beh * days  # one draw a behaviour a day
    assert ctr[C["attempts"]].max() <= plan.n_beh * days
    assert (ctr[C["records_true"]] + ctr[C["records_false"]]).max() <= records * days
    assert ctr[C["times_listed"]].max() <= 2 * len(plan.lists) * (days + 1)
    assert ctr[C["days_listed"]].max() <= len(plan.lists) * days
    assert ctr.max() <= max(records, 2 * len(plan.lists)) * (days + 1)
    table = res.citizens_table()
    assert all(table.schema.field(f"n_{name}").type == pa.int32() for name in COUNTERS)


@pytest.mark.usefixtures("one_thread")
def test_a_counter_that_wrapped_is_not_written() -> None:
    """Were the bound wrong, a count at int16's top would wrap to -32,768 on its next increment and be written
    as a count; the citizens' table refuses it and names the counter."""
    loop, _ = engine.prepare(credsim.load_scenario("court-defaulters", {"population.size": 2_000, "run.days": 5}))
    assert loop.st.counters.dtype == np.int16
    loop.st.counters[C["events"]] = np.iinfo(np.int16).max
    engine.run_days(loop)
    res = engine.finish(loop, 0.0)
    with pytest.raises(OverflowError, match="n_events"):
        res.citizens_table()


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("column", "row"), [("feat_count", "on_time_payments"), ("list_count", "court_defaulters")])
def test_filing_refuses_to_wrap_a_count(column: str, row: str) -> None:
    """Were the bound wrong, a count at int16's top would wrap to -32,768 and silently turn a penalty into a
    bonus (or keep a citizen off a list); filing raises instead."""
    loop, _ = engine.prepare(credsim.load_scenario("commercial-score", {
        "population.size": 2_000, 'behaviours["court.judgment_default"].rate': 0.01}))
    counts = getattr(loop.st, column)
    assert counts.dtype == np.int16
    names = loop.plan.features if column == "feat_count" else loop.plan.lists
    counts[:, names.index(row)] = np.iinfo(np.int16).max
    with pytest.raises(OverflowError, match=column):
        engine.run_days(loop)


def test_the_graph_build_and_the_run_are_phases_not_a_sum() -> None:
    """A single process builds its contact graph before its state exists (``engine.complete``), so the
    estimate is the larger phase: for ``integrated`` at 10^7 the run (4.85 GB; 3.62 GB measured,
    ``benchmarks/results/memory.md``), not the run plus the build's temporaries (5.33 GB)."""
    est = estimate_memory(credsim.load_scenario("integrated", {"population.size": 10_000_000}))
    build = est.parts["graph build (temporary)"]
    assert build > 0 and est.total == sum(est.parts.values()) - build
    assert "the larger phase, not the sum" in est.describe()
    plain = estimate_memory(credsim.load_scenario("court-defaulters", {"population.size": 10_000_000}))
    assert plain.parts["graph build (temporary)"] == 0 and plain.total == sum(plain.parts.values())
    assert "larger phase" not in plain.describe()


def test_the_traced_sample_shares_its_words() -> None:
    """The traced rows' text columns refer to a few shared strings, not a new string an entry: a long run adds a
    few hundred rows a day (ten years of ``integrated``: 330 MB of copies of the same words)."""
    res = simulate(credsim.load_scenario("integrated", {"population.size": 2_000, "run.days": 30}))
    for col in ("stage", "item", "view", "source"):
        values = [x for chunk in res.tracer.rows[col] for x in chunk.tolist()]
        assert len(values) > 1_000
        assert len({id(x) for x in values}) <= len(set(values)) + 64, col  # a few copies at most, not one a row
