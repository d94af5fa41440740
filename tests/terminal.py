"""Run a command as a person types it: in a pseudo-terminal, so progress bars and colours draw.

Command-line features are tested through this rather than with captured pipes, because the
behaviour a user sees (rich's live progress bars, prompts, colour) only happens on a terminal,
and bugs there (a bar with no total) never show up in ``-q`` runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]|\r")
# What rich draws for a bar: the bar glyphs, or our "day d/D" column.
BAR = re.compile(r"━|╸|╺|day \d+/\d+")


@dataclass(frozen=True)
class TermResult:
    """A finished terminal session: exit code, what was drawn (raw) and the same as plain text."""

    command: str
    returncode: int
    raw: str
    seconds: float

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw)

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
    """Run ``command`` with bash in a pseudo-terminal of ``columns`` columns; kill its group on timeout."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(columns), "LINES": "40",
                **(env or {})}
    full_env.pop("NO_COLOR", None)
    t0 = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=full_env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    timed_out = False
    try:
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([master], [], [], min(left, 1.0))
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if not timed_out:
            try:
                proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait(timeout=30)
        os.close(master)
    raw = b"".join(chunks).decode("utf-8", errors="replace")
    if timed_out:
        raw += f"\n[killed after the {timeout:.0f} s timeout]"
        rc = -9
    return TermResult(command, rc, raw, time.monotonic() - t0)
