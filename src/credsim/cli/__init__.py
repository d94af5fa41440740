"""The ``credsim`` command line: one module per command group, assembled here.

Each module under :mod:`credsim.cli` defines a Typer app with its commands; they are
merged (``add_typer`` without a name) so every command stays at the top level
(``credsim run``, ``credsim audit`` ...). Library modules never import Typer.
"""

from __future__ import annotations

import typer

from credsim.cli import audit, calibrate, dashboard, experiments, redress, report, resume, run, scenarios, schema, sql

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="credsim: simulate social-credit systems on synthetic populations.")
for _group in (run, resume, scenarios, schema, sql, calibrate, audit, redress, report, experiments, dashboard):
    app.add_typer(_group.app)


def main() -> None:
    app()
