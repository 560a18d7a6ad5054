"""One topological sort for every dependency graph (apps, jobs): waves, an order, the cycle that stops them.

A graph maps each node to the nodes it comes after; those outside the graph count as done. Ties
are broken by name, so equal graphs give equal answers. Pure functions.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from wharf.errors import BadInput

Deps = Mapping[str, Iterable[str]]


class CycleError(BadInput, ValueError):
    """The graph has a cycle: `cycle` is one (`[a, b, a]`: a after b after a), `stuck` every node
    that could not be placed, sorted. The message is `dependency cycle: a -> b -> a` unless given."""

    def __init__(self, cycle: Sequence[str], stuck: Sequence[str], message: str | None = None) -> None:
        super().__init__(message or f"dependency cycle: {' -> '.join(cycle or stuck)}")
        self.cycle, self.stuck = list(cycle), list(stuck)


def _inside(deps: Deps) -> dict[str, set[str]]:
    return {node: {d for d in wanted if d in deps} for node, wanted in deps.items()}


def _stuck(graph: Mapping[str, set[str]], placed: Iterable[str]) -> CycleError:
    done = set(placed)
    return CycleError(find_cycle(graph) or [], sorted(set(graph) - done))


def find_cycle(deps: Deps, start: str | None = None) -> list[str] | None:
    """One cycle as a path (`[a, b, a]`: a after b after a), or None; with `start`, one through
    `start`. Depth first, nodes and their dependencies in name order."""
    graph = _inside(deps)
    done: set[str] = set()
    for root in sorted(graph) if start is None else [start]:
        if root not in graph or root in done:
            continue
        path, on_path, todo = [root], {root}, [iter(sorted(graph[root]))]
        while todo:
            dep = next(todo[-1], None)
            if dep is None:
                todo.pop()
                on_path.discard(path[-1])
                done.add(path.pop())
            elif dep in on_path:
                if start is None or dep == start:
                    return path[path.index(dep):] + [dep]
            elif dep not in done:
                path.append(dep)
                on_path.add(dep)
                todo.append(iter(sorted(graph[dep])))
    return None


def levels(deps: Deps) -> list[list[str]]:
    """Waves: each node in the first wave after every wave holding one of its dependencies, sorted
    within a wave. Raises CycleError."""
    graph = _inside(deps)
    waves: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(graph):
        wave = sorted(n for n, wanted in graph.items() if n not in done and wanted <= done)
        if not wave:
            raise _stuck(graph, done)
        waves.append(wave)
        done.update(wave)
    return waves


def order(deps: Deps) -> list[str]:
    """Every node after its dependencies; of the nodes ready at each step, the first by name comes
    next (so a chain is followed before a later-named root). Raises CycleError."""
    graph = _inside(deps)
    waiting = {node: set(wanted) for node, wanted in graph.items()}
    dependents: dict[str, list[str]] = {node: [] for node in graph}
    for node, wanted in graph.items():
        for dep in wanted:
            dependents[dep].append(node)
    ready = [node for node, wanted in waiting.items() if not wanted]
    heapq.heapify(ready)
    result: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        result.append(node)
        for child in dependents[node]:
            waiting[child].discard(node)
            if not waiting[child]:
                heapq.heappush(ready, child)
    if len(result) != len(graph):
        raise _stuck(graph, result)
    return result
