"""The registrations a container should have: registrator's rules plus the Marathon contract.

Pure: a `DockerContainer`, the `Options` and (for Marathon tasks) the app's service ports go in, a list
of `Registration`s comes out. The rules, as gliderlabs/registrator applies them:

- Ports: published ports (at their host port), or with host networking the exposed ports, or with
  `internal` the exposed ports at the container's own address. A Marathon task (`MARATHON_APP_ID`)
  has one service per `PORT<i>` variable, `port_index` i.
- Settings come from `SERVICE_<KEY>` environment variables and labels (labels win);
  `SERVICE_<port>_<KEY>` applies to one port and beats `SERVICE_<KEY>`.
- ID `<hostname>:<container name>:<port>[:udp]` (the container-side port), unless `SERVICE_ID`.
- Name `SERVICE_NAME`, else the image's base name (with `-<port>` when the container has several
  services and the name is not port-specific); a Marathon task's is its app id, `/` as `-`.
- `SERVICE_IGNORE` skips; with `explicit` a service without a name of its own is skipped.
- Tags `SERVICE_TAGS` (comma-separated) plus the `tags` option, plus `udp` for UDP ports.
- Meta: every other `SERVICE_*` key, lower-cased; then the contract's keys (owner, container id,
  Marathon ids, port index, service port, every `HAPROXY_*` label), which a user cannot override.
- Address: `ip` when given, else a Marathon task's `HOST`, else a published port's specific host
  address, else the host's; with `internal`, the container's.
- Node: with `node_address` (several registrators sharing one Docker engine, each for its node), only
  the containers of that node: a task whose `HOST` is that address, or a container with no `HOST`
  publishing a port on that address; the others are left to their own node's registrator.
- Checks: the `SERVICE_CHECK_*` settings when set (registrator's own); else a Marathon task's app
  health checks as Consul checks (`marathon_checks`), which start critical, so an instance is routed
  only once it answers, or once Marathon reports it healthy, whichever comes first; else none
  (passing at once). Each check's ID is written out (`check_ids`), so a registration made again
  can remove the checks it no longer has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from registrator.model import DockerContainer, Options, Registration
from wharf.contracts import consul_meta
from wharf.contracts.marathon_lb import marathon_service_ports, registered_service_port, service_name

PREFIX = "SERVICE_"
_PORT_KEY = re.compile(r"^(\d+)_(.+)$")
_META_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
META_MAX_PAIRS = 64  # Consul's limits on service Meta
META_MAX_VALUE = 512
CHECK_KINDS = ("check_http", "check_https", "check_cmd", "check_script", "check_ttl", "check_tcp")
DEFAULT_INTERVAL = "10s"
HEALTHY_PHASE = ":healthy"  # the check IDs of a task registered again once Marathon counts it healthy
_NOT_META = {"id", "name", "tags"}


@dataclass(frozen=True)
class Port:
    """One candidate service: the container-side port (for ID and settings) and where it is reached."""

    exposed: int
    proto: str
    address: str
    port: int
    index: int | None = None  # Marathon's port index


def settings_of(container: DockerContainer) -> dict[str, str]:
    """Every `SERVICE_*` setting, key lower-cased without the prefix; labels override env."""
    found: dict[str, str] = {}
    for source in (container.env, container.labels):
        for key, value in source.items():
            if key.upper().startswith(PREFIX) and len(key) > len(PREFIX):
                found[key[len(PREFIX):].lower()] = value
    return found


def for_port(settings: Mapping[str, str], port: int) -> tuple[dict[str, str], dict[str, str]]:
    """(merged settings for `port`, the port-specific ones alone)."""
    general: dict[str, str] = {}
    specific: dict[str, str] = {}
    for key, value in settings.items():
        match = _PORT_KEY.match(key)
        if match is None:
            general[key] = value
        elif int(match.group(1)) == port:
            specific[match.group(2)] = value
    return {**general, **specific}, specific


def image_name(image: str) -> str:
    """`registry:5000/acme/web:1.2` -> `web` (the default service name)."""
    base = image.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return base.split(":", 1)[0]


def split_tags(text: str) -> list[str]:
    """`a,b\\,c` -> [`a`, `b,c`]; blanks dropped."""
    parts = re.split(r"(?<!\\),", text)
    return [p.replace("\\,", ",").strip() for p in parts if p.strip()]


def _specific_ip(host_ip: str) -> bool:
    return host_ip not in ("", "0.0.0.0", "::")


def ports_of(container: DockerContainer, options: Options) -> list[Port]:
    """The container's candidate services, in a stable order."""
    host = options.ip or options.host_ip
    if "MARATHON_APP_ID" in container.env:
        host = options.ip or container.env.get("HOST") or options.host_ip
        indexed = sorted((int(k[4:]), v) for k, v in container.env.items()
                         if re.fullmatch(r"PORT\d+", k) and v.isdigit())
        out = []
        for index, value in indexed:
            host_port = int(value)
            bound = next((b for b in container.published if b.host_port == host_port), None)
            exposed, proto = (bound.port, bound.proto) if bound else (host_port, "tcp")
            if options.internal and container.ip:
                out.append(Port(exposed, proto, container.ip, exposed, index))
            else:
                out.append(Port(exposed, proto, host, host_port, index))
        return out
    if options.internal:
        address = container.ip or host
        return [Port(p, proto, address, p) for p, proto in container.exposed]
    if container.network_mode == "host":
        return [Port(p, proto, host, p) for p, proto in container.exposed]
    out, seen = [], set()
    for b in container.published:
        if (b.port, b.proto) in seen:
            continue  # one service per container port, even when bound on IPv4 and IPv6
        seen.add((b.port, b.proto))
        address = options.ip or (b.host_ip if _specific_ip(b.host_ip) else options.host_ip)
        out.append(Port(b.port, b.proto, address, b.host_port))
    return out


