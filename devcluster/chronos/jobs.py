"""Chronos jobs: read a job body, render it as `/v1/scheduler/jobs` does, and reason about the graph.

Reading follows Chronos's `JobDeserializer` (mesos/chronos): absent fields take Chronos's defaults
(`retries` 2, `shell` true, `epsilon` `--task_epsilon` = PT60S, `cpus`/`mem`/`disk` the
`--mesos_task_*` defaults 0.1/128/256 also when given as 0, `runAsUser` `--user` = root); numbers and
booleans may arrive as strings (`"cpus": "0.5"`); unknown fields are dropped, as Chronos drops them.
Names must fully match `[\\w.-]+` (ASCII), the rule Chronos 3 enforces (its docs still show the
older `[\\w\\s\\.#_-]+`). `epsilon` and `async` are kept although Chronos 3 dropped them: the
documented examples and Chronos 2 use them, and the stand-in's runner honours epsilon.

Where wharf's stand-in is stricter than Chronos, on purpose, so mistakes surface at POST time: a
job may not carry both `schedule` and `parents`; `command` is required unless a container is given
(Chronos 3 defaults it to ""); an unknown constraint operator, a container without an image, a
missing parent or a bad field type is an error (Chronos drops, defaults or fails later).

Rendering follows Chronos's `JobSerializer` (field names and order), plus Chronos 3's `concurrent`,
`maxCompletionTime` and `container.networkInfos`.

The graph functions mirror `JobGraph`: dependent jobs hang off their parents, a dependent job with
several parents runs when each parent has finished once more (Chronos counts finishes per edge), and
`/graph/csv` lists `node,<name>,<last state>,<status>` then `link,<parent>,<child>` lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from wharf.contracts import chronos_schedule as sched

__all__ = [
    "CONSTRAINT_OPERATORS", "KINDS", "Constraint", "Container", "EdgeCounts", "EnvironmentVariable",
    "ExternalVolume", "Fetch", "Job", "JobError", "KeyValue", "Network", "PortMapping", "Volume",
    "check_acyclic", "check_dependencies", "check_parents", "children_of", "dependent_started",
    "graph_csv", "job_schedule", "last_state", "parse_job", "ready_dependents", "to_json", "without_job",
]

KINDS = ("iso8601", "dependency")
NAME_PATTERN = re.compile(r"[\w.-]+", re.ASCII)
DEFAULT_EPSILON = "PT60S"
DEFAULT_CPUS, DEFAULT_MEM, DEFAULT_DISK = 0.1, 128.0, 256.0
DEFAULT_USER = "root"
CONSTRAINT_OPERATORS = ("EQUALS", "LIKE", "UNLIKE")
CONTAINER_TYPES = ("DOCKER", "MESOS")
NETWORK_MODES = ("BRIDGE", "HOST")
VOLUME_MODES = ("RW", "RO")
PROTOCOLS = ("IPv4", "IPv6")
STATUSES = ("idle", "queued", "running")

# An empty start means "now"; without a clock such a schedule is only checked for syntax, using this.
_SYNTAX_ONLY_NOW = datetime(2000, 1, 1, tzinfo=UTC)
_EMPTY_START = re.compile(r"R\d*//P.*")


class JobError(ValueError):
    """A job that Chronos (or wharf's stricter stand-in) refuses; one line naming job and field."""

    def __init__(self, job: str | None, field: str, problem: str) -> None:
        self.job, self.field, self.problem = job, field, problem
        super().__init__(f"job '{job}': {problem}" if job else f"job: {problem}")


# --- the value objects ---------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyValue:
    """A container parameter, a network label or an external volume option."""

    key: str
    value: str


@dataclass(frozen=True)
class EnvironmentVariable:
    name: str
    value: str


@dataclass(frozen=True)
class Fetch:
    """One file for the Mesos fetcher; `extract` defaults to true as in Chronos."""

    uri: str
    executable: bool = False
    cache: bool = False
    extract: bool = True
    output_file: str = ""


@dataclass(frozen=True)
class Constraint:
    """`[attribute, operator, value]`, operator one of EQUALS, LIKE, UNLIKE."""

    attribute: str
    operator: str
    value: str


@dataclass(frozen=True)
class ExternalVolume:
    name: str
    provider: str
    options: tuple[KeyValue, ...] = ()


@dataclass(frozen=True)
class Volume:
    container_path: str
    host_path: str | None = None
    mode: str | None = None
    external: ExternalVolume | None = None


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str | None = None


@dataclass(frozen=True)
class Network:
    """One entry of `container.networkInfos`."""

    name: str
    protocol: str | None = None
    labels: tuple[KeyValue, ...] = ()
    port_mappings: tuple[PortMapping, ...] = ()


@dataclass(frozen=True)
class Container:
    image: str
    type: str = "DOCKER"
    network: str = "HOST"
    network_name: str | None = None
    networks: tuple[Network, ...] = ()
    volumes: tuple[Volume, ...] = ()
    parameters: tuple[KeyValue, ...] = ()
    force_pull_image: bool = False


@dataclass(frozen=True)
class Job:
    """A Chronos job: scheduled (`schedule` set) or dependent (`parents` non-empty)."""

    name: str
    command: str = ""
    schedule: str | None = None
    schedule_time_zone: str = ""
    parents: tuple[str, ...] = ()
    epsilon: str = DEFAULT_EPSILON
    retries: int = 2
    owner: str = ""
    owner_name: str = ""
    description: str = ""
    async_: bool = False
    cpus: float = DEFAULT_CPUS
    mem: float = DEFAULT_MEM
    disk: float = DEFAULT_DISK
    disabled: bool = False
    concurrent: bool = False
    shell: bool = True
    arguments: tuple[str, ...] = ()
    environment_variables: tuple[EnvironmentVariable, ...] = ()
    uris: tuple[str, ...] = ()
    fetch: tuple[Fetch, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    container: Container | None = None
    run_as_user: str = DEFAULT_USER
    soft_error: bool = False
    data_processing_job_type: bool = False
    high_priority: bool = False
    executor: str = ""
    executor_flags: str = ""
    task_info_data: str = ""
    max_completion_time: int = 0
    success_count: int = 0
    error_count: int = 0
    errors_since_last_success: int = 0
    last_success: str = ""
    last_error: str = ""

    @property
    def kind(self) -> str:
        """`iso8601` for a scheduled job, `dependency` for a dependent one (the POST endpoint's name)."""
        return "dependency" if self.parents else "iso8601"


# --- reading -------------------------------------------------------------------------------------

class _Reader:
    """Typed access to one JSON object, raising JobError with the field's dotted path."""

    def __init__(self, data: Any, job: str | None, path: str = "") -> None:
        self.job, self.path = job, path
        if not isinstance(data, Mapping):
            self.fail(path or "job", f"field '{path}' must be an object" if path else "the body must be a JSON object")
        self.data: Mapping[str, Any] = data

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, key: str, problem: str) -> NoReturn:
        raise JobError(self.job, key, problem)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def text(self, key: str, default: str = "", required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required:
                self.fail(self.where(key), f"field '{self.where(key)}' is required")
            return default
        if not isinstance(value, str):
            self.fail(self.where(key), f"field '{self.where(key)}' must be a string, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.fail(self.where(key), f"field '{self.where(key)}' must be a boolean, got {value!r}")
        return bool(value)

    def number(self, key: str, default: float) -> float:
        """A non-negative number; absent or 0 means the default, as in Chronos."""
        value = self.data.get(key)
        if value is None:
            return default
        number = _to_number(value)
        if number is None or number < 0:
            self.fail(self.where(key), f"field '{self.where(key)}' must be a non-negative number, got {value!r}")
        return float(number) if number else default

    def integer(self, key: str, default: int) -> int:
        value = self.data.get(key)
        if value is None:
            return default
        number = _to_number(value)
        if number is None or number < 0 or number != int(number):
            self.fail(self.where(key), f"field '{self.where(key)}' must be a non-negative integer, got {value!r}")
        return int(number)

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(self.where(key), f"field '{self.where(key)}' must be an array, got {value!r}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.items(key)
        for index, value in enumerate(values):
            if not isinstance(value, str):
                self.fail(self.where(key), f"field '{self.where(key)}[{index}]' must be a string, got {value!r}")
        return tuple(values)

    def objects(self, key: str) -> list[_Reader]:
        return [_Reader(item, self.job, f"{self.where(key)}[{index}]")
                for index, item in enumerate(self.items(key))]

    def choice(self, key: str, choices: tuple[str, ...], default: str | None, upper: bool = False) -> str | None:
        value = self.text(key, "") or None
        if value is None:
            return default
        if upper:
            value = value.upper()
        if value not in choices:
            self.fail(self.where(key), f"field '{self.where(key)}' must be one of {', '.join(choices)}, got '{value}'")
        return value


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _key_values(reader: _Reader, key: str) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(item.text("key", required=True), item.text("value", required=True))
                 for item in reader.objects(key))


def _container(reader: _Reader) -> Container:
    networks = tuple(
        Network(name=item.text("name", required=True),
                protocol=item.choice("protocol", PROTOCOLS, None),
                labels=_key_values(item, "labels"),
                port_mappings=tuple(PortMapping(host_port=mapping.integer("hostPort", 0),
                                                container_port=mapping.integer("containerPort", 0),
                                                protocol=mapping.text("protocol") or None)
                                    for mapping in item.objects("portMappings")))
        for item in reader.objects("networkInfos"))
    volumes = []
    for item in reader.objects("volumes"):
        external = None
        if item.has("external"):
            outside = _Reader(item.data["external"], reader.job, item.where("external"))
            external = ExternalVolume(outside.text("name", required=True), outside.text("provider", required=True),
                                      _key_values(outside, "options"))
        volumes.append(Volume(container_path=item.text("containerPath", required=True),
                              host_path=item.text("hostPath") or None,
                              mode=item.choice("mode", VOLUME_MODES, None, upper=True),
                              external=external))
    return Container(
        image=reader.text("image", required=True),
        type=reader.choice("type", CONTAINER_TYPES, "DOCKER", upper=True) or "DOCKER",
        network=reader.choice("network", NETWORK_MODES, "HOST") or "HOST",
        network_name=reader.text("networkName") or None,
        networks=networks,
        volumes=tuple(volumes),
        parameters=_key_values(reader, "parameters"),
        force_pull_image=reader.boolean("forcePullImage", False),
    )


def _constraints(reader: _Reader) -> tuple[Constraint, ...]:
    constraints = []
    for index, item in enumerate(reader.items("constraints")):
        where = f"constraints[{index}]"
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(part, str) for part in item)):
            reader.fail(where, f"field '{where}' must be [attribute, operator, value], got {item!r}")
        if item[1] not in CONSTRAINT_OPERATORS:
            reader.fail(where, f"field '{where}' has unknown operator '{item[1]}' "
                               f"(Chronos knows {', '.join(CONSTRAINT_OPERATORS)})")
        constraints.append(Constraint(*item))
    return tuple(constraints)


def _timestamp(reader: _Reader, key: str) -> str:
    value = reader.text(key)
    if value:
        try:
            sched.parse_datetime(value)
        except sched.ScheduleError:
            reader.fail(key, f"field '{key}' must be an ISO 8601 date-time, got '{value}'")
    return value


def parse_job(data: Any, kind: str, *, now: datetime | None = None) -> Job:
    """Validate a job body POSTed to `/v1/scheduler/<kind>` (`iso8601` or `dependency`).

    With `now`, a schedule with an empty start ("now") is pinned to that instant; without it, the
    schedule is kept as written and only its syntax is checked.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    reader = _Reader(data, None)
    name = reader.text("name", required=True)
    if not NAME_PATTERN.fullmatch(name):
        reader.fail("name", f"name '{name}' is invalid: Chronos allows letters, digits, '_', '.' and '-'")
    reader.job = name

    has_schedule, has_parents = reader.has("schedule"), reader.has("parents")
    schedule: str | None = None
    zone, parents = "", tuple[str, ...]()
    if kind == "iso8601":
        if has_parents:
            reader.fail("parents", "field 'parents' belongs to a dependent job (POST it to /dependency)")
        schedule = reader.text("schedule", required=True)
        zone = reader.text("scheduleTimeZone")
        try:
            parsed = sched.parse(schedule, zone or None, now=now or _SYNTAX_ONLY_NOW)
        except sched.ScheduleError as error:
            reader.fail("schedule", str(error))
        if now is not None and _EMPTY_START.fullmatch(schedule):
            schedule = sched.format(parsed)
    else:
        if has_schedule:
            reader.fail("schedule", "field 'schedule' belongs to a scheduled job (POST it to /iso8601)")
        parents = tuple(dict.fromkeys(reader.strings("parents")))
        if not parents:
            reader.fail("parents", "field 'parents' must name at least one parent job")

    epsilon = reader.text("epsilon") or DEFAULT_EPSILON
    try:
        epsilon = sched.format_period(sched.parse_period(epsilon))
    except sched.ScheduleError:
        reader.fail("epsilon", f"epsilon '{epsilon}' is not an ISO 8601 period")

    container = _container(_Reader(reader.data["container"], name, "container")) if reader.has("container") else None
    command = reader.text("command")
    if not command and container is None:
        reader.fail("command", "field 'command' is required (unless the job runs a container)")
    uris, fetch = reader.strings("uris"), reader.objects("fetch")
    if uris and fetch:
        reader.fail("fetch", "use either 'fetch' or the deprecated 'uris', not both")

    return Job(
        name=name,
        command=command,
        schedule=schedule,
        schedule_time_zone=zone,
        parents=parents,
        epsilon=epsilon,
        retries=reader.integer("retries", 2),
        owner=reader.text("owner"),
        owner_name=reader.text("ownerName"),
        description=reader.text("description"),
        async_=reader.boolean("async", False),
        cpus=reader.number("cpus", DEFAULT_CPUS),
        mem=reader.number("mem", DEFAULT_MEM),
        disk=reader.number("disk", DEFAULT_DISK),
        disabled=reader.boolean("disabled", False),
        concurrent=reader.boolean("concurrent", False),
        shell=reader.boolean("shell", True),
        arguments=reader.strings("arguments"),
        environment_variables=tuple(EnvironmentVariable(item.text("name", required=True),
                                                        item.text("value", required=True))
                                    for item in reader.objects("environmentVariables")),
        uris=uris,
        fetch=tuple(Fetch(uri=item.text("uri", required=True),
                          executable=item.boolean("executable", False),
                          cache=item.boolean("cache", False),
                          extract=item.boolean("extract", True),
                          output_file=item.text("output_file"))
                    for item in fetch),
        constraints=_constraints(reader),
        container=container,
        run_as_user=reader.text("runAsUser") or DEFAULT_USER,
        soft_error=reader.boolean("softError", False),
        data_processing_job_type=reader.boolean("dataProcessingJobType", False),
        high_priority=reader.boolean("highPriority", False),
        executor=reader.text("executor"),
        executor_flags=reader.text("executorFlags"),
        task_info_data=reader.text("taskInfoData"),
        max_completion_time=reader.integer("maxCompletionTime", 0),
        success_count=reader.integer("successCount", 0),
        error_count=reader.integer("errorCount", 0),
        errors_since_last_success=reader.integer("errorsSinceLastSuccess", 0),
        last_success=_timestamp(reader, "lastSuccess"),
        last_error=_timestamp(reader, "lastError"),
    )


def job_schedule(job: Job, now: datetime | None = None) -> sched.Schedule:
    """The parsed schedule of a scheduled job (`now` fills an empty start)."""
    if job.schedule is None:
        raise JobError(job.name, "schedule", "a dependent job has no schedule")
    return sched.parse(job.schedule, job.schedule_time_zone or None, now=now)


# --- rendering -----------------------------------------------------------------------------------

def _pairs(pairs: Iterable[KeyValue]) -> list[dict[str, str]]:
    return [{"key": pair.key, "value": pair.value} for pair in pairs]


def _container_json(container: Container) -> dict[str, Any]:
    body: dict[str, Any] = {"type": container.type, "image": container.image, "network": container.network}
    if container.network_name is not None:
        body["networkName"] = container.network_name
    if container.networks:
        body["networkInfos"] = [
            {"name": network.name, **({"protocol": network.protocol} if network.protocol else {}),
             "labels": _pairs(network.labels),
             "portMappings": [{"hostPort": mapping.host_port, "containerPort": mapping.container_port,
                               **({"protocol": mapping.protocol} if mapping.protocol else {})}
                              for mapping in network.port_mappings]}
            for network in container.networks]
    volumes = []
    for volume in container.volumes:
        item: dict[str, Any] = {}
        if volume.host_path is not None:
            item["hostPath"] = volume.host_path
        item["containerPath"] = volume.container_path
        if volume.mode is not None:
            item["mode"] = volume.mode
        if volume.external is not None:
            item["external"] = {"name": volume.external.name, "provider": volume.external.provider,
                                "options": _pairs(volume.external.options)}
        volumes.append(item)
    body["volumes"] = volumes
    body["forcePullImage"] = container.force_pull_image
    body["parameters"] = _pairs(container.parameters)
    return body


def to_json(job: Job) -> dict[str, Any]:
    """The job as Chronos lists it in `GET /v1/scheduler/jobs`, field names and order included."""
    body: dict[str, Any] = {
        "name": job.name, "command": job.command, "shell": job.shell, "epsilon": job.epsilon,
        "executor": job.executor, "executorFlags": job.executor_flags, "taskInfoData": job.task_info_data,
        "retries": job.retries, "owner": job.owner, "ownerName": job.owner_name,
        "description": job.description, "async": job.async_, "successCount": job.success_count,
        "errorCount": job.error_count, "lastSuccess": job.last_success, "lastError": job.last_error,
        "cpus": job.cpus, "disk": job.disk, "mem": job.mem, "disabled": job.disabled,
        "concurrent": job.concurrent, "softError": job.soft_error,
        "dataProcessingJobType": job.data_processing_job_type,
        "errorsSinceLastSuccess": job.errors_since_last_success,
        "maxCompletionTime": job.max_completion_time,
        "fetch": [{"uri": item.uri, "executable": item.executable, "cache": item.cache, "extract": item.extract,
                   **({"output_file": item.output_file} if item.output_file else {})} for item in job.fetch],
        "uris": list(job.uris),
        "environmentVariables": [{"name": item.name, "value": item.value} for item in job.environment_variables],
        "arguments": list(job.arguments),
        "highPriority": job.high_priority,
        "runAsUser": job.run_as_user,
    }
    if job.container is not None:
        body["container"] = _container_json(job.container)
    body["constraints"] = [[item.attribute, item.operator, item.value] for item in job.constraints]
    if job.parents:
        body["parents"] = list(job.parents)
    else:
        body["schedule"] = job.schedule
        body["scheduleTimeZone"] = job.schedule_time_zone
    return body


# --- the dependency graph ------------------------------------------------------------------------
# Pure functions over a mapping name -> Job (the jobs Chronos knows). Edges run parent -> child.

EdgeCounts = Mapping[tuple[str, str], int]


def children_of(jobs: Mapping[str, Job], name: str) -> tuple[str, ...]:
    """The dependent jobs that list `name` as a parent, sorted."""
    return tuple(sorted(child.name for child in jobs.values() if name in child.parents))


def check_parents(jobs: Mapping[str, Job], job: Job) -> None:
    """Refuse `job` if any of its parents is not a known job, naming the missing ones.

    Chronos itself silently drops a dependent job whose parents are not all registered; wharf's
    stand-in rejects it instead, so a typo cannot make a job vanish.
    """
    missing = [parent for parent in job.parents if parent not in jobs and parent != job.name]
    if missing:
        names = ", ".join(f"'{parent}'" for parent in missing)
        raise JobError(job.name, "parents", f"unknown parent{'s' if len(missing) > 1 else ''} {names}")


def check_acyclic(jobs: Mapping[str, Job], job: Job) -> None:
    """Refuse `job` (new, or replacing its namesake) if its parents would close a cycle, as Chronos's DAG does."""
    graph = {**jobs, job.name: job}
    path = _path_to(graph, job.name, job.parents, (job.name,))
    if path is not None:
        raise JobError(job.name, "parents", "parents would form a cycle: " + " depends on ".join(path))


def check_dependencies(jobs: Mapping[str, Job], job: Job) -> None:
    """Both checks a dependent job must pass before it joins `jobs`."""
    check_parents(jobs, job)
    check_acyclic(jobs, job)


def _path_to(graph: Mapping[str, Job], target: str, parents: Iterable[str],
             path: tuple[str, ...]) -> tuple[str, ...] | None:
    """A chain of parents from the end of `path` back to `target`, if there is one (depth first)."""
    for parent in parents:
        if parent == target:
            return (*path, parent)
        if parent in path or parent not in graph:
            continue
        found = _path_to(graph, target, graph[parent].parents, (*path, parent))
        if found is not None:
            return found
    return None


def ready_dependents(jobs: Mapping[str, Job], finished: str,
                     counts: EdgeCounts) -> tuple[tuple[str, ...], dict[tuple[str, str], int]]:
    """The children to enqueue now that `finished` succeeded, and the updated edge counts.

    Chronos's rule (`JobGraph.getExecutableChildren`): a child with one parent always runs; for a
    child with several, the edge from `finished` counts one more finish, and the child runs when
    that count equals the smallest count over all its parent edges, i.e. once every parent has
    finished since the child last started (`dependent_started` resets its edges). Disabled children
    are counted but not returned. Chronos also calls this after a final failure of a job with
    `softError` set, and after `PUT /job/success/<name>`.
    """
    updated = dict(counts)
    ready = []
    for child in children_of(jobs, finished):
        parents = jobs[child].parents
        if len(parents) > 1:
            updated[(finished, child)] = updated.get((finished, child), 0) + 1
            if updated[(finished, child)] != min(updated.get((parent, child), 0) for parent in parents):
                continue
        if not jobs[child].disabled:
            ready.append(child)
    return tuple(ready), updated


def dependent_started(jobs: Mapping[str, Job], name: str, counts: EdgeCounts) -> dict[tuple[str, str], int]:
    """Reset the counts on the edges into `name`, as Chronos does when one of its tasks starts."""
    parents = jobs[name].parents if name in jobs else ()
    return {**counts, **{(parent, name): 0 for parent in parents}}


def without_job(jobs: Mapping[str, Job], name: str) -> dict[str, Job]:
    """The jobs after deleting `name`: children with other parents lose it, as in Chronos.

    A child whose only parent is `name` would be orphaned (Chronos drops it silently on its next
    reload); wharf's stand-in refuses the deletion instead, naming the child.
    """
    orphans = [child for child in children_of(jobs, name) if jobs[child].parents == (name,)]
    if orphans:
        names = ", ".join(f"'{child}'" for child in orphans)
        raise JobError(name, "parents", f"cannot delete: {names} depend{'s' if len(orphans) == 1 else ''} "
                                        "only on it; delete or re-parent them first")
    remaining: dict[str, Job] = {}
    for key, job in jobs.items():
        if key == name:
            continue
        if name in job.parents:
            job = replace(job, parents=tuple(parent for parent in job.parents if parent != name))
        remaining[key] = job
    return remaining


def last_state(job: Job) -> str:
    """`fresh` (never ran), `success` or `failure`: whichever of lastSuccess/lastError is later."""
    if not job.last_success and not job.last_error:
        return "fresh"
    if not job.last_error:
        return "success"
    if not job.last_success:
        return "failure"
    succeeded, failed = sched.parse_datetime(job.last_success), sched.parse_datetime(job.last_error)
    return "success" if succeeded > failed else "failure"


def graph_csv(jobs: Mapping[str, Job], states: Mapping[str, str],
              running: Mapping[str, int] | None = None) -> str:
    """The body of `GET /v1/scheduler/graph/csv`, sorted by name (Chronos's order is a hash map's).

    `states` gives each job's status, `idle` (the default), `queued` or `running`; Chronos prints a
    running job as `<n> running`, with n from `running` (default 1).
    """
    lines = []
    for name in sorted(jobs):
        status = states.get(name, "idle")
        if status not in STATUSES:
            raise ValueError(f"status of job '{name}' must be one of {', '.join(STATUSES)}, got {status!r}")
        if status == "running":
            status = f"{(running or {}).get(name, 1)} running"
        lines.append(f"node,{name},{last_state(jobs[name])},{status}\n")
    for name in sorted(jobs):
        lines.extend(f"link,{parent},{name}\n" for parent in sorted(jobs[name].parents) if parent in jobs)
    return "".join(lines)
