"""``credsim audit`` as a person types it: in a pseudo-terminal, with progress lines and headlines."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")


def run_in_pty(args: list[str], timeout: float = 600.0) -> tuple[int, str]:
    """Run ``credsim`` with a terminal on stdin/stdout/stderr; return (exit code, everything it printed)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "220", "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "credsim.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"no output for {timeout} s: {out.decode(errors='replace')[-2000:]}")
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            out += data
    finally:
        os.close(master)
    text = ANSI.sub("", out.decode(errors="replace"))
    return proc.wait(timeout=60), " ".join(text.split())  # colours off, and lines wrapped by the terminal joined


def test_audit_with_a_declared_reference_prints_harms_against_their_counterfactuals(tmp_path: Path) -> None:
    out = tmp_path / "a"
    rc, text = run_in_pty(["audit", "integrated", "-n", "3000", "-d", "60", "-k", "2", "--seed", "4",
                           "--out", str(out), "--threads", "1", "--reference", "income=q5"])
    assert rc == 0, text
    assert "replicate 2/2" in text  # progress, one line per run
    assert "integrated-no_false_records, seed 5" in text
    assert "Against the same scenario with every false-record rate 0" in text
    assert "Warning: 2 replicates" in text
    res = json.loads((out / "audit.json").read_text())
    assert res["meta"]["reference"]["income"] == "q5"
    assert all(r["reference"] == "q5" for r in res["fairness"]["single"] if r["dimension"] == "income")
    assert (out / "report.html").exists() and (out / "runs" / "no_false_records-s4" / "citizens.parquet").exists()


@pytest.mark.parametrize(("value", "message"), [
    ("income=q9", "reference.income: no group 'q9' (expected one of q1, q2, q3, q4, q5)"),
    ("wealth=q1", "reference: no dimension 'wealth'"),
    ("income", "--reference expects DIM=GROUP"),
])
def test_a_bad_reference_is_a_clear_error_before_any_run(tmp_path: Path, value: str, message: str) -> None:
    rc, text = run_in_pty(["audit", "integrated", "-n", "1000", "-d", "10", "--out", str(tmp_path / "b"),
                           "--reference", value], timeout=300)
    assert rc == 2, text
    assert message in text and "Traceback" not in text
    assert not (tmp_path / "b" / "runs").exists()
