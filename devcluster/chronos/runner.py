"""The Chronos stand-in's scheduler: which runs are due, what to launch on an offer, what an outcome means.

:class:`ChronosState` is the pure heart. It holds the jobs, the queue of runs waiting for an offer
and the runs on Mesos; every method takes `now` (a timezone-aware datetime) and touches nothing
else, so its decisions are tested without waiting:
- `tick(now)` queues each scheduled job whose run is due (at most `epsilon` late), skips runs missed
  by more than epsilon, and rewrites the schedule with `schedule.advance` (repetitions count down).
  Disabled jobs never run; their schedules still move on, so enabling one does not fire a backlog.
- `status(task_id, state, message, now)`: TASK_FINISHED records a success and queues the dependents
  `jobs.ready_dependents` names; TASK_FAILED/LOST/ERROR retry the run up to `retries` times, then
  record an error (dependents run anyway with `softError`). TASK_KILLED is final, without retries.
- `plan_launches(state, offers)` picks, per offer, the queued runs that fit its cpus/mem/disk and
  constraints, and builds their TaskInfos (a Docker container for a job with `container.image`,
  else a command run by the agent's command executor with Chronos's `shell` semantics).

Task ids keep Chronos's form `ct:<due millis>:<attempt>:<job name>:<arguments>` (`TaskUtils`).

:class:`ChronosFramework` is the thin pymesos side: a `Scheduler` whose callbacks take the lock and
delegate to the state, and a clock thread that calls `tick` and revives or suppresses offers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pymesos import MesosSchedulerDriver, Scheduler

from devcluster.chronos import jobs as J
from wharf.contracts import chronos_schedule as sched

log = logging.getLogger("wharf.devcluster.chronos.runner")

FINISHED = "TASK_FINISHED"
RETRIED_STATES = frozenset({"TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"})
FINAL_FAILURE_STATES = frozenset({"TASK_KILLED", "TASK_GONE_BY_OPERATOR"})
TASK_NAME = "ChronosTask:{}"
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


# --- offers -> TaskInfos (pure) -------------------------------------------------------------------

def offer_scalars(offer: Mapping[str, Any]) -> dict[str, float]:
    """The unreserved and reserved scalar resources of a v1 Offer, summed by name."""
    totals: dict[str, float] = {}
    for resource in offer.get("resources", []):
        if resource.get("type", "SCALAR") == "SCALAR":
            name = str(resource["name"])
            totals[name] = totals.get(name, 0.0) + float(resource["scalar"]["value"])
    return totals


def offer_attributes(offer: Mapping[str, Any]) -> dict[str, str]:
    """TEXT and SCALAR attributes as text, plus `hostname`, for constraints."""
    attributes = {"hostname": str(offer.get("hostname", ""))}
    for attribute in offer.get("attributes", []):
        if attribute.get("type") == "TEXT":
            attributes[str(attribute["name"])] = str(attribute["text"]["value"])
        elif attribute.get("type") == "SCALAR":
            attributes[str(attribute["name"])] = f"{attribute['scalar']['value']:g}"
    return attributes


def constraints_met(job: J.Job, attributes: Mapping[str, str]) -> bool:
    """Chronos's EQUALS, LIKE (full regex match) and UNLIKE against the offer's attributes."""
    for constraint in job.constraints:
        value = attributes.get(constraint.attribute)
        if constraint.operator == "EQUALS" and value != constraint.value:
            return False
        if constraint.operator == "LIKE" and (value is None or not re.fullmatch(constraint.value, value)):
            return False
        if constraint.operator == "UNLIKE" and value is not None and re.fullmatch(constraint.value, value):
            return False
    return True


def _scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def task_info(job: J.Job, run: Run, offer: Mapping[str, Any]) -> dict[str, Any]:
    """The v1 TaskInfo Chronos would send for `run` of `job` on `offer`."""
    variables = [{"name": "mesos_task_id", "value": run.task_id},
                 {"name": "CHRONOS_JOB_OWNER", "value": job.owner},
                 {"name": "CHRONOS_JOB_NAME", "value": job.name},
                 {"name": "HOST", "value": str(offer.get("hostname", ""))},
                 {"name": "CHRONOS_RESOURCE_CPU", "value": f"{job.cpus:g}"},
                 {"name": "CHRONOS_RESOURCE_MEM", "value": f"{job.mem:g}"},
                 {"name": "CHRONOS_RESOURCE_DISK", "value": f"{job.disk:g}"}]
    variables += [{"name": item.name, "value": item.value} for item in job.environment_variables]
    command: dict[str, Any] = {"shell": job.shell, "environment": {"variables": variables}}
    if job.command:
        command["value"] = job.command
    if job.arguments:
        command["arguments"] = list(job.arguments)
    uris = [{"uri": item.uri, "executable": item.executable, "cache": item.cache, "extract": item.extract,
             **({"output_file": item.output_file} if item.output_file else {})} for item in job.fetch]
    uris += [{"uri": uri} for uri in job.uris]
    if uris:
        command["uris"] = uris  # passed on: a master that cannot fetch answers TASK_ERROR, which retries
    info: dict[str, Any] = {
        "name": TASK_NAME.format(job.name),
        "task_id": {"value": run.task_id},
        "agent_id": dict(offer["agent_id"]),
        "resources": [_scalar("cpus", job.cpus), _scalar("mem", job.mem), _scalar("disk", job.disk)],
        "command": command,
    }
    if job.container is not None:
        info["container"] = _container_info(job.container)
    return info


def _container_info(container: J.Container) -> dict[str, Any]:
    volumes = []
    for volume in container.volumes:
        item: dict[str, Any] = {"container_path": volume.container_path, "mode": volume.mode or "RW"}
        if volume.host_path is not None:
            item["host_path"] = volume.host_path
        if volume.external is not None:
            item["source"] = {"type": "DOCKER_VOLUME", "docker_volume": {
                "driver": volume.external.provider, "name": volume.external.name}}
        volumes.append(item)
    info: dict[str, Any] = {"type": container.type, "volumes": volumes}
    if container.type == "DOCKER":
        info["docker"] = {"image": container.image, "network": container.network,
                          "force_pull_image": container.force_pull_image,
                          "parameters": [{"key": p.key, "value": p.value} for p in container.parameters]}
    else:
        info["mesos"] = {"image": {"type": "DOCKER", "docker": {"name": container.image}}}
    return info


Plan = list[tuple[str, list[tuple[Run, dict[str, Any]]]]]  # (offer id, [(run, TaskInfo)])


def plan_launches(state: ChronosState, offers: Iterable[Mapping[str, Any]]) -> Plan:
    """For each offer (in order), the queued runs it takes and their TaskInfos, first come first served."""
    plan: Plan = []
    taken: set[str] = set()
    for offer in offers:
        free = offer_scalars(offer)
        attributes = offer_attributes(offer)
        chosen: list[tuple[Run, dict[str, Any]]] = []
        for run in state.queue:
            job = state.jobs.get(run.job)
            if run.task_id in taken or job is None or not constraints_met(job, attributes):
                continue
            need = {"cpus": job.cpus, "mem": job.mem, "disk": job.disk}
            if all(free.get(name, 0.0) + 1e-9 >= amount for name, amount in need.items()):
                for name, amount in need.items():
                    free[name] = free.get(name, 0.0) - amount
                chosen.append((run, task_info(job, run, offer)))
                taken.add(run.task_id)
        plan.append((str(offer["id"]["value"]), chosen))
    return plan


# --- the pymesos framework (threads) --------------------------------------------------------------

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ChronosFramework(Scheduler):  # type: ignore[misc]
    """Chronos as a Mesos framework: offers and updates go to the shared `ChronosState` under `lock`."""

    TICK = 0.2  # seconds between clock ticks (a change through the API ticks at once)

    def __init__(self, state: ChronosState, lock: threading.Lock, master: str, *, clock: Clock = utc_now,
                 name: str = "chronos", user: str = "root") -> None:
        self.state, self.lock, self.master, self.clock = state, lock, master, clock
        self.framework_info = {"user": user, "name": name, "failover_timeout": 0.0,
                               "capabilities": [{"type": "TASK_KILLING_STATE"}]}
        self.driver: Any = None
        self.registered_event = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._wanting = False
        self._want_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="chronos clock", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.driver = MesosSchedulerDriver(self, self.framework_info, self.master, use_addict=True)
        self.driver.start()
        self._thread.start()

    def stop(self) -> None:
        """Tear the framework down (Mesos kills its tasks) and end the clock thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.driver is not None:
            self.driver.stop(failover=False)
            self.driver.join()
            self.driver = None

    def poke(self) -> None:
        """Tick now: the API changed something (a new job, a manual start)."""
        self._wake.set()

    def kill(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            if self.driver is not None:
                self.driver.killTask({"value": task_id})

    # --- pymesos callbacks -------------------------------------------------------------------

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        """A new framework id: tasks of an earlier registration are gone, and their runs retried."""
        log.info("registered with Mesos as framework %s", framework_id.get("value", framework_id))
        with self.lock:
            self.state.lost_all("the framework registered anew", self.clock())
        with self._want_lock:
            self._wanting = True  # a new subscription is not suppressed
        self.registered_event.set()
        self.poke()

    def reregistered(self, driver: Any, master_info: Any) -> None:
        """Same framework id after a reconnection: ask the master about the tasks we think run."""
        with self.lock:
            task_ids = list(self.state.running)
        with self._want_lock:
            self._wanting = True
        if task_ids:
            driver.reconcileTasks([{"task_id": {"value": task_id}} for task_id in task_ids])
        self.poke()

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802 - pymesos API
        with self.lock:
            self.state.tick(self.clock())
            plan = plan_launches(self.state, offers)
            for _, chosen in plan:
                for run, _ in chosen:
                    self.state.launched(run)
            waiting = bool(self.state.queue)
        for offer_id, chosen in plan:
            if chosen:
                log.info("launching %s", ", ".join(run.task_id for run, _ in chosen))
                driver.launchTasks({"value": offer_id}, [info for _, info in chosen], {"refuse_seconds": 1})
            else:
                driver.declineOffer({"value": offer_id}, {"refuse_seconds": 1 if waiting else 60})
        if not waiting:
            self._want(False)

    def statusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802 - pymesos API
        with self.lock:
            queued = self.state.status(str(status["task_id"]["value"]), str(status["state"]),
                                       str(status.get("message") or ""), self.clock())
        if queued:
            self.poke()

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:  # noqa: N802 - pymesos API
        pass

    def error(self, driver: Any, message: str) -> None:
        log.error("Mesos reported an error: %s", message)

    # --- the clock ---------------------------------------------------------------------------

    def _want(self, wanted: bool) -> None:
        """Revive offers when runs wait for one, suppress them when none does."""
        with self._want_lock:
            if wanted == self._wanting or self.driver is None or not self.registered_event.is_set():
                return
            self._wanting = wanted
            if wanted:
                self.driver.reviveOffers()
            else:
                self.driver.suppressOffers()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                with self.lock:
                    self.state.tick(self.clock())
                    waiting = bool(self.state.queue)
                self._want(waiting)
            except Exception:  # noqa: BLE001 - the clock must keep ticking
                log.exception("chronos tick failed")
            self._wake.wait(self.TICK)
