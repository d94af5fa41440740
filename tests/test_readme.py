"""Every shell command in the README and the tutorial, run as a person types it.

The commands are read from the ```bash blocks of the documents in ``DOCUMENTS``, in the order
written, and run one by one with bash in a pseudo-terminal (so progress bars draw) in one
temporary directory, so that later commands find what earlier ones wrote. A command that exits
non-zero fails its test with the command and everything it printed. New commands added to the
documents are picked up without changing this file; one that needs a file nobody creates gets
a visible entry in ``FIXTURES``.

What is changed from the text, and why (the same rules for every command):

- ``.venv/bin/credsim`` runs the ``credsim`` of the environment under test (the development
  venv, and again a fresh core-only install).
- **Small sizes**, so the whole harness takes minutes: the values of ``-n``/``--population``,
  ``-d``/``--days``, ``-k``/``--replicates`` and ``--checkpoint-every`` are capped at ``SMALL``;
  ``run`` without ``-n`` or ``-d`` gets them at the cap, ``audit`` without ``-n`` gets ``-n``
  (an audit is capped lower, ``CAPS_BY_COMMAND``: 2,000 citizens);
  ``calibrate`` (each evaluation simulates 11 years) gets ``-n 2000``.
- ``calibrate`` may exit 1 ("outside the tolerance"): the targets files' tolerances are set for
  their own population (500,000), and at the cap sampling noise alone exceeds them. Exit 2 (an
  error) or a traceback still fails.
- The temporary directory links the repository's ``LINKED`` folders, so that paths written
  relative to the repository root (``src/credsim/scenario/targets/...``) resolve.
- Optional arguments written in brackets (``[--ray-address HOST:PORT]``) are left out.
- ``credsim dashboard`` gets a free ``--port`` (the default 8050 may be taken on a shared
  machine); it is started, asked for its page once on 127.0.0.1 and stopped.
- Commands listed in ``SKIPPED`` are reported as skipped with their reason, never silently.

Two environments share one directory, in this order: a fresh core-only venv made as the README's
``scripts/setup core`` makes one, ``pip install -c constraints.txt -e .`` (so it needs PyPI or a pip
cache; editable, so it loads the kernels numba has already compiled for this checkout instead of
compiling them all again for a copy: about two minutes of this harness), or the venv named by
``$CREDSIM_CORE_VENV``, runs every command that needs no extra; then the development venv (every
extra installed) runs the commands that need one (``EXTRA_ONLY``), on what the core commands
wrote. Each command thus runs once, in the smallest install that should support it, which keeps
the harness within CI's time.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.terminal import TermResult, run_in_terminal

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "tutorial.md")

SMALL = {"-n": 5000, "--population": 5000, "-d": 40, "--days": 40, "-k": 3, "--replicates": 3,
         "--checkpoint-every": 10}
# an audit is a year of 7 runs per replicate (the system and its counterfactuals): smaller still
CAPS_BY_COMMAND = {"audit": {"-n": 2000, "--population": 2000}}
# caps added when absent; an audit keeps its scenario's days, so that its year has wrongful cases to explain
SIZED = {"run": ("-n", "-d"), "audit": ("-n",)}
LONG = {"-n": "--population", "-d": "--days"}
LINKED = ("src", "docs", "examples")
ADDED = {"calibrate": ["-n", "2000"]}  # each evaluation simulates 11 years

SKIPPED = {
    "--shards": "four Ray workers starting and loading the compiled kernels take about 70 s on the 2-core CI "
                "machine; more shards than CPUs on Ray is tests/distributed/test_ray_cluster.py, a sharded run "
                "typed in a terminal is tests/distributed/test_sharded_resume.py",
    "scripts/run": "installs into .venv, the environment this test runs in; the core install it makes is "
                   "tested by test_core_install_runs_the_readme",
    "scripts/test": "runs the whole test suite, this harness included",
    "--out fitted.yaml": "a fit is tens of 11-year simulations (SciPy's finite differences are not counted "
                         "by --max-evals); the same command with --check runs here, and tests/test_calibrate.py "
                         "fits a small targets file",
}
# Commands (by subcommand or option) that need an extra; the core-only install skips them.
EXTRA_ONLY = {"dashboard": "dashboard", "sensitivity": "sensitivity", "--ray": "ray", "--shards": "ray"}
# Commands whose output must show a progress bar (a run, day by day).
DRAWS_BAR = ("run", "resume")
# Exit codes that are a result, not a failure, at the harness's small sizes (see the module docstring).
ACCEPTED_EXIT = {"calibrate": (0, 1)}
# Commands that fail today for a reason being fixed elsewhere: expected to fail (strictly, so
# that the entry must go once the fix lands).
KNOWN_FAILING: dict[str, str] = {}

SMALL_SWEEP = """\
base: {population.size: 3000, run.days: 30}
parameters:
  jaywalk_points: {path: "scoring.points.rules[traffic.jaywalk]", values: [-2, -10]}
