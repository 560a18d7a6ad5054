"""Tasks as the framework keeps them: what was submitted (`TaskSpec`) and what became of it (`TaskRecord`).

Pure values and parsing only. A submission is checked here before anything is stored: image
reference, constraints, environment, resources. States a task goes through:

    QUEUED -> STAGING -> RUNNING -> FINISHED
                                 -> FAILED   (exited non-zero, retries used up)
                                 -> KILLED   (wharf framework kill)
                                 -> LOST     (agent or master lost it, retries used up)

A failed or lost attempt with retries left goes back to QUEUED, not before its backoff ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from framework.constraints import TaskConstraint, parse_constraint
from wharf.errors import BadInput

QUEUED, STAGING, RUNNING = "QUEUED", "STAGING", "RUNNING"
FINISHED, FAILED, KILLED, LOST = "FINISHED", "FAILED", "KILLED", "LOST"
STATES = (QUEUED, STAGING, RUNNING, FINISHED, FAILED, KILLED, LOST)
TERMINAL = frozenset({FINISHED, FAILED, KILLED, LOST})
ACTIVE = frozenset({STAGING, RUNNING})  # launched and not known to have ended
HISTORY_LIMIT = 50  # state changes kept per task
NETWORKS = ("HOST", "BRIDGE", "NONE")

# Docker's reference grammar (distribution/reference): [registry[:port]/]path[:tag][@digest]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?)"
_IMAGE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{{32,}})?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InvalidTask(BadInput, ValueError):
    """A submission that cannot be accepted; the message names the field and the reason."""


def check_image(image: str) -> str:
    """Return `image` if it is a valid Docker image reference, else raise `InvalidTask`."""
    if not image or len(image) > 255 or not _IMAGE.match(image):
        raise InvalidTask(f"--image: {image!r} is not a valid image reference "
                          "(expected [registry/]name[:tag][@digest], lowercase name)")
    return image


def parse_pairs(items: Iterable[str], flag: str, names: re.Pattern[str] | None = None) -> tuple[tuple[str, str], ...]:
    """Parse `K=V` items (as `--env K=V`); `names` restricts the keys."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidTask(f"{flag}: {item!r} is not KEY=VALUE")
        if names is not None and not names.match(key):
            raise InvalidTask(f"{flag}: {key!r} is not a valid variable name")
        out.append((key, value))
    return tuple(out)


@dataclass(frozen=True)
class TaskSpec:
    """What one task runs and needs; every instance of a submission shares all but `id`."""

    id: str
    group: str  # the submission it came from: constraints count placements within a group
    image: str
    cmd: str | None = None
    cpus: float = 0.1
    mem: float = 32.0
    disk: float = 0.0
    ports: tuple[int, ...] = ()  # container ports; each gets a host port from the offer
    network: str = "HOST"
    constraints: tuple[TaskConstraint, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()  # docker run options, as DockerInfo.parameters
    retries: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "group": self.group, "image": self.image, "cmd": self.cmd, "cpus": self.cpus,
                "mem": self.mem, "disk": self.disk, "ports": list(self.ports), "network": self.network,
                "constraints": [c.text for c in self.constraints], "env": dict(self.env),
                "labels": dict(self.labels), "parameters": [list(p) for p in self.parameters],
                "retries": self.retries}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskSpec:
        return cls(id=str(data["id"]), group=str(data["group"]), image=str(data["image"]), cmd=data.get("cmd"),
                   cpus=float(data["cpus"]), mem=float(data["mem"]), disk=float(data.get("disk", 0)),
                   ports=tuple(int(p) for p in data.get("ports", [])), network=str(data.get("network", "HOST")),
                   constraints=tuple(parse_constraint(c) for c in data.get("constraints", [])),
                   env=tuple(sorted(dict(data.get("env", {})).items())),
                   labels=tuple(sorted(dict(data.get("labels", {})).items())),
                   parameters=tuple((str(k), str(v)) for k, v in data.get("parameters", [])),
                   retries=int(data.get("retries", 0)))


@dataclass(frozen=True)
class Submission:
    """A checked `submit`: `instances` copies of one task; ids are given when it is accepted."""

    image: str
    cmd: str | None = None
    instances: int = 1
    cpus: float = 0.1
    mem: float = 32.0
    disk: float = 0.0
    ports: tuple[int, ...] = ()
    network: str = "HOST"
    constraints: tuple[TaskConstraint, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()
    retries: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "cmd": self.cmd, "instances": self.instances, "cpus": self.cpus,
                "mem": self.mem, "disk": self.disk, "ports": list(self.ports), "network": self.network,
                "constraints": [c.text for c in self.constraints], "env": dict(self.env),
                "labels": dict(self.labels), "parameters": [list(p) for p in self.parameters],
                "retries": self.retries}

    def tasks(self, group: str) -> list[TaskSpec]:
        """The submission's tasks, with ids `<group>-<n>`."""
        return [TaskSpec(id=f"{group}-{n}", group=group, image=self.image, cmd=self.cmd, cpus=self.cpus,
                         mem=self.mem, disk=self.disk, ports=self.ports, network=self.network,
                         constraints=self.constraints, env=self.env, labels=self.labels,
                         parameters=self.parameters, retries=self.retries)
                for n in range(self.instances)]


def _number(data: Mapping[str, Any], key: str, default: float, minimum: float, integer: bool = False) -> Any:
    raw = data.get(key, default)
    if raw is None:
        raw = default
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(raw) if integer else float(raw)
        if integer and float(raw) != value:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidTask(f"--{key}: {raw!r} is not a {'whole ' if integer else ''}number") from None
    if value < minimum or value != value:
        raise InvalidTask(f"--{key}: {raw!r} must be at least {minimum:g}")
    return value


