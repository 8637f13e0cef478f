"""infra/'s import graph, read with ast (tests/unit/test_import_cycles.py's reader): no module
reaches itself again, and components never import the stack that composes them."""

from __future__ import annotations

from tests.unit.test_import_cycles import ROOT, cycles, import_graph


def test_infra_imports_have_no_cycle() -> None:
    # Given infra/'s import graph, imports under TYPE_CHECKING and inside functions included
    graph = import_graph(ROOT / "infra")
    # Then no module reaches itself again
    assert cycles(graph) == []


def test_infra_imports_components_do_not_import_the_stacks() -> None:
    # Given infra/'s import graph
    graph = import_graph(ROOT / "infra")
    # Then no construct module (nor the grants) imports a stack module: they get what they need as props
    reaching = {
        name: sorted(t for t in targets if t.startswith("infra.stacks"))
        for name, targets in graph.items()
        if name.startswith("infra.constructs") or name == "infra.grants"
    }
    assert {name: targets for name, targets in reaching.items() if targets} == {}
