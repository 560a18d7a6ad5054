"""The dependency graph of Chronos jobs: check it, order it (parents first), draw it (dot or text).

Jobs are mappings in Chronos's shape (`name`, `parents` for a dependent job, `schedule` for a
scheduled one); edges run parent -> child. Chronos itself silently drops a dependent job whose
parents are missing, so wharf refuses such a graph before anything is sent. Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wharf import toposort
from wharf.errors import BadInput

__all__ = ["GraphError", "check", "children", "descendants", "dot", "external_parents", "order", "parents_of", "text"]

Jobs = Mapping[str, Mapping[str, Any]]


class GraphError(BadInput, ValueError):
    """A job whose `field` breaks the graph; `job` names it so the caller can name its file."""

    def __init__(self, job: str, field: str, reason: str) -> None:
        self.job, self.field, self.reason = job, field, reason
        super().__init__(f"job '{job}': {field}: {reason}")


def parents_of(job: Mapping[str, Any]) -> list[str]:
    return list(job.get("parents") or [])


def check(repo: Jobs, chronos: Jobs | None = None, removed: Iterable[str] = ()) -> None:
    """Refuse the repository's jobs if a parent is missing or the parents form a cycle.

    A parent may be a job of the repository or one Chronos has (`chronos`, minus the `removed`
    ones a prune would delete). With `chronos` None (offline), parents outside the repository are
    not checked; `external_parents` lists them. Cycles are sought through Chronos's jobs too.
    """
    gone = set(removed)
    known = {name: job for name, job in (chronos or {}).items() if name not in gone}
    for name in sorted(repo):
        for parent in parents_of(repo[name]):
            if parent in repo or (parent in known):
                continue
            if chronos is None:
                continue
            where = "in the repository or in Chronos" + (" (a prune would delete it)" if parent in gone else "")
            raise GraphError(name, "parents", f"parent '{parent}' does not exist {where}")
    graph = {name: parents_of(job) for name, job in {**known, **repo}.items()}
    for name in sorted(repo):
        cycle = toposort.find_cycle(graph, start=name)  # name after its parent after ... after name
        if cycle:
            raise GraphError(name, "parents", "the parents form a cycle: " + " -> ".join(reversed(cycle)))


def external_parents(repo: Jobs) -> list[str]:
    """Parents named by the repository's jobs that are not themselves in the repository, sorted."""
    return sorted({parent for job in repo.values() for parent in parents_of(job) if parent not in repo})


def children(jobs: Jobs, name: str) -> list[str]:
    """The jobs that list `name` as a parent, sorted."""
    return sorted(child for child, job in jobs.items() if name in parents_of(job))


def descendants(jobs: Jobs, name: str) -> list[str]:
    """Every job downstream of `name`, in run order (parents first)."""
    found: set[str] = set()
    todo = [name]
    while todo:
        for child in children(jobs, todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return [job for job in order(jobs) if job in found]


def order(jobs: Jobs) -> list[str]:
    """Every job, parents before children, ties by name; parents outside `jobs` are ignored.

    Raises ValueError if the jobs contain a cycle (`check` names it first in normal use).
    """
    try:
        return toposort.order({name: parents_of(job) for name, job in jobs.items()})
    except toposort.CycleError as error:
        raise toposort.CycleError(error.cycle, error.stuck,
                                  "the jobs' parents form a cycle: " + ", ".join(error.stuck)) from None


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _quote(name: str) -> str:
    return f'"{_escape(name)}"'


def dot(jobs: Jobs) -> str:
    """Graphviz dot: one node per job (scheduled ones labelled with their schedule), one edge per parent."""
    lines = ["digraph jobs {", "  rankdir=LR;"]
    for name in order(jobs):
        job = jobs[name]
        if job.get("schedule"):
            label = f'"{_escape(name)}\\n{_escape(str(job["schedule"]))}"'  # dot's \n: a line break
            lines.append(f"  {_quote(name)} [shape=box, label={label}];")
        else:
            lines.append(f"  {_quote(name)};")
    for name in order(jobs):
        for parent in sorted(parents_of(jobs[name])):
            lines.append(f"  {_quote(parent)} -> {_quote(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def text(jobs: Jobs) -> str:
    """A tree per scheduled job (or per parent outside `jobs`), children indented under each parent.

    A job with several parents appears under each of them, marked `(also after ...)`.
    """
    lines: list[str] = []

    def walk(name: str, depth: int, seen: tuple[str, ...]) -> None:
        for child in children(jobs, name):
            others = [p for p in sorted(parents_of(jobs[child])) if p != name]
            note = f"  (also after {', '.join(others)})" if others else ""
            lines.append("    " * depth + f"└── {child}{note}")
            if child not in seen:
                walk(child, depth + 1, (*seen, child))

    roots = [name for name in order(jobs) if not parents_of(jobs[name])]
    outside = sorted({p for job in jobs.values() for p in parents_of(job) if p not in jobs})
    for name in roots:
        schedule = jobs[name].get("schedule")
        lines.append(f"{name}  {schedule}" if schedule else name)
        walk(name, 0, (name,))
    for name in outside:
        lines.append(f"{name}  (not in this set)")
        walk(name, 0, (name,))
    return "\n".join(lines) + ("\n" if lines else "")