def build_check(settings: Mapping[str, str], address: str, port: int, container_id: str
                ) -> dict[str, Any] | None:
    """The Consul check definition the `check_*` settings ask for, by registrator's precedence."""
    kind = next((k for k in CHECK_KINDS if settings.get(k)), None)
    if kind is None:
        return None
    value = settings[kind]
    interval = settings.get("check_interval") or DEFAULT_INTERVAL
    check: dict[str, Any]
    if kind in ("check_http", "check_https"):
        scheme = "https" if kind == "check_https" else "http"
        path = value if value.startswith("/") else "/" + value
        check = {"HTTP": f"{scheme}://{address}:{port}{path}", "Interval": interval}
    elif kind == "check_cmd":
        check = {"DockerContainerID": container_id, "Shell": "/bin/sh", "Args": ["/bin/sh", "-c", value],
                 "Interval": interval}
    elif kind == "check_script":
        script = value.replace("$SERVICE_IP", address).replace("$SERVICE_PORT", str(port))
        check = {"Args": ["/bin/sh", "-c", script], "Interval": interval}
    elif kind == "check_ttl":
        check = {"TTL": value}
    else:
        check = {"TCP": f"{address}:{port}", "Interval": interval}
    if settings.get("check_timeout") and kind != "check_ttl":
        check["Timeout"] = settings["check_timeout"]
    if settings.get("check_deregister_after"):
        check["DeregisterCriticalServiceAfter"] = settings["check_deregister_after"]
    if settings.get("check_initial_status"):
        check["Status"] = settings["check_initial_status"]
    return check


def marathon_checks(app: Mapping[str, Any], ports: Mapping[int, Port], container_id: str, healthy: bool = False
                    ) -> list[dict[str, Any]]:
    """The app's Marathon health checks as Consul check definitions for one task whose ports by index
    are `ports`: HTTP(S) and TCP (Mesos-run or not) against the task's address and the check's
    `portIndex` (or `port`), COMMAND inside the container; interval and timeout as Marathon's (its
    defaults 60 s and 20 s). Each starts critical: Marathon routes a task only once its checks pass,
    and its grace period only delays killing, which is Marathon's to do. Once Marathon reports the
    task `healthy`, they start passing instead (Consul's own first run of a check comes up to an
    interval later, and Marathon may kill the instances it replaces meanwhile). A check that names
    no port the task has, or a protocol Consul cannot run, is left out."""
    checks = []
    for n, hc in enumerate(app.get("healthChecks") or []):
        if not isinstance(hc, Mapping):
            continue
        protocol = str(hc.get("protocol") or "HTTP").upper().removeprefix("MESOS_")
        timing = {"Interval": f"{_seconds(hc.get('intervalSeconds'), 60)}s",
                  "Timeout": f"{_seconds(hc.get('timeoutSeconds'), 20)}s"}
        target = ports.get(_seconds(hc.get("portIndex"), 0)) if not hc.get("port") else None
        address = target.address if target else next((p.address for p in ports.values()), None)
        port = target.port if target else _seconds(hc.get("port"), 0)
        check: dict[str, Any]
        if protocol in ("HTTP", "HTTPS") and address and port:
            path = str(hc.get("path") or "/")
            check = {"HTTP": f"{protocol.lower()}://{address}:{port}{path if path.startswith('/') else '/' + path}"}
        elif protocol == "TCP" and address and port:
            check = {"TCP": f"{address}:{port}"}
        elif protocol == "COMMAND" and isinstance(hc.get("command"), Mapping) and hc["command"].get("value"):
            check = {"DockerContainerID": container_id, "Shell": "/bin/sh",
                     "Args": ["/bin/sh", "-c", str(hc["command"]["value"])]}
        else:
            continue
        checks.append({"Name": f"Marathon health check {n} ({protocol})", **check, **timing,
                       "Status": "passing" if healthy else "critical"})
    return checks


