"""Family ties (D10): dependants drawn per citizen id, sanctions that reach them, and children affected
as citizen-by-citizen differences against the no-false-records run and the system switched off."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

import credsim
from credsim import engine
from credsim import population as pop_mod
from credsim.audit.counterfactuals import BY_HARM, SYSTEM_OFF, apply
from credsim.audit.harms import HARMS_FILE, Replicate, write_harms
from credsim.stages import retraction
from tests.conftest import tiny
from tests.test_scenario_errors import error_for

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]

SHARES = [0.5, 0.3, 0.2]
CIT = 11


def family(**extra: Any) -> dict[str, Any]:
    return tiny(**{"population__dependants": {"shares": SHARES},
                   "behaviours__education.school_fee": {"kind": "attempt", "rate": 0.2},
                   "domains": ["finance", "court", "traffic", "travel", "education"],
                   "sanctions__school_ban": {"when": {"list": "defaulters"}, "attempts": ["education.school_fee"],
                                             "reaches": "dependants"}, **extra})


def test_dependants_are_drawn_per_citizen_id_in_their_shares() -> None:
    plan = engine.compile_plan(credsim.load_scenario(family()))
    small, big = pop_mod.generate(plan, 3000, 5), pop_mod.generate(plan, 20000, 5)
    assert np.array_equal(small.dependants, big.dependants[:3000]), "a citizen's family does not depend on N"
    n = big.dependants.shape[0]
    for k, p in enumerate(SHARES):
        share = float(np.mean(big.dependants == k))
        assert abs(share - p) <= 4.5 * math.sqrt(p * (1 - p) / n), (k, share)
    assert pop_mod.generate(engine.compile_plan(credsim.load_scenario(tiny())), 10, 5).dependants.shape == (0,)


def step(retract_on: int | None) -> list[int]:
    """CIT's denials that reach dependants, day by day, with one hand-filed court record (day 2) and no
    other court records; the record is retracted on ``retract_on`` (None: never)."""
    scen = credsim.load_scenario(family(**{"behaviours__court.default__rate": 0.0,
                                           "behaviours__court.comply__rate": 0.0,
                                           "behaviours__education.school_fee__rate": 1.0}))
    loop, _ = engine.prepare(scen, population=50, days=30)
    st, plan = loop.st, loop.plan
    st.ledger.keep = True  # no redress section: retraction is driven by hand here
    st.dependants[CIT] = 2
    one = np.ones(1, np.uint8)
    st.records.push(2, np.array([CIT]), np.array([plan.rtypes.index("court.default")]), np.array([0]),
                    np.array([2]), one, one, one)
    if retract_on is not None:
        retraction.request(st, retract_on, np.array([2 << 32]), "appeal", 3)
    out = []
    for day in range(30):
        loop.step(day)
        out.append(int(st.dep_denied[CIT]))
    return out


def test_a_dependants_denial_ends_when_the_parents_record_is_retracted() -> None:
    kept, retracted = step(None), step(12)
    assert kept[:12] == retracted[:12], "the days before the retraction stay as they were"
    assert retracted[11] == 10, "denied every day from the listing (day 2) to day 11"
    assert retracted[12:] == [retracted[11]] * 18, "no denial reaches the children after the retraction"
    assert kept[-1] == 28


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A system run with false court records, its no-false-records counterfactual and the system off."""
    root = tmp_path_factory.mktemp("family")
    scen = credsim.load_scenario(family(**{"sensors__courts__false_rate": 0.003}))
    kw = dict(population=3000, days=40, threads=1)
    sys_dir = credsim.run(scen, out=root / "system", **kw).dir
    nf = apply(BY_HARM["wrongful"], scen)
    off = apply(SYSTEM_OFF, scen)
    assert nf is not None and off is not None
    nf_dir = credsim.run(nf, out=root / "nf", **kw).dir
    off_dir = credsim.run(off, out=root / "off", **kw).dir
    totals = write_harms(Replicate(0, sys_dir, off_dir, {"wrongful": nf_dir}))
    read = {k: duckdb.sql(f"SELECT * FROM read_parquet('{d / 'citizens.parquet'}') ORDER BY citizen").df()
            for k, d in (("sys", sys_dir), ("nf", nf_dir), ("off", off_dir))}
    return {"totals": totals, "cit": read, "harms": duckdb.sql(
        f"SELECT * FROM read_parquet('{sys_dir / HARMS_FILE}') ORDER BY citizen").df()}


def test_children_affected_wrongly_is_a_citizen_by_citizen_difference(audited: dict[str, Any]) -> None:
    s, nf, off = audited["cit"]["sys"], audited["cit"]["nf"], audited["cit"]["off"]
    deps = s["dependants"].to_numpy().astype(np.int64)
    hit = s["n_dependants_denied"].to_numpy() > 0
    wrongly = deps * (hit & (nf["n_dependants_denied"].to_numpy() == 0))
    by_system = deps * (hit & (off["n_dependants_denied"].to_numpy() == 0))
    h, t = audited["harms"], audited["totals"]
    assert np.array_equal(h["children_affected_wrongly"].to_numpy(), wrongly)
    assert np.array_equal(h["children_affected_by_system"].to_numpy(), by_system)
    assert t["harm.children_affected"] == float((deps * hit).sum()) > 0
    assert t["harm.children_affected_wrongly"] == float(wrongly.sum()) > 0
    assert t["harm.children_affected_by_system"] == float(by_system.sum())
    hukou = s["hukou"].astype(str).to_numpy()
    for g in ("local", "migrant"):
        assert t[f"harm.children_affected_wrongly.hukou.{g}"] == float(wrongly[hukou == g].sum())


def test_reaching_dependants_needs_declared_dependants(tmp_path: Path) -> None:
    err = error_for(tmp_path, tiny(sanctions__flight_ban__reaches="dependants"))
    assert "sanctions.flight_ban.reaches" in err.paths and "population.dependants" in str(err)
