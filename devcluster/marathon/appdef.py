"""Marathon's app-definition contract: validation, 422 error bodies and the defaults GET returns.

The field rules follow Marathon 1.10's RAML types (`types/app.raml` and the types it uses). They
supersede the 1.7 JSON schema where the two differ: the RAML-only fields (`check`, `tty`, `role`,
`resourceLimits`, `container.linuxInfo`, secret volumes) are accepted, `container.appc` is gone, and
RAML's tighter bounds apply (`cpus >= 0.001`, no `..` inside an id segment, both upgrade-strategy
capacities required). Like Marathon, reading comes first: only an app that passes the field rules
goes on to the cross-field rules Marathon runs afterwards (cmd/args/container, constraint
operators, health-check ports, networking, secrets).

Deliberate differences from Marathon: enum values must match exactly (Marathon's reader also takes
lowercase); messages are readable sentences, and a reading failure is reported like any other
violation (Marathon answers those with "Invalid JSON" and play-json keys; `error_body` takes the
message); secrets count as enabled; persistent/external volume semantics, resource-role checks and
feature flags are not modelled.

Pure functions, standard library only.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "APP_FIELDS", "CONSTRAINT_OPERATORS", "HEALTH_CHECK_PROTOCOLS", "InvalidAppId", "Violation",
    "error_body", "normalize_app", "parse_app_id", "validate_app",
]

CONSTRAINT_OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
HEALTH_CHECK_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
MESOS_HEALTH_CHECK_PROTOCOLS = ("MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
RESERVED_ID_SEGMENTS = ("restart", "tasks", "versions")
SINGLE_INSTANCE_LABEL = "MARATHON_SINGLE_INSTANCE_APP"


@dataclass(frozen=True)
class Violation:
    """One broken rule, at a Marathon-style path such as `/healthChecks(0)/protocol`."""

    path: str
    message: str


# --- a small declarative validator ---------------------------------------------------------------
# Paths are built the way Marathon reports them: `/field/sub` for properties, `/list(3)` for items,
# and `/` for the app as a whole.

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


class Spec:
    """A rule for one JSON value; `kind` is the JSON type it expects."""

    kind = "any"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Spec):
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


class OneOf(Spec):
    """One of a fixed set of strings (a RAML enum; exact case)."""

    kind = "string"

    def __init__(self, *values: str) -> None:
        self.values = values

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        if not isinstance(value, str) or value not in self.values:
            yield Violation(_at(path), f"is not one of ({','.join(self.values)})")


@dataclass(frozen=True)
class Num(Spec):
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
class Bool(Spec):
    kind = "boolean"

    def check(self, value: Any, path: str) -> Iterator[Violation]:
        if not isinstance(value, bool):
            yield _wrong_kind(path, "boolean")


@dataclass(frozen=True)
class Arr(Spec):
    items: Spec
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
class Obj(Spec):
    """An object with known `fields` (others are refused), or a map whose values follow `values`."""

    fields: Mapping[str, Spec] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    values: Spec | None = None
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


def _obj(required: Iterable[str] = (), **fields: Spec) -> Obj:
    return Obj(fields, frozenset(required))


def _map(values: Spec) -> Obj:
    return Obj(values=values)


class AnyOf(Spec):
    """Valid when any alternative is; otherwise explain against the alternative of the same kind."""

    kind = "union"

    def __init__(self, *alternatives: Spec) -> None:
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
class Switch(Spec):
    """An object whose shape is picked by `choose` (e.g. by which key is present)."""

    choose: Callable[[dict], Spec | None]
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


def _by_key(*shapes: tuple[str, Spec]) -> Callable[[dict], Spec | None]:
    return lambda value: next((spec for key, spec in shapes if key in value), None)


# --- the app definition, field by field (Marathon 1.10 RAML) -------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"  # RAML strings.Name / LegacyName
_NETWORK_NAME = r"[a-z0-9]([-a-z0-9_]*[a-z0-9])?"
_ID_SEGMENT = r"(([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
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


# --- ids -----------------------------------------------------------------------------------------

class InvalidAppId(ValueError):
    """An app or dependency id Marathon would refuse; the message is Marathon's wording."""


