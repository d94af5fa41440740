"""Installs that do not rot: tiers, bounds and the constraints file agree with each other.

``pyproject.toml`` says what credsim needs (with upper bounds where an API is known to move);
``constraints.txt`` pins what it is tested with; ``scripts/setup`` installs with it. These
checks are static and fast, but for one: the wheel ``pip install credsim`` gets carries every
file of the package. The README harness runs the commands in a fresh core-only install.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
MOVING_APIS = ("duckdb", "numpy", "numba", "pydantic", "typer", "ray", "dash", "plotly")


def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            out[canonicalize_name(name)] = Version(version)
    return out


def requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra, items in project["optional-dependencies"].items():
        if extra != "bench":  # the benchmark comparison (Mesa) is not tested in CI
            reqs += [Requirement(r) for r in items if not r.startswith("credsim")]
    return reqs


def test_every_requirement_is_pinned_within_its_bounds() -> None:
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pinned[name]}, outside pyproject's {req.specifier}"


def test_upper_bounds_where_apis_move() -> None:
    by_name = {canonicalize_name(r.name): r for r in requirements()}
    for name in MOVING_APIS:
        assert any(s.operator in ("<", "<=", "~=", "==") for s in by_name[name].specifier), \
            f"{name} needs an upper bound in pyproject.toml"


def test_core_tier_has_what_run_audit_report_need() -> None:
    core = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert {"numpy", "numba", "duckdb", "pyarrow", "plotly", "scipy", "typer", "rich"} <= core
    assert not core & {"dash", "ray", "salib", "pytest", "playwright"}
    dev = " ".join(PYPROJECT["project"]["optional-dependencies"]["dev"])
    assert "credsim[dashboard,ray,sensitivity]" in dev


def test_this_environment_matches_the_constraints() -> None:
    """What the tests run on is what constraints.txt says was tested (refresh it after an upgrade)."""
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        try:
            have = Version(importlib.metadata.version(req.name))
        except importlib.metadata.PackageNotFoundError:
            continue
        assert have == pinned[name], f"{req.name} {have} installed, constraints.txt pins {pinned[name]}"


def test_scripts_install_the_right_tier() -> None:
    run = (ROOT / "scripts" / "run").read_text(encoding="utf-8")
    assert "scripts/setup core" in run and "setup-browser" not in run
    test = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    assert "scripts/setup dev" in test and "scripts/setup-browser" in test
    setup = (ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    assert "-c constraints.txt" in setup
    assert "apt-get" not in setup and not re.search(r"^\s*scripts/setup-browser", setup, re.M)


def test_pyproject_comments_name_no_issues() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert not re.search(r"#.*\bissue", text, re.IGNORECASE)


def test_the_wheel_carries_every_module_and_every_scenario_file(tmp_path: Path) -> None:
    # the README harness installs editable, as scripts/setup does; a user's `pip install credsim` gets this wheel
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = tmp_path.glob("credsim-*.whl")
    with zipfile.ZipFile(wheel) as z:
        packed = set(z.namelist())
    src = ROOT / "src"
    shipped = {p.relative_to(src).as_posix() for p in src.joinpath("credsim").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".yaml")}
    assert any(f.startswith("credsim/scenario/builtin/") for f in shipped)
    assert any(f.startswith("credsim/scenario/targets/") for f in shipped)
    assert shipped - packed == set()
