"""``credsim dashboard [RUN_DIR | SCENARIO]``: the local policy explorer (needs the dashboard extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from credsim import security
from credsim.cli.common import fail, finite_positive

app = typer.Typer()


def _split_target(target: str | None, runs_root: Path | None) -> tuple[Path, str | None, str | None]:
    """(runs root, scenario to preselect, run to open) from the command line's argument."""
    root = runs_root
    if target is None:
        return (root or Path("runs")), None, None
    p = Path(target)
    if p.is_dir() and ((p / "manifest.json").is_file() or (p / "audit.json").is_file()):
        real = p.resolve()
        if root is None:
            root = real.parent
        base = root.resolve()
        if base not in real.parents:
            raise typer.BadParameter(f"{target} is not inside the runs root {root}", param_hint="RUN_DIR")
        return root, None, real.relative_to(base).as_posix()
    return (root or Path("runs")), target, None


@app.command("dashboard")
def dashboard_cmd(
    target: Annotated[str | None, typer.Argument(help="a run or audit directory to open, or a scenario "
                                                      "(built-in name or YAML file) to start from")] = None,
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535, help="port (0: any free one)")] = 8050,
    host: Annotated[str, typer.Option(help="interface to listen on")] = security.DEFAULT_HOST,
    runs_root: Annotated[Path | None, typer.Option(help="folder of run directories the page may show and "
                                                        "where its runs go (default: runs, or RUN_DIR's folder)")]
    = None,
    allow_remote: Annotated[bool, typer.Option(help="allow a non-loopback --host; the page then needs the "
                                                    "access token printed at start")] = False,
    allow_host: Annotated[list[str] | None, typer.Option(help="a further host name browsers use for this server "
                                                              "(checked against the Host header)")] = None,
    max_memory: Annotated[float | None, typer.Option(callback=finite_positive,
                                                     help="refuse runs from the page estimated above this many GiB "
                                                          "(default: the memory available)")] = None,
) -> None:
    """Start the local dashboard: explore policies, compare runs, explain citizens (Ctrl-C stops it)."""
    try:
        from werkzeug.serving import make_server

        from credsim.dashboard.app import Dashboard
    except ImportError as exc:
        typer.echo(f"the dashboard needs the 'dashboard' extra: pip install 'credsim[dashboard]' ({exc})", err=True)
        raise typer.Exit(2) from None
    from credsim.scenario.load import ScenarioError

    try:
        bind = security.check_bind(host, allow_remote)
    except security.BindRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    root, scenario, open_run = _split_target(target, runs_root)
    try:
        dash_obj = Dashboard(root, scenario=scenario, open_run=open_run, max_memory=max_memory)
    except ScenarioError as exc:
        fail(exc)
    dash_obj.runner.warm_up(dash_obj.base_scenario(dash_obj.initial_scenario))  # the first run starts warm
    guard = security.guard_for(dash_obj.app.server, bind, allow_host or [])
    token = guard.token
    server = make_server(bind, port, guard, threaded=True)
    url = f"http://{bind if ':' not in bind else f'[{bind}]'}:{server.server_port}/"
    query = ([f"token={token}"] if token else []) + ([f"run={open_run}"] if open_run else [])
    url += ("?" + "&".join(query)) if query else ""
    note = "; anyone with this address (token included) can start runs" if token else ""
    typer.echo(f"credsim dashboard on {url}  (runs root: {dash_obj.runner.root}; Ctrl-C stops it{note})", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
