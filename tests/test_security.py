"""Path traversal, symlink escapes, upload sizes and bind addresses (credsim.security).

The traversal list is built from payloads (dot-dot in every spelling: plain, backslash,
percent-encoded once and twice, overlong UTF-8, Unicode look-alikes, NUL, absolute and
UNC paths, home and variable expansion) combined with prefixes and suffixes; every one
must be refused, and none may resolve to anything outside the runs folder.
"""

from __future__ import annotations

import io
import itertools
import json
import os
from pathlib import Path

import pytest

import credsim
from credsim import security
from credsim.security import BindRefused, PathRefused, UploadRefused
from tests.conftest import tiny

PAYLOADS = [
    "..", "../", "../..", "../../etc/passwd", "../secret", "..\\", "..\\..\\windows\\win.ini", "..%2f", "%2e%2e",
    "%2e%2e%2f", "%2e%2e/", ".%2e", "%2e.", "%252e%252e%252f", "..%252f", "%c0%ae%c0%ae/", "%c0%af", "..%c0%af",
    "..%5c", "%5c..%5c", "....//", "...", "..;/", ".", "./", "/etc/passwd", "//etc/passwd", "/", "\\\\server\\share",
    "C:\\Windows", "C:/Windows", "file:///etc/passwd", "~", "~root", "$HOME", "${HOME}", "%HOME%", "run\x00",
    "\x00", "run\x00/../../etc", "run%00", "run\n", "run\r\n..", "\u2025", "\u2024\u2024/", "\uff0e\uff0e\uff0f",
    "..\uff0f", "\u2215etc", "..\u2215", "\u00ad..", ".\u200b.", "run/../..", "run/./manifest.json", "run//x",
    "run/", "/run", ".hidden", ".git", "run/.git", " ", "run ", "a" * 300, "/".join(["a"] * 20), "outside-link",
    "outside-link/manifest.json", "loop", "chain", "runs-parent-link",
]
PREFIXES = ["", "run/", "ok-run/"]
SUFFIXES = ["", "/", "/manifest.json"]


def _attempts() -> list[str]:
    out = []
    for pre, pay, suf in itertools.product(PREFIXES, PAYLOADS, SUFFIXES):
        name = pre + pay + suf
        if name not in ("run/", "ok-run/"):  # trailing slash alone is handled below
            out.append(name)
    return list(dict.fromkeys(out))


