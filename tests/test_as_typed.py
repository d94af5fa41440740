"""The failures users met, re-run as they typed them: through a pseudo-terminal, progress bars drawn, no ``-q``.

Each test is one reproduction from the field: ``credsim resume`` crashing without ``-q``;
``explain`` refusing an audit directory; tracebacks for SQL mistakes, locks and bad option
values; ``credsim sql`` able to write, read other files or trust a stranger's catalog; two
runs to one ``--out`` replacing each other; ``--overwrite`` deleting what is not an idle
run; a missing plotly; the silent first-run compile. Each must now give the right result or
a clean error (exit code 2, a sentence, no traceback).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import duckdb
import pytest

import credsim
from tests.conftest import WRONGFUL_PRONE
from tests.terminal import collect, read_until, start, typed

N, DAYS = "2000", "20"
OUTPUTS = ("metrics.parquet", "citizens.parquet", "traces.parquet", "events.parquet")


def _run(out: Path, *extra: str) -> tuple[str, ...]:
    return ("run", "city-points", "-n", N, "-d", DAYS, "--seed", "3", "--out", str(out), *extra)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("typed") / "run"
    credsim.run("city-points", population=int(N), days=int(DAYS), seed=3, out=out, threads=1)
    return out


def test_resume_without_quiet_completes_byte_identical(tmp_path: Path, small_run: Path) -> None:
    out = tmp_path / "long"
    stopped = typed(*_run(out, "--max-days", "8"), cwd=tmp_path)
    assert stopped.rc == 3 and f"credsim resume {out}" in stopped.out, stopped.out
    resumed = typed("resume", str(out), cwd=tmp_path)
    assert resumed.rc == 0 and not resumed.traceback, resumed.out
    assert resumed.progress_drawn and f"day {DAYS}/{DAYS}" in resumed.out
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (small_run / name).read_bytes(), name


def test_ctrl_c_then_the_printed_resume_command_completes_byte_identical(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) during a plain run: it stops after the day, prints ``credsim resume DIR``; that command,
    typed as printed (no -q), finishes the run with the results of one uninterrupted run."""
    ref = tmp_path / "ref"
    credsim.run("city-points", population=2000, days=120, seed=4, out=ref, threads=1)
    out = tmp_path / "cut"
    proc, master = start("run", "city-points", "-n", "2000", "-d", "120", "--seed", "4", "--out", str(out),
                         cwd=tmp_path)
    read_until(proc, master, r"day ([3-9]|\d\d)/120", timeout=300)
    proc.send_signal(signal.SIGINT)
    stopped = collect(proc, master, timeout=300)
    assert stopped.rc == 130, stopped.out
    printed = re.search(r"Resume with: (credsim resume \S+)", stopped.out.replace("\n", ""))
    assert printed is not None and printed.group(1) == f"credsim resume {out}", stopped.out
    resumed = typed(*printed.group(1).split()[1:], cwd=tmp_path)
    assert resumed.rc == 0 and resumed.progress_drawn and not resumed.traceback, resumed.out
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name