def parse_app_id(raw: str, base: str = "/") -> str:
    """Return the canonical absolute id for `raw`, resolving a relative id (and `..`) against `base`.

    Each segment is lowercase letters, digits and hyphens in dot-separated labels that neither
    start nor end with a hyphen; empty segments are dropped; the result may not be the root nor
    end in a reserved word.
    """
    if not isinstance(raw, str) or not raw:
        raise InvalidAppId("must not be empty")
    segments = [s for s in raw.split("/") if s]
    if any(s != ".." and not re.fullmatch(_ID_SEGMENT, s) for s in segments):
        raise InvalidAppId(f"must fully match regular expression '^{_ID_SEGMENT}|(\\.\\.)$'")
    parts = [] if raw.startswith("/") else [s for s in base.split("/") if s]
    for segment in segments:
        if segment != "..":
            parts.append(segment)
        elif parts:
            parts.pop()
    if not parts:
        raise InvalidAppId("Path must contain at least one path element")
    if parts[-1] in RESERVED_ID_SEGMENTS:
        raise InvalidAppId("must not end with any of the following reserved keywords: "
                           + ", ".join(RESERVED_ID_SEGMENTS))
    return "/" + "/".join(parts)


def _parent(app_id: str) -> str:
    return app_id.rsplit("/", 1)[0] or "/"


# --- what Marathon derives from an app: networks and ports ---------------------------------------

def _networks(app: dict) -> list[dict]:
    """The app's networks as Marathon resolves them (explicit, from docker.network, or host)."""
    if app.get("networks"):
        return [{"mode": "container", **{k: v for k, v in n.items() if v is not None}}
                for n in app["networks"]]
    docker_network = ((app.get("container") or {}).get("docker") or {}).get("network")
    name = (app.get("ipAddress") or {}).get("networkName")
    if docker_network == "BRIDGE":
        return [{"mode": "container/bridge"}]
    if docker_network == "USER" or (docker_network is None and app.get("ipAddress") is not None):
        return [{"mode": "container", **({"name": name} if name else {})}]
    return [{"mode": "host"}]


def _is_host(networks: list[dict]) -> bool:
    return all(n["mode"] == "host" for n in networks)


def _engine(app: dict) -> str | None:
    """The container engine: DOCKER (the default type), MESOS (also implied by `ipAddress`) or None."""
    if app.get("container") is not None:
        return app["container"].get("type") or "DOCKER"
    return "MESOS" if app.get("ipAddress") is not None else None


def _given_port_mappings(app: dict) -> tuple[str, list[dict] | None]:
    """Where the app declares its port mappings, and the mappings (None if it declares none)."""
    container = app.get("container") or {}
    if container.get("portMappings") is not None:
        return "/container/portMappings", container["portMappings"]
    docker = container.get("docker") or {}
    if docker.get("portMappings") is not None:
        return "/container/docker/portMappings", docker["portMappings"]
    ports = ((app.get("ipAddress") or {}).get("discovery") or {}).get("ports")
    if ports and _engine(app) == "MESOS":
        return "/ipAddress/discovery/ports", [
            {"containerPort": p.get("number", 0), "name": p["name"], "protocol": p.get("protocol", "tcp"),
             **({"labels": p["labels"]} if p.get("labels") else {})} for p in ports]
    return "/container/portMappings", None


def _given_port_definitions(app: dict) -> list[dict] | None:
    if app.get("portDefinitions") is not None:
        return app["portDefinitions"]
    if app.get("ports") is not None:
        return [{"port": p} for p in app["ports"]]
    return None


_DEFAULT_PORT = {"name": "default"}


def _effective_ports(app: dict) -> list[dict]:
    """The port definitions (host networking) or port mappings (otherwise) a task gets."""
    if _is_host(_networks(app)):
        given = _given_port_definitions(app)
    else:
        given = _given_port_mappings(app)[1]
    return [dict(_DEFAULT_PORT)] if given is None else given


# --- the cross-field rules Marathon applies after reading ----------------------------------------

