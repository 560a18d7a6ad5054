"""Following a manual run: which jobs have finished since it started, and which are still to come.

A run is judged by Chronos's own records: a job has finished once its `lastSuccess` or `lastError`
differs from what it was before the run started (the `before` snapshot), so no clocks are compared.
A dependent job is expected once every one of its parents has succeeded since then; a failed job's
dependents are not expected (Chronos does not run them). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chronos_jobs import graph

__all__ = ["Progress", "Snapshot", "progress", "snapshot"]

Snapshot = Mapping[str, tuple[str, str]]


def snapshot(jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """Each job's (lastSuccess, lastError) as Chronos reports them."""
    return {name: (job.get("lastSuccess") or "", job.get("lastError") or "") for name, job in jobs.items()}


def outcome(before: tuple[str, str], job: Mapping[str, Any]) -> str | None:
    """`success` or `failure` if the job finished since `before`, else None."""
    success, error = job.get("lastSuccess") or "", job.get("lastError") or ""
    new_success, new_error = success != before[0], error != before[1]
    if new_success and new_error:
        return "success" if success > error else "failure"  # both are ISO 8601 UTC: text order is time order
    if new_success:
        return "success"
    if new_error:
        return "failure"
    return None


@dataclass(frozen=True)
class Progress:
    """Jobs finished since the run started (name -> outcome, in run order), those still expected,
    and those that will not run because a parent failed."""

    finished: Mapping[str, str]
    pending: tuple[str, ...]
    skipped: tuple[str, ...]

    @property
    def done(self) -> bool:
        return not self.pending

    @property
    def ok(self) -> bool:
        return all(result == "success" for result in self.finished.values())


def progress(name: str, before: Snapshot, jobs: Mapping[str, Mapping[str, Any]]) -> Progress:
    """Where the run of `name` (and the dependents it sets off) stands, given Chronos's jobs now."""
    finished: dict[str, str] = {}
    pending: list[str] = []
    skipped: list[str] = []
    for job in [name, *graph.descendants(jobs, name)]:
        parents = graph.parents_of(jobs[job]) if job != name else []
        if any(finished.get(parent) == "failure" or parent in skipped for parent in parents):
            skipped.append(job)
            continue
        succeeded = [p for p in parents if finished.get(p) == "success"
                     or (p not in finished and outcome(before.get(p, ("", "")), jobs.get(p, {})) == "success")]
        waiting = [p for p in parents if p in pending]
        if len(succeeded) + len(waiting) < len(parents):
            continue  # a parent outside this run has not succeeded since it started
        if waiting:
            pending.append(job)
            continue
        result = outcome(before.get(job, ("", "")), jobs[job])
        if result is None:
            pending.append(job)
        else:
            finished[job] = result
    return Progress(finished, tuple(pending), tuple(skipped))
