"""``credsim audit`` of a scenario with due process and family ties, as a person types it: the summary
and the report show wrongful days, time to redress, backlog, success by group and children affected in
plain words, and the pooled figures add up to the replicates' own."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from credsim.audit import redress as ar
from tests.conftest import tiny
from tests.test_audit_cli import run_in_pty
from tests.test_redress import RED

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def test_audit_shows_due_process_and_children_affected(tmp_path: Path) -> None:
    red = copy.deepcopy(RED)
    red["appeals"]["court"]["capacity_per_day"] = 1
    scen = tiny(**{"redress": red, "sensors__courts__false_rate": 0.003, "run__days": 30,
                   "population__dependants": {"shares": [0.5, 0.3, 0.2]},
                   "behaviours__education.school_fee": {"kind": "attempt", "rate": 0.2},
                   "domains": ["finance", "court", "traffic", "travel", "education"],
                   "sanctions__school_ban": {"when": {"list": "defaulters"}, "attempts": ["education.school_fee"],
                                             "reaches": "dependants"}})
    f = tmp_path / "due.yaml"
    f.write_text(yaml.safe_dump(scen))
    out = tmp_path / "a"
    rc, text = run_in_pty(["audit", str(f), "-n", "1200", "-k", "1", "--seed", "3", "--out", str(out),
                           "--threads", "1"])
    assert rc == 0, text
    assert "Due process:" in text and "days listed on false records before an upheld objection" in text
    assert "Children affected (dependants of citizens denied by a sanction that reaches them)" in text
    assert "Objections to false records upheld by court:" in text and "Wilson 95%" in text
    res = json.loads((out / "audit.json").read_text())
    runs = [ar.figures(out / r["system"]) for r in res["meta"]["runs"]]
    pooled = res["redress"]
    assert pooled["wrongful_days"]["mean"] == pytest.approx(
        sum(r["wrongful_days_before_correction"]["sum"] for r in runs) / len(runs))
    s = pooled["success"]["court"]["false_record"]["all"]
    assert s["decided"] == sum(r["appeal_success"]["court"]["false_record"]["all"]["decided"] for r in runs) > 0
    page = (out / "report.html").read_text()
    body = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert "Due process: how long a wrong listing lasts" in body and "Cases waiting at court" in body
    assert "objection upheld" in body and "household registration: migrant" in body
    for internal in ("false_record", "wrongful_days", "children_affected", "school_fee", "hukou=migrant"):
        assert internal not in re.sub(r"<[^>]+>", " ", body), internal
