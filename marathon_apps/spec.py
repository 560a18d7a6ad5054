"""An app spec (one rendered YAML file under `apps/`) to a Marathon app definition. Pure.

Every Marathon `AppDefinition` field passes through as written. These shorthands expand into it
(and merge with what the spec also says directly):

    image: wharf/busybox            -> container.docker.image (type DOCKER)
    ports: [{name: http, protocol: tcp, hostPort: 0, containerPort: 80, servicePort: 0}]
                                    -> portDefinitions (host networking) or container.portMappings
    health: {http: /health, port: http, grace: 30, interval: 10, timeout: 5, failures: 3}
            (or tcp: true, or command: "..."; a list for several)   -> healthChecks
    lb: {group: external, vhost: web.local, path: /, mode: http, balance: roundrobin, sticky: true,
         redirect_to_https: false, backend_weight: 1, port: 10080}
            (a mapping is port 0 plus HAPROXY_GROUP; a list gives each port)  -> HAPROXY_* labels
    service: {name: web, tags: [a, b], check: {http: /health, interval: 10s, timeout: 1s},
              ports: {"80": {name: web-http}}}                   -> registrator SERVICE_* labels
    autoscale: {target_rps: 50, min: 1, max: 5}                  -> wharf.autoscale.* labels
    after: [api]                    -> dependencies (relative ids resolve against the app's folder)
    parameters: {memory-swap: 128m} -> container.docker.parameters
    swap: false                     -> memory-swap equal to mem (the container gets no swap)

The id is the file's path under `apps/` (`apps/shop/web.yaml` -> `/shop/web`); an `id` in the spec
must agree. Every app gets the label `wharf.owner`, which marks it as one wharf may prune.
The result is checked against Marathon's app contract (`wharf.contracts.marathon_app`, the rules
the Marathon stand-in enforces too), and every marathon-lb `HAPROXY_*` value (from `lb` or written in
`labels`) with the renderer's own parsers (`wharf.contracts.marathon_lb`), so a value the renderer
would ignore is refused here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wharf.configrepo import Spec, SpecError
from wharf.contracts.marathon_app import InvalidAppId, normalize_app, parse_app_id, validate_app
from wharf.contracts.marathon_lb import APP_GROUP_LABEL, label_problem

OWNER_LABEL = "wharf.owner"
COMMIT_LABEL = "wharf.commit"
AUTOSCALE_PREFIX = "wharf.autoscale."
DEFAULT_OWNER = "wharf"

SHORTHANDS = ("image", "ports", "health", "lb", "service", "autoscale", "after", "parameters", "swap")
_DERIVED = {"container": "image", "portDefinitions": "ports", "healthChecks": "health",
            "labels": "lb", "dependencies": "after"}
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


@dataclass(frozen=True)
class App:
    """One app of the repository: its Marathon definition (as sent), and where it came from."""

    id: str
    definition: dict[str, Any]
    spec: Spec

    @property
    def dependencies(self) -> tuple[str, ...]:
        """Absolute ids of the apps this one runs after."""
        parent = self.id.rsplit("/", 1)[0] or "/"
        return tuple(parse_app_id(d, parent) for d in self.definition.get("dependencies") or [])

    def normalized(self) -> dict[str, Any]:
        """The definition as Marathon stores it (defaults filled in), for comparing with the live app."""
        return normalize_app(self.definition)


class _Problems:
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


def _expect(problems: _Problems, path: tuple[str | int, ...], value: Any, ok: Callable[[Any], Any],
            what: str) -> bool:
    if ok(value):
        return True
    problems.add(path, f"must be {what}, not {_kind(value)}")
    return False


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _known_keys(problems: _Problems, path: tuple[str | int, ...], value: dict, known: Any) -> None:
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


def _expand_image(app: dict[str, Any], spec: dict[str, Any], problems: _Problems) -> None:
    image = spec["image"]
    if _expect(problems, ("image",), image, lambda v: isinstance(v, str) and v != "", "a non-empty string"):
        _container(app).setdefault("docker", {})["image"] = image


def _expand_ports(app: dict[str, Any], spec: dict[str, Any], problems: _Problems) -> list[str | None]:
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


def _port_index(port: Any, names: list[str | None], problems: _Problems, where: tuple[str | int, ...]) -> int:
    if _is_int(port):
        return int(port)
    if isinstance(port, str) and port in names:
        return names.index(port)
    problems.add(where, f"names no port of `ports` ({', '.join(n for n in names if n) or 'none named'})")
    return 0


def _expand_health(app: dict[str, Any], spec: dict[str, Any], names: list[str | None], problems: _Problems) -> None:
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


def _lb_labels(entry: dict[str, Any], index: int, app_group: bool, problems: _Problems,
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


def _expand_lb(spec: dict[str, Any], problems: _Problems) -> dict[str, str]:
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


def _service_labels(entry: dict[str, Any], prefix: str, problems: _Problems,
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
                    problems.add((*where, "check", key), f"must be a string, not {_kind(value)}")
                else:
                    labels[f"{prefix}CHECK_{suffix}"] = _text(value)
    return labels


def _expand_service(spec: dict[str, Any], problems: _Problems) -> dict[str, str]:
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


def _expand_autoscale(spec: dict[str, Any], problems: _Problems) -> dict[str, str]:
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
                                             f"not {_kind(value)}")
    low, high = given.get("min"), given.get("max")
    if _is_int(low) and _is_int(high) and low > high:
        problems.add(("autoscale", "max"), f"must not be less than min ({low})")
    return labels


def _expand_after(app: dict[str, Any], spec: dict[str, Any], problems: _Problems) -> None:
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


def _expand_parameters(app: dict[str, Any], spec: dict[str, Any], problems: _Problems) -> None:
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
        problems.add(("parameters",), f"must be a mapping (option: value) or a list of key/value, not {_kind(given)}")
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


def _spec_path(marathon_path: str) -> tuple[str | int, ...]:
    """`/healthChecks(0)/path` -> `("healthChecks", 0, "path")`."""
    out: list[str | int] = []
    for part in marathon_path.strip("/").split("/"):
        if not part:
            continue
        match = re.fullmatch(r"(.*?)\((\d+)\)", part)
        if match:
            if match.group(1):
                out.append(match.group(1))
            out.append(int(match.group(2)))
        else:
            out.append(part)
    return tuple(out)


def _violation_field(spec: Spec, path: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Where a Marathon violation points in the spec: the field itself, or the shorthand it came from."""
    if not path or path[:1] in spec.lines or path[0] in spec.data:
        return path
    shorthand = _DERIVED.get(str(path[0]))
    if shorthand == "lb":
        shorthand = next((s for s in ("lb", "service", "autoscale") if s in spec.data), None)
    if shorthand == "image":
        shorthand = next((s for s in ("image", "ports", "parameters", "swap") if s in spec.data), None)
    return (shorthand, *path[1:]) if shorthand and shorthand in spec.data else path


