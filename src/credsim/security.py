"""Guards for anything that serves run directories or accepts scenarios over a network.

credsim's servers (the dashboard) must use these functions rather than joining paths
themselves; ``SECURITY.md`` says so and ``tests/test_security.py`` attacks them.

- :func:`resolve_run_dir` turns a user-supplied run name into a directory *under* an
  allowed root, or refuses: only plain names (letters, digits, ``._-``, ``/`` between
  components; no component starting with a dot), so ``..``, absolute paths, backslashes,
  NUL and control bytes, percent-encoded and Unicode look-alike separators are refused
  before the file system is touched; the result is then resolved (symlinks followed) and
  must still lie inside the root, so a symlink cannot lead out.
- :func:`resolve_run_file` does the same for one of a run's own output files (an allow-list).
- :func:`read_upload` reads at most a limit from an upload stream (never trusting a
  declared length) and :func:`load_uploaded_scenario` validates it like a file -- in an
  empty private folder, so ``extends:`` can only name built-in scenarios.
- :func:`safe_connect` opens a run for SQL typed by a user: an in-memory DuckDB with the
  run's views over its own Parquet files only (a stranger's ``results.duckdb`` is never
  opened: its views could read any file), every other file access, extension loading
  and configuration change disabled.
- :func:`check_bind` keeps servers on the loopback interface unless remote access is
  asked for explicitly.
- :class:`RequestGuard` wraps a server's WSGI app: the Host header must be an IP address
  or a name this machine answers to (a DNS-rebinding page cannot reach a local server),
  a request with an ``Origin`` must come from the page's own origin (no cross-site
  posts), and a server listening beyond loopback demands the token it printed at start
  (``?token=`` once, then an HttpOnly, SameSite=Strict cookie).
"""

from __future__ import annotations

import hmac
import ipaddress
import platform
import re
import secrets
import tempfile
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import duckdb

from credsim import catalog
from credsim.scenario.load import MAX_FILE_BYTES, load_scenario
from credsim.scenario.schema import Scenario

DEFAULT_HOST = "127.0.0.1"
MAX_UPLOAD_BYTES = MAX_FILE_BYTES
MAX_NAME_CHARS = 255
MAX_DEPTH = 8
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._\-]{0,127}")
RUN_FILES = frozenset({"manifest.json", "metrics.parquet", "citizens.parquet", "traces.parquet", "events.parquet",
                       "harms.parquet", "cases.parquet", "stays.parquet",
                       "results.duckdb", "report.html", "audit.json"})


_PART = re.compile(r"part-[0-9]{5}\.parquet")  # a shard's part of a table (credsim.partitions)


class PathRefused(ValueError):
    """A user-supplied name that does not denote something inside the allowed root."""


class UploadRefused(ValueError):
    """An upload larger than the limit (or otherwise unusable)."""


class BindRefused(ValueError):
    """A server asked to listen beyond the loopback interface without saying so explicitly."""


def _check_name(name: object) -> list[str]:
    if not isinstance(name, str):
        raise PathRefused(f"a run name must be text, got {type(name).__name__}")
    if not name or len(name) > MAX_NAME_CHARS:
        raise PathRefused(f"a run name must have 1 to {MAX_NAME_CHARS} characters")
    parts = name.split("/")
    if len(parts) > MAX_DEPTH:
        raise PathRefused(f"a run name may have at most {MAX_DEPTH} components")
    for part in parts:
        if not _COMPONENT.fullmatch(part):
            raise PathRefused(f"refused run name {name[:80]!r}: each part must be letters, digits, '.', '_' or '-' "
                              "and not start with a dot (no '..', absolute paths, backslashes or encoded characters)")
    return parts


