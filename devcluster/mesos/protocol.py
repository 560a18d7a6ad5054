"""The v1 scheduler API's JSON at the edge: calls and TaskInfos in, events and statuses out.

Parsing turns request bodies into frozen values (or raises :class:`BadCall`, answered 400 as
Mesos answers a body it cannot convert or validate); builders return plain dicts using the
field names and enum values of ``mesos/v1/scheduler/scheduler.proto`` and ``mesos/v1/mesos.proto``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devcluster.mesos.resources import Resources

CALL_TYPES = frozenset({
    "SUBSCRIBE", "TEARDOWN", "ACCEPT", "DECLINE", "ACCEPT_INVERSE_OFFERS", "DECLINE_INVERSE_OFFERS",
    "REVIVE", "KILL", "SHUTDOWN", "ACKNOWLEDGE", "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE",
    "RECONCILE_OPERATIONS", "MESSAGE", "REQUEST", "SUPPRESS", "UPDATE_FRAMEWORK",
})
TERMINAL_STATES = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
                             "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"})
DEFAULT_REFUSE_SECONDS = 5.0  # Filters.refuse_seconds's default in mesos.proto
MAX_REFUSE_SECONDS = 365 * 24 * 3600.0


class BadCall(Exception):
    """A request the master refuses outright with an HTTP status (400 unless told)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadCall(f"Failed to convert JSON into Call protobuf: '{where}' is not an object")
    return value


def _id(value: Any, where: str) -> str:
    """The ``value`` of an ``XxxID`` message; BadCall when missing (a required field)."""
    text = _obj(value, where).get("value")
    if not isinstance(text, str) or not text:
        raise BadCall(f"Failed to convert JSON into Call protobuf: missing required field '{where}.value'")
    return text


@dataclass(frozen=True)
class Call:
    """A parsed ``scheduler::Call``: its type, framework id and the sub-message for that type."""

    type: str
    framework_id: str | None
    body: Mapping[str, Any]


def parse_call(raw: bytes) -> Call:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadCall(f"Failed to parse body into JSON: {err}") from None
    if not isinstance(data, dict):
        raise BadCall("Failed to convert JSON into Call protobuf: expected a JSON object")
    kind = data.get("type")
    if kind is None:
        raise BadCall("Failed to validate scheduler::Call: Expecting 'type' to be present")
    if kind not in CALL_TYPES:
        raise BadCall(f"Failed to convert JSON into Call protobuf: Failed to find enum for '{kind}'")
    framework_id = _id(data["framework_id"], "framework_id") if data.get("framework_id") is not None else None
    if kind != "SUBSCRIBE" and framework_id is None:
        raise BadCall("Failed to validate scheduler::Call: Expecting 'framework_id' to be present")
    body = _obj(data.get(kind.lower()), kind.lower())
    if kind in ("SUBSCRIBE", "ACCEPT", "DECLINE", "KILL", "ACKNOWLEDGE") and not body:
        raise BadCall(f"Failed to validate scheduler::Call: Expecting '{kind.lower()}' to be present")
    return Call(kind, framework_id, body)


def refuse_seconds(filters: Any) -> float:
    """``Filters.refuse_seconds`` with Mesos's default (5 s) and its bounds."""
    value = _obj(filters, "filters").get("refuse_seconds", DEFAULT_REFUSE_SECONDS)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise BadCall("Failed to convert JSON into Call protobuf: 'filters.refuse_seconds' is not a number") from None
    if seconds < 0:
        return DEFAULT_REFUSE_SECONDS  # Mesos: a negative duration falls back to the default
    return min(seconds, MAX_REFUSE_SECONDS)