design: grid
replicates: 1
baseline: true
"""
SMALL_SENSITIVITY = """\
base: {population.size: 2000, run.days: 20}
parameters:
  jaywalk_points: {path: "scoring.points.rules[traffic.jaywalk]", range: [-10, -1]}
  camera_detection: {path: "sensors.traffic_cameras.detection", range: [0.2, 0.8]}
method: morris
samples: 2
outputs: [wrongful_rate]
"""
SMALL_SCENARIO = """\
# the README's "my-scenario.yaml": city-points at a small size
extends: city-points
name: my-scenario
population: {size: 3000}
run: {days: 30}
"""

# Files the documents use but do not create: (path, how the harness makes it). A fixture runs
# just before the first command that names its path, if the path does not exist yet.
FIXTURES: list[tuple[str, str]] = [
    ("my-scenario.yaml", f"cat > my-scenario.yaml <<'EOF'\n{SMALL_SCENARIO}EOF"),
    ("sweep.yaml", f"cat > sweep.yaml <<'EOF'\n{SMALL_SWEEP}EOF"),
    ("sens.yaml", f"cat > sens.yaml <<'EOF'\n{SMALL_SENSITIVITY}EOF"),
    # report --against: the no-system run of runs/demo (same size and seed as the README's demo run)
    ("runs/demo-base", "credsim run baseline -n 5000 -d 40 --seed 3 --out runs/demo-base -q"),
    ("runs/a", "cp -r runs/demo runs/a"),
    ("runs/b", "cp -r runs/demo-base runs/b"),
]


@dataclass(frozen=True)
class Command:
    """One shell command of a document: as written, and as the harness runs it."""

    doc: str
    line: int
    written: str
    argv: list[str]

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def subcommand(self) -> str:
        words = [w for w in self.argv[1:] if not w.startswith("-")]
        return words[0] if self.argv and self.argv[0] == "credsim" and words else ""

    def skip_reason(self) -> str | None:
        for key, why in SKIPPED.items():
            if key in self.argv or (self.argv and self.argv[0] == key) or (" " in key and key in self.shell):
                return why
        return None

    def extra(self) -> str | None:
        for key, extra in EXTRA_ONLY.items():
            if key == self.subcommand or key in self.argv:
                return extra
        return None

    @property
    def shell(self) -> str:
        """What runs: a credsim command as rewritten by the rules, anything else as written."""
        return shlex.join(self.argv) if self.argv[0] == "credsim" else self.written


HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")


def bash_blocks(text: str) -> Iterator[tuple[int, str]]:
    """(line number, command) of every command inside a ```bash block.

    Continuation lines are joined; a here-document (``cat > f <<'EOF'`` ... ``EOF``) is one
    command with its body.
    """
    inside, pending, start, until = False, "", 0, ""
    for no, line in enumerate(text.splitlines(), 1):
        if until:
            pending += "\n" + line
            if line.strip() == until:
                yield start, pending
                pending, until = "", ""
            continue
        if line.strip().startswith("```"):
            inside = line.strip() == "```bash"
            continue
        if not inside:
            continue
        if not pending:
            start = no
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        heredoc = HEREDOC.search(line)
        if heredoc and not line.lstrip().startswith("#"):
            pending, until = pending + line, heredoc.group(1)
            continue
        yield start, pending + line
        pending = ""


