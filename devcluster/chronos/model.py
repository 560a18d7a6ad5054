"""The Chronos stand-in's job model: a job and its parts as frozen values, and the errors about them.

Defaults are Chronos's (`retries` 2, `shell` true, `epsilon` `--task_epsilon` = PT60S, `cpus`/`mem`/
`disk` the `--mesos_task_*` defaults 0.1/128/256, `runAsUser` `--user` = root). Reading a job body
into these is `devcluster.chronos.parse`; rendering and the graph are `devcluster.chronos.jobs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from wharf.contracts import chronos_schedule as sched

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


def job_schedule(job: Job, now: datetime | None = None) -> sched.Schedule:
    """The parsed schedule of a scheduled job (`now` fills an empty start)."""
    if job.schedule is None:
        raise JobError(job.name, "schedule", "a dependent job has no schedule")
    return sched.parse(job.schedule, job.schedule_time_zone or None, now=now)