def _constraint_problem(constraint: list[str]) -> str | None:
    field_name, operator = constraint[0], constraint[1]
    value = constraint[2] if len(constraint) == 3 else None
    number = value is not None and re.fullmatch(r"[+-]?\d+", value) is not None
    if not field_name:
        return "Missing field and operator"
    if operator not in CONSTRAINT_OPERATORS:
        return "Constraint operator must be one of the following " + ", ".join(CONSTRAINT_OPERATORS)
    if operator == "UNIQUE" and value is not None:
        return "Value specified but not used"
    if operator in ("CLUSTER", "IS") and not value:
        return "Missing value"
    if operator == "GROUP_BY" and value is not None and not number:
        return "Value was specified but is not a number"
    if operator == "MAX_PER" and not number:
        return "Value was not specified or is not a number"
    if operator in ("LIKE", "UNLIKE"):
        if value is None:
            return "A regular expression value must be provided"
        try:
            re.compile(value)
        except re.error:
            return f"'{value}' is not a valid regular expression"
    return None


def _check_ids(app: dict) -> Iterator[Violation]:
    try:
        app_id = parse_app_id(app["id"])
    except InvalidAppId as exc:
        yield Violation("/id", str(exc))
        return
    for i, dependency in enumerate(app.get("dependencies") or []):
        try:
            parse_app_id(dependency, _parent(app_id))
        except InvalidAppId as exc:
            yield Violation(f"/dependencies({i})", str(exc))


def _check_command(app: dict) -> Iterator[Violation]:
    cmd, args = bool(app.get("cmd")), bool(app.get("args"))
    has_image = ((app.get("container") or {}).get("docker")) is not None
    if not ((cmd != args) or (not (cmd and args) and has_image)):
        yield Violation("/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.")


def _check_constraints(app: dict) -> Iterator[Violation]:
    for i, constraint in enumerate(app.get("constraints") or []):
        problem = _constraint_problem(constraint)
        if problem:
            yield Violation(f"/constraints({i})", problem)


def _check_container(app: dict) -> Iterator[Violation]:
    container = app.get("container")
    if container is None:
        return
    docker = container.get("docker")
    engine = container.get("type") or "DOCKER"
    secrets = app.get("secrets") or {}
    if engine == "DOCKER" and docker is None:
        yield Violation("/container/docker", "not defined")
    if docker is not None:
        if docker.get("credential") is not None:
            yield Violation("/container/docker/credential", "must be empty")
        if engine == "DOCKER" and docker.get("pullConfig") is not None:
            yield Violation("/container/docker/pullConfig",
                            "pullConfig is not supported with Docker containerizer")
        if engine == "MESOS":
            for name in ("network", "parameters", "portMappings"):
                if docker.get(name):
                    yield Violation(f"/container/docker/{name}", "must be empty")
            if docker.get("pullConfig") and docker["pullConfig"]["secret"] not in secrets:
                yield Violation("/container/docker/pullConfig",
                                "pullConfig.secret must refer to an existing secret")
        if docker.get("network") == "NONE":
            yield Violation("/container/docker/network", "NONE networking is not supported; use networks")
    if container.get("portMappings") is not None and docker and docker.get("portMappings") is not None:
        yield Violation("/container", "cannot specify both portMappings and docker.portMappings")
    for i, volume in enumerate(container.get("volumes") or []):
        if "secret" in volume and volume["secret"] not in secrets:
            yield Violation(f"/container/volumes({i})/secret", "volume.secret must refer to an existing secret")


def _check_networks(app: dict) -> Iterator[Violation]:
    docker = (app.get("container") or {}).get("docker") or {}
    if app.get("networks") and docker.get("network"):
        yield Violation("/", "must not specify both container.docker.network and networks")
    if app.get("networks") and app.get("ipAddress") is not None:
        yield Violation("/", "must not specify both networks and ipAddress")
    networks = _networks(app)
    legacy = "/container/docker/network" if docker.get("network") == "USER" else "/ipAddress/networkName"
    for i, network in enumerate(networks):
        where = f"/networks({i})/name" if app.get("networks") else legacy
        if network["mode"] == "container" and not network.get("name"):
            yield Violation(where, "container network name must be specified (no default network is configured)")
        if network["mode"] == "host" and network.get("name"):
            yield Violation(where, "must not be set for host networking")
    modes = [n["mode"] for n in networks]
    if len(modes) > 1 and ("host" in modes or "container/bridge" in modes):
        yield Violation("/networks", "host and container/bridge networking cannot be combined with other networks")
    if _engine(app) == "DOCKER" and modes.count("container") > 1:
        yield Violation("/networks", "may only specify a single container network when using the Docker "
                                     "container engine")
    where, mappings = _given_port_mappings(app)
    named = [n["name"] for n in networks if n.get("name")]
    for i, mapping in enumerate(mappings or []):
        for name in mapping.get("networkNames") or []:
            if name not in named:
                yield Violation(f"{where}({i})/networkNames", f"is not one of ({','.join(named)})")


