"""Audit figures for redress read back what the run wrote: success shares equal the case counts,
cause-specific exit curves count exactly the exits of their route, wrongful days are the paired
citizen-by-citizen difference, and what-if changes are the per-seed differences."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

import credsim
from credsim import names as nm
from credsim.audit import redress as ar
from tests.conftest import tiny
from tests.terminal import typed
from tests.test_redress import DAYS, RED, scenario

pytestmark = [pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return credsim.run(scenario(), out=tmp_path_factory.mktemp("r") / "run", population=4000, threads=1).dir


def test_success_shares_are_the_case_counts(run_dir: Path) -> None:
    f = ar.figures(run_dir)
    con = credsim.connect(run_dir)
    for label, false in (("false_record", 1), ("true_record", 0)):
        k, n = con.execute("SELECT count(*) FILTER (WHERE upheld = 1), count(*) FROM cases "
                           "WHERE decided >= 0 AND false_record = ?", [false]).fetchone() or (0, 0)
        got = f["appeal_success"]["court"][label]["all"]
        assert (got["upheld"], got["decided"]) == (k, n) and n > 0
        assert got["lo"] <= got["rate"] <= got["hi"]
        by = f["appeal_success"]["court"][label]["hukou"]
        assert sum(v["decided"] for v in by.values()) == n


def test_exit_curves_count_the_exits_of_their_route(run_dir: Path) -> None:
    f = ar.figures(run_dir)
    con = credsim.connect(run_dir)
    for route, fig in f["exit_time"]["defaulters"].items():
        total = con.execute("SELECT sum(value) FROM metrics WHERE metric = ? AND dimension = 'all'",
                            [nm.exit_route("defaulters", route)]).fetchone()
        assert total is not None and fig["all"]["events"] == total[0]
    assert not math.isnan(f["exit_time"]["defaulters"]["compliance"]["all"]["median_days"])
    assert f["wrongful_days_before_correction"]["n"] > 0 and f["backlog"]["court"]["max"] > 0
    corr = RED["appeals"]["court"]["correction_days"]
    n, total = con.execute("SELECT count(*), sum(decided + ? - (rid >> 32)) FROM cases WHERE upheld = 1 AND "
                           "false_record = 1 AND decided + ? < ?", [corr, corr, DAYS]).fetchone() or (0, 0)
    ff = f["time_to_redress"]["false_record_from_filing"]
    assert ff["n"] == n > 0 and ff["sum"] == total


def test_wrongful_days_are_paired_differences(tmp_path: Path) -> None:
    res = ar.what_if(scenario(), tmp_path, replicates=2, population=2000, days=40, threads=1)
    assert res["seeds"] == [7, 8]
    for s_i, s in enumerate(res["seeds"]):
        run, nf = tmp_path / "runs" / f"as_is-run-s{s}", tmp_path / "runs" / f"as_is-no_false-s{s}"
        a, b = ar.days_listed(run), ar.days_listed(nf)
        want = sum(a.get(c, 0.0) - b.get(c, 0.0) for c in set(a) | set(b))
        assert res["figures"]["as_is"]["wrongful_days"]["per_seed"][s_i] == want
    for key in ("prior_notice", "enforced_deadline", "double_capacity"):
        row = res["figures"][key]["wrongful_days"]
        base = res["figures"]["as_is"]["wrongful_days"]["per_seed"]
        assert row["change_vs_as_is"]["per_seed"] == [x - y for x, y in zip(row["per_seed"], base, strict=True)]
    assert (tmp_path / ar.WHAT_IF_FILE).exists()


def test_what_if_needs_a_redress_section() -> None:
    with pytest.raises(ValueError, match="no redress section"):
        ar.variant(credsim.load_scenario("city-points"), "prior_notice")


def test_redress_command_as_typed_what_if_then_a_run(tmp_path: Path) -> None:
    """``credsim redress FILE -k 2`` prints progress per run and the what-if table; ``credsim redress RUN``
    prints the run's figures; a scenario without redress is a clear error."""
    f = tmp_path / "scen.yaml"
    f.write_text(yaml.safe_dump(tiny(redress=copy.deepcopy(RED), sensors__courts__false_rate=0.002)))
    res = typed("redress", str(f), "-k", "2", "-n", "2000", "-d", "40", "--out", str(tmp_path / "w"),
                "--threads", "1", cwd=tmp_path)
    assert res.rc == 0 and not res.traceback, res.out
    text = " ".join(res.out.split())
    assert "double_capacity run, seed 8" in text and "what-if of redress rules" in text
    assert "prior notice" in text and "enforced deadline" in text and "Warning: 2 seed(s)" in text
    shown = typed("redress", str(tmp_path / "w" / "runs" / "as_is-run-s7"), cwd=tmp_path)
    assert shown.rc == 0 and "Appeal success" in shown.out and "Time to exit by route" in shown.out, shown.out
    bad = typed("redress", "city-points", "-k", "1", "-n", "500", "-d", "5", "--out", str(tmp_path / "x"),
                cwd=tmp_path)
    assert bad.clean_error and "no redress section" in bad.out, bad.out
