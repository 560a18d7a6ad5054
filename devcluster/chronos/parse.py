"""Reading a Chronos job body into `devcluster.chronos.model.Job`, as Chronos's `JobDeserializer` does.

Absent fields take Chronos's defaults (`retries` 2, `shell` true, `epsilon` `--task_epsilon` = PT60S,
`cpus`/`mem`/`disk` the `--mesos_task_*` defaults 0.1/128/256 also when given as 0, `runAsUser`
`--user` = root); numbers and booleans may arrive as strings (`"cpus": "0.5"`); unknown fields are
dropped, as Chronos drops them. Names must fully match `[\\w.-]+` (ASCII), the rule Chronos 3
enforces (its docs still show the older `[\\w\\s\\.#_-]+`). `epsilon` and `async` are kept although
Chronos 3 dropped them: the documented examples and Chronos 2 use them, and the stand-in's runner
honours epsilon.

Where wharf's stand-in is stricter than Chronos, on purpose, so mistakes surface at POST time: a
job may not carry both `schedule` and `parents`; `command` is required unless a container is given
(Chronos 3 defaults it to ""); an unknown constraint operator, a container without an image, a
missing parent or a bad field type is an error (Chronos drops, defaults or fails later).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn

from devcluster.chronos.model import (
    CONSTRAINT_OPERATORS,
    CONTAINER_TYPES,
    DEFAULT_CPUS,
    DEFAULT_DISK,
    DEFAULT_EPSILON,
    DEFAULT_MEM,
    DEFAULT_USER,
    KINDS,
    NAME_PATTERN,
    NETWORK_MODES,
    PROTOCOLS,
    VOLUME_MODES,
    Constraint,
    Container,
    EnvironmentVariable,
    ExternalVolume,
    Fetch,
    Job,
    JobError,
    KeyValue,
    Network,
    PortMapping,
    Volume,
)
from wharf.contracts import chronos_schedule as sched

# An empty start means "now"; without a clock such a schedule is only checked for syntax, using this.
_SYNTAX_ONLY_NOW = datetime(2000, 1, 1, tzinfo=UTC)
_EMPTY_START = re.compile(r"R\d*//P.*")


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
    schedule, zone, parents = _schedule_or_parents(reader, kind, now)
    epsilon = _epsilon(reader)
    command, container, uris, fetch = _what_runs(reader, name)
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
        environment_variables=_environment_variables(reader),
        uris=uris,
        fetch=_fetches(fetch),
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


def _schedule_or_parents(reader: _Reader, kind: str,
                         now: datetime | None) -> tuple[str | None, str, tuple[str, ...]]:
    """(schedule, time zone, parents): a scheduled job has the first two, a dependent job parents."""
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
    return schedule, zone, parents


def _epsilon(reader: _Reader) -> str:
    """How late a run may start, as an ISO 8601 period in Chronos's form."""
    epsilon = reader.text("epsilon") or DEFAULT_EPSILON
    try:
        epsilon = sched.format_period(sched.parse_period(epsilon))
    except sched.ScheduleError:
        reader.fail("epsilon", f"epsilon '{epsilon}' is not an ISO 8601 period")
    return epsilon


def _what_runs(reader: _Reader, name: str) -> tuple[str, Container | None, tuple[str, ...], list[_Reader]]:
    """(command, container, uris, fetch items): a command unless a container runs, fetch or uris."""
    container = _container(_Reader(reader.data["container"], name, "container")) if reader.has("container") else None
    command = reader.text("command")
    if not command and container is None:
        reader.fail("command", "field 'command' is required (unless the job runs a container)")
    uris, fetch = reader.strings("uris"), reader.objects("fetch")
    if uris and fetch:
        reader.fail("fetch", "use either 'fetch' or the deprecated 'uris', not both")
    return command, container, uris, fetch


def _environment_variables(reader: _Reader) -> tuple[EnvironmentVariable, ...]:
    return tuple(EnvironmentVariable(item.text("name", required=True), item.text("value", required=True))
                 for item in reader.objects("environmentVariables"))


def _fetches(items: list[_Reader]) -> tuple[Fetch, ...]:
    return tuple(Fetch(uri=item.text("uri", required=True),
                       executable=item.boolean("executable", False),
                       cache=item.boolean("cache", False),
                       extract=item.boolean("extract", True),
                       output_file=item.text("output_file"))
                 for item in items)