def _duplicates(values: Iterable[Any]) -> bool:
    seen = [v for v in values if v is not None]
    return len(seen) != len(set(seen))


def _check_ports(app: dict) -> Iterator[Violation]:
    definitions = app.get("portDefinitions")
    ports = app.get("ports")
    if definitions is not None:
        if _duplicates(d.get("name") for d in definitions):
            yield Violation("/portDefinitions", "Port names must be unique.")
        if _duplicates(d.get("port") or None for d in definitions):
            yield Violation("/portDefinitions", "Ports must be unique.")
    if ports is not None:
        if _duplicates(p or None for p in ports):
            yield Violation("/", "ports must be unique")
        if definitions is not None and [d.get("port", 0) for d in definitions] != ports:
            yield Violation("/", "cannot specify both ports and port definitions")
    if app.get("ipAddress") is not None and (ports or definitions):
        yield Violation("/", "cannot specify both an IP address and port")
    where, mappings = _given_port_mappings(app)
    if mappings and _duplicates(m.get("name") for m in mappings):
        yield Violation(where, "Port names must be unique.")
    discovery = (app.get("ipAddress") or {}).get("discovery")
    if discovery and _engine(app) == "DOCKER":
        yield Violation("/ipAddress", "ipAddress/discovery is not allowed for Docker containers")


def _check_health(app: dict) -> Iterator[Violation]:
    checks = app.get("healthChecks") or []
    port_count = len(_effective_ports(app))
    for i, check in enumerate(checks):
        protocol = check.get("protocol", "HTTP")
        if protocol == "COMMAND" and check.get("command") is None:
            yield Violation(f"/healthChecks({i})/command", "is required for the COMMAND protocol")
        if check.get("command") is None and protocol in ("HTTP", "HTTPS", "TCP"):
            index = check.get("portIndex")
            if not (index < port_count if index is not None else ("port" in check or port_count == 1)):
                yield Violation(f"/healthChecks({i})", "Health check port indices must address an element "
                                                       "of the ports array or container port mappings.")
        if check.get("ipProtocol") == "IPv6" and not (protocol in MESOS_HEALTH_CHECK_PROTOCOLS
                                                      and _engine(app) == "DOCKER"):
            yield Violation(f"/healthChecks({i})", "IPv6 can only be used for container type DOCKER and "
                                                   "Mesos http/https/tcp health checks")
    mesos = [c for c in checks if c.get("command") is None and c.get("protocol") in MESOS_HEALTH_CHECK_PROTOCOLS]
    if len(mesos) > 1:
        yield Violation("/", "AppDefinition can contain at most one Mesos health check")
    check = app.get("check")
    if check is not None and sum(kind in check for kind in ("http", "tcp", "exec")) != 1:
        yield Violation("/check", "must specify a single type of check: http, tcp or exec")


def _check_readiness(app: dict) -> Iterator[Violation]:
    checks = app.get("readinessChecks") or []
    if len(checks) > 1:
        yield Violation("/readinessChecks", "may contain at most one readiness check")
    names = {p.get("name") for p in _effective_ports(app)}
    for i, check in enumerate(checks):
        port_name = check.get("portName", "http-api")
        if port_name not in names:
            yield Violation(f"/readinessChecks({i})/portName",
                            f"No port definition reference for portName {port_name}")
        if check.get("timeoutSeconds", 10) >= check.get("intervalSeconds", 30):
            yield Violation(f"/readinessChecks({i})/timeoutSeconds", "must be less than intervalSeconds")


