"""The shorthands of an app spec (`image`, `ports`, `health`, `lb`, `service`, `autoscale`, `after`,
`parameters`, `swap`), each expanded into the Marathon app definition or its labels. Pure.

Each expander reads its shorthand from the spec's data, writes into the app (or returns labels) and
adds what is wrong to `Problems`; `marathon_apps.spec.expand` calls them in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from wharf.configrepo import Spec, SpecError
from wharf.contracts.autoscale import LABEL_PREFIX as AUTOSCALE_PREFIX
from wharf.contracts.marathon_app import InvalidAppId, parse_app_id
from wharf.contracts.marathon_lb import APP_GROUP_LABEL, label_problem

LB_KEYS = {"group": "GROUP", "vhost": "VHOST", "path": "PATH", "mode": "MODE", "balance": "BALANCE",
           "sticky": "STICKY", "redirect_to_https": "REDIRECT_TO_HTTPS", "backend_weight": "BACKEND_WEIGHT",
           "port": "PORT"}
SERVICE_CHECK_KEYS = {"http": "HTTP", "tcp": "TCP", "interval": "INTERVAL", "timeout": "TIMEOUT",
                      "ttl": "TTL", "script": "SCRIPT", "initial_status": "INITIAL_STATUS",
                      "deregister_after": "DEREGISTER_AFTER"}
AUTOSCALE_KEYS = ("target_rps", "min", "max", "scale_up_stabilization", "scale_down_stabilization", "max_step")
HEALTH_KEYS = {"grace": "gracePeriodSeconds", "interval": "intervalSeconds", "timeout": "timeoutSeconds",
               "failures": "maxConsecutiveFailures", "delay": "delaySeconds"}
PORT_KEYS = ("name", "containerPort", "hostPort", "servicePort", "protocol", "labels")


class Problems:
    """What is wrong with one spec, each problem at a field path."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.errors: list[SpecError] = []

    def add(self, path: tuple[str | int, ...], reason: str) -> None:
        self.errors.append(self.spec.error(path, reason))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _expect(problems: Problems, path: tuple[str | int, ...], value: Any, ok: Callable[[Any], Any],
            what: str) -> bool:
    if ok(value):
        return True
    problems.add(path, f"must be {what}, not {kind_of(value)}")
    return False


