"""A directed acyclic graph of resource addresses: build, find cycles, order, render.

Purely data-manipulative: no I/O. An edge ``a -> b`` means *a depends on b*
(b must exist before a is created; a must be gone before b is deleted).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Graph:
    """Nodes in a stable order and, per node, the nodes it depends on."""

    nodes: tuple[str, ...]
    deps: Mapping[str, tuple[str, ...]]

    @classmethod
    def build(cls, edges: Mapping[str, Iterable[str]]) -> Graph:
        """Nodes are the keys of ``edges``; dependencies outside the keys are dropped."""
        nodes = tuple(edges)
        known = set(nodes)
        deps = {n: tuple(sorted({d for d in edges[n] if d in known})) for n in nodes}
        return cls(nodes=nodes, deps=deps)

    def dependants(self) -> dict[str, tuple[str, ...]]:
        """The reverse edges: for each node, the nodes that depend on it."""
        out: dict[str, list[str]] = {n: [] for n in self.nodes}
        for n in self.nodes:
            for d in self.deps[n]:
                out[d].append(n)
        return {n: tuple(v) for n, v in out.items()}

    def cycles(self) -> list[tuple[str, ...]]:
        """Each elementary cycle found by a depth-first walk, once, as a closed path."""
        found: list[tuple[str, ...]] = []
        seen_sets: set[frozenset[str]] = set()
        colour: dict[str, int] = {}
        stack: list[str] = []
        index: dict[str, int] = {}

        def visit(start: str) -> None:
            # iterative DFS to stay clear of the recursion limit on long chains
            work: list[tuple[str, int]] = [(start, 0)]
            colour[start] = 1
            index[start] = len(stack)
            stack.append(start)
            while work:
                node, i = work[-1]
                deps = self.deps[node]
                if i < len(deps):
                    work[-1] = (node, i + 1)
                    nxt = deps[i]
                    state = colour.get(nxt, 0)
                    if state == 0:
                        colour[nxt] = 1
                        index[nxt] = len(stack)
                        stack.append(nxt)
                        work.append((nxt, 0))
                    elif state == 1:
                        cycle = (*stack[index[nxt] :], nxt)
                        key = frozenset(cycle)
                        if key not in seen_sets:
                            seen_sets.add(key)
                            found.append(cycle)
                else:
                    work.pop()
                    colour[node] = 2
                    stack.pop()
                    index.pop(node, None)

        for n in self.nodes:
            if colour.get(n, 0) == 0:
                visit(n)
        return found

    def order(self) -> tuple[str, ...]:
        """Dependencies before dependants (Kahn), ties kept in node order. Assumes no cycle."""
        remaining = {n: len(self.deps[n]) for n in self.nodes}
        rev = self.dependants()
        position = {n: i for i, n in enumerate(self.nodes)}
        ready = [(position[n], n) for n in self.nodes if remaining[n] == 0]
        heapq.heapify(ready)
        out: list[str] = []
        while ready:
            _, n = heapq.heappop(ready)
            out.append(n)
            for m in rev[n]:
                remaining[m] -= 1
                if remaining[m] == 0:
                    heapq.heappush(ready, (position[m], m))
        return tuple(out)

    def to_dot(self) -> str:
        lines = ["digraph reconciler {", "  rankdir=LR;"]
        lines += [f'  "{n}";' for n in self.nodes]
        lines += [f'  "{d}" -> "{n}";' for n in self.nodes for d in self.deps[n]]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_mermaid(self) -> str:
        ids = {n: f"n{i}" for i, n in enumerate(self.nodes)}
        lines = ["graph LR"]
        lines += [f'  {ids[n]}["{n}"]' for n in self.nodes]
        lines += [f"  {ids[d]} --> {ids[n]}" for n in self.nodes for d in self.deps[n]]
        return "\n".join(lines) + "\n"
