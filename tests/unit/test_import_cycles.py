"""The stepwise package's import graph, read with ast (nothing is imported): no module reaches
itself again through its imports. Imports inside functions count too: a lazy import defers a cycle
to run time, it does not remove it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_names(package: Path) -> dict[str, Path]:
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports, at any depth of its code."""
    modules = module_names(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}"
                    targets.add(submodule if submodule in modules else node.module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each set of modules that import one another in a ring (strongly connected, more than one)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in order:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], order[nxt])
        if low[node] == order[node]:
            ring = []
            while True:
                member = stack.pop()
                ring.append(member)
                if member == node:
                    break
            if len(ring) > 1:
                found.append(sorted(ring))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return found


def test_import_cycles_finder_sees_a_ring_through_a_lazy_import() -> None:
    # Given a ring a -> b -> a beside an acyclic c -> a
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    # When searched / Then the ring is found, and only it
    assert cycles(graph) == [["a", "b"]]


def test_import_cycles_the_demo_modules_import_the_shared_module_not_the_demo() -> None:
    # Given the stepwise package's import graph
    graph = import_graph(ROOT / "stepwise")
    # Then every demo step module is imported by the demo and none imports it back
    steps = {name for name in graph if name.startswith("stepwise.demo_") and name != "stepwise.demo_shared"}
    assert steps and steps <= graph["stepwise.demo"]
    assert not [name for name in steps | {"stepwise.demo_shared"} if "stepwise.demo" in graph[name]]


def test_import_cycles_none_in_the_stepwise_package() -> None:
    # Given the stepwise package's import graph, lazy imports included
    graph = import_graph(ROOT / "stepwise")
    # Then no module reaches itself again
    assert cycles(graph) == []
