"""Every example runs, and its output matches the committed golden file (SimPy style).

To refresh a golden file after an intended change:
``.venv/bin/python examples/quickstart.py > examples/golden/quickstart.txt``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_matches_golden(script: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                         check=False, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    golden = ROOT / "examples" / "golden" / f"{script.stem}.txt"
    assert out.stdout == golden.read_text()
