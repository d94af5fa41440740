"""Golden regression: small runs of every built-in scenario, the toy model and sharded runs are
byte-identical to the committed hashes (regenerate with ``python -m tests.golden --write``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import cases, changes, digest, load

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_outputs_match_golden_hashes(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    golden = load()
    assert case.name in golden, f"no golden hashes for {case.name}: run python -m tests.golden --write"
    got = {case.name: digest(case.make(tmp_path / case.name), case.files)}
    diff = changes({case.name: golden[case.name]}, got)
    assert not diff, "outputs changed (if intended, regenerate with python -m tests.golden --write): " + "; ".join(diff)


def test_sharded_runs_equal_the_single_process_run() -> None:
    golden = load()
    for k in (1, 2, 4):
        shard = golden[f"rich-shards-{k}"]
        for f, h in shard.items():
            assert golden["rich"][f] == h, f"{f} of {k} shard(s) differs from the single-process run"