def _check_misc(app: dict) -> Iterator[Violation]:
    secrets = app.get("secrets") or {}
    for name, value in (app.get("env") or {}).items():
        if isinstance(value, dict) and value["secret"] not in secrets:
            yield Violation(f"/env/{name}", f"references an undefined secret named '{value['secret']}'")
    if app.get("fetch") and app.get("uris"):
        yield Violation("/uris", "may not be set in conjunction with fetch")
    if app.get("acceptedResourceRoles") == []:
        yield Violation("/acceptedResourceRoles", "must not be empty")
    unreachable = app.get("unreachableStrategy")
    if isinstance(unreachable, dict) and \
            unreachable.get("inactiveAfterSeconds", 0) > unreachable.get("expungeAfterSeconds", 0):
        yield Violation("/unreachableStrategy",
                        "inactiveAfterSeconds must be less than or equal to expungeAfterSeconds")
    if (app.get("gpus") or 0) > 0 and _engine(app) == "DOCKER":
        yield Violation("/", "GPU resources only work with the Mesos containerizer")
    if (app.get("labels") or {}).get(SINGLE_INSTANCE_LABEL) == "true" and (app.get("instances") or 1) > 1:
        yield Violation("/", "Single instance app may only have one instance")


_APP_RULES = (_check_ids, _check_command, _check_constraints, _check_container, _check_networks,
              _check_ports, _check_health, _check_readiness, _check_misc)


def validate_app(app: Any) -> list[Violation]:
    """Everything Marathon would refuse in this app definition (an empty list when it is valid)."""
    violations = list(APP_SPEC.check(app, ""))
    if violations:  # like Marathon: an app that cannot be read is not judged further
        return violations
    return [v for rule in _APP_RULES for v in rule(app)]


def error_body(violations: Iterable[Violation], message: str = "Object is not valid") -> dict:
    """Marathon's 422 body: `{"message", "details": [{"path", "errors": [...]}]}`, one detail per path."""
    grouped: dict[str, list[str]] = {}
    for violation in violations:
        errors = grouped.setdefault(violation.path, [])
        if violation.message not in errors:
            errors.append(violation.message)
    return {"message": message, "details": [{"path": p, "errors": e} for p, e in grouped.items()]}


# --- defaults, as GET /v2/apps/{id} shows them ---------------------------------------------------

_APP_DEFAULTS: dict[str, Any] = {
    "instances": 1, "cpus": 1, "mem": 128, "disk": 0, "gpus": 0, "executor": "",
    "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 300, "requirePorts": False,
    "killSelection": "YOUNGEST_FIRST", "labels": {}, "env": {}, "secrets": {}, "constraints": [],
    "healthChecks": [], "readinessChecks": [], "dependencies": [], "fetch": [],
}
_HEALTH_DEFAULTS = {"protocol": "HTTP", "gracePeriodSeconds": 300, "intervalSeconds": 60,
                    "maxConsecutiveFailures": 3, "timeoutSeconds": 20, "delaySeconds": 15,
                    "ipProtocol": "IPv4"}
_READINESS_DEFAULTS = {"name": "readinessCheck", "protocol": "HTTP", "path": "/", "portName": "http-api",
                       "intervalSeconds": 30, "timeoutSeconds": 10, "httpStatusCodesForReady": [200],
                       "preserveLastResponse": False}
_CHECK_DEFAULTS = {"intervalSeconds": 60, "timeoutSeconds": 20, "delaySeconds": 15}
_ARTIFACT_DEFAULTS = {"extract": True, "executable": False, "cache": False}
_RESIDENCY_DEFAULTS = {"relaunchEscalationTimeoutSeconds": 3600, "taskLostBehavior": "WAIT_FOREVER"}
_ARCHIVES = (".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip")
_DROPPED = ("ports", "uris", "ipAddress")  # deprecated fields Marathon translates and never returns


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _port_mapping(mapping: dict, bridge: bool) -> dict:
    out = {"containerPort": 0, **mapping}
    if bridge:
        out.setdefault("hostPort", 0)
    out.setdefault("servicePort", 0)
    out.setdefault("protocol", "tcp")
    out.setdefault("labels", {})
    if not out.get("networkNames"):
        out.pop("networkNames", None)
    return out


def _port_definition(definition: dict) -> dict:
    out = {"port": definition.get("port", 0), "protocol": definition.get("protocol", "tcp")}
    out.update({k: definition[k] for k in ("name", "labels") if definition.get(k)})
    return out