def to_argv(line: str) -> list[str]:
    """The words of a command line: comments dropped, ``[optional args]`` left out, sizes capped.

    Only ``credsim`` commands are rewritten; any other command runs as written (its words are
    returned for matching skips and fixtures only).
    """
    if "\n" in line:  # a here-document: runs as written
        return line.split("\n", 1)[0].split()
    line = re.sub(r"\s\[[^\]]*\]", "", line)
    words = shlex.split(line, comments=True)
    if words and words[0] == ".venv/bin/credsim":
        words[0] = "credsim"
    if not words or words[0] != "credsim":
        return words
    out: list[str] = []
    sub0 = next((w for w in words[1:] if not w.startswith("-")), "")
    caps = {**SMALL, **CAPS_BY_COMMAND.get(sub0, {})}
    i = 0
    while i < len(words):
        w = words[i]
        if w in caps and i + 1 < len(words) and words[i + 1].isdigit():
            out += [w, str(min(int(words[i + 1]), caps[w]))]
            i += 2
            continue
        out.append(w)
        i += 1
    sub = next((w for w in out[1:] if not w.startswith("-")), "")
    for opt in SIZED.get(sub, ()):
        if opt not in out and LONG[opt] not in out:
            out += [opt, str(caps[opt])]
    out += ADDED.get(sub, [])
    return out


def commands() -> list[Command]:
    found = []
    for doc in DOCUMENTS:
        if not doc.exists():
            continue
        for no, line in bash_blocks(doc.read_text(encoding="utf-8")):
            argv = to_argv(line)
            if argv:
                found.append(Command(doc.relative_to(ROOT).as_posix(), no, line.strip(), argv))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Workspace:
    """One temporary directory per environment, shared by the commands in document order."""

    dir: Path
    env: dict[str, str]
    core_only: bool

    def prepare(self, cmd: Command) -> None:
        for path, make in FIXTURES:
            if path in cmd.argv and not (self.dir / path).exists():
                res = run_in_terminal(make, cwd=self.dir, env=self.env, timeout=300)
                assert res.returncode == 0, f"fixture for {path} failed:\n{res.describe()}"

    def run(self, cmd: Command) -> TermResult:
        self.prepare(cmd)
        if cmd.subcommand == "dashboard":
            return self.serve(cmd)
        return run_in_terminal(cmd.shell, cwd=self.dir, env=self.env, timeout=600)

    def serve(self, cmd: Command) -> TermResult:
        """Start the server, fetch its page once from 127.0.0.1, stop it."""
        argv = list(cmd.argv)
        if "--port" in argv:
            del argv[argv.index("--port"):argv.index("--port") + 2]
        port = free_port()
        argv += ["--port", str(port)]
        log = self.dir / f"dashboard-{port}.log"
        t0 = time.monotonic()
        with open(log, "wb") as fh:
            proc = subprocess.Popen(argv, cwd=self.dir, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            status, deadline = 0, time.monotonic() + 120
            try:
                while time.monotonic() < deadline and proc.poll() is None:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                            status = resp.status
                            break
                    except OSError:
                        time.sleep(0.5)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGINT)
                    try:
                        proc.wait(timeout=20)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
        text = log.read_text(errors="replace") + f"\nGET http://127.0.0.1:{port}/ -> {status or 'no answer'}"
        return TermResult(shlex.join(argv), 0 if status == 200 else 1, text, time.monotonic() - t0)


def environment(bin_dir: Path, pythonpath: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    # the project's local Ray settings (tests/distributed/conftest.py)
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_DISABLE_DOCKER_CPU_WARNING="1", RAY_AUTH_MODE="disabled")
    return env


COMMANDS = commands()