ATTEMPTS = _attempts()
REFUSED: list[int] = [0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """runs/ with a real run, a nested run, and symlinks leading out of it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    (outside / "secret").write_text("secret")
    runs = tmp_path / "runs"
    for name in ("ok-run", "group/seed1", "run"):
        d = runs / name
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({"status": "complete"}))
        (d / "metrics.parquet").write_bytes(b"PAR1")
    (runs / "outside-link").symlink_to(outside)
    (runs / "loop").symlink_to(runs / "loop")
    (runs / "chain").symlink_to(runs / "outside-link")
    (runs / "runs-parent-link").symlink_to(tmp_path)
    (runs / "ok-run" / "traces.parquet").symlink_to(outside / "secret")  # a file escaping by symlink
    (runs / "run" / "events.parquet").symlink_to(runs / "ok-run" / "metrics.parquet")  # into another run
    (runs / "not-a-run").mkdir()
    return runs


def test_every_traversal_attempt_is_refused(root: Path) -> None:
    assert len(ATTEMPTS) >= 500
    escaped = []
    for name in ATTEMPTS:
        try:
            got = security.resolve_run_dir(root, name)
        except PathRefused:
            REFUSED[0] += 1
            continue
        if root.resolve() not in got.parents or name not in ("run", "ok-run"):
            escaped.append((name, got))
    assert not escaped


def test_traversal_through_file_names_is_refused(root: Path) -> None:
    names = ["../manifest.json", "/etc/passwd", "manifest.json/../../x", "..", "", "manifest.json\x00",
             "traces.parquet", "METRICS.PARQUET", "metrics.parquet ", "%2e%2e/manifest.json", None, 7]
    for f in names:
        with pytest.raises(PathRefused):
            security.resolve_run_file(root, "ok-run", f)  # traces.parquet is a symlink to a secret outside
        REFUSED[0] += 1
    for run in ATTEMPTS[:60]:
        with pytest.raises(PathRefused):
            security.resolve_run_file(root, run, "manifest.json")
        REFUSED[0] += 1


def test_good_names_resolve_inside(root: Path) -> None:
    base = root.resolve()
    assert security.resolve_run_dir(root, "ok-run") == base / "ok-run"
    assert security.resolve_run_dir(root, "group/seed1") == base / "group" / "seed1"
    assert security.resolve_run_file(root, "ok-run", "manifest.json") == base / "ok-run" / "manifest.json"
    with pytest.raises(PathRefused, match="outside its run"):  # even into another run: each run serves its own
        security.resolve_run_file(root, "run", "events.parquet")
    with pytest.raises(PathRefused, match="not a run"):
        security.resolve_run_dir(root, "not-a-run")
    with pytest.raises(PathRefused, match="no run"):
        security.resolve_run_dir(root, "missing")
    assert security.resolve_run_dir(root, "new-run", must_exist=False) == base / "new-run"
    with pytest.raises(PathRefused):
        security.resolve_run_dir(root, "outside-link/new", must_exist=False)
    REFUSED[0] += 1


def test_non_text_names_are_refused(root: Path) -> None:
    for name in (None, b"ok-run", 3, ["ok-run"], Path("ok-run")):
        with pytest.raises(PathRefused):
            security.resolve_run_dir(root, name)
        REFUSED[0] += 1


def test_traversal_report() -> None:
    """Not a check of its own: prints how many traversal attempts the tests above refused."""
    print(f"\ntraversal attempts refused: {REFUSED[0]}")


def test_upload_size_limit() -> None:
    limit = security.MAX_UPLOAD_BYTES
    security.check_upload_size(limit)
    for size in (limit + 1, 10**12, -1):
        with pytest.raises(UploadRefused):
            security.check_upload_size(size)
    with pytest.raises(UploadRefused, match="limited"):
        security.read_upload(io.BytesIO(b"x" * (limit + 10)))
    with pytest.raises(UploadRefused):  # a lying declared length is checked before reading anything
        security.read_upload(io.BytesIO(b""), declared=limit + 1)
    assert security.read_upload(io.BytesIO(b"name: x\n"), declared=8) == b"name: x\n"


def test_uploaded_scenarios_are_validated_in_isolation(tmp_path: Path) -> None:
    import yaml

    ok = yaml.safe_dump(tiny()).encode()
    assert security.load_uploaded_scenario(ok).name == "tiny"
    assert security.load_uploaded_scenario(b"extends: baseline\nname: up\n").name == "up"
    (tmp_path / "private.yaml").write_text(yaml.safe_dump(tiny()))
    for bad in (b"extends: ../private.yaml\n", b"extends: /etc/passwd.yaml\n", b"name: !!python/name:os.system\n",
                b"\xff\xfe not utf-8", ok * 200):
        with pytest.raises((credsim.ScenarioError, UploadRefused)):
            security.load_uploaded_scenario(bad)


def test_servers_bind_to_loopback_by_default() -> None:
    assert security.DEFAULT_HOST == "127.0.0.1"
    assert security.check_bind("localhost") == "127.0.0.1"
    assert security.check_bind("") == "127.0.0.1"  # "" would mean every interface
    assert security.check_bind("::1") == "::1"
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        with pytest.raises(BindRefused):
            security.check_bind(host)
    assert security.check_bind("0.0.0.0", allow_remote=True) == "0.0.0.0"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_swapped_after_check_still_cannot_escape(root: Path) -> None:
    """The resolved path is returned: a server opens what was checked, not the name again."""
    got = security.resolve_run_dir(root, "run")
    assert got.is_absolute() and ".." not in got.parts and not got.is_symlink()