def _container(app: dict, networks: list[dict]) -> dict | None:
    given = app.get("container")
    if given is None:
        if _is_host(networks):
            return None
        given = {"type": "MESOS"}
    out = {k: v for k, v in given.items() if k not in ("docker", "portMappings")}
    out.setdefault("type", "DOCKER")
    out.setdefault("volumes", [])
    if given.get("docker") is not None:
        docker = {k: v for k, v in given["docker"].items() if k not in ("network", "portMappings")}
        docker.setdefault("forcePullImage", False)
        if out["type"] == "DOCKER":
            docker.setdefault("privileged", False)
            docker.setdefault("parameters", [])
        out["docker"] = docker
    if not _is_host(networks):
        mappings = _given_port_mappings(app)[1]
        bridge = any(n["mode"] == "container/bridge" for n in networks)
        out["portMappings"] = [_port_mapping(m, bridge) for m in
                               ([dict(_DEFAULT_PORT)] if mappings is None else mappings)]
    return out


def _health_check(check: dict, has_ports: bool) -> dict:
    out = {**_HEALTH_DEFAULTS, **check}
    if out["protocol"] in ("HTTP", "HTTPS"):
        out.setdefault("ignoreHttp1xx", False)
    if out["protocol"] != "COMMAND" and has_ports and "port" not in out:
        out.setdefault("portIndex", 0)
    return out


def _resident(app: dict) -> bool:
    return any("persistent" in v for v in (app.get("container") or {}).get("volumes") or [])


def normalize_app(app: dict) -> dict:
    """The app as Marathon stores and returns it: canonical id, defaults filled, deprecated fields
    translated (`ports`, `uris`, `ipAddress`, `docker.network`, `docker.portMappings`).

    Expects an app that `validate_app` accepts. Service ports stay 0: assigning them is the
    server's job, as are `version` and `versionInfo`. Idempotent.
    """
    src = _drop_nulls(copy.deepcopy(app))
    app_id = parse_app_id(src["id"])
    networks = [{k: v for k, v in n.items() if k != "labels" or v} for n in _networks(src)]
    resident = _resident(src)
    out: dict[str, Any] = {k: v for k, v in src.items() if k not in _DROPPED}
    for key, default in _APP_DEFAULTS.items():
        out.setdefault(key, copy.deepcopy(default))
    out["id"] = app_id
    out["dependencies"] = [parse_app_id(d, _parent(app_id)) for d in out["dependencies"]]
    if not out.get("args"):
        out.pop("args", None)
    if not out.get("fetch") and src.get("uris"):
        out["fetch"] = [{"uri": u, "extract": u.endswith(_ARCHIVES)} for u in src["uris"]]
    out["fetch"] = [{**_ARTIFACT_DEFAULTS, **a} for a in out["fetch"]]
    out["networks"] = networks
    container = _container(src, networks)
    if container is None:
        out.pop("container", None)
    else:
        out["container"] = container
    if _is_host(networks):
        given = _given_port_definitions(src)
        out["portDefinitions"] = [_port_definition(d) for d in
                                  ([dict(_DEFAULT_PORT)] if given is None else given)]
    else:
        out.pop("portDefinitions", None)
        out["requirePorts"] = False
    has_ports = bool(_effective_ports(out))
    out["healthChecks"] = [_health_check(c, has_ports) for c in out["healthChecks"]]
    out["readinessChecks"] = [{**_READINESS_DEFAULTS, **c} for c in out["readinessChecks"]]
    if "check" in out:
        out["check"] = {**_CHECK_DEFAULTS, **out["check"]}
        if "http" in out["check"]:
            out["check"]["http"] = {"scheme": "HTTP", **out["check"]["http"]}
    out.setdefault("upgradeStrategy", {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0} if resident
                   else {"minimumHealthCapacity": 1, "maximumOverCapacity": 1})
    unreachable = out.get("unreachableStrategy", "disabled" if resident else {})
    out["unreachableStrategy"] = unreachable if unreachable == "disabled" else \
        {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0, **unreachable}
    if resident or "residency" in out:
        out["residency"] = {**_RESIDENCY_DEFAULTS, **out.get("residency", {})}
    return out
