"""The package's shape holds: no import cycle, no module reaching into another's private names.

The layers themselves (each imports only those below it) are import-linter's contract in
pyproject.toml, run by ``make lint``; docs/architecture.md explains them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

import ppdistill

SRC = Path(ppdistill.__file__).parent


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's algorithm over the module graph: the groups of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.find_modules_directly_imported_by(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            groups.append(group)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycles():
    graph = grimp.build_graph("ppdistill")
    cycles = [sorted(g) for g in strongly_connected(graph) if len(g) > 1]
    assert not cycles, f"modules that import each other: {cycles}"


def test_a_cycle_would_be_found():
    # the check above, on a graph that has one
    graph = grimp.ImportGraph()
    for a, b in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=a, imported=b)
    assert [g for g in strongly_connected(graph) if len(g) > 1] == [{"p.a", "p.b", "p.c"}]


def private_imports(root: Path) -> list[str]:
    """``from ppdistill.x import _name`` in a module other than x."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ppdistill"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root.parent)}: {node.module}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_name():
    assert private_imports(SRC) == []


def test_a_private_import_would_be_found(tmp_path):
    package = tmp_path / "ppdistill"
    package.mkdir()
    (package / "a.py").write_text("from ppdistill.b import _helper, public\n")
    assert private_imports(package) == ["ppdistill/a.py: ppdistill.b._helper"]