def expand(spec: Spec, owner: str = DEFAULT_OWNER) -> tuple[dict[str, Any], list[SpecError]]:
    """The Marathon app definition of one spec, and what is wrong with it (empty when valid)."""
    problems = _Problems(spec)
    data = spec.data
    app: dict[str, Any] = {k: copy.deepcopy(v) for k, v in data.items() if k not in SHORTHANDS}
    try:
        app_id = parse_app_id("/" + spec.name)
    except InvalidAppId as exc:
        problems.add((), f"the file's path {spec.name!r} is not a valid Marathon app id (each folder and file "
                         f"name: lowercase letters, digits, hyphens, dots): {exc}")
        return app, problems.errors
    if "id" in data:
        try:
            given = parse_app_id(data["id"]) if isinstance(data["id"], str) else None
        except InvalidAppId as exc:
            problems.add(("id",), f"not a valid Marathon app id: {exc}")
            given = app_id
        if given != app_id:
            problems.add(("id",), f"must be {app_id} (the file's path under apps/), or be left out")
    app["id"] = app_id
    if "image" in data:
        _expand_image(app, data, problems)
    names = _expand_ports(app, data, problems) if "ports" in data else []
    if "health" in data:
        _expand_health(app, data, names, problems)
    labels: dict[str, str] = {}
    for key, expander in (("lb", _expand_lb), ("service", _expand_service), ("autoscale", _expand_autoscale)):
        if key in data:
            labels.update(expander(data, problems))
    if "after" in data:
        _expand_after(app, data, problems)
    if "parameters" in data or "swap" in data:
        _expand_parameters(app, data, problems)
    given_labels = app.get("labels")
    if given_labels is not None and not isinstance(given_labels, dict):
        problems.add(("labels",), f"must be a mapping, not {_kind(given_labels)}")
        given_labels = {}
    for reserved in (OWNER_LABEL, COMMIT_LABEL):
        if reserved in (given_labels or {}):
            problems.add(("labels", reserved), "is written by wharf; leave it out")
    for key, value in (given_labels or {}).items():
        problem = label_problem(str(key), value)
        if problem:
            problems.add(("labels", key), f"{value!r} {problem}")
    app["labels"] = {**(given_labels or {}), **labels, OWNER_LABEL: owner}
    if problems.errors:
        return app, problems.errors
    for violation in validate_app(app):
        path = _violation_field(spec, _spec_path(violation.path))
        problems.add(path, violation.message)
    return app, problems.errors


def expand_all(specs: list[Spec], owner: str = DEFAULT_OWNER) -> Iterator[tuple[App | None, list[SpecError]]]:
    """`expand` over many specs."""
    for spec in specs:
        definition, errors = expand(spec, owner)
        yield (None if errors else App(definition["id"], definition, spec)), errors


def label_owner(app: Mapping[str, Any]) -> str | None:
    """The `wharf.owner` of a live app, if wharf manages it."""
    return (app.get("labels") or {}).get(OWNER_LABEL)