def parse_submission(data: Mapping[str, Any]) -> Submission:
    """Check a submission (the API's JSON body, or the CLI's flags as a mapping); raise `InvalidTask`."""
    if not isinstance(data, Mapping):
        raise InvalidTask("the body must be a JSON object")
    image = check_image(str(data.get("image") or ""))
    cmd = data.get("cmd")
    if cmd is not None and not isinstance(cmd, str):
        raise InvalidTask("--cmd: must be a string")
    cpus = _number(data, "cpus", 0.1, 0.001)
    mem = _number(data, "mem", 32.0, 1.0)
    disk = _number(data, "disk", 0.0, 0.0)
    instances = _number(data, "instances", 1, 1, integer=True)
    if instances > 10000:
        raise InvalidTask(f"--instances: {instances} is more than 10000 in one submission")
    retries = _number(data, "retries", 0, 0, integer=True)
    network = str(data.get("network") or "HOST").upper()
    if network not in NETWORKS:
        raise InvalidTask(f"--network: {network!r} is not one of {', '.join(NETWORKS)}")
    ports = []
    for port in data.get("ports") or []:
        try:
            value = int(port)
        except (TypeError, ValueError):
            raise InvalidTask(f"--port: {port!r} is not a port number") from None
        if not 0 < value < 65536:
            raise InvalidTask(f"--port: {value} is not between 1 and 65535")
        ports.append(value)
    constraints = []
    for text in data.get("constraints") or []:
        try:
            constraints.append(parse_constraint(str(text)))
        except ValueError as exc:
            raise InvalidTask(f"--constraint: {exc}") from None
    env = _mapping(data, "env", "--env", _ENV_NAME)
    labels = _mapping(data, "labels", "--label", None)
    parameters = []
    for item in data.get("parameters") or []:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and item[0]):
            raise InvalidTask(f"--parameter: {item!r} is not KEY=VALUE")
        parameters.append((str(item[0]), str(item[1])))
    return Submission(image, cmd, instances, cpus, mem, disk, tuple(ports), network, tuple(constraints),
                      env, labels, tuple(parameters), retries)


def _mapping(data: Mapping[str, Any], key: str, flag: str,
             names: re.Pattern[str] | None) -> tuple[tuple[str, str], ...]:
    raw = data.get(key) or {}
    if not isinstance(raw, Mapping):
        raise InvalidTask(f"{flag}: expected KEY=VALUE pairs")
    return parse_pairs([f"{k}={v}" for k, v in sorted(raw.items())], flag, names)


@dataclass(frozen=True)
class TaskRecord:
    """One task's state, as stored in ZooKeeper; every change makes a new record."""

    spec: TaskSpec
    state: str = QUEUED
    submitted: float = 0.0
    launches: int = 0  # ACCEPTs sent so far: the current attempt's Mesos task id is `<id>.<launches>`
    failures: int = 0  # failed or lost attempts (counted against `retries`)
    not_before: float = 0.0  # a retry waits for its backoff
    agent_id: str | None = None
    hostname: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # the agent's, for constraints after a failover
    host_ports: tuple[int, ...] = ()
    kill_requested: bool = False
    seen: bool = False  # the master has told us about the current attempt
    running_at: float | None = None  # when the first attempt reached RUNNING
    message: str = ""
    history: tuple[tuple[float, str, str], ...] = field(default=())  # (time, state, message)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def mesos_id(self) -> str:
        return f"{self.spec.id}.{self.launches}"

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def ended_at(self) -> float | None:
        """When a finished task reached its terminal state (its last state change); None while live."""
        if not self.terminal:
            return None
        return self.history[-1][0] if self.history else self.submitted

    def moved(self, state: str, now: float, message: str = "", **changes: Any) -> TaskRecord:
        """This record in `state`, with the change appended to its history."""
        history = (*self.history, (now, state, message))[-HISTORY_LIMIT:]
        return replace(self, state=state, message=message, history=history, **changes)

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec.to_json(), "state": self.state, "submitted": self.submitted,
                "launches": self.launches, "failures": self.failures, "not_before": self.not_before,
                "agent_id": self.agent_id, "hostname": self.hostname,
                "attributes": dict(self.attributes), "host_ports": list(self.host_ports),
                "kill_requested": self.kill_requested, "seen": self.seen, "running_at": self.running_at,
                "message": self.message, "history": [list(h) for h in self.history]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskRecord:
        return cls(spec=TaskSpec.from_json(data["spec"]), state=str(data["state"]),
                   submitted=float(data.get("submitted", 0)), launches=int(data.get("launches", 0)),
                   failures=int(data.get("failures", 0)), not_before=float(data.get("not_before", 0)),
                   agent_id=data.get("agent_id"), hostname=data.get("hostname"),
                   attributes=tuple(sorted(dict(data.get("attributes") or {}).items())),
                   host_ports=tuple(int(p) for p in data.get("host_ports", [])),
                   kill_requested=bool(data.get("kill_requested")), seen=bool(data.get("seen")),
                   running_at=data.get("running_at"), message=str(data.get("message", "")),
                   history=tuple((float(t), str(s), str(m)) for t, s, m in data.get("history", [])))


def queued_record(spec: TaskSpec, now: float) -> TaskRecord:
    """The record of a task just submitted."""
    return TaskRecord(spec, submitted=now).moved(QUEUED, now, "submitted")


def split_mesos_id(mesos_id: str) -> tuple[str, int] | None:
    """`<task id>.<launch>` -> (task id, launch); None for ids this framework did not make."""
    task_id, sep, launch = mesos_id.rpartition(".")
    if not sep or not launch.isdigit():
        return None
    return task_id, int(launch)