def kind_of(value: Any) -> str:
    """How a YAML value is named in a message: `a string`, `a mapping`, `null`, ..."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _known_keys(problems: Problems, path: tuple[str | int, ...], value: dict, known: Any) -> None:
    for key in value:
        if key not in known:
            problems.add((*path, key), f"is not a known property (known: {', '.join(known)})")


def _container(app: dict[str, Any]) -> dict[str, Any]:
    container = app.setdefault("container", {})
    container.setdefault("type", "DOCKER")
    return container


def _network_mode(app: dict[str, Any]) -> str:
    networks = app.get("networks") or []
    if networks and isinstance(networks[0], dict):
        return str(networks[0].get("mode", "container"))
    docker = ((app.get("container") or {}).get("docker") or {})
    return {"BRIDGE": "container/bridge", "USER": "container"}.get(str(docker.get("network")), "host")


def expand_image(app: dict[str, Any], spec: dict[str, Any], problems: Problems) -> None:
    """`image` -> container.docker.image (type DOCKER)."""
    image = spec["image"]
    if _expect(problems, ("image",), image, lambda v: isinstance(v, str) and v != "", "a non-empty string"):
        _container(app).setdefault("docker", {})["image"] = image


def expand_ports(app: dict[str, Any], spec: dict[str, Any], problems: Problems) -> list[str | None]:
    """`ports` -> portDefinitions (host networking) or container.portMappings; returns the port names."""
    ports = spec["ports"]
    if not _expect(problems, ("ports",), ports, lambda v: isinstance(v, list), "a list"):
        return []
    bridged = _network_mode(app) != "host"
    mappings, definitions, names = [], [], []
    for i, port in enumerate(ports):
        where: tuple[str | int, ...] = ("ports", i)
        if _is_int(port):
            port = {"containerPort": port} if bridged else {"hostPort": port}
        if not _expect(problems, where, port, lambda v: isinstance(v, dict), "a mapping or a port number"):
            continue
        _known_keys(problems, where, port, PORT_KEYS)
        names.append(port.get("name"))
        given = {k: v for k, v in port.items() if k in PORT_KEYS}
        if bridged:
            mappings.append(given)
            continue
        if "containerPort" in given:
            problems.add((*where, "containerPort"), "needs container networking (networks: [{mode: container/"
                                                    "bridge}]); with host networking the task gets $PORT0..")
        definition = {k: given[k] for k in ("name", "protocol", "labels") if k in given}
        definition["port"] = given.get("hostPort") or given.get("servicePort") or 0
        if given.get("hostPort"):
            app["requirePorts"] = True
        definitions.append(definition)
    if bridged:
        _container(app)["portMappings"] = mappings
    else:
        app["portDefinitions"] = definitions
    return names


def _port_index(port: Any, names: list[str | None], problems: Problems, where: tuple[str | int, ...]) -> int:
    if _is_int(port):
        return int(port)
    if isinstance(port, str) and port in names:
        return names.index(port)
    problems.add(where, f"names no port of `ports` ({', '.join(n for n in names if n) or 'none named'})")
    return 0


def expand_health(app: dict[str, Any], spec: dict[str, Any], names: list[str | None], problems: Problems) -> None:
    """`health` (one check or a list) -> healthChecks."""
    checks = app.setdefault("healthChecks", [])
    given = spec["health"]
    for i, check in enumerate(_items(given)):
        where: tuple[str | int, ...] = ("health", i) if isinstance(given, list) else ("health",)
        if not _expect(problems, where, check, lambda v: isinstance(v, dict), "a mapping"):
            continue
        _known_keys(problems, where, check, ("http", "tcp", "command", "port", *HEALTH_KEYS))
        kinds = [k for k in ("http", "tcp", "command") if k in check]
        if len(kinds) != 1:
            problems.add(where, "must say exactly one of http (a path), tcp (true) or command")
            continue
        kind = kinds[0]
        out: dict[str, Any] = {}
        if kind == "http":
            if _expect(problems, (*where, "http"), check["http"], lambda v: isinstance(v, str) and
                       v.startswith("/"), "a path starting with /"):
                out.update(protocol="HTTP", path=check["http"])
        elif kind == "tcp":
            if _expect(problems, (*where, "tcp"), check["tcp"], lambda v: v is True, "true"):
                out["protocol"] = "TCP"
        elif _expect(problems, (*where, "command"), check["command"], lambda v: isinstance(v, str) and v,
                     "a non-empty string"):
            out.update(protocol="COMMAND", command={"value": check["command"]})
        if kind != "command":
            out["portIndex"] = _port_index(check.get("port", 0), names, problems, (*where, "port"))
        for key, field in HEALTH_KEYS.items():
            if key in check and _expect(problems, (*where, key), check[key],
                                        lambda v: _is_int(v) and v >= 0, "a whole number of seconds"
                                        if key != "failures" else "a whole number"):
                out[field] = check[key]
        checks.append(out)


def _lb_labels(entry: dict[str, Any], index: int, app_group: bool, problems: Problems,
               where: tuple[str | int, ...]) -> dict[str, str]:
    _known_keys(problems, where, entry, LB_KEYS)
    labels = {}
    for key, value in entry.items():
        if key not in LB_KEYS:
            continue
        path = (*where, key)
        if key in ("sticky", "redirect_to_https"):
            if not _expect(problems, path, value, lambda v: isinstance(v, bool), "true or false"):
                continue
        elif key in ("backend_weight", "port"):
            if not _expect(problems, path, value, lambda v: _is_int(v) and v >= 0, "a whole number"):
                continue
        elif key == "vhost" and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                problems.add(path, "must be a host name or a list of them")
                continue
            value = ",".join(value)
        elif key == "mode" and value not in ("http", "tcp"):
            problems.add(path, "must be http or tcp")
            continue
        elif not _expect(problems, path, value, lambda v: isinstance(v, str) and v, "a non-empty string"):
            continue
        name = APP_GROUP_LABEL if key == "group" and app_group else f"HAPROXY_{index}_{LB_KEYS[key]}"
        problem = label_problem(name, _text(value))
        if problem:
            problems.add(path, f"{_text(value)!r} {problem}")
            continue
        labels[name] = _text(value)
    return labels


def expand_lb(spec: dict[str, Any], problems: Problems) -> dict[str, str]:
    """`lb` -> marathon-lb's HAPROXY_* labels."""
    given = spec["lb"]
    if isinstance(given, dict):
        return _lb_labels(given, 0, True, problems, ("lb",))
    if not _expect(problems, ("lb",), given, lambda v: isinstance(v, list), "a mapping or a list (one per port)"):
        return {}
    labels: dict[str, str] = {}
    for i, entry in enumerate(given):
        if entry is not None and _expect(problems, ("lb", i), entry, lambda v: isinstance(v, dict), "a mapping"):
            labels.update(_lb_labels(entry, i, False, problems, ("lb", i)))
    return labels


