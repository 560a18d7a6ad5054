"""What `wharf jobs status` shows: each job's state, last outcome and times, and when it runs next. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chronos_jobs import spec
from wharf.contracts import chronos_schedule as sched

__all__ = ["rows"]


def rows(jobs_now: Mapping[str, Mapping[str, Any]], graph_states: Mapping[str, Mapping[str, str]], now: datetime,
         owner: str) -> list[dict[str, Any]]:
    """One row per job, by name: what `wharf jobs status` prints (`next` is the human column)."""
    found = []
    for name in sorted(jobs_now):
        job = jobs_now[name]
        next_run: str | None = None
        if job.get("disabled"):
            when = "disabled"
        elif job.get("parents"):
            when = "after " + ", ".join(job["parents"])
        else:
            try:
                parsed = sched.parse(job["schedule"], job.get("scheduleTimeZone") or None, now=now)
                moment = sched.next_run(parsed, now)
            except (sched.ScheduleError, KeyError, TypeError):
                moment = None
            next_run = sched.format_datetime(moment) if moment else None
            when = next_run or "never (no runs left)"
        node = graph_states.get(name, {})
        found.append({"name": name, "schedule": job.get("schedule"), "parents": job.get("parents") or [],
                     "status": node.get("status", "idle"), "last": node.get("last", ""),
                     "lastSuccess": job.get("lastSuccess") or None, "lastError": job.get("lastError") or None,
                     "nextRun": next_run, "next": when, "owned": spec.owner_of(job) == owner})
    return found
