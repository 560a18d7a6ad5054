"""Sync the repository's jobs to Chronos: read what Chronos has, check, plan, send the changes in order.

Everything that can be refused is refused before the first write: the specs (`repo.load`), then the
graph against Chronos's jobs (a parent may live in Chronos), then the plan. Writes go parents first;
deletes (with `prune`) children first, and only of jobs carrying this owner's marker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chronos_jobs import plan, repo, spec
from chronos_jobs.client import ChronosClient
from wharf.log import fields
from wharf.notify import Event

__all__ = ["apply", "desired", "events_of", "prepare"]

log = logging.getLogger(__name__)


def desired(files: Mapping[str, repo.JobFile], owner: str) -> dict[str, dict[str, Any]]:
    """The bodies to send: each repository job with the owner marker set."""
    return {name: spec.with_owner(f.job, owner) for name, f in files.items()}


def prepare(client: ChronosClient, files: Mapping[str, repo.JobFile], owner: str, prune: bool) -> plan.JobPlan:
    """Read Chronos's jobs, check the graph against them (BadInput naming the file), and plan."""
    current = client.jobs()
    wanted = desired(files, owner)
    removed = plan.prunable(current, wanted, owner) if prune else []
    repo.check_graph(files, current, removed)
    return plan.plan(wanted, current, owner, prune)


def apply(client: ChronosClient, todo: plan.JobPlan, report: Callable[[plan.JobChange], None] | None = None) -> None:
    """Send each change in the plan's order; `report` is told after each one."""
    for change in todo.changes:
        if change.action == "delete":
            client.delete(change.name)
        else:
            assert change.job is not None
            client.put(change.job, change.endpoint)
        log.info("job %sd", change.action, extra=fields(job=change.name, action=change.action,
                                                        endpoint=change.endpoint, fields=list(change.fields)))
        if report is not None:
            report(change)


def events_of(todo: plan.JobPlan, sent: Sequence[plan.JobChange], error: str | None = None) -> list[Event]:
    """What a sync tells the team: each job it sent (`ok`), and the one it failed on with why."""
    out = [Event("sync", c.name, "ok", message=c.action) for c in sent]
    if error is not None and len(sent) < len(todo.changes):
        failed = todo.changes[len(sent)]
        out.append(Event("sync", failed.name, "failed", message=f"{failed.action}: {error}"))
    return out
