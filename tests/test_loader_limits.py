"""Hostile scenario files within hard resource caps, and the memory guard's view of traces.

The named bombs are the ones found by trying: a 140 KB file whose one 100,000-character key
is repeated 20,000 times by an alias took 2.1 GB to validate; many long keys under a
repeated alias blow up the key paths kept for error messages; a 5000-digit number made
Python's int() raise a ValueError through the loader. Each must be refused with a
ScenarioError naming the limit, using far less than 512 MB (tracemalloc's peak of Python
allocations). The Hypothesis fuzz runs in a child process whose address space is capped
at 512 MB above what its imports use, with a 10 s timer per case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

import credsim
from credsim.memory import TRACE_ROW_BYTES, MemoryRefused, check_memory, estimate_memory, trace_bytes
from credsim.scenario.load import MAX_KEY_CHARS, ScenarioError
from tests.fuzzing import KEY_BOMB, PATH_BOMB

ROOT = Path(__file__).resolve().parents[1]
CAP_MB = 512
CASE_SECONDS = 10.0


def _refused(tmp_path: Path, text: str) -> tuple[ScenarioError, float, int]:
    """The error, the seconds it took (untraced: tracemalloc slows PyYAML tenfold) and the peak of Python
    allocations while refusing it (traced, a second time)."""
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError) as info:
        credsim.load_scenario(path)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    try:
        with pytest.raises(ScenarioError):
            credsim.load_scenario(path)
        return info.value, seconds, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_long_key_repeated_by_an_alias_is_refused_cheaply(tmp_path: Path) -> None:
    assert len(KEY_BOMB) < 300_000
    err, seconds, peak = _refused(tmp_path, "name: x\n" + KEY_BOMB)
    assert f"keys of at most {MAX_KEY_CHARS} characters (one has 100000)" in str(err)
    assert "bomb.yaml:2" in str(err)  # refused where the key is written, while parsing
    assert seconds < 2 and peak < 64 * 2**20, (seconds, peak)


def test_key_paths_under_a_repeated_alias_are_budgeted(tmp_path: Path) -> None:
    err, seconds, peak = _refused(tmp_path, "name: x\n" + PATH_BOMB)
    assert "key paths add up to more than" in str(err)
    assert seconds < CASE_SECONDS and peak < CAP_MB * 2**20, (seconds, peak)


@pytest.mark.parametrize("where", ["run.days", "population.size", "run.seed"])
def test_a_5000_digit_number_is_a_clean_error(tmp_path: Path, where: str) -> None:
    section, key = where.split(".")
    path = tmp_path / "big.yaml"
    path.write_text(f"extends: city-points\n{section}:\n  {key}: {'9' * 5000}\n")
    with pytest.raises(ScenarioError) as info:
        credsim.load_scenario(path)
    assert info.value.paths == [where] and "at most 4300 digits" in str(info.value)
    assert len(str(info.value)) < 400  # the number is shortened in the message


def test_memory_estimate_counts_the_traced_sample() -> None:
    """Trace rows: two score rows per traced citizen and day plus about three per event; --set run.trace=100000
    on city-points must now be estimated far above what it used to be (437 MB) and refused on a small machine."""
    small = credsim.load_scenario("city-points", {"run.trace": 0})
    big = credsim.load_scenario("city-points", {"run.trace": 100_000})
    assert trace_bytes(small) == 0
    rows_floor = 100_000 * big.run.days * 2  # the score rows alone
    assert trace_bytes(big) >= rows_floor * TRACE_ROW_BYTES
    assert estimate_memory(big).total - estimate_memory(small).total == trace_bytes(big)
    with pytest.raises(MemoryRefused, match="traces"):
        check_memory(big, max_memory_gb=6)


def _capped(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "tests.fuzz_capped", "--mem-mb", str(CAP_MB), *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)


def test_the_memory_cap_bites() -> None:
    """The harness itself: allocating more than the cap in the capped process fails."""
    proc = _capped("--self-check")
    assert proc.returncode == 0 and json.loads(proc.stdout.strip().splitlines()[-1]) == {"capped": True}


def test_capped_fuzz_of_the_loader() -> None:
    """150 derandomised Hypothesis cases (mutated scenarios, bombs, tags, deep nesting, junk) in a process
    that cannot take more than 512 MB beyond its imports; each case under 10 s."""
    proc = _capped("--examples", "150", "--seconds", str(CASE_SECONDS))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    print("\ncapped loader fuzz:", summary)
    assert summary["cases"] >= 150 and summary["other"] == 0
    assert summary["slowest_s"] < CASE_SECONDS


def test_a_large_file_of_wrong_values_is_answered_within_the_time_cap(tmp_path: Path) -> None:
    """95,000 wrong list items (380 KB, 190,000 nodes: near the node limit) give 95,000 schema errors: the answer
    comes within 10 s and lists the first 500 problems, then says how many more there are."""
    text = "extends: city-points\nsensors:\n  traffic_cameras:\n    observes: [" + ",".join(["[1]"] * 95_000) + "]\n"
    err, seconds, _peak = _refused(tmp_path, text)
    assert seconds < CASE_SECONDS, seconds
    assert len(err.problems) == 501 and "94,500 more like these are not shown" in str(err)
    assert err.problems[0].path == "sensors.traffic_cameras.observes[0]" and err.problems[0].line == 4
