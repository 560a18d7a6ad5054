"""The dependency graph of a set of apps: missing dependencies, cycles, deploy order. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def missing(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Per app, the dependencies that are not apps of the set."""
    out = {}
    for app, wanted in deps.items():
        gone = [d for d in wanted if d not in deps]
        if gone:
            out[app] = gone
    return out


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One dependency cycle as a path (`[a, b, a]`: a after b after a), or None. Ignores missing ids."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(deps.get(node, ())):
            if dep not in deps:
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(deps):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def levels(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Deploy order as waves: each app comes in a wave after every wave holding one of its
    dependencies (dependencies outside the set are taken as satisfied). Sorted within a wave.
    Raises ValueError on a cycle."""
    depth: dict[str, int] = {}
    remaining = set(deps)
    while remaining:
        ready = sorted(a for a in remaining if all(d in depth or d not in deps for d in deps[a]))
        if not ready:
            raise ValueError(f"dependency cycle: {' -> '.join(find_cycle(deps) or sorted(remaining))}")
        for app in ready:
            depth[app] = 1 + max((depth[d] for d in deps[app] if d in depth), default=-1)
        remaining -= set(ready)
    waves: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for app in sorted(depth):
        waves[depth[app]].append(app)
    return waves


def order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Deploy order, flattened."""
    return [a for wave in levels(deps) for a in wave]
