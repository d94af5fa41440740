"""Output directories from the Python API: the claim on ``--out``, and what ``overwrite`` may replace.

The command-line versions (two processes, a running durable run) are in tests/test_as_typed.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import credsim
from credsim import outdir
from credsim.resumable import run_lock

SMALL = {"population.size": 1000, "run.days": 3}


def test_a_claim_excludes_a_second_one_and_leaves_no_lock_file(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "r"
    with outdir.claim(out) as held:
        assert held == out and (tmp_path / "runs" / ".r.lock").is_file()
        with pytest.raises(outdir.OutputBusy, match="being written by another credsim run"), outdir.claim(out):
            pass
    assert not (tmp_path / "runs" / ".r.lock").exists()
    with outdir.claim(out):  # free again
        pass


def test_api_overwrite_refuses_what_is_not_an_idle_run(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    with pytest.raises(outdir.OutputRefused, match="not a credsim run directory"):
        credsim.run("city-points", overrides=SMALL, out=notes, overwrite=True)
    assert (notes / "keep.txt").read_text() == "mine"
    with pytest.raises(FileExistsError):
        credsim.run("city-points", overrides=SMALL, out=notes)
    with pytest.raises(ValueError, match="block_size"):
        credsim.run("city-points", overrides=SMALL, out=tmp_path / "b", block_size=0)
    with pytest.raises(ValueError, match="threads"):
        credsim.run("city-points", overrides=SMALL, out=tmp_path / "t", threads=0)
    with pytest.raises(ValueError, match="max_memory"):
        credsim.run("city-points", overrides=SMALL, out=tmp_path / "m", max_memory=float("nan"))


def test_overwrite_replaces_an_idle_run_and_refuses_a_running_one(tmp_path: Path) -> None:
    out = tmp_path / "r"
    credsim.run("city-points", overrides=SMALL, out=out)
    credsim.run("city-points", overrides={**SMALL, "run.seed": 9}, out=out, overwrite=True)
    assert credsim.Run(out).manifest["seed"] == 9
    with run_lock(out), pytest.raises(outdir.OutputBusy, match="being run by another process"):
        credsim.run("city-points", overrides=SMALL, out=out, overwrite=True)
    assert credsim.Run(out).manifest["seed"] == 9


@pytest.mark.parametrize("bad,words", [("", "empty"), ("a\tb", "control characters"), ("x" * 1100, "1024"),
                                       ("a\\b", "backslashes"), (".", "new folder's name")])
def test_out_paths_that_cannot_work_are_refused(bad: str, words: str) -> None:
    with pytest.raises(outdir.OutputRefused, match=words):
        outdir.check_out_path(bad)
