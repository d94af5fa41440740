"""Checkpoints and resume: killed, interrupted or budget-limited runs finish byte-identical.

The kill tests run the real command line in a subprocess and SIGKILL it at chosen moments
(when the checkpoint of day k appears, while a checkpoint is being written, while the
final outputs are being written), then resume; the Parquet outputs must equal, byte for
byte, those of one uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import credsim
from credsim import checkpoint, engine, resumable, store
from credsim.resumable import RunStopped

N, DAYS = 20_000, 60
OUTPUTS = ("metrics.parquet", "citizens.parquet", "traces.parquet", "events.parquet")
KILLS: list[str] = []  # kill points survived, reported by test_kill_report


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "credsim.cli", *args]


def _run_args(out: Path, *extra: str) -> list[str]:
    return _cli("run", "city-points", "-n", str(N), "-d", str(DAYS), "--out", str(out), "-q", *extra)


def _same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        if (a / name).exists() or (b / name).exists():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _status(run_dir: Path) -> str:
    return str(json.loads((run_dir / "manifest.json").read_text())["status"])


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uninterrupted run through the command line, without checkpoints."""
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(_run_args(out), check=True, capture_output=True, timeout=300)
    assert _status(out) == "complete"
    return out


def _kill_when(proc: subprocess.Popen[bytes], ready: Any, what: str, timeout: float = 120.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` is true; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            KILLS.append(what)
            return
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"the run ended (rc {proc.returncode}) before the kill point '{what}': {err}")
        time.sleep(0.0005)
    proc.kill()
    pytest.fail(f"kill point '{what}' not reached in {timeout} s")


def _has_checkpoint(run_dir: Path, day: int) -> Any:
    return lambda: (run_dir / "checkpoint" / f"day-{day:06d}.npz").exists()


def _writing_checkpoint(run_dir: Path, after: int) -> Any:
    d = run_dir / "checkpoint"

    def ready() -> bool:
        cks = checkpoint.list_checkpoints(run_dir)
        return bool(cks) and cks[0].day >= after and any(p.name.startswith(".day-") for p in d.iterdir())
    return ready


def _writing_final(run_dir: Path) -> Any:
    return lambda: any(p.name.startswith(("..final", ".final")) for p in run_dir.iterdir())


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_at_checkpoints_while_writing_and_while_finishing(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    proc = _spawn(_run_args(out, "--checkpoint-every", "2"))
    _kill_when(proc, _has_checkpoint(out, 6), "checkpoint of day 6 appeared")
    assert _status(out) == "running"  # SIGKILL cannot update the manifest; resume does not care
    steps = [(_has_checkpoint(out, 18), "checkpoint of day 18 appeared"),
             (_has_checkpoint(out, 30), "checkpoint of day 30 appeared"),
             (_writing_checkpoint(out, 40), "while writing a checkpoint after day 40"),
             (_writing_final(out), "while writing the final outputs")]
    for ready, what in steps:
        _kill_when(_spawn(_cli("resume", str(out), "-q")), ready, what)
        assert _status(out) == "running"
        with pytest.raises(store.RunIncomplete):
            store.connect(out)
    subprocess.run(_cli("resume", str(out), "-q"), check=True, capture_output=True, timeout=300)
    assert _status(out) == "complete"
    assert not (out / "checkpoint").exists() and not (out / ".final").exists()
    _same_outputs(reference, out)


def test_sigkill_at_random_days(tmp_path: Path, reference: Path) -> None:
    days = sorted(random.Random(6).sample(range(1, DAYS - 12), 3))
    out = tmp_path / "run"
    proc = _spawn(_run_args(out, "--checkpoint-every", "1"))
    for i, k in enumerate(days):
        if i:
            proc = _spawn(_cli("resume", str(out), "-q"))
        _kill_when(proc, _has_checkpoint(out, k), f"checkpoint of day {k} appeared (random)")
    subprocess.run(_cli("resume", str(out), "-q"), check=True, capture_output=True, timeout=300)
    _same_outputs(reference, out)


def test_kill_report() -> None:
    """Not a check of its own: prints how many kill points the tests above survived."""
    print(f"\nkill points survived: {len(KILLS)}: " + "; ".join(KILLS))


def test_ctrl_c_stops_with_a_message_and_resumes(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(_run_args(out, "--checkpoint-every", "4"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not _has_checkpoint(out, 8)() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert b"Ctrl-C" in err and b"credsim resume" in err
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "interrupted" and "Ctrl-C" in man["reason"] and man["resume"].startswith("credsim resume")
    assert checkpoint.list_checkpoints(out)[0].day == man["checkpoint"]["day"] >= 8
    subprocess.run(_cli("resume", str(out), "-q"), check=True, capture_output=True, timeout=300)
    _same_outputs(reference, out)


# ---- in-process: limits, plain-run Ctrl-C, atomic final write, damaged and hostile checkpoints ----

SMALL = {"population.size": 3000, "run.days": 40}


@pytest.fixture(scope="module")
def small_ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "ref"
    credsim.run("city-points", overrides=SMALL, out=out)
    return out


def test_max_days_stops_and_resumes_identically(tmp_path: Path, small_ref: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RunStopped) as info:
        credsim.run("city-points", overrides=SMALL, out=out, max_days=7)
    assert info.value.done == 7 and info.value.resumable and not info.value.by_signal
    man = store.read_manifest(out)
    assert man["status"] == "interrupted" and "--max-days" in man["reason"]
    with pytest.raises(RunStopped):
        credsim.api.resume(out, max_days=20)
    assert checkpoint.list_checkpoints(out)[0].day == 27
    run = credsim.api.resume(out)
    assert run.manifest["status"] == "complete" and run.manifest["sessions"] == 3
    _same_outputs(small_ref, out)
    assert credsim.api.resume(out).dir == out  # resuming a complete run changes nothing


def test_time_budget_stops_after_a_day(tmp_path: Path, small_ref: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RunStopped) as info:
        credsim.run("city-points", overrides=SMALL, out=out, time_budget=1e-6)
    assert info.value.done == 1 and "--time-budget" in store.read_manifest(out)["reason"]
    credsim.api.resume(out)
    _same_outputs(small_ref, out)


def test_ctrl_c_in_a_plain_run_writes_a_checkpoint(tmp_path: Path, small_ref: Path) -> None:
    out = tmp_path / "run"

    def press_ctrl_c(day: int, _days: int) -> None:
        if day == 11:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(RunStopped) as info:
        credsim.run("city-points", overrides=SMALL, out=out, on_day=press_ctrl_c)
    assert info.value.by_signal and info.value.done == 12 and "credsim resume" in str(info.value)
    assert store.read_manifest(out)["status"] == "interrupted"
    credsim.api.resume(out)
    _same_outputs(small_ref, out)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_second_ctrl_c_aborts_and_the_run_still_resumes(tmp_path: Path, small_ref: Path) -> None:
    out = tmp_path / "run"

    def press_twice(day: int, _days: int) -> None:
        if day == 9:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        credsim.run("city-points", overrides=SMALL, out=out, on_day=press_twice, checkpoint_every=4)
    man = store.read_manifest(out)
    assert man["status"] == "interrupted" and "aborted" in man["reason"] and man["checkpoint"]["day"] == 8
    credsim.api.resume(out)
    _same_outputs(small_ref, out)


def test_crash_while_moving_final_outputs_leaves_an_incomplete_run(tmp_path: Path, small_ref: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    real = os.replace
    moved: list[str] = []

    def flaky(src: Any, dst: Any) -> None:
        if Path(src).parent.name == resumable.FINAL_DIR and Path(dst).parent == out:
            if len(moved) == 2:
                raise OSError(28, "No space left on device")
            moved.append(Path(src).name)
        real(src, dst)

    monkeypatch.setattr(resumable.os, "replace", flaky)
    with pytest.raises(OSError):
        credsim.run("city-points", overrides=SMALL, out=out, checkpoint_every=10)
    monkeypatch.setattr(resumable.os, "replace", real)
    man = store.read_manifest(out)
    assert man["status"] == "failed" and "No space left" in man["reason"] and len(moved) == 2
    with pytest.raises(store.RunIncomplete, match="not a complete run"):
        store.connect(out)
    credsim.api.resume(out)
    _same_outputs(small_ref, out)


def test_failure_inside_a_day_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    real = engine.Loop.step

    def step(self: engine.Loop, day: int) -> None:
        if day == 13:
            raise MemoryError("simulated allocation failure")
        real(self, day)

    monkeypatch.setattr(engine.Loop, "step", step)
    with pytest.raises(MemoryError):
        credsim.run("city-points", overrides=SMALL, out=out, checkpoint_every=5)
    man = store.read_manifest(out)
    assert man["status"] == "failed" and "MemoryError" in man["reason"] and man["checkpoint"]["day"] == 10
    assert man["resume"] == f"credsim resume {out}"


def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path: Path, small_ref: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RunStopped):
        credsim.run("city-points", overrides=SMALL, out=out, checkpoint_every=3, max_days=14)
    newest, previous = checkpoint.list_checkpoints(out)[:2]
    assert (newest.day, previous.day) == (14, 12)
    newest.path.write_bytes(newest.path.read_bytes()[: newest.path.stat().st_size // 3])
    credsim.api.resume(out)
    man = store.read_manifest(out)
    assert man["status"] == "complete" and "day-000014.npz" in man["warnings"][0]
    _same_outputs(small_ref, out)


def _redigest(path: Path, name: str | None = None) -> None:
    """Write the digest file a checkpoint would have if it had been saved as it is now (under ``name``)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    checkpoint.digest_path(path).write_text(f"{digest}  {name or path.name}\n")


def test_flipped_byte_in_newest_checkpoint_falls_back(tmp_path: Path, small_ref: Path) -> None:
    """One byte changed in the middle (zip CRC errors surface only when an array is read): refused by the digest,
    the previous checkpoint is used, and the result is identical."""
    out = tmp_path / "run"
    with pytest.raises(RunStopped):
        credsim.run("city-points", overrides=SMALL, out=out, checkpoint_every=3, max_days=14)
    newest = checkpoint.list_checkpoints(out)[0]
    data = bytearray(newest.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.path.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="damaged"):
        checkpoint.verify(newest.path)
    credsim.api.resume(out)
    man = store.read_manifest(out)
    assert man["status"] == "complete" and len(man["warnings"]) == 1  # day 14 skipped, day 12 used
    assert "day-000014.npz" in man["warnings"][0] and "SHA-256" in man["warnings"][0]
    _same_outputs(small_ref, out)


def test_checkpoint_renamed_to_another_day_is_refused(tmp_path: Path, small_ref: Path) -> None:
    """The newest checkpoint (day 14) renamed to day 15 with a matching digest: the day inside is checked
    against the name, so the run resumes from day 12 instead of running day 15 on day 14's state."""
    out = tmp_path / "run"
    with pytest.raises(RunStopped):
        credsim.run("city-points", overrides=SMALL, out=out, checkpoint_every=3, max_days=14)
    newest = checkpoint.list_checkpoints(out)[0]
    moved = newest.path.with_name("day-000015.npz")
    newest.path.rename(moved)
    checkpoint.digest_path(newest.path).unlink()
    _redigest(moved)
    credsim.api.resume(out)
    man = store.read_manifest(out)
    assert man["status"] == "complete" and len(man["warnings"]) == 1  # day 14 skipped, day 12 used
    assert "not the day its name says" in man["warnings"][0]
    _same_outputs(small_ref, out)


def test_checkpoint_without_digest_is_refused(tmp_path: Path) -> None:
    scen = credsim.load_scenario("city-points", SMALL)
    loop, _ = engine.prepare(scen)
    path = checkpoint.save(tmp_path, loop, 0, {})
    checkpoint.digest_path(path).unlink()
    with pytest.raises(checkpoint.CheckpointError, match="no digest"):
        checkpoint.restore(path, loop, max_bytes=2**34)


def test_hostile_checkpoint_cannot_run_code(tmp_path: Path, small_ref: Path) -> None:
    """A pickled object inside a checkpoint is refused (allow_pickle=False); the run restarts from day 0."""
    out = tmp_path / "run"
    with pytest.raises(RunStopped):
        credsim.run("city-points", overrides=SMALL, out=out, max_days=5)
    ck = checkpoint.list_checkpoints(out)[0]
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    with np.load(ck.path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["a0"] = np.array([Evil()], dtype=object)
    with open(ck.path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    _redigest(ck.path)  # an attacker can rewrite the digest too: the pickle guard must hold on its own
    credsim.api.resume(out)
    assert not marker.exists()
    man = store.read_manifest(out)
    assert man["status"] == "complete" and "pickle" in man["warnings"][0]
    _same_outputs(small_ref, out)


def test_structure_mismatch_is_refused(tmp_path: Path) -> None:
    scen = credsim.load_scenario("city-points", SMALL)
    loop, _ = engine.prepare(scen)
    loop.step(0)
    path = checkpoint.save(tmp_path, loop, 1, {})
    other, _ = engine.prepare(scen)
    other.extra_state = np.zeros(3)  # type: ignore[attr-defined]  # a newer version with more state
    with pytest.raises(checkpoint.CheckpointError, match="differ from this version"):
        checkpoint.restore(path, other, max_bytes=2**34)
    fresh, _ = engine.prepare(scen)
    with pytest.raises(checkpoint.CheckpointError, match="declares"):
        checkpoint.restore(path, fresh, max_bytes=1000)


def test_a_run_being_driven_cannot_be_resumed_twice(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RunStopped):
        credsim.run("city-points", overrides=SMALL, out=out, max_days=2)
    with resumable.run_lock(out), pytest.raises(resumable.RunBusy):
        credsim.api.resume(out)


def test_existing_output_is_refused_before_simulating(small_ref: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_a: Any, **_k: Any) -> None:
        raise AssertionError("simulated although the output exists")

    monkeypatch.setattr(engine, "prepare", never)
    with pytest.raises(FileExistsError):
        credsim.run("city-points", overrides=SMALL, out=small_ref)
    with pytest.raises(FileExistsError):
        credsim.run("city-points", overrides=SMALL, out=small_ref, checkpoint_every=5)
    assert store.read_manifest(small_ref)["status"] == "complete"


def test_sql_refuses_an_incomplete_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from credsim.cli import app

    out = tmp_path / "run"
    with pytest.raises(RunStopped):
        credsim.run("city-points", overrides=SMALL, out=out, max_days=3)
    res = CliRunner().invoke(app, ["sql", str(out), "SELECT 1"])
    assert res.exit_code == 2 and "not a complete run (status interrupted" in res.output
    assert f"credsim resume {out}" in res.output