def params() -> list[object]:
    """One test per command; a known failure is a strict xfail, so it cannot pass unnoticed."""
    out: list[object] = []
    for c in COMMANDS:
        why = KNOWN_FAILING.get(c.subcommand)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one directory both environments work in, in document order (core first)."""
    return workdir(tmp_path_factory, "readme")


@pytest.fixture(scope="module")
def dev_workspace(shared_dir: Path) -> Workspace:
    bin_dir = Path(sys.executable).parent
    return Workspace(shared_dir, environment(bin_dir, os.environ.get("PYTHONPATH")), core_only=False)


def workdir(factory: pytest.TempPathFactory, name: str) -> Path:
    d = factory.mktemp(name)
    for folder in LINKED:
        (d / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return d


def check(ws: Workspace, cmd: Command) -> None:
    why = cmd.skip_reason()
    if why:
        pytest.skip(f"{cmd.written!r}: {why}")
    if ws.core_only and cmd.extra():
        pytest.skip(f"{cmd.written!r} needs the {cmd.extra()!r} extra (run with the extras below)")
    if not ws.core_only and not cmd.extra():
        pytest.skip(f"{cmd.written!r} needs no extra: it ran in the core-only install")
    res = ws.run(cmd)
    ok = ACCEPTED_EXIT.get(cmd.subcommand, (0,))
    assert res.returncode in ok, f"{cmd.id}: `{cmd.written}` failed\n{res.describe()}"
    assert "Traceback" not in res.text, res.describe()
    if cmd.subcommand in DRAWS_BAR and "-q" not in cmd.argv and "--quiet" not in cmd.argv:
        assert res.drew_bar, f"{cmd.id}: no progress bar drawn\n{res.describe()}"


def test_documents_have_commands() -> None:
    assert len(COMMANDS) >= 20, [c.written for c in COMMANDS]
    assert all(c.argv for c in COMMANDS)


def test_size_rules() -> None:
    assert to_argv(".venv/bin/credsim run city-points -n 20000 -d 180 --out runs/x  # why") == \
        ["credsim", "run", "city-points", "-n", "5000", "-d", "40", "--out", "runs/x"]
    assert to_argv("credsim audit x -k 5") == ["credsim", "audit", "x", "-k", "3", "-n", "2000"]
    assert to_argv("credsim audit x -n 100000") == ["credsim", "audit", "x", "-n", "2000"]
    assert to_argv("credsim run x") == ["credsim", "run", "x", "-n", "5000", "-d", "40"]
    assert to_argv("credsim run c --shards 4 --ray [--ray-address HOST:PORT] [--checkpoint-every 10]") == \
        ["credsim", "run", "c", "--shards", "4", "--ray", "-n", "5000", "-d", "40"]


def make_core_venv(where: Path) -> Path:
    """A fresh core-only venv in ``where``, made by the README's own ``scripts/setup core`` (``CREDSIM_VENV`` puts
    it there instead of ``.venv``): the core install, no extras (a wheel's contents are checked by
    tests/test_install.py)."""
    env = {**os.environ, "CREDSIM_VENV": str(where), "PYTHON": sys.executable}
    env.pop("CREDSIM_EXTRAS", None)
    out = subprocess.run(["bash", str(ROOT / "scripts" / "setup"), "core"], env=env, capture_output=True, text=True,
                         timeout=1800, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return where / "bin"


CoreCheck = Callable[[Command], None]


@pytest.fixture(scope="module")
def core_check(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> CoreCheck:
    given = os.environ.get("CREDSIM_CORE_VENV")
    bin_dir = Path(given) / "bin" if given else make_core_venv(tmp_path_factory.mktemp("core-venv") / "venv")
    probe = subprocess.run([str(bin_dir / "python"), "-c", "import dash"], capture_output=True, check=False)
    assert probe.returncode != 0, f"{bin_dir} is not a core-only install: dash imports"
    ws = Workspace(shared_dir, environment(bin_dir, None), core_only=True)
    return lambda cmd: check(ws, cmd)


@pytest.mark.parametrize("cmd", params())
def test_core_install_runs_the_readme(core_check: CoreCheck, cmd: Command) -> None:
    core_check(cmd)


@pytest.mark.parametrize("cmd", params())
def test_readme_command(dev_workspace: Workspace, cmd: Command) -> None:
    """After the core install's pass (above): the commands that need an extra, with every extra installed."""
    check(dev_workspace, cmd)
