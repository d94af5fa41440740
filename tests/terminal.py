"""Run commands as a person types them: in a pseudo-terminal, so Rich draws its progress bars.

Why not ``CliRunner`` or pipes: the crash in ``credsim resume`` without ``-q`` happened only
when a progress bar was drawn, which Rich does only on a terminal. :func:`typed` runs
``credsim ARGS``; :func:`run_in_terminal` runs a whole shell line (the README's commands).
"""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CREDSIM = Path(sys.executable).parent / "credsim"  # the console script, as installed
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]")
BAR = re.compile(r"━|╸|╺|day \d+/\d+")  # what Rich draws for a bar, or the "day d/D" column


@dataclass
class Typed:
    """What a person saw: the exit code and everything written to the terminal (stdout and stderr)."""

    rc: int
    raw: str  # as the terminal received it, colours included
    seconds: float

    @property
    def out(self) -> str:
        """What the person read: the text without colour and cursor escapes."""
        return ANSI.sub("", self.raw)

    @property
    def progress_drawn(self) -> bool:
        return bool(BAR.search(self.out))  # drawn only on a terminal

    @property
    def traceback(self) -> bool:
        """A Python traceback or a bare exception line (``ValueError: ...``) reached the person."""
        return "Traceback" in self.out or re.search(r"(?m)^\s*[A-Za-z_.]*(Error|Exception): ", self.out) is not None

    @property
    def clean_error(self) -> bool:
        """An error a person can read: exit code 2 and no traceback."""
        return self.rc == 2 and not self.traceback


def env(**extra: str) -> dict[str, str]:
    """The environment of a typed command: this checkout's code first, a wide terminal."""
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TERM": "xterm-256color", "COLUMNS": "120",
            "LINES": "40", **extra}


def spawn(argv: list[str], cwd: Path, full_env: dict[str, str],
          columns: int = 120) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` on a new pseudo-terminal of ``columns`` columns; the process and the terminal's master side."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=full_env,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    return proc, master


def start(*args: str, cwd: Path, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``credsim ARGS`` on a new pseudo-terminal; returns the process and the terminal's master side."""
    return spawn([str(CREDSIM), *args], cwd, env(**(extra_env or {})))


def read_until(proc: subprocess.Popen[bytes], master: int, pattern: str, timeout: float) -> str:
    """Read the terminal until ``pattern`` (a regular expression) appears in what was shown; the text so far.
    Fails if the command ends or the time runs out first."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
            text = ANSI.sub("", seen.decode(errors="replace"))
            if re.search(pattern, text):
                return text
        elif proc.poll() is not None:
            break
    raise AssertionError(f"{pattern!r} never appeared:\n" + ANSI.sub("", seen.decode(errors="replace"))[-3000:])


def collect(proc: subprocess.Popen[bytes], master: int, timeout: float, t0: float | None = None) -> Typed:
    """Read the terminal until the command ends (killing it after ``timeout`` s, which fails the caller)."""
    t0 = time.monotonic() if t0 is None else t0
    chunks: list[bytes] = []
    try:
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise TimeoutError(f"{proc.args} still running after {timeout} s:\n"
                                   + b"".join(chunks).decode(errors="replace")[-3000:])
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError as exc:
                if exc.errno == errno.EIO:  # the command closed the terminal: it has ended
                    break
                raise
            if not data:
                break
            chunks.append(data)
        # wait before closing our side: closing the master first hangs up (SIGHUP) a command
        # that has closed its terminal but not yet exited, and a fast one then "fails" with -1
        rc = proc.wait(timeout=60)
    finally:
        os.close(master)
    return Typed(rc, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n"), time.monotonic() - t0)


def typed(*args: str, cwd: Path, timeout: float = 600, extra_env: dict[str, str] | None = None) -> Typed:
    """Run ``credsim ARGS`` in a pseudo-terminal and wait for it."""
    t0 = time.monotonic()
    proc, master = start(*args, cwd=cwd, extra_env=extra_env)
    return collect(proc, master, timeout, t0)


@dataclass(frozen=True)
class TermResult:
    """A finished shell line: exit code (-9 when killed at the timeout), what was drawn, and plain text."""

    command: str
    returncode: int
    raw: str
    seconds: float

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw).replace("\r", "")

    @property
    def drew_bar(self) -> bool:
        return bool(BAR.search(self.text))

    def describe(self, limit: int = 6000) -> str:
        out = self.text
        if len(out) > limit:
            out = out[: limit // 2] + "\n[...]\n" + out[-limit // 2:]
        return f"$ {self.command}\n(exit {self.returncode} after {self.seconds:.1f} s)\n{out}"


def run_in_terminal(command: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300,
                    columns: int = 120) -> TermResult:
    """Run a shell line with bash in a pseudo-terminal; kill its process group at the timeout."""
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "40", **(env or {})}
    full_env.pop("NO_COLOR", None)
    t0 = time.monotonic()
    proc, master = spawn(["bash", "-c", command], cwd, full_env, columns)
    try:
        got = collect(proc, master, timeout, t0)
    except TimeoutError as exc:
        return TermResult(command, -9, f"{exc}\n[killed after the {timeout:.0f} s timeout]", time.monotonic() - t0)
    return TermResult(command, got.rc, got.raw, got.seconds)