def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def resolve_run_dir(root: str | Path, name: object, *, must_exist: bool = True, require_run: bool = True) -> Path:
    """The directory ``root/name``, resolved, guaranteed to lie inside ``root``; else :class:`PathRefused`.

    ``require_run`` also demands a ``manifest.json`` (so only run directories are served).
    """
    parts = _check_name(name)
    base = Path(root).resolve(strict=True)
    target = base.joinpath(*parts)
    try:
        real = target.resolve(strict=must_exist)
    except (OSError, RuntimeError) as exc:
        raise PathRefused(f"no run named {str(name)[:80]!r}") from exc
    if not _inside(base, real) or real == base:
        raise PathRefused(f"refused run name {str(name)[:80]!r}: it leads outside the runs folder")
    if must_exist and not real.is_dir():
        raise PathRefused(f"no run named {str(name)[:80]!r}")
    if require_run and must_exist:
        manifest = real / "manifest.json"
        if not manifest.is_file() or not _inside(real, manifest.resolve()):
            raise PathRefused(f"{str(name)[:80]!r} is not a run directory")
    return real


def resolve_run_file(root: str | Path, name: object, filename: object) -> Path:
    """One of a run's own output files (see :data:`RUN_FILES`), resolved inside the run directory."""
    run = resolve_run_dir(root, name)
    if not isinstance(filename, str) or filename not in RUN_FILES:
        raise PathRefused(f"refused file {str(filename)[:80]!r}: one of {sorted(RUN_FILES)} expected")
    path = run / filename
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise PathRefused(f"{filename} does not exist in this run") from exc
    if not _inside(run, real) or not real.is_file():
        raise PathRefused(f"refused file {filename!r}: it leads outside its run directory")
    return real


def safe_connect(root: str | Path, name: object) -> duckdb.DuckDBPyConnection:
    """A locked-down DuckDB connection with the views ``metrics``, ``citizens``, ``traces``, ``events``, ``daily``
    over the named run's own Parquet files (see :mod:`credsim.catalog`); a sharded run's tables are read
    from their parts (``citizens/part-00000.parquet``, ...)."""
    files: dict[str, list[Path]] = {}
    for view, filename in catalog.VIEW_FILES.items():
        try:
            files[view] = [resolve_run_file(root, name, filename)]
        except PathRefused:
            parts = _run_parts(root, name, filename.removesuffix(".parquet"))
            if parts:
                files[view] = parts
            elif view in catalog.REQUIRED_VIEWS:  # the others (events, redress tables) only some runs have
                raise
    return catalog.locked_views(files)


def _run_parts(root: str | Path, name: object, table: str) -> list[Path]:
    """The parts ``TABLE/part-NNNNN.parquet`` of a sharded run's table, each a regular file inside its run."""
    run = resolve_run_dir(root, name)
    folder = run / table
    if table not in catalog.PART_TABLES or not folder.is_dir() or folder.is_symlink():
        return []
    out = []
    for path in sorted(folder.glob("part-*.parquet")):
        real = path.resolve()
        if _PART.fullmatch(path.name) and real.parent == folder.resolve() and _inside(run, real) and real.is_file():
            out.append(real)
    return out


def check_upload_size(size: int, limit: int = MAX_UPLOAD_BYTES) -> None:
    """Refuse a declared or measured upload size above ``limit`` bytes."""
    if not isinstance(size, int) or size < 0:
        raise UploadRefused(f"an upload size must be a whole number of bytes, got {size!r}")
    if size > limit:
        raise UploadRefused(f"scenario uploads are limited to {limit} bytes (this one has {size})")


def read_upload(stream: BinaryIO, limit: int = MAX_UPLOAD_BYTES, declared: int | None = None) -> bytes:
    """Read an upload body, refusing it as soon as it passes ``limit`` (a declared length is checked first)."""
    if declared is not None:
        check_upload_size(declared, limit)
    data = stream.read(limit + 1)
    check_upload_size(len(data), limit)
    return bytes(data)


def load_uploaded_scenario(data: bytes, limit: int = MAX_UPLOAD_BYTES) -> Scenario:
    """Validate uploaded YAML exactly like a scenario file, in an empty private folder.

    Raises :class:`UploadRefused` (size) or :class:`credsim.ScenarioError` (content).
    """
    check_upload_size(len(data), limit)
    with tempfile.TemporaryDirectory(prefix="credsim-upload-") as d:
        path = Path(d) / "upload.yaml"
        path.write_bytes(data)
        return load_scenario(path)