def check_ids(service_id: str, checks: list[dict[str, Any]], phase: str = "") -> list[dict[str, Any]]:
    """`checks` with Consul's own IDs written out (`service:ID`, or `service:ID:N` counted from 1
    when there are several) and `phase` appended: Consul keeps a check's status when it is
    registered again under the same ID, so a check that must start over takes another."""
    if len(checks) == 1:
        return [{**checks[0], "CheckID": f"service:{service_id}{phase}"}]
    return [{**c, "CheckID": f"service:{service_id}:{n}{phase}"} for n, c in enumerate(checks, 1)]


def _seconds(value: Any, default: int) -> int:
    try:
        return max(0, int(value)) if value is not None else default
    except (TypeError, ValueError):
        return default


def _meta(user: Mapping[str, str], contract: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Meta within Consul's limits: the contract's keys always, user keys as room allows."""
    meta = {k: v for k, v in contract.items() if _META_KEY.match(k) and len(v) <= META_MAX_VALUE}
    for key in sorted(user):
        value = user[key]
        if key in meta or len(meta) >= META_MAX_PAIRS:
            continue
        if _META_KEY.match(key) and not key.startswith("consul-") and len(value) <= META_MAX_VALUE:
            meta[key] = value
    return tuple(sorted(meta.items()))


def on_node(container: DockerContainer, address: str) -> bool:
    """Whether `container` belongs to the node at `address`: its task's `HOST`, else a port it
    publishes on that address."""
    host = container.env.get("HOST")
    if host:
        return host == address
    return any(b.host_ip == address for b in container.published)


def desired(container: DockerContainer, options: Options, app: Mapping[str, Any] | None = None,
            healthy: bool = False) -> list[Registration]:
    """The registrations `container` should have (none unless it runs, or when it is another
    node's; draining is the caller's); `healthy`: Marathon reports the task healthy."""
    if not container.running or (options.node_address and not on_node(container, options.node_address)):
        return []
    settings = settings_of(container)
    ports = ports_of(container, options)
    app_id = container.env.get("MARATHON_APP_ID")
    haproxy = consul_meta.haproxy_labels(container.labels)
    service_ports = marathon_service_ports(app) if app else {}
    health = marathon_checks(app, {p.index: p for p in ports if p.index is not None}, container.id,
                             healthy) if app else []
    out = []
    for port in ports:
        merged, specific = for_port(settings, port.exposed)
        if merged.get("ignore"):
            continue
        if options.explicit and not merged.get("name"):
            continue
        name = merged.get("name") or (service_name(app_id) if app_id else image_name(container.image))
        if len(ports) > 1 and "name" not in specific and not app_id:
            name = f"{name}-{port.exposed}"
        udp = port.proto == "udp"
        service_id = merged.get("id") or f"{options.hostname}:{container.name}:{port.exposed}{':udp' if udp else ''}"
        tags = split_tags(merged.get("tags", "")) + list(options.tags) + (["udp"] if udp else [])
        contract = {consul_meta.OWNER: options.owner, consul_meta.CONTAINER_ID: container.id}
        if app_id:
            contract[consul_meta.MARATHON_APP_ID] = app_id
            contract[consul_meta.MESOS_TASK_ID] = container.env.get("MESOS_TASK_ID", "")
            contract[consul_meta.PORT_INDEX] = str(port.index)
            service_port = registered_service_port(port.index or 0, service_ports, haproxy)
            if service_port:
                contract[consul_meta.SERVICE_PORT] = str(service_port)
            contract.update(haproxy)
        user = {k: v for k, v in merged.items() if k not in _NOT_META}
        own = build_check(merged, port.address, port.port, container.id)
        phase = HEALTHY_PHASE if healthy else ""
        checks = check_ids(service_id, [own]) if own else check_ids(service_id, health, phase)
        out.append(Registration(
            id=service_id, name=name, address=port.address, port=port.port, container_id=container.id,
            tags=tuple(dict.fromkeys(tags)), meta=_meta(user, contract),
            checks=tuple(tuple(sorted(c.items())) for c in checks),
        ))
    return out
