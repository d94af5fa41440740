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


FORBIDDEN_IMPORTS = {
    # network clients and platform connectors: credsim never talks to a real platform
    "requests", "httpx", "aiohttp", "urllib.request", "http.client", "socket", "ftplib", "smtplib", "paramiko",
    "tweepy", "praw", "selenium",
    # face, voice and text classifiers: modelled as rates with an error profile, never run
    "cv2", "face_recognition", "dlib", "deepface", "torch", "tensorflow", "keras", "transformers", "whisper",
    "speech_recognition",
}
FORBIDDEN_FIELDS = {"path", "file", "files", "url", "uri", "csv", "import", "database", "dsn", "endpoint",
                    "api_key", "token", "password", "data", "people", "persons", "records_file"}


def test_no_importer_connector_or_classifier_in_the_package() -> None:
    """The synthetic-only rule, as far as code can check it: no network client, no classifier library."""
    import ast

    src = Path(credsim.__file__).parent
    found = []
    for py in src.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for m in mods:
                if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_IMPORTS):
                    found.append(f"{py.relative_to(src)}: {m}")
    assert not found


def test_scenarios_cannot_point_at_external_data() -> None:
    """No scenario field names a file, URL or data source; the only file reference is `extends` (same folder)."""
    names: set[str] = set()

    def walk(x: object) -> None:
        if isinstance(x, dict):
            names.update(x.get("properties", {}).keys())
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(credsim.Scenario.model_json_schema())
    assert "population" in names and not names & FORBIDDEN_FIELDS


def test_safe_connect_serves_only_the_runs_own_files(tmp_path: Path) -> None:
    import duckdb

    runs = tmp_path / "runs"
    credsim.run(tiny(), out=runs / "r1", days=5)
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    con = security.safe_connect(runs, "r1")
    try:
        assert con.execute("SELECT count(*) FROM citizens").fetchone() == (2000,)
        assert con.execute("SELECT count(DISTINCT day) FROM daily").fetchone() == (5,)
        attacks = [f"SELECT * FROM read_csv('{secret}')", "SELECT * FROM read_text('/etc/passwd')",
                   f"SELECT * FROM read_parquet('{runs}/r1/../../secret.csv')", f"ATTACH '{tmp_path}/x.db'",
                   f"COPY (SELECT 1) TO '{runs}/r1/pwn.csv'", f"COPY citizens TO '{runs}/r1/citizens.parquet'",
                   "SET enable_external_access=true", "SET allowed_paths=['/']", "INSTALL httpfs", "LOAD httpfs",
                   f"SELECT * FROM glob('{runs}/*')", "SELECT * FROM read_csv('https://example.org/x.csv')"]
        for q in attacks:
            with pytest.raises(duckdb.Error):
                con.execute(q).fetchall()
            REFUSED[0] += 1
    finally:
        con.close()
    assert not (runs / "r1" / "pwn.csv").exists()
    with pytest.raises(PathRefused):
        security.safe_connect(runs, "../runs/r1")


def test_traversal_report() -> None:
    """Not a check of its own: prints how many traversal attempts the tests above refused."""
    print(f"\ntraversal attempts refused: {REFUSED[0]}")
