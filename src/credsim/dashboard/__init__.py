"""``credsim dashboard``: a local web page to explore policies without editing YAML.

Pick a scenario, move a few policy knobs, run a small synthetic population with its
paired no-system baseline, and read the audit's numbers and charts; browse and compare
run directories; explain a traced citizen; download the edited scenario and the report.

The server binds to 127.0.0.1 unless asked otherwise (:func:`credsim.security.check_bind`),
and every run name from the page or the address goes through :mod:`credsim.security`.
Needs the ``dashboard`` extra (``pip install credsim[dashboard]``: Dash and plotly).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dashboard", "create_app"]


def __getattr__(name: str) -> Any:
    """Import Dash only when the app is asked for (``credsim --help`` must work without the extra)."""
    if name in __all__:
        from credsim.dashboard import app

        return getattr(app, name)
    raise AttributeError(name)
