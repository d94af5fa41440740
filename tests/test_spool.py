"""The event log kept on disk as the days go: the same files, nothing held, nothing left behind.

Why: the log grows with every day of a run while everything else a run holds is the size of its
population; a run (``credsim.run``, ``resume``) therefore spools its log to an anonymous file and
holds at most about a row group of it. These tests spill every 20 rows, so a small run spills
dozens of times, and check that the written ``events.parquet`` is the same bytes as a log held in
memory, through checkpoints and resumption too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import credsim
from credsim import eventlog, resumable
from credsim.api import resume
from credsim.distributed.run import Layout
from credsim.engine import simulate
from credsim.partitions import write_events
from credsim.resumable import RunStopped
from credsim.spool import Spool, repeated

SMALL = {"population.size": 3_000, "run.days": 120}
MARK = 20  # rows held before a spill in these tests (a run spills at 2^17)


def test_parts_come_back_in_order_with_their_types_and_repeated_columns(tmp_path: Path) -> None:
    parts = [
        {"a": np.arange(5, dtype=np.int32), "b": repeated(np.array([7], np.int8), 5),
         "c": np.linspace(0, 1, 5, dtype=np.float32)},
        {"a": np.arange(3, dtype=np.int64) - 9, "b": np.array([1, 2, 3], np.int16),
         "c": repeated(np.array([np.nan]), 3), "d": np.array([True, False, True])},
        {"a": np.zeros(1, np.int32), "b": np.ones(1, np.int8), "c": np.zeros(1, np.float32)},
    ]
    spool = Spool(tmp_path)
    for p in parts:
        spool.append(p)
    assert os.listdir(tmp_path) == []  # anonymous: no name in the folder
    assert (spool.parts, spool.rows) == (3, 9)
    for _twice in range(2):
        back = list(spool.read())
        assert len(back) == 3
        for got, want in zip(back, parts, strict=True):
            assert list(got) == list(want)
            for name in want:
                assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
                assert np.array_equal(got[name], want[name], equal_nan=True)
                assert (got[name].strides == (0,)) == (want[name].strides == (0,) and want[name].shape[0] > 1)
    spool.clear()
    assert (spool.parts, spool.rows, list(spool.read())) == (0, 0, [])
    spool.close()


@pytest.fixture
def spill_often(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spill every MARK rows; the list records the rows held at each spill."""
    monkeypatch.setattr(eventlog, "SPILL_ROWS", MARK)
    held: list[int] = []
    spill = eventlog.EventLog._spill

    def counted(self: eventlog.EventLog) -> None:
        held.append(self.held())
        spill(self)

    monkeypatch.setattr(eventlog.EventLog, "_spill", counted)
    return held


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int]:
    """``events.parquet`` of the run with its log held in memory throughout, and the most rows of one day."""
    res = simulate(credsim.load_scenario("integrated", SMALL))
    days = res.events.to_arrow().column("day").to_numpy()
    where = tmp_path_factory.mktemp("held")
    write_events(res.events, where, "events.parquet")
    return (where / "events.parquet").read_bytes(), int(np.bincount(days).max())


def test_a_run_spools_its_log_and_writes_the_same_file(tmp_path: Path, spill_often: list[int],
                                                       in_memory: tuple[bytes, int]) -> None:
    whole, busiest = in_memory
    seen: list[list[str]] = []
    credsim.run("integrated", overrides=SMALL, out=tmp_path / "runs" / "a",
                on_day=lambda day, days: seen.append(sorted(os.listdir(tmp_path / "runs"))))
    assert len(spill_often) >= 10 and MARK <= max(spill_often) < MARK + busiest  # at most a day above the mark
    assert seen and all(names == [".a.lock"] for names in seen)  # the run's claim; the spool has no name
    assert (tmp_path / "runs" / "a" / "events.parquet").read_bytes() == whole
    assert sorted(os.listdir(tmp_path / "runs")) == ["a"]  # nothing left beside the run


def test_checkpoints_and_resumption_keep_every_spooled_row(tmp_path: Path, spill_often: list[int],
                                                           in_memory: tuple[bytes, int]) -> None:
    out = tmp_path / "durable"
    with pytest.raises(RunStopped):
        credsim.run("integrated", overrides=SMALL, out=out, checkpoint_every=7, max_days=61)
    assert spill_often  # spilled before the checkpoints, which take the spooled rows back
    with pytest.raises(RunStopped):
        resume(out, max_days=30)
    resume(out)
    assert (out / "events.parquet").read_bytes() == in_memory[0]
    assert not any(n.startswith(".credsim-spool") for n in os.listdir(out))



def test_shards_spool_their_logs_through_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     spill_often: list[int]) -> None:
    """Each shard keeps its log on disk as a single process does, through its own checkpoints and a resumption
    (two local shards): its ``events`` part is the bytes of a shard that never spilled."""
    scen = credsim.load_scenario("integrated", SMALL)
    out = tmp_path / "spooled"
    with pytest.raises(RunStopped):
        resumable.execute(scen, out, limits=resumable.Limits(checkpoint_every=9, max_days=70), layout=Layout(2))
    resumable.resume(out)
    assert len(spill_often) >= 10
    monkeypatch.setattr(eventlog, "SPILL_ROWS", 1 << 40)
    held = resumable.execute(scen, tmp_path / "held", layout=Layout(2))
    parts = sorted(p.name for p in (out / "events").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet"]
    for name in parts:
        assert (out / "events" / name).read_bytes() == (held / "events" / name).read_bytes(), name
    assert not any(n.startswith(".credsim-spool") for n in os.listdir(out))
