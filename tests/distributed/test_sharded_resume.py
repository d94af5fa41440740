"""Sharded runs stop and resume like single-process ones: --max-days, --time-budget, checkpoints,
``credsim resume`` -- and the resumed outputs are byte-identical to one uninterrupted run."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

import credsim
from credsim import resumable
from credsim.distributed.run import Layout
from tests.golden import digest
from tests.test_determinism import RICH

OUTPUTS = ("metrics.parquet", "citizens.parquet")
N, DAYS = 4096, 20


def same_bytes(a: Path, b: Path) -> None:
    """Byte-identical ``metrics.parquet``; ``citizens`` the same rows (a sharded run's parts, concatenated in
    citizen order and written as one file, give the single-process file's bytes)."""
    assert digest(a, OUTPUTS) == digest(b, OUTPUTS), f"outputs differ between {a.name} and {b.name}"


def status(run_dir: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((run_dir / "manifest.json").read_text())
    return data


def typed(*args: str, timeout: float = 300) -> tuple[int, str]:
    """Run ``credsim ARGS`` as a person types it: in a pseudo-terminal (progress drawn), all output read."""
    main, sub = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "credsim.cli", *args], stdin=sub, stdout=sub, stderr=sub,
                            env=env, close_fds=True)
    os.close(sub)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([main], [], [], timeout)
            if not ready:
                proc.kill()
                raise AssertionError(f"credsim {' '.join(args)} produced nothing for {timeout} s")
            try:
                data = os.read(main, 65536)
            except OSError:  # the terminal closed: the process has ended
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def rich() -> credsim.Scenario:
    return credsim.load_scenario("city-points", {**RICH, "population.size": N, "run.days": DAYS})


def test_api_max_days_then_resume_equals_one_single_process_run(rich: credsim.Scenario, tmp_path: Path) -> None:
    single = credsim.run(rich, out=tmp_path / "single").dir
    out = tmp_path / "sharded"
    with pytest.raises(resumable.RunStopped, match="--max-days 7 reached"):
        resumable.execute(rich, out, limits=resumable.Limits(checkpoint_every=5, max_days=7), layout=Layout(2))
    man = status(out)
    assert man["status"] == "interrupted" and man["layout"] == {"shards": 2, "ray": False, "address": None,
                                                               "num_cpus": 1.0}
    assert sorted(p.name for p in (out / "checkpoint").iterdir() if p.is_dir()) == ["shard-0", "shard-1"]
    resumable.resume(out)
    man = status(out)
    assert man["status"] == "complete" and man["sessions"] == 2 and man["sharded"]["shards"] == 2  # type: ignore[index]
    same_bytes(single, out)
    assert not (out / "checkpoint").exists(), "shard checkpoints are removed once the run is complete"


def test_cli_sharded_time_budget_and_max_days_then_resume(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    rc, text = typed("run", "city-points", "-n", str(N), "-d", str(DAYS), "--out", str(ref))
    assert rc == 0, text
    out = tmp_path / "run"
    rc, text = typed("run", "city-points", "-n", str(N), "-d", str(DAYS), "--out", str(out), "--shards", "2",
                     "--time-budget", "0.001")
    assert rc == 3, text
    assert "--time-budget 0.001 s used" in text and f"credsim resume {out}" in text
    assert status(out)["status"] == "interrupted"
    rc, text = typed("resume", str(out), "--max-days", "5")
    assert rc == 3 and "--max-days 5 reached" in text, text
    assert status(out)["resumed_from_day"] == 1 and status(out)["checkpoint"]["day"] == 6  # type: ignore[index]
    rc, text = typed("resume", str(out))
    assert rc == 0, text
    assert status(out)["status"] == "complete" and status(out)["layout"]["shards"] == 2  # type: ignore[index]
    same_bytes(ref, out)
