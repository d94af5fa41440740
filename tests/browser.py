"""Debian's Chromium driven by Playwright, launched the same way by every browser test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def chromium(sync_api: Any) -> Iterator[Any]:
    """A headless Chromium for a module-scoped fixture (``yield from chromium(sync_api)``), closed afterwards."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()
