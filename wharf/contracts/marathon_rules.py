"""The cross-field rules Marathon applies after reading an app (cmd/args/container, constraint
operators, health-check ports, networking, secrets), `validate_app` and Marathon's 422 body. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from wharf.contracts.marathon_model import (
    InvalidAppId,
    effective_ports,
    engine,
    given_port_mappings,
    networks,
    parent_id,
    parse_app_id,
)
from wharf.contracts.marathon_schema import APP_SPEC, Violation

__all__ = ["CONSTRAINT_OPERATORS", "error_body", "validate_app"]

CONSTRAINT_OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")
MESOS_HEALTH_CHECK_PROTOCOLS = ("MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
SINGLE_INSTANCE_LABEL = "MARATHON_SINGLE_INSTANCE_APP"


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
            parse_app_id(dependency, parent_id(app_id))
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
    resolved = networks(app)
    legacy = "/container/docker/network" if docker.get("network") == "USER" else "/ipAddress/networkName"
    for i, network in enumerate(resolved):
        where = f"/networks({i})/name" if app.get("networks") else legacy
        if network["mode"] == "container" and not network.get("name"):
            yield Violation(where, "container network name must be specified (no default network is configured)")
        if network["mode"] == "host" and network.get("name"):
            yield Violation(where, "must not be set for host networking")
    modes = [n["mode"] for n in resolved]
    if len(modes) > 1 and ("host" in modes or "container/bridge" in modes):
        yield Violation("/networks", "host and container/bridge networking cannot be combined with other networks")
    if engine(app) == "DOCKER" and modes.count("container") > 1:
        yield Violation("/networks", "may only specify a single container network when using the Docker "
                                     "container engine")
    where, mappings = given_port_mappings(app)
    named = [n["name"] for n in resolved if n.get("name")]
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
    where, mappings = given_port_mappings(app)
    if mappings and _duplicates(m.get("name") for m in mappings):
        yield Violation(where, "Port names must be unique.")
    discovery = (app.get("ipAddress") or {}).get("discovery")
    if discovery and engine(app) == "DOCKER":
        yield Violation("/ipAddress", "ipAddress/discovery is not allowed for Docker containers")


def _check_health(app: dict) -> Iterator[Violation]:
    checks = app.get("healthChecks") or []
    port_count = len(effective_ports(app))
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
                                                      and engine(app) == "DOCKER"):
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
    names = {p.get("name") for p in effective_ports(app)}
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
    if (app.get("gpus") or 0) > 0 and engine(app) == "DOCKER":
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