def _service_labels(entry: dict[str, Any], prefix: str, problems: Problems,
                    where: tuple[str | int, ...], ports: bool) -> dict[str, str]:
    _known_keys(problems, where, entry, ("name", "tags", "check", *(("ports",) if ports else ())))
    labels = {}
    if "name" in entry and _expect(problems, (*where, "name"), entry["name"], lambda v: isinstance(v, str) and v,
                                   "a non-empty string"):
        labels[f"{prefix}NAME"] = entry["name"]
    if "tags" in entry:
        tags = entry["tags"]
        tags = tags if isinstance(tags, list) else [tags]
        if all(isinstance(t, str) and t and "," not in t for t in tags):
            labels[f"{prefix}TAGS"] = ",".join(tags)
        else:
            problems.add((*where, "tags"), "must be a tag or a list of tags (strings without commas)")
    check = entry.get("check")
    if check is not None and _expect(problems, (*where, "check"), check, lambda v: isinstance(v, dict), "a mapping"):
        _known_keys(problems, (*where, "check"), check, SERVICE_CHECK_KEYS)
        for key, suffix in SERVICE_CHECK_KEYS.items():
            if key in check:
                value = check[key]
                if key == "tcp" and value is not True:
                    problems.add((*where, "check", "tcp"), "must be true")
                elif key != "tcp" and (isinstance(value, bool) or not isinstance(value, str | int)):
                    problems.add((*where, "check", key), f"must be a string, not {kind_of(value)}")
                else:
                    labels[f"{prefix}CHECK_{suffix}"] = _text(value)
    return labels


def expand_service(spec: dict[str, Any], problems: Problems) -> dict[str, str]:
    """`service` -> registrator's SERVICE_* labels."""
    given = spec["service"]
    if not _expect(problems, ("service",), given, lambda v: isinstance(v, dict), "a mapping"):
        return {}
    labels = _service_labels(given, "SERVICE_", problems, ("service",), ports=True)
    ports = given.get("ports")
    if ports is not None and _expect(problems, ("service", "ports"), ports, lambda v: isinstance(v, dict),
                                     "a mapping of port number to settings"):
        for port, entry in ports.items():
            where = ("service", "ports", port)
            if not re.fullmatch(r"\d+", str(port)):
                problems.add(where, "must be a port number")
            elif _expect(problems, where, entry, lambda v: isinstance(v, dict), "a mapping"):
                labels.update(_service_labels(entry, f"SERVICE_{port}_", problems, where, ports=False))
    return labels


def expand_autoscale(spec: dict[str, Any], problems: Problems) -> dict[str, str]:
    """`autoscale` -> wharf.autoscale.* labels."""
    given = spec["autoscale"]
    if not _expect(problems, ("autoscale",), given, lambda v: isinstance(v, dict), "a mapping"):
        return {}
    _known_keys(problems, ("autoscale",), given, AUTOSCALE_KEYS)
    labels = {}
    for key in AUTOSCALE_KEYS:
        if key not in given:
            continue
        value = given[key]
        number = key == "target_rps" or key.endswith("stabilization")
        ok = (isinstance(value, int | float) and not isinstance(value, bool) and value > 0) if number \
            else (_is_int(value) and value >= (1 if key == "max_step" else 0))
        if ok:
            labels[AUTOSCALE_PREFIX + key] = _text(value)
        else:
            problems.add(("autoscale", key), f"must be {'a positive number' if number else 'a whole number'}, "
                                             f"not {kind_of(value)}")
    low, high = given.get("min"), given.get("max")
    if _is_int(low) and _is_int(high) and low > high:
        problems.add(("autoscale", "max"), f"must not be less than min ({low})")
    return labels


def expand_after(app: dict[str, Any], spec: dict[str, Any], problems: Problems) -> None:
    """`after` -> dependencies (relative ids resolve against the app's folder)."""
    given = spec["after"]
    after = given if isinstance(given, list) else [given]
    if not all(isinstance(a, str) and a for a in after):
        problems.add(("after",), "must be an app id or a list of them")
        return
    parent = str(app["id"]).rsplit("/", 1)[0] or "/"
    deps = app.setdefault("dependencies", [])
    for i, name in enumerate(after):
        try:
            dep = parse_app_id(name, parent)
        except InvalidAppId as exc:
            problems.add(("after", i) if isinstance(given, list) else ("after",),
                         f"{name!r} is not a valid Marathon app id: {exc}")
            continue
        if dep not in deps:
            deps.append(dep)


def expand_parameters(app: dict[str, Any], spec: dict[str, Any], problems: Problems) -> None:
    """`parameters` and `swap: false` -> container.docker.parameters."""
    params: list[dict[str, str]] = []
    given = spec.get("parameters")
    if isinstance(given, dict):
        for key, value in given.items():
            if _expect(problems, ("parameters", key), value, lambda v: isinstance(v, str | int | float)
                       and not isinstance(v, bool), "a string"):
                params.append({"key": str(key), "value": _text(value)})
    elif isinstance(given, list):
        params.extend(given)
    elif given is not None:
        problems.add(("parameters",), f"must be a mapping (option: value) or a list of key/value, not {kind_of(given)}")
    if "swap" in spec:
        swap = spec["swap"]
        if swap is not False:
            problems.add(("swap",), "only `swap: false` is supported (memory-swap equal to mem)")
        elif not isinstance(app.get("mem", 128), int | float):
            problems.add(("mem",), "must be a number to turn swap off")
        else:
            params.append({"key": "memory-swap", "value": f"{int(app.get('mem', 128))}m"})
    if params:
        docker = _container(app).setdefault("docker", {})
        docker["parameters"] = list(docker.get("parameters") or []) + params