def check_bind(host: str, allow_remote: bool = False) -> str:
    """The host a server may bind to: loopback unless ``allow_remote`` is explicitly true."""
    if host in ("localhost", ""):
        return DEFAULT_HOST
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise BindRefused(f"refusing to serve on {host!r}: credsim servers bind to {DEFAULT_HOST} unless "
                          "remote access is requested explicitly (--allow-remote)")
    return host


TOKEN_COOKIE = "credsim_token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def new_token() -> str:
    """A fresh access token for a server listening beyond loopback (printed once, at start)."""
    return secrets.token_urlsafe(24)


def _host_name(netloc: str) -> str:
    """The host of a ``Host`` header or an origin's netloc, without port and brackets, lower case."""
    host = netloc.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def machine_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """Names a browser may use for this machine: loopback names, its host name, and ``extra`` (``--allow-host``).

    No DNS look-up (the package imports no network client): other names are given explicitly.
    """
    names = set(LOOPBACK_NAMES) | {n.strip().lower() for n in extra if n.strip()}
    if platform.node():
        names.add(platform.node().lower())
    return frozenset(names)


class RequestGuard:
    """WSGI middleware in front of a credsim server (see the module docstring).

    ``token=None`` (a loopback server) skips the token but keeps the Host and Origin checks:
    DNS rebinding and cross-site posts target exactly the servers that trust loopback.
    """

    def __init__(self, app: Callable[..., Any], *, token: str | None, names: frozenset[str],
                 loopback_only: bool) -> None:
        self.app, self.token, self.names, self.loopback_only = app, token, names, loopback_only

    def _host_ok(self, host: str) -> bool:
        if not host:
            return False
        if _is_ip(host):
            return ipaddress.ip_address(host).is_loopback or not self.loopback_only
        return host in (LOOPBACK_NAMES if self.loopback_only else self.names)

    def _token_of(self, environ: dict[str, Any]) -> tuple[str | None, bool]:
        """(token presented, whether it came in the query string)."""
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("token"):
            return query["token"][0], True
        header = environ.get("HTTP_X_CREDSIM_TOKEN")
        if header:
            return str(header), False
        cookie = SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # a malformed cookie header is no token
            return None, False
        morsel = cookie.get(TOKEN_COOKIE)
        return (morsel.value if morsel else None), False

    @staticmethod
    def _refuse(start_response: Callable[..., Any], status: str, text: str) -> list[bytes]:
        body = (text + "\n").encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")])
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host_header = str(environ.get("HTTP_HOST", ""))
        if not self._host_ok(_host_name(host_header)):
            return self._refuse(start_response, "403 Forbidden", f"refused: Host {host_header[:80]!r} is not a name "
                                "of this server (use its address, or start it with --allow-host NAME)")
        origin = environ.get("HTTP_ORIGIN")
        if origin and origin != "null":
            parts = urlsplit(str(origin))
            if parts.netloc.lower() != host_header.lower():
                return self._refuse(start_response, "403 Forbidden",
                                    f"refused: a request from the page {str(origin)[:80]!r}, not from this server")
        set_cookie = False
        if self.token is not None:
            given, in_query = self._token_of(environ)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                return self._refuse(start_response, "401 Unauthorized", "this credsim server needs its access "
                                    "token: open the address it printed when it started (with ?token=...)")
            set_cookie = in_query
        if not set_cookie:
            return self.app(environ, start_response)  # type: ignore[no-any-return]

        def with_cookie(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [*headers, ("Set-Cookie", f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/")]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.app(environ, with_cookie)  # type: ignore[no-any-return]


def guard_for(app: Callable[..., Any], bind: str, extra_names: Iterable[str] = ()) -> RequestGuard:
    """The guard a server bound to ``bind`` needs: no token on loopback, a fresh one (``guard.token``) beyond it."""
    try:
        loopback = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = bind in LOOPBACK_NAMES
    return RequestGuard(app, token=None if loopback else new_token(), names=machine_names(extra_names),
                        loopback_only=loopback)
