from __future__ import annotations

from reconciler.graph import Graph


def test_order_puts_dependencies_first_and_keeps_ties_in_node_order() -> None:
    g = Graph.build({"d.x": ["e.y", "w.a"], "w.a": [], "e.y": ["w.a"], "w.b": []})
    order = g.order()
    assert order.index("w.a") < order.index("e.y") < order.index("d.x")
    assert order == ("w.a", "e.y", "d.x", "w.b") or order == ("w.a", "w.b", "e.y", "d.x")


def test_cycles_are_reported_whole_and_once() -> None:
    g = Graph.build({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["d"], "e": []})
    cycles = g.cycles()
    assert ("a", "b", "c", "a") in cycles
    assert ("d", "d") in cycles
    assert len(cycles) == 2


def test_dependencies_outside_the_graph_are_dropped() -> None:
    g = Graph.build({"a": ["zzz"]})
    assert g.deps["a"] == ()


def test_long_chain_does_not_hit_recursion_limit() -> None:
    n = 5000
    edges = {f"n{i}": [f"n{i - 1}"] if i else [] for i in range(n)}
    g = Graph.build(edges)
    assert g.cycles() == []
    assert g.order()[0] == "n0" and g.order()[-1] == f"n{n - 1}"


def test_dot_and_mermaid_name_every_edge() -> None:
    g = Graph.build({"w.a": [], "e.b": ["w.a"]})
    assert '"w.a" -> "e.b";' in g.to_dot()
    assert "n0 --> n1" in g.to_mermaid()
