"""Plan a sync: compare the repository's jobs with what Chronos has, and decide what to send.

Only the fields wharf manages are compared, each with Chronos's default when absent, so the fields
Chronos fills in (`successCount`, `lastSuccess`, `errorsSinceLastSuccess`, ...) and the defaults it
writes back (`retries` 2, `epsilon` PT60S, `cpus` 0.1, ...) never count as a change. A schedule is
unchanged when Chronos's is the repository's advanced by runs (`R5/<start>/P1D` becomes
`R4/<start + 1 day>/P1D` after a run) or the same schedule spelled another way.

Creates and updates come parents first; deletes (only of jobs carrying wharf's owner marker, and
only when pruning) children first. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chronos_jobs import graph, spec
from wharf.contracts import chronos_schedule as sched

__all__ = ["JobChange", "JobPlan", "diff_fields", "normalize", "plan", "same_schedule"]

_DEFAULTS: dict[str, Any] = {
    "command": "", "arguments": [], "shell": True, "scheduleTimeZone": "", "epsilon": "PT60S", "retries": 2,
    "cpus": 0.1, "mem": 128.0, "disk": 256.0, "environmentVariables": [], "owner": "", "ownerName": "",
    "description": "", "constraints": [], "disabled": False, "concurrent": False, "softError": False,
    "runAsUser": "root", "fetch": [], "container": None, "parents": [],
}
_RESOURCE_DEFAULTS = {"cpus": 0.1, "mem": 128.0, "disk": 256.0}
_CONTAINER_DEFAULTS: dict[str, Any] = {"type": "DOCKER", "network": "HOST", "volumes": [],
                                       "forcePullImage": False, "parameters": []}
_FETCH_DEFAULTS: dict[str, Any] = {"executable": False, "cache": False, "extract": True}
_SOME_NOW = datetime(2000, 1, 1, tzinfo=UTC)


def _number(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number or default


def _container(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    # empty extras (say `networkInfos: []` from a newer Chronos) are the same as absent ones
    return {key: value.get(key, _CONTAINER_DEFAULTS.get(key))
            for key in sorted({*_CONTAINER_DEFAULTS, *value, "image"})
            if key in _CONTAINER_DEFAULTS or key == "image" or value.get(key) not in (None, "", [], {})}


def _epsilon(value: Any) -> Any:
    try:
        return sched.format_period(sched.parse_period(value))
    except (sched.ScheduleError, TypeError):
        return value


def normalize(job: Mapping[str, Any]) -> dict[str, Any]:
    """The managed fields of a job in one canonical form (the schedule is compared apart)."""
    result: dict[str, Any] = {}
    for key, default in _DEFAULTS.items():
        value = job.get(key)
        if value is None or (key == "arguments" and value == []):
            value = default
        if key in _RESOURCE_DEFAULTS:
            value = _number(value, _RESOURCE_DEFAULTS[key])
        elif key == "container":
            value = _container(value)
        elif key == "epsilon":
            value = _epsilon(value)
        elif key == "parents":
            value = sorted(value)
        elif key == "fetch":
            value = [{**_FETCH_DEFAULTS, **item} for item in value]
        elif key == "constraints":
            value = [list(item) for item in value]
        result[key] = value
    return result


def same_schedule(desired: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether Chronos's schedule is the desired one, possibly advanced by runs since it was sent."""
    want, have = desired.get("schedule"), current.get("schedule")
    if want is None or have is None:
        return want == have
    if want == have:
        return True
    if (desired.get("scheduleTimeZone") or "") != (current.get("scheduleTimeZone") or ""):
        return False
    zone = desired.get("scheduleTimeZone") or None
    try:
        have_parsed = sched.parse(have, zone, now=_SOME_NOW)
        if want.split("/")[1] == "":  # an empty start is "now": any start will do
            want_parsed = sched.parse(want, zone, now=have_parsed.start)
        else:
            want_parsed = sched.parse(want, zone)
    except sched.ScheduleError:
        return False
    if want_parsed.period != have_parsed.period:
        return False
    runs = sched.occurrence_index(want_parsed, have_parsed.start)
    if runs is None:
        return False
    if want_parsed.repetitions is None:
        return have_parsed.repetitions is None
    # after the last run Chronos keeps `R0/<the start after it>`
    return have_parsed.repetitions == max(0, want_parsed.repetitions - runs)


def diff_fields(desired: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The managed fields whose values differ, sorted (`schedule` included)."""
    want, have = normalize(desired), normalize(current)
    changed = [key for key in want if want[key] != have[key]]
    if not same_schedule(desired, current):
        changed.append("schedule")
    return sorted(changed)


@dataclass(frozen=True)
class JobChange:
    """One call a sync makes: `create`, `update` (with the fields that differ) or `delete`."""

    action: str
    name: str
    endpoint: str = ""
    fields: tuple[str, ...] = ()
    job: Mapping[str, Any] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class JobPlan:
    """The changes in the order to send them, and the jobs left as they are."""

    changes: tuple[JobChange, ...]
    unchanged: tuple[str, ...]
    unowned: tuple[str, ...]  # jobs in Chronos, not in the repository, that wharf does not own
    stale: tuple[str, ...] = ()  # wharf's jobs that left the repository and were not pruned

    def as_json(self) -> dict[str, Any]:
        return {
            "changes": [{"action": c.action, "name": c.name, "endpoint": c.endpoint, "fields": list(c.fields)}
                        for c in self.changes],
            "unchanged": list(self.unchanged),
            "unowned": list(self.unowned),
            "stale": list(self.stale),
        }


def prunable(current: Mapping[str, Mapping[str, Any]], desired: Mapping[str, Any], owner: str) -> list[str]:
    """The jobs Chronos has that wharf (as `owner`) wrote and the repository no longer has."""
    return sorted(name for name, job in current.items() if name not in desired and spec.owner_of(job) == owner)


def plan(desired: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]],
         owner: str, prune: bool = False) -> JobPlan:
    """What to send to make Chronos match `desired` (already checked, owner marker set)."""
    changes: list[JobChange] = []
    unchanged: list[str] = []
    for name in graph.order(desired):
        job = desired[name]
        if name not in current:
            changes.append(JobChange("create", name, spec.endpoint(job), (), job))
            continue
        fields = diff_fields(job, current[name])
        if fields:
            changes.append(JobChange("update", name, spec.endpoint(job), tuple(fields), job))
        else:
            unchanged.append(name)
    stale = prunable(current, desired, owner)
    if prune:
        leaving = {name: current[name] for name in stale}
        changes.extend(JobChange("delete", name) for name in reversed(graph.order(leaving)))
    unowned = sorted(name for name in current if name not in desired and name not in stale)
    return JobPlan(tuple(changes), tuple(unchanged), tuple(unowned), () if prune else tuple(stale))
