"""Due process, from traces: notice before objection, queues within capacity and in order, upheld
objections retract the record (and what it caused) exactly, success rates within binomial bounds.

One small run (5,000 citizens x 60 days of the tiny scenario with false court records and an
appeal body) is played day by day; every day's hand-off (``Day.redress``, lists, attempts) and the
waiting queue after the stage are kept, and each test reads what it needs from them.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pytest
import yaml

import credsim
from credsim import engine, threads
from credsim import names as nm
from credsim.day import Day
from credsim.memory import REDRESS_BYTES_PER_LIST, estimate_memory
from credsim.resumable import RunStopped
from credsim.stages import redress as redress_mod
from credsim.stages.redress import CASE_COLUMNS, Redress
from credsim.state import F_RETRACTED_OFFICIAL, C
from tests.conftest import tiny

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]

N, DAYS, CAP = 5000, 60, 3
SUCCESS = {"false": 0.8, "true": 0.1}
MIGRANT = 0.5  # success multiplier of migrants (no lawyer)
BODY = {"lists": ["defaulters"], "capacity_per_day": CAP, "file_probability": 0.3, "file_within_days": 10,
        "decide_within_days": 15, "success_false": SUCCESS["false"], "success_true": SUCCESS["true"],
        "success_by": {"hukou": {"migrant": MIGRANT}}, "correction_days": 3, "cost": 10}
RED = {"notice": {"at": "listing", "delay_days": 3}, "appeals": {"court": BODY}}
FALSE_RATE = 0.002


def scenario(**changes: object) -> credsim.Scenario:
    base = {"redress": copy.deepcopy(RED), "sensors__courts__false_rate": FALSE_RATE, "run__days": DAYS}
    return credsim.load_scenario(tiny(**{**base, **changes}))


@dataclass
class Played:
    loop: engine.Loop
    stage: Redress
    days: list[Day]
    waiting: list[np.ndarray]  # the body's queue (case ids) after the stage ran, each day


def play(scen: credsim.Scenario) -> Played:
    loop, _ = engine.prepare(scen, population=N, days=DAYS)
    stage = next(s for s in loop.stages if isinstance(s, Redress))
    days, waiting = [], []
    for day in range(DAYS):
        days.append(loop.step(day))
        waiting.append(stage.book.waiting[0].copy())
    return Played(loop, stage, days, waiting)


@pytest.fixture(scope="module")
def fifo() -> Played:
    return play(scenario())


def cases(p: Played) -> dict[str, np.ndarray]:
    return {c: a.copy() for c, a in zip(CASE_COLUMNS, p.stage.book.cases, strict=True)}


def test_no_objection_before_notice(fifo: Played) -> None:
    """Every case was filed on or after the day its citizen was served (a notice row of that day)."""
    c = cases(fifo)
    assert c["cit"].shape[0] > 100, "the run should produce objections"
    served: dict[int, list[int]] = {}
    for d in fifo.days:
        assert d.redress is not None
        for cit in d.redress.notice_cit.tolist():
            served.setdefault(cit, []).append(d.day)
    for cit, notice, filed in zip(c["cit"].tolist(), c["notice"].tolist(), c["filed"].tolist(), strict=True):
        assert notice >= 0 and notice <= filed
        assert notice in served.get(cit, []), f"citizen {cit} filed on day {filed} without a notice on day {notice}"
        assert filed - notice <= BODY["file_within_days"]


def test_queue_within_capacity_and_first_in_first_out(fifo: Played) -> None:
    """At most CAP decisions a day; a decided case was filed no later than any case still waiting."""
    c = cases(fifo)
    busy = 0
    for d, left in zip(fifo.days, fifo.waiting, strict=True):
        assert d.redress is not None
        dec = d.redress.decided
        assert dec.shape[0] <= CAP
        busy += dec.shape[0] == CAP
        if dec.shape[0] and left.shape[0]:
            assert dec.max() < left.min(), f"day {d.day}: a later case was decided before an earlier one"
            assert c["filed"][dec].max() <= c["filed"][left].min()
        assert np.all(c["decided"][dec] == d.day)
    assert busy > 10, "the queue should be the bottleneck on many days (else the test proves little)"


def test_last_in_first_out_serves_the_newest() -> None:
    p = play(scenario(redress__appeals__court__order="lifo"))
    for d, left in zip(p.days, p.waiting, strict=True):
        assert d.redress is not None
        dec = d.redress.decided
        assert dec.shape[0] <= CAP
        if dec.shape[0] and left.shape[0]:
            assert dec.min() > left.max()


def test_enforced_deadline_decides_every_case_in_time() -> None:
    """Beyond the capacity only cases at their deadline are decided, and no case waits longer."""
    p = play(scenario(redress__appeals__court__deadline_enforced=True, redress__appeals__court__decide_within_days=5))
    c = cases(p)
    decided = c["decided"] >= 0
    assert np.all(c["decided"][decided] - c["filed"][decided] <= 5)
    for d, left in zip(p.days, p.waiting, strict=True):
        assert np.all(d.day - c["filed"][left] < 5)
        assert d.redress is not None
        dec = d.redress.decided
        extra = dec[CAP:]
        assert np.all(d.day - c["filed"][extra] >= 5)


def test_upheld_objection_retracts_the_record_and_its_listing(fifo: Played) -> None:
    """From the correction day the record is retracted in the ledger, the citizen is off the list
    (one record suffices to list here) unless listed anew, and is never denied by the list's sanction
    again without a new listing; what happened before stays (his listed days and denials counted)."""
    c = cases(fifo)
    st = fifo.loop.st
    won = np.flatnonzero(c["upheld"] == 1)
    assert won.shape[0] > 30
    due = c["decided"][won] + BODY["correction_days"]
    won = won[due < DAYS]
    entries: dict[int, list[int]] = {}
    denials: dict[int, list[int]] = {}
    exits: dict[int, list[tuple[int, int]]] = {}
    for d in fifo.days:
        lc = d.lists
        for cit in lc.cit[(lc.mode == 0) & (lc.direction == 1)].tolist():
            entries.setdefault(cit, []).append(d.day)
        a = d.attempts
        for cit in a.cit[a.denied[:, 0] == 1].tolist():
            denials.setdefault(cit, []).append(d.day)
        assert d.redress is not None
        r = d.redress
        for cit, route in zip(r.exit_cit.tolist(), r.exit_route.tolist(), strict=True):
            exits.setdefault(cit, []).append((d.day, route))
    appeal_exits = 0
    for k in won.tolist():
        cit, rid, when = int(c["cit"][k]), int(c["rid"][k]), int(c["decided"][k]) + BODY["correction_days"]
        fday, row = rid >> 32, rid & 0xFFFFFFFF
        if fday in st.ledger.buckets:
            assert st.ledger.buckets[fday][2][row] & F_RETRACTED_OFFICIAL
        anew = [e for e in entries.get(cit, []) if e >= when]
        later = [x for x in denials.get(cit, []) if x >= when]
        if not anew:
            assert not later, f"citizen {cit} denied on {later} after the record was retracted on day {when}"
        else:
            assert all(x >= anew[0] for x in later)
        gone = [day for day, route in exits.get(cit, []) if day == when]
        if gone:
            assert (when, nm.EXIT_ROUTES.index("appeal")) in exits[cit]
            appeal_exits += 1
    assert appeal_exits > 10
    # the past stays: days listed and denials suffered before the correction are still counted
    stays = fifo.stage.tables(st)[1].to_pydict()
    closed: dict[int, int] = {}
    for cit, since, ex in zip(stays["cit"], stays["since"], stays["exit"], strict=True):
        if ex >= 0:
            closed[cit] = closed.get(cit, 0) + ex - since
    for k in won.tolist():
        cit = int(c["cit"][k])
        assert st.counters[C["days_listed"], cit] == closed.get(cit, 0)
        assert st.counters[C["denied"], cit] == len(denials.get(cit, []))


def _bound(k: int, n: int, p: float) -> None:
    """Binomial: |k/n - p| within 4 standard errors (a false alarm about 6 in 100,000 per check)."""
    assert n > 0
    se = math.sqrt(p * (1 - p) / n)
    assert abs(k / n - p) <= 4 * se + 1e-12, f"{k}/{n} = {k / n:.3f}, expected {p} +- {4 * se:.3f}"


def test_success_rates_within_binomial_bounds() -> None:
    """Upheld share by whether the record was false and by group, against the declared probabilities."""
    p = play(scenario(population__size=N, redress__appeals__court__capacity_per_day=1000))
    c = cases(p)
    st = p.loop.st
    hukou = p.loop.plan.dims.index("hukou")
    migrant = st.groups[hukou][c["cit"]] == p.loop.plan.dim_values[hukou].index("migrant")
    done = c["decided"] >= 0
    for false, base in ((1, SUCCESS["false"]), (0, SUCCESS["true"])):
        for mig, mult in ((False, 1.0), (True, MIGRANT)):
            sel = done & (c["false_record"] == false) & (migrant == mig)
            _bound(int((c["upheld"][sel] == 1).sum()), int(sel.sum()), base * mult)


def test_a_run_with_redress_is_deterministic_and_writes_its_tables(tmp_path: Path) -> None:
    scen = scenario()
    a = credsim.run(scen, out=tmp_path / "a", population=2000, threads=1)
    b = credsim.run(scen, out=tmp_path / "b", population=2000, threads=1)
    for f in ("cases.parquet", "stays.parquet", "metrics.parquet"):
        assert (a.dir / f).read_bytes() == (b.dir / f).read_bytes(), f
    con = credsim.connect(a.dir)
    filed = con.execute("SELECT count(*) FROM cases").fetchone()
    counted = con.execute("SELECT sum(value) FROM metrics WHERE metric = ? AND dimension = 'all'",
                          [nm.APPEALS_FILED("court")]).fetchone()
    assert filed is not None and counted is not None and filed[0] == counted[0] > 0
    exits = con.execute("SELECT sum(value) FROM metrics WHERE metric = ? AND dimension = 'all'",
                        [nm.EXITS("defaulters")]).fetchone()
    routed = con.execute("SELECT sum(value) FROM metrics WHERE metric LIKE ? AND dimension = 'all'",
                         [nm.EXITS_BY.like()]).fetchone()
    assert exits is not None and routed is not None and exits[0] == routed[0]


def test_prior_notice_lets_an_objection_stop_the_entry() -> None:
    """Notice at filing, during a 10-day grace: some upheld objections come before the entry, which
    then never happens."""
    p = play(scenario(redress__notice={"at": "filing", "delay_days": 0},
                      lists__defaulters__entry__grace_days=10, redress__appeals__court__capacity_per_day=50))
    c = cases(p)
    entered: set[int] = set()
    for d in p.days:
        lc = d.lists
        entered |= set(lc.cit[(lc.mode == 0) & (lc.direction == 1)].tolist())
    early = (c["upheld"] == 1) & (c["decided"] + BODY["correction_days"] < (c["rid"] >> 32) + 10)
    stopped = [cit for cit in c["cit"][early].tolist() if cit not in entered]
    assert len(stopped) > 5


BAD = [
    ({"redress__appeals__court__lists": ["debtors"]}, "redress.appeals.court.lists[0]", "a list declared"),
    ({"redress__appeals__court__success_by": {"hukou": {"alien": 0.5}}},
     "redress.appeals.court.success_by.hukou.alien", "a value of group 'hukou'"),
    ({"redress__appeals__court__deadline_enforced": True, "redress__appeals__court__decide_within_days": None},
     "redress.appeals.court", "decide_within_days"),
    ({"redress__notice__at": "rumour"}, "redress.notice.at", "'listing'"),
    ({"redress__appeals__court__correction_days": 0}, "redress.appeals.court.correction_days", "greater than"),
]


@pytest.mark.parametrize("change,path,words", BAD, ids=[b[1] for b in BAD])
def test_bad_redress_keys_name_file_path_and_expectation(tmp_path: Path, change: dict, path: str,  # type: ignore[type-arg]
                                                        words: str) -> None:
    f = tmp_path / "scen.yaml"
    f.write_text(yaml.safe_dump(tiny(redress=copy.deepcopy(RED), **change)))
    with pytest.raises(credsim.ScenarioError) as ei:
        credsim.load_scenario(f)
    err = ei.value
    assert str(f) in str(err) and path in err.paths, err.paths
    line = [ln for ln in str(err).splitlines() if f"'{path}'" in ln]
    assert line and words in line[0], str(err)


def test_sharded_run_with_appeals_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be split into shards"):
        engine.prepare(scenario(), population=4096, days=5, cuts=[0, 2048, 4096], index=0)


def test_stopped_and_resumed_run_with_appeals_is_byte_identical(tmp_path: Path) -> None:
    """The redress stage's queues and case table are checkpointed: a run stopped on day 23 (cases
    waiting, corrections due) and resumed gives the same files as one run straight through."""
    scen = scenario()
    ref = credsim.run(scen, out=tmp_path / "ref", population=2000, threads=1)
    with pytest.raises(RunStopped):
        credsim.run(scen, out=tmp_path / "cut", population=2000, threads=1, max_days=23)
    resumed = credsim.api.resume(tmp_path / "cut")
    for f in ("cases.parquet", "stays.parquet", "metrics.parquet", "citizens.parquet", "events.parquet"):
        assert (ref.dir / f).read_bytes() == (resumed.dir / f).read_bytes(), f


def test_credit_repair_ends_stays_only_after_the_waiting_days_at_the_declared_rate() -> None:
    """Repair exits come only from stays at least ``after_days`` long (ended the day after the draw), and
    their number matches the eligible listed-days times the daily probability (binomial bound)."""
    after, prob = 10, 0.05
    p = play(scenario(redress__repair={"lists": ["defaulters"], "after_days": after, "daily_probability": prob},
                      **{"behaviours__court.comply__rate": 0.0}))
    repair = nm.EXIT_ROUTES.index("repair")
    exits, eligible = 0, 0
    for d in p.days:
        assert d.redress is not None
        r = d.redress
        lc = d.lists
        off = (lc.mode == 0) & (lc.direction == -1)
        since = dict(zip(lc.cit[off].tolist(), lc.since[off].tolist(), strict=True))
        for cit in r.exit_cit[r.exit_route == repair].tolist():
            assert d.day - since[cit] >= after + 1, f"citizen {cit} restored after {d.day - since[cit]} days"
            exits += 1
    # eligible citizen-days: official stays at least `after` days long on days 0..DAYS-2, from the stays table
    stays = p.stage.tables(p.loop.st)[1].to_pydict()
    for s, e in zip(stays["since"], stays["exit"], strict=True):
        end = DAYS - 1 if e < 0 else e - 1  # the draw happens the day before the exit
        eligible += max(0, min(end, DAYS - 2) - (s + after) + 1)
    assert exits > 20
    _bound(exits, eligible, prob)


def test_fractional_capacity_decides_one_case_every_1_over_c_days() -> None:
    """7 cases a day per 100,000 citizens at 5,000 citizens is 0.35 a day: a decision on the days when
    floor((d+1)c) steps up (days 2, 5, 8, 11, 14, 17, 19, ...), provided a case is waiting."""
    p = play(scenario(redress__appeals__court__capacity_per_day=7.0, redress__appeals__court__per_100k=True))
    c = 7.0 * N / 1e5
    for d, before in zip(p.days, [np.zeros(0, np.int64), *p.waiting[:-1]], strict=True):
        assert d.redress is not None
        quota = math.floor((d.day + 1) * c) - math.floor(d.day * c)
        waiting = before.shape[0] + d.redress.filed_cit.shape[0]
        assert d.redress.decided.shape[0] == min(quota, waiting), f"day {d.day}"
    assert sum(d.redress.decided.shape[0] for d in p.days if d.redress is not None) == math.floor(DAYS * c)


def test_filing_probability_by_record_truth() -> None:
    """Only wrongly listed citizens object (probability 1 for a false record, 0 for a true one): every case
    contests a false record and is filed on the first day both are there: the notice and the false record
    (a citizen notified of a true record's listing objects the day a false one is filed on top)."""
    p = play(scenario(redress__appeals__court__file_probability=0.0,
                      redress__appeals__court__file_probability_false=1.0))
    c = cases(p)
    assert c["cit"].shape[0] > 20
    assert np.all(c["false_record"] == 1) and np.all(c["filed"] == np.maximum(c["notice"], c["rid"] >> 32))


def test_memory_estimate_counts_the_redress_book() -> None:
    from_file = scenario(population__size=10_000)
    est = estimate_memory(from_file)
    assert est.parts["redress book"] == 10_000 * 1 * REDRESS_BYTES_PER_LIST
    assert "redress book" not in estimate_memory(credsim.load_scenario(tiny())).parts


def test_threads_do_not_change_the_redress_tables(tmp_path: Path) -> None:
    scen = scenario()
    a = credsim.run(scen, out=tmp_path / "one", population=3000, threads=1)
    b = credsim.run(scen, out=tmp_path / "two", population=3000, threads=2)
    for f in ("cases.parquet", "stays.parquet", "metrics.parquet"):
        assert (a.dir / f).read_bytes() == (b.dir / f).read_bytes(), f


def test_repair_schedule_scales_the_probability_from_each_era_on_with_the_same_draws() -> None:
    """Eras of repair use the same random number per citizen and day (common random numbers):
    with a x1 era up to day 30 and a x0 era after it, the repairs drawn up to day 30 are exactly
    those of the run without a schedule, and none is drawn afterwards (exits a day after the draw)."""
    rep = {"lists": ["defaulters"], "after_days": 5, "daily_probability": 0.05}
    no_comply = {"behaviours__court.comply__rate": 0.0}
    repair = nm.EXIT_ROUTES.index("repair")

    def repaired(p: Played) -> dict[int, list[int]]:
        out = {}
        for d in p.days:
            assert d.redress is not None
            r = d.redress
            out[d.day] = sorted(r.exit_cit[r.exit_route == repair].tolist())
        return out

    plain = repaired(play(scenario(redress__repair=rep, **no_comply)))
    eras = repaired(play(scenario(redress__repair={**rep, "schedule": [{"from_day": 0, "multiplier": 1.0},
                                                                       {"from_day": 30, "multiplier": 0.0}]},
                                  **no_comply)))
    assert sum(len(v) for d, v in plain.items() if d <= 30) > 5
    assert {d: v for d, v in eras.items() if d <= 30} == {d: v for d, v in plain.items() if d <= 30}
    assert all(not v for d, v in eras.items() if d > 30)
    assert any(v for d, v in plain.items() if d > 30)


def test_the_daily_scans_find_exactly_whom_the_rules_name_on_one_thread_and_two() -> None:
    """Who may object today and whose stay may be repaired: the kernels skip a block of 65,536 citizens in
    which nobody is notified (or listed) after one count, and must still return every citizen the rules
    name, in id order, with blocks empty and not, on one thread and on two."""
    rng = np.random.default_rng(16)
    n = 5 * redress_mod._SCAN + 123
    day, window, within, after = 50, 30, 10, 7
    nd = np.where(rng.random(n) < 0.002, rng.integers(30, 51, n), -1).astype(np.int32)
    listed = (rng.random(n) < 0.002).astype(np.uint8)
    for b in (1, 3):  # blocks with nobody notified or listed
        nd[b * redress_mod._SCAN:(b + 1) * redress_mod._SCAN] = -1
        listed[b * redress_mod._SCAN:(b + 1) * redress_mod._SCAN] = 0
    rid_day = rng.integers(10, 51, n).astype(np.int64)
    last_rid = np.where(rng.random(n) < 0.9, (rid_day << 32) + rng.integers(0, 1000, n), -1)
    contested = np.where(rng.random(n) < 0.2, last_rid, -1)
    open_case = (rng.random(n) < 0.1).astype(np.uint8)
    pending = np.where(rng.random(n) < 0.3, day + 3, 0).astype(np.uint16)
    since = rng.integers(0, 51, n).astype(np.uint16)
    may_object = np.flatnonzero((nd >= 0) & (open_case == 0) & (last_rid >= 0) & (last_rid != contested)
                                & ((listed == 1) | (pending != 0)) & (day < (last_rid >> 32) + window)
                                & (day - nd <= within))
    may_repair = np.flatnonzero((listed == 1) & (day - since.astype(np.int64) >= after))
    assert may_object.shape[0] > 10 and may_repair.shape[0] > 10
    before = numba.get_num_threads()
    try:
        for k in (1, 2):
            threads.configure(k)
            for scan in (redress_mod._file_scan_serial, redress_mod._file_scan_parallel):
                got = scan(n, nd, open_case, last_rid, contested, listed, pending, day, window, within)
                assert np.array_equal(got, may_object), (k, scan)
            for scan in (redress_mod._repair_scan_serial, redress_mod._repair_scan_parallel):
                assert np.array_equal(scan(n, listed, since, day, after), may_repair), (k, scan)
    finally:
        threads.configure(before)
