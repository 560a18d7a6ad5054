"""The Chronos stand-in's scheduler state, pure: which runs are due and what an outcome means.

:class:`ChronosState` holds the jobs, the queue of runs waiting for an offer and the runs on Mesos;
every method takes `now` (a timezone-aware datetime) and touches nothing else, so its decisions are
tested without waiting:
- `tick(now)` queues each scheduled job whose run is due (at most `epsilon` late), skips runs missed
  by more than epsilon, and rewrites the schedule with `schedule.advance` (repetitions count down).
  Disabled jobs never run; their schedules still move on, so enabling one does not fire a backlog.
- `status(task_id, state, message, now)`: TASK_FINISHED records a success and queues the dependents
  `jobs.ready_dependents` names; TASK_FAILED/LOST/ERROR retry the run up to `retries` times, then
  record an error (dependents run anyway with `softError`). TASK_KILLED is final, without retries.

Task ids keep Chronos's form `ct:<due millis>:<attempt>:<job name>:<arguments>` (`TaskUtils`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from devcluster.chronos import jobs as J
from wharf.contracts import chronos_schedule as sched

log = logging.getLogger("wharf.devcluster.chronos.runner")  # one logger for the runner and its state

FINISHED = "TASK_FINISHED"
RETRIED_STATES = frozenset({"TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"})
FINAL_FAILURE_STATES = frozenset({"TASK_KILLED", "TASK_GONE_BY_OPERATOR"})
_TASK_ID = re.compile(r"ct:(?P<due>\d+):(?P<attempt>\d+):(?P<name>[\w.-]+):?(?P<arguments>.*)", re.ASCII)


class RunnerError(ValueError):
    """A request the scheduler refuses (unknown or disabled job); one line for the HTTP answer."""


@dataclass(frozen=True)
class Run:
    """One attempt at running a job, due at `due` (UTC); `task_id` is Chronos's task id for it."""

    job: str
    due: datetime
    attempt: int = 0
    arguments: str = ""

    @property
    def task_id(self) -> str:
        millis = int(self.due.timestamp() * 1000)
        return f"ct:{millis}:{self.attempt}:{self.job}:{self.arguments.replace(';', '')}"


def parse_task_id(task_id: str) -> tuple[str, int, int, str] | None:
    """(job name, due millis, attempt, arguments) of a Chronos task id, or None if it is not one."""
    match = _TASK_ID.fullmatch(task_id)
    if match is None:
        return None
    return match["name"], int(match["due"]), int(match["attempt"]), match["arguments"]


def timestamp(now: datetime) -> str:
    """How Chronos records lastSuccess/lastError: UTC, milliseconds, `Z`."""
    return sched.format_datetime(now.astimezone(UTC))


