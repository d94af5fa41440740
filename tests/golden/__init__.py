"""Golden outputs: SHA-256 of the Parquet files of small runs, kept to catch unintended changes.

Why hashes and not tolerances: the engine is deterministic (counter-based random numbers,
fixed-point metric sums), so a refactoring that keeps behaviour keeps every byte. A change
that moves a hash is either a bug or an intended behaviour change; the latter is committed
by regenerating the hashes (``python -m tests.golden --write``), which prints what changed.

Cases: every built-in scenario and the toy benchmark model at 3,000 citizens x 40 days; the
"rich" city-points variant of the determinism test (association records, cut ties, a model
score on contacts), single-process and on K = 1, 2, 4 local shards at 4,096 citizens (a shard
needs at least one RNG chunk of 1,024 citizens). Sharded runs must equal the single-process
run of the same scenario, which the test checks besides the hashes.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

import credsim
from credsim import store
from credsim.arrowcols import parquet_options
from credsim.distributed import run_sharded
from tests.test_determinism import RICH

HERE = Path(__file__).parent
HASHES = HERE / "hashes.json"
TOY = HERE.parent.parent / "benchmarks" / "toy.yaml"
BUILTIN = ("baseline", "city-points", "commercial-score", "commercial-score-opt-in", "court-defaulters", "integrated",
           "welfare-risk")
SMALL = {"population.size": 3000, "run.days": 40}
SHARDED = {**RICH, "population.size": 4096, "run.days": 40}
SINGLE_FILES = ("metrics.parquet", "citizens.parquet", "traces.parquet", "events.parquet")
SHARD_FILES = ("metrics.parquet", "citizens.parquet")  # traces/events are merged in shard order


@dataclass(frozen=True)
class Case:
    """One golden run: a name, how to make it in a fresh directory, and the files it is judged by."""

    name: str
    make: Callable[[Path], Path]
    files: tuple[str, ...]


def _single(source: str | Path, overrides: dict[str, object]) -> Callable[[Path], Path]:
    def make(out: Path) -> Path:
        scen = credsim.load_scenario(source, overrides)
        return credsim.run(scen, out=out, threads=1).dir
    return make


def _sharded(k: int) -> Callable[[Path], Path]:
    def make(out: Path) -> Path:
        scen = credsim.load_scenario("city-points", SHARDED)
        return run_sharded(scen, out, k, threads=1)[0]
    return make


def cases() -> list[Case]:
    out = [Case(b, _single(b, SMALL), SINGLE_FILES) for b in BUILTIN]
    out.append(Case("toy", _single(TOY, SMALL), SINGLE_FILES))
    out.append(Case("rich", _single("city-points", SHARDED), SINGLE_FILES))
    out += [Case(f"rich-shards-{k}", _sharded(k), SHARD_FILES) for k in (1, 2, 4)]
    return out


def digest(run_dir: Path, files: tuple[str, ...]) -> dict[str, str]:
    """SHA-256 of each file; a table a sharded run wrote as parts (``citizens/part-*.parquet``) is hashed
    as the file its parts concatenate to, written as a single-process run writes it -- so a sharded
    run's hash equals the single-process run's exactly when the rows do."""
    return {f: hashlib.sha256(_bytes(run_dir, f)).hexdigest() for f in files}


def _bytes(run_dir: Path, name: str) -> bytes:
    if (run_dir / name).exists():
        return (run_dir / name).read_bytes()
    buf = io.BytesIO()
    table = store.read_table(run_dir, name)
    pq.write_table(table, buf, **parquet_options(table.schema))
    return buf.getvalue()


def compute(work: Path, only: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Run the cases (all, or those named) under ``work`` and return their hashes."""
    return {c.name: digest(c.make(work / c.name), c.files) for c in cases() if only is None or c.name in only}


def load() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(HASHES.read_text())
    return data


def changes(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]]) -> list[str]:
    """Plain lines naming every case and file whose hash differs (or is new or gone)."""
    lines = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name, {}), new.get(name, {})
        for f in sorted(set(a) | set(b)):
            if a.get(f) != b.get(f):
                state = "new" if f not in a else "gone" if f not in b else "changed"
                lines.append(f"{name}: {f} {state}")
    return lines
