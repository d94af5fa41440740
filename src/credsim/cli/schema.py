"""``credsim schema``: the scenario language as a JSON Schema (for editors) or a Markdown reference.

A thin command over :mod:`credsim.schema_doc`, which holds the generator.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from credsim.schema_doc import json_schema_text, reference_markdown


class SchemaFormat(StrEnum):
    json = "json"
    markdown = "markdown"


app = typer.Typer()


@app.command("schema")
def schema_cmd(
    format_: Annotated[SchemaFormat, typer.Option("--format", "-f", help="json (JSON Schema) or markdown")]
    = SchemaFormat.json,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write to this file instead of stdout")] = None,
) -> None:
    """Print the scenario language: a JSON Schema for editors, or the Markdown key reference."""
    text = json_schema_text() if format_ is SchemaFormat.json else reference_markdown()
    if out is None:
        sys.stdout.write(text)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"cannot write {out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {out}", err=True)
