"""Money, outcomes of attempts and state-dependent rates, judged from one run's traces.

One run of a small benefits scenario (everyone traced) and its no-false-records counterfactual
(same seed) are shared by every test. Statistical checks use the binomial bound
``|k - n p| <= 5 sqrt(n p (1 - p))``: every count checked has ``n p (1 - p)`` in the hundreds or
more, where the normal approximation holds closely, and ``P(|Z| > 5) < 6e-7`` per check, so the
dozen checks of this module fail by chance with probability below 1e-5 (the seed is fixed anyway:
a failure means a wrong rate, not bad luck).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

import credsim
from credsim import names as nm
from credsim.audit.counterfactuals import BY_HARM, apply
from credsim.audit.harms import Replicate, write_harms
from credsim.resumable import RunStopped
from credsim.scenario.load import ScenarioError
from tests.terminal import typed

Z = 5.0
DAYS = 50
SCEN: dict[str, Any] = {
    "name": "money-test",
    "domains": ["welfare", "finance"],
    "population": {"size": 2000, "groups": {"income": {"low": 0.5, "high": 0.5}}},
    "money": ["benefits", "arrears"],
    "behaviours": {
        "welfare.error": {"kind": "infraction", "rate": 0.001},
        "welfare.claim": {"kind": "attempt", "rate": 0.3, "outcomes": {
            "paid": {"probability": 0.6, "by": {"income": {"low": 0.5}}, "money": {"benefits": 100}},
            "queried": {"probability": 0.1, "records": "welfare.queried"}}},
        "welfare.queried": {"kind": "other", "rate": 0.0},
        "finance.bill": {"kind": "attempt", "rate": 0.3, "outcomes": {
            "missed": {"probability": 0.1, "state": [{"money": {"column": "taken", "above": 0}, "multiplier": 4}],
                       "records": "finance.arrears", "money": {"arrears": 50}}}},
        "finance.arrears": {"kind": "infraction", "rate": 0.0},
        "finance.loan": {"kind": "attempt", "rate": 0.05, "state": [{"list": "clawback", "multiplier": 4}]},
    },
    "sensors": {"agency": {"observes": ["welfare.error"], "detection": 1.0, "false_rate": 0.002}},
    "lists": {"clawback": {"domain": "welfare", "entry": {"records": ["welfare.error"], "count": 1, "window_days": 365},
                           "exit": {"term_days": 40}}},
    "sanctions": {
        "stop": {"when": {"list": "clawback"}, "attempts": ["welfare.claim"]},
        "take": {"when": {"list": "clawback"}, "effect": "clawback", "amount": 10, "share_of": {"benefits": 1.0},
                 "compensation": 500}},
    "redress": {"notice": {"at": "listing"}, "appeals": {"review": {
        "lists": ["clawback"], "capacity_per_day": 100, "file_probability": 0.3, "success_false": 1.0,
        "success_true": 0.0, "correction_days": 2}}},
    "run": {"days": DAYS, "seed": 11, "trace": 2000},
}
CORRECTION = 2


def within(k: int, n: int, p: float) -> bool:
    return abs(k - n * p) <= Z * math.sqrt(n * p * (1 - p))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("money")
    system = credsim.run(copy.deepcopy(SCEN), out=root / "system").dir
    cf = apply(BY_HARM["wrongful"], credsim.load_scenario(copy.deepcopy(SCEN)))
    assert cf is not None
    clean = credsim.run(cf, out=root / "clean", overrides={"run.trace": 0}).dir  # its traces are not read
    write_harms(Replicate(11, system, None, {"wrongful": clean}))
    tr = pq.read_table(system / "traces.parquet").to_pandas()
    for c in ("stage", "item", "view"):
        tr[c] = tr[c].astype(str)
    return {"root": root, "system": system, "clean": clean, "tr": tr,
            "cit": pq.read_table(system / "citizens.parquet").to_pandas(),
            "cases": pq.read_table(system / "cases.parquet").to_pandas()}


def _allowed(tr: Any, beh: str) -> Any:
    ev = tr[(tr.stage == "event") & (tr.item == beh)][["day", "citizen"]]
    den = tr[(tr.stage == "sanction") & (tr.view == "official") & (tr.item == beh) & (tr.value == -1)]
    keys = set(zip(den.day, den.citizen, strict=True))
    return ev[[(d, c) not in keys for d, c in zip(ev.day, ev.citizen, strict=True)]], keys


def test_outcomes_by_group_within_binomial_bounds_and_never_after_a_denial(runs: dict[str, Any]) -> None:
    tr, cit = runs["tr"], runs["cit"]
    allowed, denied = _allowed(tr, "welfare.claim")
    assert len(denied) > 50, "the run denied claims of listed citizens"
    out = tr[tr.stage == "outcome"]
    claim = out[out["item"].str.startswith("welfare.claim.")]
    assert not set(zip(claim.day, claim.citizen, strict=True)) & denied, "a denied attempt has no outcome"
    income = dict(zip(cit.citizen, cit.income.astype(str), strict=True))
    for grp, p_paid in (("low", 0.3), ("high", 0.6)):
        n = sum(income[c] == grp for c in allowed.citizen)
        for name, p in (("paid", p_paid), ("queried", 0.1)):
            k = int(sum(income[c] == grp for c in claim[claim["item"] == f"welfare.claim.{name}"].citizen))
            assert within(k, n, p), f"{grp} {name}: {k} of {n}, expected p = {p}"


def _taken_before(tr: Any) -> dict[int, list[tuple[int, float]]]:
    mv = tr[(tr.stage == "money") & (tr["item"] == "taken")]
    out: dict[int, list[tuple[int, float]]] = {}
    for d, c, v in zip(mv.day, mv.citizen, mv.value, strict=True):
        out.setdefault(int(c), []).append((int(d), float(v)))
    return out


def test_outcome_probability_follows_the_start_of_day_money_state(runs: dict[str, Any]) -> None:
    """A bill is missed with 0.1, or 0.4 once money was clawed back on an earlier day (poverty feedback)."""
    tr = runs["tr"]
    taken = _taken_before(tr)
    bills = tr[(tr.stage == "event") & (tr["item"] == "finance.bill")]
    missed = set(zip(*[tr[(tr.stage == "outcome") & (tr["item"] == "finance.bill.missed")][k]
                       for k in ("day", "citizen")], strict=True))
    n = {False: 0, True: 0}
    k = {False: 0, True: 0}
    for d, c in zip(bills.day, bills.citizen, strict=True):
        poor = any(day < d for day, _v in taken.get(int(c), []))
        n[poor] += 1
        k[poor] += (d, c) in missed
    assert n[True] > 1000, "enough bills after a clawback to judge the rate"
    assert within(k[False], n[False], 0.1) and within(k[True], n[True], 0.4), (k, n)


def test_behaviour_rate_follows_the_start_of_day_list_state(runs: dict[str, Any]) -> None:
    """Loans: 0.05 a day, 0.2 while listed at the start of the day (listed on an earlier day, not yet out)."""
    tr = runs["tr"]
    lst = tr[(tr.stage == "list") & (tr.view == "official")].sort_values(["citizen", "day", "value"])
    listed_days: dict[int, set[int]] = {}
    since: dict[int, int] = {}
    for d, c, v in zip(lst.day, lst.citizen, lst.value, strict=True):
        if v > 0:
            since[int(c)] = int(d)
        else:
            listed_days.setdefault(int(c), set()).update(range(since.pop(int(c)) + 1, int(d) + 1))
    for c, e in since.items():
        listed_days.setdefault(c, set()).update(range(e + 1, DAYS))
    on = sum(len(s) for s in listed_days.values())
    loans = tr[(tr.stage == "event") & (tr["item"] == "finance.loan")]
    k_on = sum(int(d) in listed_days.get(int(c), ()) for d, c in zip(loans.day, loans.citizen, strict=True))
    n_all = 2000 * DAYS
    assert on > 2000
    assert within(k_on, on, 0.2) and within(len(loans) - k_on, n_all - on, 0.05), (k_on, on, len(loans))


def test_money_is_conserved_citizen_by_citizen(runs: dict[str, Any]) -> None:
    """Balances equal the sum of the traced movements; net harm = taken wrongly - refunded wrongly."""
    tr, cit = runs["tr"], runs["cit"]
    mv = tr[tr.stage == "money"].groupby(["citizen", "item"])["value"].sum().unstack(fill_value=0.0)
    for col in ("benefits", "arrears", "taken", "refunded", "compensated"):
        got = cit.set_index("citizen")[nm.money_column(col)]
        want = mv[col].reindex(got.index, fill_value=0.0) if col in mv else 0.0 * got
        assert np.allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-6), col
    paid = tr[(tr.stage == "outcome") & (tr["item"] == "welfare.claim.paid")].groupby("citizen").size()
    kept = paid.reindex(cit.citizen, fill_value=0).to_numpy() * 100.0
    claws = cit[nm.money_column("taken")].to_numpy() - 10.0 * _count(tr, cit, "taken")
    back = cit[nm.money_column("refunded")].to_numpy() - 10.0 * _count(tr, cit, "refunded")
    assert np.allclose(cit[nm.money_column("benefits")].to_numpy(), kept - claws + back, atol=1e-6), \
        "benefits kept = paid - what clawbacks took back of them + what refunds gave back"
    con = duckdb.connect()
    h = con.execute(f"SELECT * FROM read_parquet('{runs['system'] / 'harms.parquet'}') ORDER BY citizen").df()
    assert np.allclose(h.wrongful_money, h.wrongful_money_taken - h.wrongful_money_refunded, atol=1e-9)
    assert np.allclose(h.money_taken_net, cit[nm.money_column("taken")] - cit[nm.money_column("refunded")])
    clean = pq.read_table(runs["clean"] / "citizens.parquet").to_pandas()
    assert np.allclose(h.wrongful_money_taken, cit[nm.money_column("taken")] - clean[nm.money_column("taken")])
    assert h.wrongful_money.sum() > 0 and clean[nm.money_column("refunded")].sum() == 0, \
        "false records take money; without them no objection succeeds (success_true = 0)"


def _count(tr: Any, cit: Any, column: str) -> np.ndarray:
    """Per citizen: how many movements of ``column`` (clawbacks taken, refunds) the traces show."""
    mv = tr[(tr.stage == "money") & (tr["item"] == column)].groupby("citizen").size()
    return mv.reindex(cit.citizen, fill_value=0).to_numpy().astype(np.float64)


def test_a_retracted_clawback_is_refunded_exactly_on_the_retraction_day(runs: dict[str, Any]) -> None:
    tr, cases = runs["tr"], runs["cases"]
    up = cases[cases.upheld == 1]
    due = {(int(c), int(d) + CORRECTION) for c, d in zip(up.cit, up.decided, strict=True)}
    taken = _taken_before(tr)
    refunds = tr[(tr.stage == "money") & (tr["item"] == "refunded")]
    comp = tr[(tr.stage == "money") & (tr["item"] == "compensated")]
    assert len(refunds) > 20, "objections were upheld and refunded"
    assert sorted(zip(comp.day, comp.citizen, strict=True)) == sorted(zip(refunds.day, refunds.citizen, strict=True))
    assert (comp.value == 500.0).all()
    for d, c, v in zip(refunds.day, refunds.citizen, refunds.value, strict=True):
        assert (int(c), int(d)) in due, f"citizen {c} refunded on day {d} with no retraction due that day"
        assert any(day < d and amount == v for day, amount in taken[int(c)]), \
            f"citizen {c}: refund {v} equals no clawback taken before day {d}"


def test_stop_and_resume_is_byte_identical_with_money_state(runs: dict[str, Any], tmp_path: Path) -> None:
    """Stopped on day 23 (clawbacks taken, refunds still due) and resumed: the same bytes as one run."""
    out = tmp_path / "run"
    with pytest.raises(RunStopped):
        credsim.run(copy.deepcopy(SCEN), out=out, max_days=23)
    credsim.api.resume(out)
    for name in ("metrics.parquet", "citizens.parquet", "traces.parquet", "cases.parquet"):
        assert (out / name).read_bytes() == (runs["system"] / name).read_bytes(), name


def test_redress_command_shows_money_taken_wrongly_by_group(runs: dict[str, Any]) -> None:
    res = typed("redress", str(runs["system"]), cwd=runs["root"])
    assert res.rc == 0 and not res.traceback, res.out
    text = " ".join(res.out.split())
    assert "Money: taken" in text and "money taken wrongly" in text and "income=low" in text
    assert "intervals: normal 95% interval over the group's citizens within one run" in text


@pytest.mark.parametrize(("change", "path", "expected"), [
    ({"behaviours": {"finance.loan": {"state": [{"list": "clawbak", "multiplier": 2}]}}},
     "behaviours.finance.loan.state[0].list", "a list"),
    ({"behaviours": {"finance.loan": {"state": [{"money": {"column": "cash", "above": 0}, "multiplier": 2}]}}},
     "behaviours.finance.loan.state[0].money.column", "a money column"),
    ({"behaviours": {"finance.loan": {"state": [{"grades": ["D"], "multiplier": 2}]}}},
     "behaviours.finance.loan.state[0].grades[0]", "a grade"),
    ({"behaviours": {"finance.loan": {"state": [{"score": {"of": "model", "below": 500}, "multiplier": 2}]}}},
     "behaviours.finance.loan.state[0].score.of", "scoring.model is missing"),
    ({"behaviours": {"finance.loan": {"state": [{"multiplier": 2}]}}},
     "behaviours.finance.loan.state[0]", "at least one of list, grades, score, money"),
    ({"behaviours": {"finance.loan": {"state": [{"list": "clawback", "multiplier": 40}]}}},
     "behaviours.finance.loan.state", "at most 1"),
    ({"behaviours": {"welfare.error": {"outcomes": {"x": {"probability": 0.5}}}}},
     "behaviours.welfare.error.outcomes", "kind 'attempt'"),
    ({"behaviours": {"finance.bill": {"outcomes": {"a": {"probability": 0.6}, "b": {"probability": 0.5}}}}},
     "behaviours.finance.bill.outcomes", "sum to at most 1"),
    ({"behaviours": {"finance.bill": {"outcomes": {"missed": {"probability": 0.1, "money": {"cash": 5}}}}}},
     "behaviours.finance.bill.outcomes.missed.money.cash", "declared in 'money'"),
    ({"sanctions": {"take": {"attempts": ["welfare.claim"]}}}, "sanctions.take", "leave attempts out"),
    ({"money": ["benefits", "taken"]}, "money[1]", "kept by the engine"),
])
def test_bad_economy_keys_name_file_key_path_and_expectation(tmp_path: Path, change: dict[str, Any], path: str,
                                                            expected: str) -> None:
    data = copy.deepcopy(SCEN)
    for key, val in change.items():
        if isinstance(val, dict) and isinstance(data.get(key), dict):
            for k2, v2 in val.items():
                data[key][k2] = {**data[key][k2], **v2} if isinstance(v2, dict) else v2
        else:
            data[key] = val
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ScenarioError) as info:
        credsim.load_scenario(f)
    msg = str(info.value)
    assert "bad.yaml" in msg and path in msg and expected in msg, msg