@dataclass
class ChronosState:
    """Jobs, edge counts, queued and running runs; every decision is a method taking `now`."""

    jobs: dict[str, J.Job] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    queue: list[Run] = field(default_factory=list)
    running: dict[str, Run] = field(default_factory=dict)  # task id -> run

    # --- the job set ------------------------------------------------------------------------

    def put(self, job: J.Job) -> None:
        """Add or replace a job (the caller has checked its parents)."""
        self.jobs[job.name] = job

    def delete(self, name: str) -> list[str]:
        """Remove a job as `jobs.without_job` allows; returns the task ids to kill."""
        self.jobs = J.without_job(self.require(name), name)
        self.queue = [run for run in self.queue if run.job != name]
        self.counts = {edge: n for edge, n in self.counts.items() if name not in edge}
        return [task_id for task_id, run in self.running.items() if run.job == name]

    def require(self, name: str) -> dict[str, J.Job]:
        if name not in self.jobs:
            raise RunnerError(f"Job '{name}' not found")
        return self.jobs

    # --- time -------------------------------------------------------------------------------

    def tick(self, now: datetime) -> list[Run]:
        """Queue the scheduled runs that are due at `now` and advance every schedule that has started."""
        queued = []
        for name, job in sorted(self.jobs.items()):
            if job.schedule is None:
                continue
            try:
                current = J.job_schedule(job, now)
            except (sched.ScheduleError, J.JobError):
                continue  # refused at POST time; a stored job always parses
            if current.repetitions == 0 or current.start > now:
                continue
            epsilon = sched.parse_period(job.epsilon)
            due = sched.is_due(current, now, epsilon)
            following = sched.advance(current, now)
            occurrence = _latest_occurrence(current, following, now)
            if following is not None:
                self.jobs[name] = job = replace(job, schedule=sched.format(following))
            if job.disabled:
                log.info("job %s is disabled: run due at %s not started", name, timestamp(occurrence))
            elif not due:
                log.info("job %s missed its run at %s by more than %s: skipped", name,
                         timestamp(occurrence), job.epsilon)
            elif self._enqueue(Run(name, occurrence, 0, " ".join(job.arguments))):
                queued.append(self.queue[-1])
        return queued

    def trigger(self, name: str, now: datetime) -> Run | None:
        """`PUT /job/<name>`: queue a run now, as Chronos's manual start does (attempt 0, due now)."""
        job = self.require(name)[name]
        if job.disabled:
            raise RunnerError(f"Job '{name}' is disabled; enable it to run it")
        run = Run(name, now.astimezone(UTC), 0, " ".join(job.arguments))
        return run if self._enqueue(run) else None

    def kill(self, name: str) -> list[str]:
        """`DELETE /task/kill/<name>`: drop its queued runs; returns the task ids to kill."""
        self.require(name)
        self.queue = [run for run in self.queue if run.job != name]
        return [task_id for task_id, run in self.running.items() if run.job == name]

    # --- launching and outcomes -------------------------------------------------------------

    def launched(self, run: Run) -> None:
        """A queued run went to Mesos: it is running, and a dependent's edge counts start over."""
        self.queue.remove(run)
        self.running[run.task_id] = run
        self.counts = J.dependent_started(self.jobs, run.job, self.counts)

    def status(self, task_id: str, state: str, message: str, now: datetime) -> list[Run]:
        """A status update from Mesos; returns the runs it queued (a retry or dependents)."""
        if state not in {FINISHED} | RETRIED_STATES | FINAL_FAILURE_STATES:
            return []
        run = self.running.pop(task_id, None)
        if run is None or run.job not in self.jobs:
            return []
        job = self.jobs[run.job]
        if state == FINISHED:
            log.info("task %s finished", task_id)
            return self.success(run.job, now)
        if state in RETRIED_STATES and run.attempt < job.retries:
            log.info("task %s ended %s (%s): retry %d of %d", task_id, state, message, run.attempt + 1, job.retries)
            retry = replace(run, attempt=run.attempt + 1)
            return [retry] if self._enqueue(retry) else []
        log.info("task %s ended %s (%s): job %s failed", task_id, state, message, run.job)
        self.jobs[run.job] = replace(job, error_count=job.error_count + 1,
                                     errors_since_last_success=job.errors_since_last_success + 1,
                                     last_error=timestamp(now))
        return self._dependents(run.job, now) if job.soft_error else []

    def success(self, name: str, now: datetime) -> list[Run]:
        """Record a success of `name` (a finished task, or `/job/success/<name>`) and queue its dependents."""
        job = self.require(name)[name]
        self.jobs[name] = replace(job, success_count=job.success_count + 1, errors_since_last_success=0,
                                  last_success=timestamp(now))
        return self._dependents(name, now)

    def lost_all(self, message: str, now: datetime) -> list[Run]:
        """Every running task is lost (a new framework registration): each run is retried or failed."""
        queued = []
        for task_id in list(self.running):
            queued += self.status(task_id, "TASK_LOST", message, now)
        return queued

    def graph_states(self) -> tuple[dict[str, str], dict[str, int]]:
        """Each job's `/graph/csv` status (queued, running) and how many of its tasks run."""
        states: dict[str, str] = {run.job: "queued" for run in self.queue}
        running: dict[str, int] = {}
        for run in self.running.values():
            states[run.job] = "running"
            running[run.job] = running.get(run.job, 0) + 1
        return states, running

    # --- helpers ----------------------------------------------------------------------------

    def _dependents(self, name: str, now: datetime) -> list[Run]:
        ready, self.counts = J.ready_dependents(self.jobs, name, self.counts)
        queued = []
        for child in ready:
            run = Run(child, now.astimezone(UTC), 0, " ".join(self.jobs[child].arguments))
            if self._enqueue(run):
                queued.append(run)
        return queued

    def _enqueue(self, run: Run) -> bool:
        """Queue `run` unless its job is not concurrent and already queued or running."""
        job = self.jobs[run.job]
        busy = any(other.job == run.job for other in [*self.queue, *self.running.values()])
        if busy and not job.concurrent:
            log.info("job %s is already queued or running and not concurrent: run %s dropped", run.job, run.task_id)
            return False
        self.queue.append(run)
        return True


def _latest_occurrence(current: sched.Schedule, following: sched.Schedule | None, now: datetime) -> datetime:
    """The occurrence just reached: one period before the next start, never before the schedule's start."""
    if following is not None and following.repetitions != 0:
        try:
            previous = sched.add_period(following.start, current.period, -1)
        except OverflowError:
            previous = current.start
        if current.start <= previous <= now:
            return previous.astimezone(UTC)
    return current.start.astimezone(UTC)
