"""The fast tier: each stage of the day on its own, on hand-made inputs (``pytest -m fast``).

A stage is built by the engine for a tiny population, handed a :class:`~credsim.day.Day` whose
earlier parts are written by the test, and judged by the parts and State columns it changes.
A last test runs whole days and checks that every stage changes only what it declares
(``reads``/``writes``, as ``describe_loop()`` prints them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import credsim
from credsim import engine
from credsim.day import Day, Events, ListChanges, Stage
from credsim.engine import Loop
from credsim.exchange import Exchange, deliver
from credsim.graph import Graph, is_cut, no_cuts, set_cut
from credsim.stages import measure, score
from credsim.state import C, Queue, State
from tests.conftest import tiny

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]


def build(n: int = 50, days: int = 30, **changes: Any) -> tuple[Loop, dict[str, Stage]]:
    loop, _ = engine.prepare(credsim.load_scenario(tiny(**changes)), population=n, days=days)
    return loop, {s.name: s for s in loop.stages}


def run(loop: Loop, stage: Stage, d: Day) -> None:
    """Run one stage to its end (at a barrier, what was sent comes straight back, as in one process)."""
    rounds = stage.run(loop.st, d, loop.exchange)
    for _ in rounds or ():
        loop.exchange.loopback()


def idx(loop: Loop, name: str) -> int:
    return loop.plan.beh.index(name) if name in loop.plan.beh else loop.plan.rtypes.index(name)


def test_describe_loop_lists_every_stage_in_order_with_reads_and_writes() -> None:
    text = engine.describe_loop()
    names = [s.name for s in engine.STAGE_TYPES]
    assert names == ["behave", "observe", "file", "score", "investigate", "classify", "sanction", "money", "redress",
                     "respond"]
    pos = [text.index(f"{i}. {n}") for i, n in enumerate(names, 1)]
    assert pos == sorted(pos) and "observers" in text
    for s in engine.STAGE_TYPES:
        assert s.reads and s.writes and all(x.startswith(("day.", "state.")) for x in s.reads + s.writes)


def test_behave_draws_every_certain_event_and_counts_it() -> None:
    loop, st = build(**{"behaviours__traffic.violation__rate": 1.0, "behaviours__travel.flight__rate": 0.0,
                        "behaviours__court.default__rate": 0.0})
    d = Day(0)
    run(loop, st["behave"], d)
    n = loop.st.n
    assert d.events.cit.tolist() == list(range(n))
    assert (d.events.beh == idx(loop, "traffic.violation")).all()
    assert (loop.st.counters[C["events"]] == 1).all() and (loop.st.counters[C["infractions"]] == 1).all()


def test_observe_queues_records_after_the_sensor_delay() -> None:
    loop, st = build(sensors__cameras__delay_days=2)
    tv = idx(loop, "traffic.violation")
    d = Day(5, events=Events(np.array([1, 7]), np.array([tv, tv])))
    run(loop, st["observe"], d)
    cams = loop.plan.sensors.index("cameras")
    assert d.observations.seen[:, cams].tolist() == [1, 1] and d.observations.false_cit.shape[0] == 0
    rec = loop.st.records.pop(7)
    assert rec.cit.tolist() == [1, 7] and rec.sensor.tolist() == [cams, cams]
    assert rec.official.tolist() == rec.shadow.tolist() == rec.true.tolist() == [1, 1]
    assert rec.eday.tolist() == [5, 5]


def push_record(st: State, day: int, cit: int, rtype: int, official: int = 1, shadow: int = 1) -> None:
    one = np.ones(1, np.uint8)
    st.records.push(day, np.array([cit]), np.array([rtype]), np.array([0]), np.array([day]), one * official,
                    one * shadow, one)


def test_file_applies_points_counts_the_list_and_schedules_the_entry() -> None:
    loop, st = build(lists__defaulters__entry__grace_days=3)
    loop.st.ledger.keep = True  # kept only for scenarios with redress; here to see the record filed in it
    push_record(loop.st, 4, 9, idx(loop, "court.default"))
    d = Day(4)
    run(loop, st["file"], d)
    s = loop.st
    assert d.filed.records.cit.tolist() == [9] and d.filed.applied.tolist() == [[-50.0, -50.0]]
    assert s.score[:, 9].tolist() == [950.0, 950.0] and s.list_count[:, 0, 9].tolist() == [1, 1]
    # state.pending holds the due day plus 1 (0: none)
    assert s.pending[:, 0, 9].tolist() == [8, 8] and s.entries.pop(7).cit.tolist() == [9, 9]
    assert s.ledger.size() == 1 and s.counters[C["records_true"], 9] == 1


def test_classify_regrades_and_applies_a_due_entry() -> None:
    loop, st = build()
    s = loop.st
    s.list_count[0, 0, 4] = 1
    s.pending[0, 0, 4] = 3 + 1  # due on day 3 (state.pending holds the day plus 1)
    s.entries.push(3, np.array([4]), np.array([0]), np.array([0]))
    s.score[:, 7] = 950.0  # below grade A (960)
    d = Day(3)
    d.filed.records.cit = np.array([7])
    run(loop, st["classify"], d)
    g = d.grades
    assert list(zip(g.cit.tolist(), g.mode.tolist(), g.old.tolist(), g.new.tolist(), strict=True)) == \
        [(7, 0, 0, 1), (7, 1, 0, 1)]
    lc = d.lists
    assert (lc.cit.tolist(), lc.mode.tolist(), lc.direction.tolist(), lc.since.tolist()) == ([4], [0], [1], [3])
    assert s.listed[0, 0, 4] == 1 and s.pending[0, 0, 4] == 0
    assert s.terms.pop(103).cit.tolist() == [4], "the fixed term of 100 days is scheduled"


def test_sanction_denies_the_listed_and_marks_wrongful_denials() -> None:
    loop, st = build()
    s = loop.st
    s.listed[0, 0, 2] = 1  # officially listed only: a wrongful denial
    s.listed[:, 0, 3] = 1  # listed in both views
    fl = idx(loop, "travel.flight")
    d = Day(0, events=Events(np.array([1, 2, 3]), np.array([fl, fl, fl])))
    run(loop, st["sanction"], d)
    a = d.attempts
    assert a.cit.tolist() == [1, 2, 3] and a.denied.tolist() == [[0, 0], [1, 0], [1, 1]]
    assert a.cross.tolist()[1:] == [1.0, 1.0], "a court list blocking a flight is cross-context"
    assert s.counters[C["wrongful"]].tolist()[1:4] == [0, 1, 0]


RESPONSES = {"chill": {"effect": "reduce_rate", "trigger": "contact_listed", "kinds": ["infraction"], "size": 0.5},
             "cut": {"effect": "cut_ties", "trigger": "contact_listed", "probability": 1.0}}


def _listing(j: int, day: int) -> ListChanges:
    one = np.array([j])
    return ListChanges(one, np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.int64), np.array([day]))


def _hub(loop: Loop) -> tuple[int, np.ndarray]:
    g = loop.st.graph
    j = int(np.argmax(np.diff(g.indptr)))
    contacts = np.sort(g.indices[g.indptr[j]:g.indptr[j + 1]]).astype(np.int64)
    assert contacts.shape[0] > 0
    return j, contacts


def test_respond_reaches_contacts_and_files_association_records_for_tomorrow() -> None:
    loop, st = build(n=200, responses={"chill": RESPONSES["chill"]}, lists__defaulters__association_points=-10,
                     graph__contacts=6)
    s = loop.st
    j, contacts = _hub(loop)
    d = Day(6, lists=_listing(j, 6))
    run(loop, st["respond"], d)
    q = loop.plan.responses.index("chill")
    assert np.array_equal(np.sort(d.responses.triggered["chill"]), contacts)
    assert (s.resp_day[q, contacts] == 6 + 1).all()  # the day plus 1 (state.resp_day)
    rec = s.records.pop(7)
    assert np.array_equal(rec.cit, contacts) and (rec.rtype == idx(loop, "association.defaulters")).all()
    assert rec.official.all() and not rec.shadow.any() and d.responses.assoc == contacts.shape[0]


def test_respond_cuts_ties_in_both_directions_before_association() -> None:
    loop, st = build(n=200, responses=RESPONSES, lists__defaulters__association_points=-10, graph__contacts=6)
    g = loop.st.graph
    j, contacts = _hub(loop)
    d = Day(6, lists=_listing(j, 6))
    run(loop, st["respond"], d)
    assert d.responses.ties_cut == contacts.shape[0] and g.cut_flags()[g.indptr[j]:g.indptr[j + 1]].all()
    for i in contacts:
        row = slice(g.indptr[i], g.indptr[i + 1])
        assert g.cut_flags()[row][g.indices[row] == j].all()
    assert d.responses.assoc == 0 and loop.st.records.pop(7).cit.shape[0] == 0, \
        "association reaches only the ties left after today's cuts"


def test_cut_bits_are_one_a_tie_direction_and_independent() -> None:
    """A cut sets its own bit only: neighbours in the same byte, and the bytes either side, stay as they were."""
    edges = 21
    cut = no_cuts(edges)
    assert cut.shape == (3,) and cut.dtype == np.uint8
    for e in (0, 7, 8, 9, 20):
        set_cut(cut, e)
        set_cut(cut, e)  # cutting twice is cutting once
    got = [is_cut(cut, e) for e in range(edges)]
    assert got == [int(e in (0, 7, 8, 9, 20)) for e in range(edges)]
    g = Graph(np.array([0, edges]), np.zeros(edges, np.int32), cut)
    assert g.cut_flags().tolist() == [bool(x) for x in got]


def test_exchange_routes_rows_to_owners_and_counts_what_leaves() -> None:
    x = Exchange([0, 10, 20], index=0)
    x.send("resp", np.array([3, 15, 12]), np.array([1, 2, 3]))
    box = x.collect()
    assert box[0]["resp"][0].tolist() == [[3], [1]] and box[1]["resp"][0].tolist() == [[15, 12], [2, 3]]
    assert x.sent_kind == {"resp": 2} and x.collect() == {}
    other = Exchange([0, 10, 20], index=1)
    other.send("resp", np.array([4]), np.array([9]))
    inbox = deliver([box, other.collect()], 0)
    assert [r.tolist() for r in inbox["resp"]] == [[[3], [1]], [[4], [9]]], "sources in range order"
    single = Exchange([0, 20])
    single.send("assoc", np.array([5]), np.array([0]))
    single.loopback()
    assert single.received("assoc")[0].tolist() == [[5], [0]]


def _columns(st: State) -> dict[str, Any]:
    """A comparable picture of every State column (queues and the ledger by their content)."""
    out: dict[str, Any] = {}
    for k, v in vars(st).items():
        if isinstance(v, np.ndarray):
            out[k] = v.copy()
        elif isinstance(v, Queue):
            out[k] = {d: [tuple(a.copy() for a in p) for p in parts] for d, parts in v.buckets.items()}
    out["graph"] = st.graph.cut.copy()
    out["ledger"] = {d: tuple(a.copy() for a in b) for d, b in st.ledger.buckets.items()}
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


REDRESS = {"notice": {"at": "listing"}, "appeals": {"court": {
    "lists": ["defaulters"], "capacity_per_day": 5, "file_probability": 0.5, "success_false": 0.9,
    "success_true": 0.5}}}


INVESTIGATE = {
    "population__traits__claim_error": {}, "behaviours__finance.claim_error": {"kind": "infraction", "rate": 0.0},
    "scoring__model": {"every_days": 1, "features": {"m": {"group": {"hukou": {"migrant": 1.0}}}},
                       "dimensions": {"risk": {"weight": 1.0, "features": {"m": 1.0}}}},
    "investigations": {"unit": {"records": "finance.claim_error", "capacity_per_day": 20,
                                "truth": {"trait": "claim_error", "above": 0.0}, "false_finding": 0.2}}}


MONEY = {
    "money": ["cash"],
    "behaviours__travel.flight__outcomes": {"paid": {"probability": 0.5, "money": {"cash": 10.0},
                                                     "records": "traffic.violation"}},
    "behaviours__traffic.violation__state": [{"list": "defaulters", "multiplier": 2.0}],
    "sanctions__fine": {"when": {"list": "defaulters"}, "effect": "clawback", "amount": 5.0,
                        "share_of": {"cash": 0.5}, "compensation": 100.0}}


@pytest.mark.parametrize("extra", [{}, {"redress": REDRESS}, {"redress": REDRESS, **INVESTIGATE},
                                   {"redress": REDRESS, **MONEY}],
                         ids=["plain", "with-redress", "with-redress-and-investigations", "with-money"])
def test_every_stage_changes_only_what_it_declares(extra: dict[str, Any]) -> None:
    redress = extra.get("redress")
    loop, _ = build(n=2000, days=25, responses=RESPONSES, lists__defaulters__association_points=-10,
                    graph__contacts=6, **extra, **{"behaviours__court.default__rate": 0.02})
    seen: dict[str, set[str]] = {s.name: set() for s in loop.stages}
    for day in range(25):
        d = Day(day)
        for stage in loop.stages:
            before, parts = _columns(loop.st), dict(vars(d))
            run(loop, stage, d)
            after = _columns(loop.st)
            changed = {f"state.{k}" for k in before if not _same(before[k], after[k])}
            changed |= {f"day.{k}" for k, v in vars(d).items() if v is not parts[k]}
            undeclared = changed - set(stage.writes)
            assert not undeclared, f"{stage.name} changed {sorted(undeclared)} on day {day} without declaring it"
            seen[stage.name] |= changed
        for obs in loop.observers:
            obs.observe(loop.st, d)
    assert "state.graph" in seen["respond"] and "state.listed" in seen["classify"], "the run exercised lists and ties"
    if redress is not None:
        assert {"day.redress", "state.retractions"} <= seen["redress"], "objections were upheld"
    if "investigations" in extra:
        assert {"day.investigated", "state.records"} <= seen["investigate"]
    if "money" in extra:
        assert {"day.money", "state.money", "state.records"} <= seen["money"]
    assert {"day.events", "state.counters"} <= seen["behave"]


def test_model_days_in_blocks_give_the_bits_of_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model score and its metric stock are computed a block of citizens at a time (no temporaries of
    the whole population); blocks of 999 citizens must give the bits of one pass over 5,000 (two model
    days, contacts-share and group features included)."""
    scen = credsim.load_scenario("commercial-score", {"population.size": 5_000, "run.days": 35})
    one = engine.simulate(scen)
    monkeypatch.setattr(score, "BLOCK", 999)
    monkeypatch.setattr(measure, "DENSE_BLOCK", 999)
    blocks = engine.simulate(scen)
    assert one.state.mscore.shape[1] == 5_000
    assert np.array_equal(one.state.mscore, blocks.state.mscore)
    assert np.array_equal(one.state.grade, blocks.state.grade)
    assert np.array_equal(one.metrics.table, blocks.metrics.table)
