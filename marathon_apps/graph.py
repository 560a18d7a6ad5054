"""The dependency graph of a set of apps: missing dependencies, cycles, deploy order. Pure.

The sort itself is wharf's one (`wharf.toposort`); dependencies outside the set count as satisfied."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wharf.toposort import find_cycle, levels

__all__ = ["find_cycle", "levels", "missing", "order"]


def missing(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Per app, the dependencies that are not apps of the set."""
    out = {}
    for app, wanted in deps.items():
        gone = [d for d in wanted if d not in deps]
        if gone:
            out[app] = gone
    return out


def order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Deploy order: the waves of `levels` (each sorted), flattened. Raises ValueError on a cycle."""
    return [a for wave in levels(deps) for a in wave]