def test_explain_accepts_an_audit_directory_and_audit_says_when_no_report_was_written(tmp_path: Path) -> None:
    """Without plotly (a stand-in package that fails to import, as on a core install) the audit still writes its
    figures and says the report was not written; explain takes the audit directory itself."""
    fake = tmp_path / "no-plotly"
    (fake / "plotly").mkdir(parents=True)
    (fake / "plotly" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'plotly'\", name='plotly')\n")
    no_plotly = {"PYTHONPATH": os.pathsep.join([str(Path(credsim.__file__).parents[1]), str(fake)])}
    sets = [a for k, v in WRONGFUL_PRONE.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    audit = typed("audit", "city-points", "-n", "6000", "-d", "240", "--seed", "3", "--trace", "50",
                  "--out", str(tmp_path / "aud"), *sets, cwd=tmp_path, extra_env=no_plotly)
    assert audit.rc == 0 and not audit.traceback, audit.out
    assert "report: not written" in audit.out and not (tmp_path / "aud" / "report.html").exists()
    assert (tmp_path / "aud" / "audit.json").is_file()
    report = typed("report", str(tmp_path / "aud"), cwd=tmp_path, extra_env=no_plotly)
    assert report.clean_error and "pip install 'credsim[report]'" in report.out, report.out
    ex = typed("explain", str(tmp_path / "aud"), "--find", "wrongful", cwd=tmp_path)
    assert ex.rc == 0 and not ex.traceback, ex.out
    # the terminal wraps long paths, so compare words, not lines
    assert "is an audit directory: explaining its system run" in " ".join(ex.out.split()) and "WRONGFUL" in ex.out
    nothing = typed("explain", str(tmp_path), "--find", "wrongful", cwd=tmp_path)
    assert nothing.clean_error and "nor an audit directory" in nothing.out


@pytest.mark.parametrize("query,words", [
    ("SELECT * FROM citizen", 'Did you mean "citizens"'),
    ("COPY citizens TO 'stolen.csv'", "file system operations are disabled"),
    ("SELECT * FROM read_text('/etc/hostname')", "file system operations are disabled"),
    ("ATTACH 'results.duckdb' AS r (READ_WRITE)", "file system operations are disabled"),
    ("INSTALL httpfs", "disabled"),
    ("SET enable_external_access=true", "configuration has been locked"),
    ("SELECT * FROM 'https://example.com/x.parquet'", "file system operations are disabled"),
])
def test_sql_is_read_only_and_its_errors_are_clean(tmp_path: Path, small_run: Path, query: str, words: str) -> None:
    res = typed("sql", str(small_run), query, cwd=small_run)
    assert res.clean_error and res.out.startswith("SQL error:") and words in res.out, res.out
    assert not (small_run / "stolen.csv").exists()
    assert credsim.Run(small_run).sql("SELECT count(*) FROM citizens") == [(int(N),)]


def test_sql_ignores_a_strangers_catalog_and_locks_are_clean(tmp_path: Path, small_run: Path) -> None:
    run = tmp_path / "stranger"
    shutil.copytree(small_run, run)
    (run / "results.duckdb").unlink()
    evil = duckdb.connect(str(run / "results.duckdb"))
    evil.execute("CREATE VIEW citizens AS SELECT * FROM read_text('/etc/hostname')")
    try:  # ... and keeps it open for writing, as a running process would
        res = typed("sql", str(run), "SELECT count(*) AS n, min(citizen) AS first FROM citizens", cwd=tmp_path)
        assert res.rc == 0 and f"│ {N}" in res.out, res.out  # the run's own Parquet files, not the stranger's view
        locked = typed("sql", str(run), "SELECT 1", "--allow-writes", cwd=tmp_path)
        assert locked.clean_error and "cannot be opened for writing" in locked.out, locked.out
    finally:
        evil.close()
    wrote = typed("sql", str(run), "CREATE TABLE notes AS SELECT 42 AS answer", "--allow-writes", cwd=tmp_path)
    assert wrote.rc == 0, wrote.out
    assert typed("sql", str(run), "SELECT * FROM notes", "--allow-writes", cwd=tmp_path).out.count("42") == 1


@pytest.mark.parametrize("args,words", [
    (["--block-size", "0"], "--block-size"),
    (["--block-size", "-1"], "--block-size"),
    (["--threads", "0"], "--threads"),
    (["--threads", "-1"], "--threads"),
    (["--max-memory", "nan"], "finite number above 0"),
    (["--population", "9" * 5000], "--population"),
    (["--set", "run.seed=" + "9" * 5000], "at most 4300 digits"),
    (["--out", "/proc/x"], "cannot create"),
    (["--out", "a" * 300], "at most 255 bytes"),
    (["--out", "two\nlines"], "without control characters"),
    (["--out", "/", "--overwrite"], "new folder's name"),
], ids=["block0", "block-1", "threads0", "threads-1", "memory-nan", "int-5000", "set-int-5000", "proc", "out-300",
        "out-newline", "out-root"])
def test_bad_values_are_clean_errors(tmp_path: Path, args: list[str], words: str) -> None:
    res = typed("run", "city-points", "-n", "1000", "-d", "2", *(["--out", str(tmp_path / "r")]
                                                                  if "--out" not in args else []), *args, cwd=tmp_path)
    assert res.clean_error and words in res.out, res.out
    assert res.out.count("9" * 100) == 0  # a long number is never echoed whole
    assert not (tmp_path / "r").exists()


def test_overwrite_replaces_only_idle_runs(tmp_path: Path, small_run: Path) -> None:
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "thesis.tex").write_text("years of work")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "link").symlink_to(papers)
    for target, words in ((papers, "not a credsim run directory"), (tmp_path / "file.txt", "is a file"),
                          (tmp_path / "link", "symbolic link")):
        res = typed("run", "city-points", "-n", "1000", "-d", "2", "--out", str(target), "--overwrite", cwd=tmp_path)
        assert res.clean_error and words in res.out, res.out
    assert (papers / "thesis.tex").read_text() == "years of work" and (tmp_path / "file.txt").read_text() == "x"
    mine = tmp_path / "mine"
    shutil.copytree(small_run, mine)
    res = typed(*_run(mine, "--overwrite"), cwd=tmp_path)  # an idle run of mine: replaced
    assert res.rc == 0, res.out


