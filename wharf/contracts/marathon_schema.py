"""Marathon's app-definition field rules (Marathon 1.10's RAML types) as a small declarative validator.

`APP_SPEC.check(app, "")` yields a `Violation` per broken field rule, at a Marathon-style path:
`/field/sub` for properties, `/list(3)` for items, and `/` for the app as a whole. The rules
across fields live in `marathon_rules`. Pure, standard library only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["APP_FIELDS", "APP_SPEC", "HEALTH_CHECK_PROTOCOLS", "ID_SEGMENT", "Violation"]

HEALTH_CHECK_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")

@dataclass(frozen=True)
class Violation:
    """One broken rule, at a Marathon-style path such as `/healthChecks(0)/protocol`."""

    path: str
    message: str


# --- a small declarative validator ---------------------------------------------------------------

_KIND_MESSAGES = {"string": "must be a string", "integer": "must be an integer",
                  "number": "must be a number", "boolean": "must be a boolean",
                  "array": "must be an array", "object": "must be an object"}


def _at(path: str) -> str:
    return path or "/"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"  # play-json reads 2.0 as an Int, so do we
    if isinstance(value, float):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return kinds.get(type(value), "unknown")


def _wrong_kind(path: str, kind: str) -> Violation:
    return Violation(_at(path), _KIND_MESSAGES[kind])


class Rule:
    """A rule for one JSON value; `kind` is the JSON type it expects."""

    kind = "any"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Rule):
    min_len: int = 0
    max_len: int | None = None
    pattern: str | None = None
    kind = "string"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        if not isinstance(value, str):
            yield _wrong_kind(path, "string")
        elif len(value) < self.min_len:
            yield Violation(_at(path), "must not be empty" if self.min_len == 1
                            else f"must be at least {self.min_len} characters long")
        elif self.max_len is not None and len(value) > self.max_len:
            yield Violation(_at(path), f"must be at most {self.max_len} characters long")
        elif self.pattern is not None and not re.fullmatch(self.pattern, value):
            yield Violation(_at(path), f"must fully match regular expression '^{self.pattern}$'")


class OneOf(Rule):
    """One of a fixed set of strings (a RAML enum; exact case)."""

    kind = "string"

    def __init__(self, *values: str) -> None:
        self.values = values

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        if not isinstance(value, str) or value not in self.values:
            yield Violation(_at(path), f"is not one of ({','.join(self.values)})")


@dataclass(frozen=True)
class Num(Rule):
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "integer" if self.integer else "number"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        found = _json_kind(value)
        if found not in ("integer", "number") or (self.integer and found != "integer") \
                or (isinstance(value, float) and not math.isfinite(value)):
            yield _wrong_kind(path, self.kind)
        elif self.minimum is not None and value < self.minimum:
            yield Violation(_at(path), f"is less than {self.minimum:g}")
        elif self.maximum is not None and value > self.maximum:
            yield Violation(_at(path), f"is greater than {self.maximum:g}")


def Int(minimum: float | None = None, maximum: float | None = None) -> Num:  # noqa: N802
    """An integer rule (a `Num` that refuses fractions)."""
    return Num(minimum, maximum, integer=True)


@dataclass(frozen=True)
class Bool(Rule):
    kind = "boolean"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        if not isinstance(value, bool):
            yield _wrong_kind(path, "boolean")


@dataclass(frozen=True)
class Arr(Rule):
    items: Rule
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False
    kind = "array"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        if not isinstance(value, list):
            yield _wrong_kind(path, "array")
            return
        if len(value) < self.min_items:
            yield Violation(_at(path), f"must have at least {self.min_items} elements")
        if self.max_items is not None and len(value) > self.max_items:
            yield Violation(_at(path), f"must have at most {self.max_items} elements")
        if self.unique and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            yield Violation(_at(path), "elements must be unique")
        for i, item in enumerate(value):
            yield from self.items.check(item, f"{path}({i})")


@dataclass(frozen=True)
class Obj(Rule):
    """An object with known `fields` (others are refused), or a map whose values follow `values`."""

    fields: Mapping[str, Rule] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    values: Rule | None = None
    kind = "object"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        if not isinstance(value, dict):
            yield _wrong_kind(path, "object")
            return
        if self.values is not None:
            for key, item in value.items():
                yield from self.values.check(item, f"{path}/{key}")
            return
        for name in sorted(self.required - value.keys()):
            yield Violation(f"{path}/{name}", "is required")
        for key, item in value.items():
            spec = self.fields.get(key)
            if spec is None:
                yield Violation(f"{path}/{key}", "is not a known property")
            elif item is not None or key in self.required:  # Marathon reads null as "absent"
                yield from spec.check(item, f"{path}/{key}")


def _obj(required: Iterable[str] = (), **fields: Rule) -> Obj:
    return Obj(fields, frozenset(required))


def _map(values: Rule) -> Obj:
    return Obj(values=values)


class AnyOf(Rule):
    """Valid when any alternative is; otherwise explain against the alternative of the same kind."""

    kind = "union"

    def __init__(self, *alternatives: Rule) -> None:
        self.alternatives = alternatives

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        results = [list(alt.check(value, path)) for alt in self.alternatives]
        if any(not r for r in results):
            return
        found = _json_kind(value)
        same = [r for alt, r in zip(self.alternatives, results, strict=True)
                if alt.kind == found or (alt.kind == "number" and found == "integer")]
        if len(same) == 1:
            yield from same[0]
        else:
            kinds = " or ".join(dict.fromkeys(alt.kind for alt in self.alternatives))
            yield Violation(_at(path), f"must be a {kinds}")


@dataclass(frozen=True)
class Switch(Rule):
    """An object whose shape is picked by `choose` (e.g. by which key is present)."""

    choose: Callable[[dict], Rule | None]
    message: str
    kind = "object"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        if not isinstance(value, dict):
            yield _wrong_kind(path, "object")
            return
        spec = self.choose(value)
        if spec is None:
            yield Violation(_at(path), self.message)
        else:
            yield from spec.check(value, path)


def _by_key(*shapes: tuple[str, Rule]) -> Callable[[dict], Rule | None]:
    return lambda value: next((spec for key, spec in shapes if key in value), None)


# --- the app definition, field by field (Marathon 1.10 RAML) -------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"  # RAML strings.Name / LegacyName
_NETWORK_NAME = r"[a-z0-9]([-a-z0-9_]*[a-z0-9])?"
ID_SEGMENT = r"(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
_EXECUTOR = r"|//cmd|/?[^/]+(/[^/]+)*"
_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})"

_PORT = Int(0, 65535)
_LABELS = _map(Str())
_PROTOCOL = OneOf("tcp", "udp", "udp,tcp")
_SECONDS = Int(0)
_NAME = Str(1, pattern=_LABEL)
_PATH = Str(1, 1024)
_DATE = Str(pattern=_DATETIME)

_PORT_MAPPING = _obj(
    containerPort=_PORT, hostPort=_PORT, servicePort=_PORT, labels=_LABELS, name=_NAME,
    protocol=_PROTOCOL, networkNames=Arr(Str(1, 63, _LABEL)))
_DOCKER = _obj(
    ["image"], image=Str(1), forcePullImage=Bool(), privileged=Bool(),
    credential=_obj(["principal"], principal=Str(), secret=Str()),
    pullConfig=_obj(["secret"], secret=Str(1)),
    network=OneOf("BRIDGE", "HOST", "NONE", "USER"),
    parameters=Arr(_obj(["key", "value"], key=Str(1), value=Str())),
    portMappings=Arr(_PORT_MAPPING))
_MODE = OneOf("RO", "RW")
_DVDI = _obj(size=Int(0), name=Str(), provider=Str(), options=_LABELS, shared=Bool())
_CSI = _obj(
    ["name", "provider", "options"], name=Str(), provider=OneOf("csi"),
    options=_obj(
        ["pluginName", "capability"], pluginName=Str(1),
        capability=_obj(
            ["accessMode", "accessType"],
            accessMode=OneOf("SINGLE_NODE_WRITER", "SINGLE_NODE_READER_ONLY", "MULTI_NODE_READER_ONLY",
                             "MULTI_NODE_SINGLE_WRITER", "MULTI_NODE_MULTI_WRITER"),
            accessType=OneOf("block", "mount"), fsType=Str(), mountFlags=Arr(Str())),
        nodeStageSecret=_LABELS, nodePublishSecret=_LABELS, volumeContext=_LABELS))
_VOLUME = Switch(_by_key(
    ("persistent", _obj(["containerPath", "persistent", "mode"], containerPath=Str(1), mode=_MODE,
                        persistent=_obj(["size"], type=OneOf("root", "path", "mount"), size=Int(0),
                                        maxSize=Int(0), profileName=Str(),
                                        constraints=Arr(Arr(Str(), 2, 3), unique=True)))),
    ("external", _obj(["containerPath", "external", "mode"], containerPath=Str(1), mode=_MODE,
                      external=Switch(lambda v: _CSI if v.get("provider") == "csi" else _DVDI,
                                      "must be an external volume"))),
    ("secret", _obj(["containerPath", "secret"], containerPath=Str(1), secret=Str(1))),
    ("hostPath", _obj(["containerPath", "hostPath", "mode"], containerPath=Str(1), hostPath=Str(1),
                      mode=_MODE)),
), "must be a host, persistent, external or secret volume")
_CONTAINER = _obj(
    type=OneOf("MESOS", "DOCKER"), docker=_DOCKER, volumes=Arr(_VOLUME), portMappings=Arr(_PORT_MAPPING),
    linuxInfo=_obj(seccomp=_obj(profileName=Str(), unconfined=Bool()),
                   ipcInfo=_obj(["mode"], mode=OneOf("PRIVATE", "SHARE_PARENT"), shmSize=Int())))
_HEALTH_CHECK = _obj(
    protocol=OneOf(*HEALTH_CHECK_PROTOCOLS), command=_obj(["value"], value=Str()),
    gracePeriodSeconds=_SECONDS, intervalSeconds=_SECONDS, maxConsecutiveFailures=Int(0),
    timeoutSeconds=_SECONDS, delaySeconds=_SECONDS, ignoreHttp1xx=Bool(), path=Str(),
    port=_PORT, portIndex=_PORT, ipProtocol=OneOf("IPv4", "IPv6"))
_MESOS_COMMAND = Switch(_by_key(("shell", _obj(["shell"], shell=Str(1))),
                                ("argv", _obj(["argv"], argv=Arr(Str(), 1)))),
                        "must specify either shell or argv")
_CHECK = _obj(
    http=_obj(portIndex=_PORT, port=_PORT, path=_PATH, scheme=OneOf("HTTP", "HTTPS")),
    tcp=_obj(portIndex=_PORT, port=_PORT), exec=_obj(["command"], command=_MESOS_COMMAND),
    intervalSeconds=_SECONDS, timeoutSeconds=_SECONDS, delaySeconds=_SECONDS)
_READINESS_CHECK = _obj(
    name=Str(1), protocol=OneOf("HTTP", "HTTPS"), path=_PATH, portName=_NAME,
    intervalSeconds=_SECONDS, timeoutSeconds=Int(1), preserveLastResponse=Bool(),
    httpStatusCodesForReady=Arr(Int(100, 999), 1, unique=True))
_RESOURCE_LIMIT = AnyOf(OneOf("unlimited"), Num())

APP_SPEC = _obj(
    ["id"],
    id=Str(1),  # the path rules live in parse_app_id
    acceptedResourceRoles=Arr(Str(), unique=True),
    args=Arr(Str()),
    backoffFactor=Num(1.0),
    backoffSeconds=_SECONDS,
    check=_CHECK,
    cmd=Str(1),
    constraints=Arr(Arr(Str(), 2, 3), unique=True),
    container=_CONTAINER,
    cpus=Num(0.001),
    dependencies=Arr(Str(1), unique=True),
    disk=Num(0),
    env=_map(AnyOf(Str(), _obj(["secret"], secret=Str()))),
    executor=Str(pattern=_EXECUTOR),
    executorResources=_obj(cpus=Num(0.1), mem=Num(32), disk=Num(10)),
    fetch=Arr(_obj(["uri"], uri=_PATH, extract=Bool(), executable=Bool(), cache=Bool(), destPath=_PATH)),
    gpus=Int(0),
    healthChecks=Arr(_HEALTH_CHECK, unique=True),
    instances=Int(0),
    ipAddress=_obj(
        discovery=_obj(ports=Arr(_obj(["name"], number=_PORT, name=_NAME, protocol=_PROTOCOL,
                                      labels=_LABELS))),
        groups=Arr(Str(), unique=True), labels=_LABELS, networkName=Str(1)),
    killSelection=OneOf("YOUNGEST_FIRST", "OLDEST_FIRST"),
    labels=_LABELS,
    maxLaunchDelaySeconds=_SECONDS,
    mem=Num(0),
    networks=Arr(_obj(name=Str(1, 63, _NETWORK_NAME), labels=_LABELS,
                      mode=OneOf("container", "container/bridge", "host"))),
    portDefinitions=Arr(_obj(port=_PORT, labels=_LABELS, name=_NAME, protocol=_PROTOCOL)),
    ports=Arr(_PORT),
    readinessChecks=Arr(_READINESS_CHECK),
    requirePorts=Bool(),
    residency=_obj(relaunchEscalationTimeoutSeconds=_SECONDS,
                   taskLostBehavior=OneOf("WAIT_FOREVER", "RELAUNCH_AFTER_TIMEOUT")),
    resourceLimits=_obj(cpus=_RESOURCE_LIMIT, mem=_RESOURCE_LIMIT),
    role=Str(1),
    secrets=_map(_obj(["source"], source=Str(1))),
    taskKillGracePeriodSeconds=_SECONDS,
    tty=Bool(),
    unreachableStrategy=AnyOf(OneOf("disabled"),
                              _obj(inactiveAfterSeconds=_SECONDS, expungeAfterSeconds=_SECONDS)),
    upgradeStrategy=_obj(["minimumHealthCapacity", "maximumOverCapacity"],
                         minimumHealthCapacity=Num(0, 1), maximumOverCapacity=Num(0, 1)),
    uris=Arr(_PATH),
    user=Str(),
    version=_DATE,
    versionInfo=_obj(["lastScalingAt", "lastConfigChangeAt"], lastScalingAt=_DATE,
                     lastConfigChangeAt=_DATE),
)
APP_FIELDS: frozenset[str] = frozenset(APP_SPEC.fields)

