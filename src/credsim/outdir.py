"""Output directories: names that work, one writer at a time, and ``--overwrite`` only onto runs.

Why: a run directory is replaced as a whole at the end of a plain run, so without care two
runs to the same ``--out`` both succeed and one silently replaces the other, and
``--overwrite`` would delete whatever the path names (a folder of papers, ``/``) or a run
another process is still writing. The rules:

- :func:`check_out_path`: a path without control characters (a newline in a folder name
  breaks every script that lists runs) or backslashes (DuckDB reads them as separators),
  components of at most 255 bytes, at most 1024 characters in all, and a parent folder
  that can be created;
- :func:`claim`: every run holds an exclusive lock on ``.NAME.lock`` next to its output
  directory (``flock``, released by the kernel when the process dies) from start to end,
  so a second run to the same ``--out`` stops at once with a clear message; the file is
  removed when the run ends (a killed run leaves it, unlocked and harmless);
- :func:`check_replaceable`: an existing path is replaced only with ``overwrite``, only if
  it is a credsim run directory (a real folder, not a symlink, with a run's
  ``manifest.json``) and only if no process is driving it (its ``checkpoint/lock``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from credsim.safeio import MANIFEST_BYTES, FileRefused, read_json_object

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None  # type: ignore[assignment]

MAX_PATH_CHARS = 1024
MAX_COMPONENT_BYTES = 255
RUN_STATUSES = frozenset({"running", "complete", "interrupted", "failed"})


class OutputRefused(ValueError):
    """An output path credsim will not write to (or replace); the message says why."""


class OutputBusy(OutputRefused):
    """Another process is writing to the same output directory right now."""


def check_out_path(out: str | Path) -> Path:
    """``out`` as a Path if a run directory can be written there; :class:`OutputRefused` naming the problem."""
    text = str(out)
    if not text:
        raise OutputRefused("--out: expected a folder path, got an empty string")
    if len(text) > MAX_PATH_CHARS:
        raise OutputRefused(f"--out: expected a path of at most {MAX_PATH_CHARS} characters (got {len(text)})")
    bad = sorted({f"{ord(c):#04x}" for c in text if ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        raise OutputRefused(f"--out {text[:80]!r}: expected a path without control characters (found {', '.join(bad)})")
    if "\\" in text:
        raise OutputRefused(f"--out {text[:80]!r}: expected a path without backslashes (DuckDB reads them as "
                            "folder separators, so the run's catalog would point elsewhere)")
    path = Path(text)
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT_BYTES:
            raise OutputRefused(f"--out: each folder name may have at most {MAX_COMPONENT_BYTES} bytes "
                                f"(one has {len(part.encode('utf-8', 'surrogateescape'))}: {part[:40]}...)")
    if path.name in ("", ".", ".."):
        raise OutputRefused(f"--out {text!r}: expected a path ending in a new folder's name")
    return path


def _parent_ready(path: Path) -> Path:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputRefused(f"--out {path}: cannot create the folder {parent} ({exc.strerror or exc})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputRefused(f"--out {path}: the folder {parent} is not writable")
    return parent


def is_locked(lock_file: Path) -> bool:
    """True if some process holds ``lock_file`` (an ``flock``) right now."""
    if fcntl is None or not lock_file.is_file():
        return False
    try:
        fd = os.open(lock_file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


def check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse to replace ``out`` unless it is absent, or ``overwrite`` is set and it is an idle credsim run."""
    if not os.path.lexists(out):
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists; choose another --out or pass --overwrite")
    if out.is_symlink():
        raise OutputRefused(f"--overwrite: {out} is a symbolic link; credsim replaces only run directories "
                            "(remove the link yourself if you mean it)")
    if not out.is_dir():
        raise OutputRefused(f"--overwrite: {out} is a file, not a run directory; credsim replaces only run "
                            "directories")
    try:
        man = read_json_object(out / "manifest.json", MANIFEST_BYTES)
    except FileRefused as exc:
        raise OutputRefused(f"--overwrite: {out} is not a credsim run directory, so it is left alone ({exc})") from None
    if man.get("status") not in RUN_STATUSES or "scenario" not in man:
        raise OutputRefused(f"--overwrite: {out}/manifest.json does not describe a credsim run, so {out} is left alone")
    if is_locked(out / "checkpoint" / "lock"):
        raise OutputBusy(f"--overwrite: {out} is being run by another process right now; stop it first")


def _lock_file(lock: Path, path: Path) -> int:
    """An open descriptor holding ``flock`` on ``lock``; :class:`OutputBusy` if another run holds it.

    The lock file is removed when a claim ends, so after locking we check that the name still
    leads to the file we locked (another run may have removed it meanwhile); if not, try again.
    """
    for _attempt in range(5):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputRefused(f"--out {path}: cannot create the lock file {lock} ({exc.strerror or exc})") from None
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputBusy(f"{path} is being written by another credsim run right now; "
                             "choose another --out or wait for it") from None
        held = os.fstat(fd)
        try:
            now = os.stat(lock)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            return fd
        os.close(fd)  # we locked a file another run has just removed: take the new one
    raise OutputBusy(f"{path}: could not take its lock (other runs keep starting on it)")


@contextmanager
def claim(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Hold ``out`` for one run: check its name, lock ``.NAME.lock`` beside it, check it may be (re)placed.

    The lock file exists only while a run holds it (removed, still locked, when the claim ends).
    """
    path = check_out_path(out)
    check_replaceable(path, overwrite)  # refuse early, before creating a lock file
    parent = _parent_ready(path)
    lock = parent / f".{path.name}.lock"
    fd = _lock_file(lock, path)
    try:
        check_replaceable(path, overwrite)  # again, now that no other credsim run can change it
        yield path
    finally:
        try:
            lock.unlink(missing_ok=True)  # while still locked: a waiting run then sees the name changed
        finally:
            os.close(fd)
