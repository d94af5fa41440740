"""Each mechanism does what the scenario says, checked citizen by citizen from traces."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow.compute as pc

import credsim
from credsim import graph as graph_mod
from credsim import population as pop_mod
from credsim.plan import compile_plan

from .conftest import tiny


def rows(run: credsim.Run, stage: str) -> list[dict]:  # type: ignore[type-arg]
    t = run.traces()
    return t.filter(pc.equal(t.column("stage"), stage)).to_pylist()


def listing_intervals(run: credsim.Run, view: str = "official") -> dict[int, list[tuple[int, int]]]:
    """(entry day, exit day) per citizen, from the list rows of the traces."""
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    open_: dict[int, int] = {}
    for r in sorted(rows(run, "list"), key=lambda r: (r["day"], r["value"])):
        if r["view"] != view:
            continue
        if r["value"] > 0:
            open_[r["citizen"]] = r["day"]
        else:
            out[r["citizen"]].append((open_.pop(r["citizen"]), r["day"]))
    for c, d in open_.items():
        out[c].append((d, 10**9))
    return out


def listed_on(iv: dict[int, list[tuple[int, int]]], c: int, day: int) -> bool:
    # entries and exits take effect in classify, before the day's sanctions
    return any(a <= day < b for a, b in iv.get(c, []))


def test_listed_citizens_are_denied_flights_and_only_they(run_tiny) -> None:  # type: ignore[no-untyped-def]
    run = run_tiny(tiny(population__size=3000, run__trace=3000, **{"behaviours__court.default__rate": 0.01}),
                   days=60)
    iv = listing_intervals(run)
    assert len(iv) > 100
    official = [r for r in rows(run, "sanction") if r["view"] == "official" and r["item"] == "travel.flight"]
    assert len(official) > 1000
    for r in official:
        expect = -1.0 if listed_on(iv, r["citizen"], r["day"]) else 0.0
        assert r["value"] == expect, r


def test_cure_and_term_take_citizens_off_the_list(run_tiny) -> None:  # type: ignore[no-untyped-def]
    scen = tiny(population__size=3000, run__trace=3000, **{
        "behaviours__court.default__rate": 0.01,
        "lists__defaulters__exit__term_days": 20,
    })
    run = run_tiny(scen, days=80)
    iv = listing_intervals(run)
    comply = {(r["citizen"], r["day"]) for r in rows(run, "record") if r["item"] == "court.comply"
              and r["view"] in ("official", "both")}
    n_cured = n_term = 0
    for c, spans in iv.items():
        for a, b in spans:
            if b == 10**9:
                assert 80 - a <= 20
                continue
            if (c, b) in comply:
                n_cured += 1
            else:
                assert b - a == 20, (c, a, b)
                n_term += 1
    assert n_cured > 20 and n_term > 20


def test_grace_days_delay_entry(run_tiny) -> None:  # type: ignore[no-untyped-def]
    scen = tiny(population__size=2000, run__trace=2000, **{
        "behaviours__court.default__rate": 0.005,
        "behaviours__court.comply__rate": 0.0,
        "lists__defaulters__entry__grace_days": 5,
    })
    run = run_tiny(scen, days=40)
    first_record = {}
    for r in sorted(rows(run, "record"), key=lambda r: r["day"]):
        if r["item"] == "court.default" and r["view"] in ("official", "both"):
            first_record.setdefault(r["citizen"], r["day"])
    iv = listing_intervals(run)
    assert iv
    for c, spans in iv.items():
        assert spans[0][0] == first_record[c] + 5


def test_association_penalises_contacts(run_tiny) -> None:  # type: ignore[no-untyped-def]
    scen = tiny(population__size=3000, run__trace=3000, graph={"contacts": 6}, **{
        "behaviours__court.default__rate": 0.003,
        "lists__defaulters__association_points": -7,
        "scoring__points__rules__association.defaulters": -7,
    })
    run = run_tiny(scen, days=30)
    entries = [(r["citizen"], r["day"]) for r in rows(run, "list") if r["view"] == "official" and r["value"] > 0]
    assoc = [r for r in rows(run, "record") if r["item"] == "association.defaulters" and r["view"] == "official"]
    assert entries and assoc
    entry_days = {d for _c, d in entries}
    for r in assoc:
        assert r["day"] - 1 in entry_days  # filed the day after a contact's listing
        assert r["value"] == -7


def test_points_cap_per_period(run_tiny) -> None:  # type: ignore[no-untyped-def]
    scen = tiny(population__size=1000, run__trace=1000, **{
        "behaviours__traffic.violation__rate": 0.5,
        "scoring__points__cap": {"period_days": 10, "max_loss": 12},
    })
    run = run_tiny(scen, days=30)
    lost: dict[tuple[int, int], float] = defaultdict(float)
    for r in rows(run, "record"):
        if r["view"] in ("official", "both") and r["value"] < 0:
            lost[(r["citizen"], r["day"] // 10)] += -r["value"]
    assert max(lost.values()) == 12
    assert all(v <= 12 for v in lost.values())


def test_records_expire(run_tiny) -> None:  # type: ignore[no-untyped-def]
    scen = tiny(population__size=500, run__trace=500, **{
        "behaviours__traffic.violation__rate": 0.2, "behaviours__court.default__rate": 0.0,
        "scoring__points__expiry_days": 4,
    })
    run = run_tiny(scen, days=20)
    applied: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r in rows(run, "record"):
        if r["view"] in ("official", "both"):
            applied[r["citizen"]].append((r["day"], r["value"]))
    for r in rows(run, "score"):
        if r["view"] != "official" or r["item"] != "points":
            continue
        live = sum(v for d, v in applied[r["citizen"]] if r["day"] - 4 < d <= r["day"])
        assert r["value"] == 1000 + live


def test_deterrence_lowers_infractions_against_paired_run(run_tiny) -> None:  # type: ignore[no-untyped-def]
    common = {"population__size": 20_000, "behaviours__court.default__rate": 0.01,
              "behaviours__court.comply__rate": 0.0}
    plain = run_tiny(tiny(**common), days=60)
    deterred = run_tiny(tiny(**common, responses={"fear": {
        "effect": "reduce_rate", "trigger": "own_listed", "kinds": ["infraction"], "size": 0.9,
        "half_life_days": 1000}}), days=60)
    a = np.asarray(plain.citizens().column("n_infractions"))
    b = np.asarray(deterred.citizens().column("n_infractions"))
    assert (b <= a).all(), "with common random numbers deterrence can only remove events"
    assert b.sum() < 0.9 * a.sum()


def test_rewards_go_to_high_grades(run_tiny) -> None:  # type: ignore[no-untyped-def]
    scen = tiny(population__size=2000, run__trace=2000, **{
        "behaviours__civic.volunteer": {"kind": "good_deed", "rate": 0.2},
        "behaviours__civic.heating": {"kind": "attempt", "rate": 0.1},
        "sensors__registry": {"observes": ["civic.volunteer"]},
        "scoring__points__rules__civic.volunteer": 10,
        "scoring__grades__bands": [{"name": "AAA", "min": 1050}, {"name": "A", "min": 960}, {"name": "C"}],
        "sanctions__heating_discount": {"when": {"grades": ["AAA"]}, "attempts": ["civic.heating"],
                                        "effect": "reward"},
    })
    run = run_tiny(scen, days=30)
    score = {(r["citizen"], r["day"]): r["value"] for r in rows(run, "score")
             if r["view"] == "official" and r["item"] == "points"}
    heat = [r for r in rows(run, "sanction") if r["item"] == "civic.heating" and r["view"] == "official"]
    assert sum(r["value"] == 1.0 for r in heat) > 50
    for r in heat:
        assert (r["value"] == 1.0) == (score[(r["citizen"], r["day"])] >= 1050)


def test_graph_is_symmetric_simple_and_homophilous() -> None:
    scen = credsim.load_scenario("city-points", {"population.size": 20_000, "graph.contacts": 10,
                                                 "graph.homophily": {"region": 0.8}})
    plan = compile_plan(scen)
    pop = pop_mod.generate(plan, 20_000, 1)
    g = graph_mod.build(plan, pop, 1)
    src = np.repeat(np.arange(20_000), np.diff(g.indptr))
    dst = g.indices.astype(np.int64)
    assert not (src == dst).any()
    fwd = set(zip(src.tolist(), dst.tolist(), strict=True))
    assert len(fwd) == src.shape[0], "no duplicate ties"
    assert all((b, a) in fwd for a, b in fwd)
    assert 9.0 < src.shape[0] / 20_000 <= 10.0
    reg = pop.groups[plan.dims.index("region")]
    same = (reg[src] == reg[dst]).mean()
    shares = np.bincount(reg) / reg.shape[0]
    assert same > 0.8 + 0.2 * (shares**2).sum() - 0.02
