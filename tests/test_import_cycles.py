"""No import cycles through the command line, the run store and the guards, function-level imports included.

Why: a cycle hidden by an import inside a function (``cli`` <-> ``cli_resume``, ``store`` <->
``security``) works until someone moves the import, and makes the modules impossible to
read one at a time. The graph is built from the source (every ``import`` statement, at any
depth), so a deferred import counts like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CHECKED = ("credsim.cli", "credsim.store", "credsim.security", "credsim.catalog", "credsim.safeio",
           "credsim.outdir", "credsim.kernels", "credsim.calibrate", "credsim.api", "credsim.resumable",
           "credsim.checkpoint", "credsim.memory", "credsim.scenario")


def _modules() -> dict[str, Path]:
    out = {}
    for py in SRC.rglob("*.py"):
        parts = list(py.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = py
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, py in mods.items():
        package = name if py.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(py.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                     else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_level_imports() -> None:
    graph = _graph()
    assert "credsim.report" in graph["credsim.cli.report"] or "credsim.report.findings" in graph["credsim.cli.report"]
    assert "credsim.audit.explain" in graph["credsim.cli.audit"]  # imported inside explain_cmd()


def test_no_cycle_through_the_cli_store_or_guards() -> None:
    bad = [c for c in _cycles(_graph()) if any(m == p or m.startswith(p + ".") for m in c for p in CHECKED)]
    assert bad == []


def test_library_modules_do_not_import_typer() -> None:
    users = sorted(m for m, py in _modules().items() if not m.startswith("credsim.cli")
                   and any(isinstance(n, ast.Import | ast.ImportFrom)
                           and any((a.name if isinstance(n, ast.Import) else (n.module or "")).split(".")[0] == "typer"
                                   for a in n.names) for n in ast.walk(ast.parse(py.read_text()))))
    assert users == []
