"""The dashboard as an attacker meets it: tokens, Host and Origin, job memory, cancelling, hostile run folders.

The guard is exercised in front of the real Dash app (werkzeug's test client speaks WSGI
to it, headers as a browser or a script would send them); the runner starts real runs.
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import credsim
from credsim import security
from credsim.memory import MemoryRefused
from tests.terminal import collect, start

pytest.importorskip("dash")

from werkzeug.test import Client  # noqa: E402

from credsim.dashboard.app import Dashboard  # noqa: E402

TOKEN = "t0k3n-for-tests"


@pytest.fixture(scope="module")
def dash_app(tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    return Dashboard(tmp_path_factory.mktemp("runs"))


def _client(d: Dashboard, *, token: str | None, loopback: bool, names: tuple[str, ...] = ()) -> Client:
    guard = security.RequestGuard(d.app.server, token=token, names=security.machine_names(names),
                                  loopback_only=loopback)
    return Client(guard)


def test_remote_server_needs_its_token(dash_app: Dashboard) -> None:
    c = _client(dash_app, token=TOKEN, loopback=False)
    host = {"Host": "192.0.2.7:8050"}
    assert c.get("/", headers=host).status_code == 401
    assert c.get("/?token=wrong", headers=host).status_code == 401
    assert c.get("/_dash-layout", headers={**host, "X-Credsim-Token": "wrong"}).status_code == 401
    first = c.get(f"/?token={TOKEN}", headers=host)
    assert first.status_code == 200
    cookie = first.headers["Set-Cookie"]
    assert f"{security.TOKEN_COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert c.get("/_dash-layout", headers=host).status_code == 200  # the cookie now carries the token
    bare = _client(dash_app, token=TOKEN, loopback=False)
    assert bare.get("/_dash-layout", headers={**host, "X-Credsim-Token": TOKEN}).status_code == 200


@pytest.mark.parametrize("loopback", [True, False])
def test_dns_rebinding_host_is_refused(dash_app: Dashboard, loopback: bool) -> None:
    """A page at evil.example whose name now resolves to this server sends Host: evil.example."""
    c = _client(dash_app, token=None if loopback else TOKEN, loopback=loopback)
    q = "" if loopback else f"?token={TOKEN}"
    r = c.get("/" + q, headers={"Host": "evil.example:8050"})
    assert r.status_code == 403 and b"not a name of this server" in r.data
    assert c.get("/" + q, headers={"Host": "localhost:8050"}).status_code == 200
    assert c.get("/" + q, headers={"Host": "127.0.0.1:8050"}).status_code == 200
    assert c.get("/" + q, headers={"Host": ""}).status_code == 403


def test_loopback_server_refuses_non_loopback_addresses_and_extra_names_are_allowed(dash_app: Dashboard) -> None:
    c = _client(dash_app, token=None, loopback=True)
    assert c.get("/", headers={"Host": "192.0.2.7:8050"}).status_code == 403
    remote = _client(dash_app, token=TOKEN, loopback=False, names=("lab-server.example",))
    assert remote.get(f"/?token={TOKEN}", headers={"Host": "lab-server.example:8050"}).status_code == 200
    assert remote.get(f"/?token={TOKEN}", headers={"Host": "other.example:8050"}).status_code == 403


def test_cross_site_posts_are_refused(dash_app: Dashboard) -> None:
    c = _client(dash_app, token=None, loopback=True)
    output = next(k for k, v in dash_app.app.callback_map.items()
                  if [i["id"] for i in v["inputs"]] == ["cancel"])  # the cancel button's callback (a duplicate output)
    body = {"output": output, "outputs": {"id": "message", "property": output.split(".", 1)[1]},
            "inputs": [{"id": "cancel", "property": "n_clicks", "value": 1}],
            "state": [{"id": "job", "property": "data", "value": None}], "changedPropIds": ["cancel.n_clicks"]}
    evil = c.post("/_dash-update-component", json=body,
                  headers={"Host": "127.0.0.1:8050", "Origin": "http://evil.example"})
    assert evil.status_code == 403 and b"not from this server" in evil.data
    same = c.post("/_dash-update-component", json=body,
                  headers={"Host": "127.0.0.1:8050", "Origin": "http://127.0.0.1:8050"})
    assert same.status_code == 200 and b"no run in progress" in same.data


def test_a_job_that_cannot_fit_is_refused_before_it_starts(tmp_path: Path) -> None:
    d = Dashboard(tmp_path / "runs", max_memory=0.5)
    scen, changes = d.build("city-points", {}, 200_000, 365, 1)
    with pytest.raises(MemoryRefused, match="refusing to start"):
        d.runner.start(scen, changes)
    assert d.runner.jobs == {} and list((tmp_path / "runs").iterdir()) == []


def test_a_running_job_can_be_cancelled(tmp_path: Path) -> None:
    d = Dashboard(tmp_path / "runs")
    scen, changes = d.build("city-points", {}, 2000, 3000, 1)
    job = d.runner.start(scen, changes)
    deadline = time.monotonic() + 120
    while job.done < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert d.runner.cancel(job.id) is job
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.finished and job.error == "cancelled: nothing was kept"
    assert job.done < job.total and not job.out.exists()
    assert d.runner.cancel(job.id) is None  # finished: nothing to cancel
    job2 = d.runner.start(*d.build("city-points", {}, 1000, 2, 1))  # the runner is free again
    while not job2.finished and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job2.error is None


def test_a_manifest_that_is_a_device_does_not_hang_the_listing(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    (root / "zero").mkdir(parents=True)
    os.symlink("/dev/zero", root / "zero" / "manifest.json")
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "manifest.json")
    d = Dashboard(root)
    t0 = time.perf_counter()
    labels = {r["name"]: r["label"] for r in d.runner.list_runs()}
    assert time.perf_counter() - t0 < 5
    assert labels["zero"].endswith("(unreadable)") and labels["fifo"].endswith("(unreadable)")
    with pytest.raises(ValueError, match="regular file"):
        credsim.store.read_manifest(root / "zero")


def test_remote_dashboard_prints_its_token_and_demands_it(tmp_path: Path) -> None:
    """``credsim dashboard --host 0.0.0.0 --allow-remote`` as typed: the address it prints carries the token; a
    request without it is refused, with it served."""
    proc, master = start("dashboard", "--host", "0.0.0.0", "--allow-remote", "--port", "0", "--runs-root",
                         str(tmp_path / "runs"), cwd=tmp_path)
    seen = b""
    try:
        deadline = time.monotonic() + 120
        match = None
        while match is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
            match = re.search(rb"http://0\.0\.0\.0:(\d+)/\?token=([A-Za-z0-9_-]+)", seen)
        assert match is not None, seen.decode(errors="replace")
        port, token = int(match.group(1)), match.group(2).decode()
        base = f"http://127.0.0.1:{port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base, timeout=30)  # noqa: S310 - a local test server
        assert refused.value.code == 401
        with urllib.request.urlopen(f"{base}?token={token}", timeout=30) as ok:  # noqa: S310
            assert ok.status == 200 and "credsim_token=" in ok.headers.get("Set-Cookie", "")
    finally:
        proc.send_signal(signal.SIGINT)
        collect(proc, master, timeout=60)


@pytest.mark.parametrize("field", ["population", "days", "seed"])
def test_a_5000_digit_number_in_the_form_is_a_short_message(dash_app: Dashboard, field: str) -> None:
    values = {"population": 2000, "days": 20, "seed": 1, field: "9" * 5000}
    with pytest.raises(credsim.ScenarioError) as info:
        dash_app.build("city-points", {}, values["population"], values["days"], values["seed"])
    text = str(info.value)
    assert "(5000 characters)" in text and "9" * 100 not in text and len(text) < 400