def test_overwrite_refuses_a_running_durable_run(tmp_path: Path) -> None:
    out = tmp_path / "live"
    proc, master = start("run", "city-points", "-n", "5000", "-d", "2000", "--out", str(out),
                         "--checkpoint-every", "1", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 300
        while not list((out / "checkpoint").glob("day-*.npz")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list((out / "checkpoint").glob("day-*.npz")), "the durable run never checkpointed"
        res = typed(*_run(out, "--overwrite"), cwd=tmp_path)
        assert res.clean_error and ("being written by another credsim run" in res.out
                                    or "being run by another process" in res.out), res.out
        assert list((out / "checkpoint").glob("day-*.npz"))  # its live checkpoints are still there
        assert json.loads((out / "manifest.json").read_text())["status"] == "running"
    finally:
        proc.send_signal(signal.SIGINT)
        stopped = collect(proc, master, timeout=300)
    assert stopped.rc == 130, stopped.out


def test_two_plain_runs_to_one_out_never_both_succeed(tmp_path: Path) -> None:
    out = tmp_path / "same"
    procs = [start(*_run(out), cwd=tmp_path) for _ in range(2)]
    results = sorted((collect(p, m, timeout=600) for p, m in procs), key=lambda r: r.rc)
    assert [r.rc for r in results] == [0, 2], [r.out for r in results]
    loser = results[1]
    assert loser.clean_error and ("being written by another credsim run" in loser.out
                                  or f"{out} exists" in loser.out), loser.out
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_first_run_says_it_is_compiling(tmp_path: Path) -> None:
    """An empty numba cache (a first run): one line says why nothing seems to happen for a while."""
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    res = typed("run", "city-points", "-n", "200", "-d", "2", "--out", str(tmp_path / "r"), cwd=tmp_path,
                extra_env={"NUMBA_CACHE_DIR": str(cache)}, timeout=900)
    assert res.rc == 0, res.out
    assert res.out.count("compiling kernels (first run only, ~40 s") == 1
    warm = typed("run", "city-points", "-n", "200", "-d", "2", "--out", str(tmp_path / "r2"), cwd=tmp_path,
                 extra_env={"NUMBA_CACHE_DIR": str(cache)})
    assert warm.rc == 0 and "compiling kernels" not in warm.out, warm.out


def test_validate_suggests_the_key_meant(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("extends: city-points\nrun:\n  dayz: 10\nbehaviours:\n  traffic.violation:\n    kind: infraction\n"
                    "    rat: 0.01\npopulaton:\n  size: 10\n")
    res = typed("validate", str(path), cwd=tmp_path)
    assert res.clean_error, res.out
    for line, key, meant in ((3, "run.dayz", "days"), (7, "behaviours.traffic.violation.rat", "rate"),
                             (8, "populaton", "population")):
        assert f"typo.yaml:{line}: at '{key}': no such key" in res.out and f"did you mean '{meant}'" in res.out


def test_validate_lists_schema_and_cross_section_problems_together(tmp_path: Path) -> None:
    """Four planted errors -- two unknown keys (schema) and two undeclared names (cross-section) -- in one run."""
    path = tmp_path / "four.yaml"
    path.write_text("extends: city-points\nrun:\n  dayz: 10\nsensors:\n  traffic_cameras:\n"
                    "    observes: [traffic.violaton]\nsanctions:\n  court_travel_ban:\n"
                    "    when: {list: no_such_list}\npopulaton:\n  size: 10\n")
    res = typed("validate", str(path), cwd=tmp_path)
    assert res.clean_error and "(4 problem(s))" in res.out, res.out
    for where in ("four.yaml:3: at 'run.dayz'", "four.yaml:10: at 'populaton'",
                  "four.yaml:6: at 'sensors.traffic_cameras.observes[0]'",
                  "four.yaml:9: at 'sanctions.court_travel_ban.when.list'"):
        assert where in res.out
    assert "did you mean 'traffic.violation'?" in res.out