def ids(items: Any, where: str) -> tuple[str, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise BadCall(f"Failed to convert JSON into Call protobuf: '{where}' is not an array")
    return tuple(_id(item, where) for item in items)


# --- TaskInfo -------------------------------------------------------------------------------

class TaskInvalid(ValueError):
    """A TaskInfo the master answers with TASK_ERROR / REASON_TASK_INVALID."""


@dataclass(frozen=True)
class CommandSpec:
    value: str | None
    shell: bool
    arguments: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class VolumeSpec:
    container_path: str
    host_path: str
    read_only: bool


@dataclass(frozen=True)
class PortMappingSpec:
    """``DockerInfo.PortMapping``: a host port published for a container port (BRIDGE networking)."""

    host_port: int
    container_port: int
    protocol: str  # tcp or udp (Mesos's default: tcp)


@dataclass(frozen=True)
class ContainerSpec:
    type: str  # DOCKER or MESOS
    image: str | None
    network: str  # HOST, BRIDGE, NONE, USER
    volumes: tuple[VolumeSpec, ...]
    privileged: bool
    port_mappings: tuple[PortMappingSpec, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()  # ``docker run --key value`` options, in order
    force_pull: bool = False


@dataclass(frozen=True)
class MesosTaskSpec:
    """What the master and the agents need from one TaskInfo; ``info`` keeps the JSON for views."""

    task_id: str
    name: str
    agent_id: str
    resources: Resources
    command: CommandSpec | None
    container: ContainerSpec | None
    labels: tuple[tuple[str, str], ...]
    has_executor: bool
    kill_grace: float | None
    info: Mapping[str, Any]
    problem: str | None = None  # why the task is invalid (TASK_ERROR), if it is


def grace_seconds(kill_policy: Any) -> float | None:
    period = _obj(kill_policy, "kill_policy").get("grace_period")
    if not period:
        return None
    return max(0.0, int(_obj(period, "grace_period").get("nanoseconds", 0)) / 1e9)


def _environment(command: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for var in _obj(command.get("environment"), "environment").get("variables", []):
        if var.get("type", "VALUE") != "VALUE":
            raise TaskInvalid(f"environment variable {var.get('name')!r}: secrets are not supported by this stand-in")
        out.append((str(var["name"]), str(var.get("value", ""))))
    return tuple(out)


def _command(raw: Any) -> CommandSpec | None:
    if raw is None:
        return None
    command = _obj(raw, "command")
    if command.get("uris"):
        raise TaskInvalid("CommandInfo.uris (fetching) is not supported by this stand-in")
    value = command.get("value")
    return CommandSpec(str(value) if value is not None else None, bool(command.get("shell", True)),
                       tuple(str(a) for a in command.get("arguments", [])), _environment(command))


def _container(raw: Any) -> ContainerSpec | None:
    if raw is None:
        return None
    container = _obj(raw, "container")
    kind = container.get("type")
    if kind not in ("DOCKER", "MESOS"):
        raise TaskInvalid(f"ContainerInfo.type {kind!r} is not DOCKER or MESOS")
    volumes = []
    for vol in container.get("volumes", []):
        if vol.get("source") or vol.get("image") or not vol.get("host_path"):
            raise TaskInvalid("only host_path volumes are supported by this stand-in")
        volumes.append(VolumeSpec(str(vol["container_path"]), str(vol["host_path"]), vol.get("mode") == "RO"))
    docker = _obj(container.get("docker"), "docker")
    image: str | None = docker.get("image")
    if kind == "MESOS":
        mesos_image = _obj(container.get("mesos"), "mesos").get("image")
        if mesos_image:
            raise TaskInvalid("Mesos containerizer images are not supported by this stand-in; use DOCKER")
    elif not image:
        raise TaskInvalid("DockerInfo.image is required for a DOCKER container")
    try:
        mappings = tuple(PortMappingSpec(int(m["host_port"]), int(m["container_port"]), str(m.get("protocol") or "tcp"))
                         for m in docker.get("port_mappings", []))
        parameters = tuple((str(p["key"]), str(p["value"])) for p in docker.get("parameters", []))
    except (KeyError, TypeError, ValueError) as err:
        raise BadCall(f"Failed to convert JSON into Call protobuf: DockerInfo: {err!r}") from None
    return ContainerSpec(kind, image, str(docker.get("network", "HOST")), tuple(volumes),
                         bool(docker.get("privileged", False)), mappings, parameters,
                         bool(docker.get("force_pull_image", False)))


def parse_task(info: Any) -> MesosTaskSpec:
    """Parse a TaskInfo; BadCall when a required field is missing; content problems go to ``problem``."""
    info = _obj(info, "task_infos")
    task_id = _id(info.get("task_id"), "task_id")
    agent_id = _id(info.get("agent_id"), "agent_id")
    name = info.get("name")
    if not isinstance(name, str):
        raise BadCall("Failed to convert JSON into Call protobuf: missing required field 'TaskInfo.name'")
    try:
        resources = Resources.from_proto(info.get("resources", []))
    except (ValueError, TypeError, KeyError) as err:
        raise BadCall(f"Failed to convert JSON into Call protobuf: {err}") from None
    labels = tuple((str(lab["key"]), str(lab.get("value", "")))
                   for lab in _obj(info.get("labels"), "labels").get("labels", []))
    try:
        command, container, problem = _command(info.get("command")), _container(info.get("container")), None
    except TaskInvalid as err:
        command, container, problem = None, None, str(err)
    return MesosTaskSpec(task_id, name, agent_id, resources, command, container, labels,
                         info.get("executor") is not None, grace_seconds(info.get("kill_policy")), info, problem)


# --- events ---------------------------------------------------------------------------------

def event(kind: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``scheduler::Event``: ``{"type": KIND, "kind": body}`` (HEARTBEAT has no body)."""
    out: dict[str, Any] = {"type": kind}
    if body is not None:
        out[kind.lower()] = dict(body)
    return out


def record(data: Mapping[str, Any]) -> bytes:
    """One RecordIO record: the decimal length, a newline, then the JSON bytes."""
    payload = json.dumps(data, separators=(",", ":")).encode()
    return b"%d\n%s" % (len(payload), payload)


def encode_uuid(raw: bytes) -> str:
    """Bytes fields travel base64-encoded in Mesos's JSON."""
    return base64.b64encode(raw).decode()


def task_status(task_id: str, state: str, agent_id: str, *, source: str, timestamp: float,
                reason: str | None = None, message: str | None = None, uuid: bytes | None = None,
                container_status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``TaskStatus``; updates that need acknowledging carry a ``uuid``."""
    status: dict[str, Any] = {"task_id": {"value": task_id}, "state": state, "agent_id": {"value": agent_id},
                              "source": source, "timestamp": timestamp}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if uuid is not None:
        status["uuid"] = encode_uuid(uuid)
    if container_status:
        status["container_status"] = dict(container_status)
    return status
