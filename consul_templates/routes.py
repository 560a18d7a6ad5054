"""marathon-lb's model: instances become routes (one per app service port), configured by labels.

The registrator carries every `HAPROXY_*` label of a Marathon app into each instance's Meta as it is,
plus `marathon_app_id`, `service_port` and `port_index`. Instances sharing an app id and service port
form one route named as marathon-lb names it (`/shop/web` on 10000 -> `shop_web_10000`); other
services form a route named after the service. Labels, their parsers and defaults, and the names are
marathon-lb's contract (`wharf.contracts.marathon_lb`); the Meta keys are `wharf.contracts.consul_meta`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any, NamedTuple

from consul_templates import safe
from consul_templates.snapshot import ServiceInstance, Snapshot, maker
from wharf.contracts.consul_meta import MARATHON_APP_ID, PORT_INDEX, SERVICE_PORT
from wharf.contracts.marathon_lb import APP_GROUP_LABEL, LABEL_DEFAULTS, LABELS, Label, route_name

APP_ID = re.compile(r"(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)+")
HTTP_FRONTEND = "marathon_http_in"
RESERVED_NAMES = frozenset({HTTP_FRONTEND, "stats"})  # proxies the built-in template writes itself


class Route(NamedTuple):
    """One marathon-lb service: a backend, maybe its own frontend, maybe vhost/path rules (a named
    tuple: one is made per app port per render)."""

    name: str
    service: str
    app_id: str | None
    port: int | None
    mode: str
    balance: str
    sticky: bool
    redirect_to_https: bool
    vhosts: tuple[str, ...]
    path: str | None
    weight: int
    group: str
    servers: tuple[ServiceInstance, ...]  # the passing instances
    exact_vhosts: tuple[str, ...]  # the vhosts without a wildcard
    wildcard_suffixes: tuple[str, ...]  # `*.example.com` as `.example.com`, to match the end of the Host

    @property
    def http_routed(self) -> bool:
        """Reached through the shared http frontend (by vhost and/or path)."""
        return bool(self.vhosts or self.path)


@dataclass(frozen=True, slots=True)
class Problem:
    """A route or label left out, and why (for the log)."""

    route: str
    reason: str


def sanitise(name: str) -> str:
    """A service name as an HAProxy proxy name: anything but letters, digits, `_ . : -` becomes `_`."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", name)


@lru_cache(maxsize=65536)
def _app_key(app_id: str, port_text: str) -> tuple[str, str, int] | None:
    if app_id and APP_ID.fullmatch(app_id) and port_text.isdigit() and safe.is_port(int(port_text)):
        return "app", app_id, int(port_text)
    return None


def _parse_labels(index: int, keys: tuple[str, ...], values: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """Labels `keys` of port `index` with their raw `values`, parsed; why bad ones are ignored."""
    by_key = _label_keys(index)[2]
    labels: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in zip(keys, values, strict=True):
        label = by_key[key]
        try:
            labels[label.name] = label.parse(raw)
        except ValueError as exc:
            problems.append(f"label {key}={raw!r} {exc}: ignored")
    return labels, problems


@lru_cache(maxsize=4096)
def _present_keys(index: int, keys: tuple[str, ...]) -> tuple[str, ...]:
    """Which of a Meta's `keys` are port `index`'s honoured labels, sorted, and the app-wide
    HAPROXY_GROUP last unless the port has its own (apps share a few key sets, so each is read once)."""
    group_key, label_keys, _ = _label_keys(index)
    present = sorted(label_keys.intersection(keys))
    if APP_GROUP_LABEL in keys and group_key not in keys:
        present.append(APP_GROUP_LABEL)
    return tuple(present)


@lru_cache(maxsize=64)
def _label_keys(index: int) -> tuple[str, frozenset[str], Mapping[str, Label]]:
    """Port `index`'s GROUP key, the Meta keys of its honoured labels, and each key's label (the
    app-wide HAPROXY_GROUP's too)."""
    by_key = {f"HAPROXY_{index}_{label.name}": label for label in LABELS}
    group_key = f"HAPROXY_{index}_GROUP"
    return group_key, frozenset(by_key), {**by_key, APP_GROUP_LABEL: by_key[group_key]}


def build_routes(snapshot: Snapshot, groups: Iterable[str] = (),
                 reserved_ports: Iterable[int] = ()) -> tuple[tuple[Route, ...], tuple[Problem, ...]]:
    """Every route, sorted by name, its servers the passing instances; `groups` filters as marathon-lb's
    `--group` does; a route whose own port is in `reserved_ports` or taken loses its own frontend."""
    wanted = set(groups)
    instances = snapshot.unordered
    every_one_passing = list(map(_STATUS, instances)).count("passing") == len(instances)
    grouped: dict[tuple[str, str, int], list[ServiceInstance]] = {}
    for inst in instances:  # every instance, so a route whose instances all fail keeps its place
        meta = inst.meta  # the route: the instance's app and service port, else its service (port 0)
        key = _app_key(meta.get(MARATHON_APP_ID, ""), meta.get(SERVICE_PORT, "")) or ("service", inst.service, 0)
        members = grouped.get(key)
        if members is None:
            grouped[key] = [inst]
        else:
            members.append(inst)
    problems: list[Problem] = []
    routes: dict[str, Route] = {}
    for route_key in sorted(grouped):
        insts = grouped[route_key]
        insts.sort(key=_INSTANCE_ORDER)  # as the snapshot sorts them
        first = insts[0]
        meta = first.meta  # the route's labels: its first instance's
        index_text = meta.get(PORT_INDEX, "0")
        index = int(index_text) if index_text.isdigit() else 0
        keys = _present_keys(index, tuple(meta))
        head = _route_head(route_key, index, keys, tuple([meta[key] for key in keys]))
        problems += head.label_problems
        if not head.enabled or (wanted and "*" not in wanted and head.group not in wanted):
            continue
        problems += head.problems
        name = head.name
        if not head.kept:
            continue
        if name in routes:
            problems.append(Problem(name, f"name already used by service {routes[name].service}: left out"))
            continue
        servers = insts if every_one_passing else [i for i in insts if i.status == "passing"]
        if len(servers) > 1 and len(set(map(_ADDRESS, servers))) < len(servers) \
                and len(set(map(_ADDRESS_PORT, servers))) < len(servers):  # the addresses alone usually tell
            unique: dict[tuple[str, int], ServiceInstance] = {}
            for server in servers:  # one server per address and port: the first
                unique.setdefault((server.address, server.port), server)
            servers = list(unique.values())
        routes[name] = _new_route((name, first.service, *head.fields, tuple(servers), *head.vhost_rules))
    used = set(reserved_ports)
    final = []
    for name in sorted(routes):
        route = routes[name]
        port = route.port
        if port is not None and port in used:
            problems.append(Problem(route.name, f"port {port} already bound: its own frontend left out"))
            route = route._replace(port=None)
        elif port is not None:
            used.add(port)
        final.append(route)
    return tuple(final), tuple(problems)


class _Head(NamedTuple):
    """What a route's key and labels make of it, apart from its servers."""

    label_problems: tuple[Problem, ...]
    enabled: bool
    group: str
    problems: tuple[Problem, ...]  # once it is enabled and in the wanted groups
    kept: bool  # False: its name is one the built-in template uses itself
    name: str
    fields: tuple[Any, ...]  # a Route's fields from app_id to group
    vhost_rules: tuple[tuple[str, ...], tuple[str, ...]]  # its exact vhosts and wildcard suffixes


@lru_cache(maxsize=65536)
def _route_head(route_key: tuple[str, str, int], index: int, keys: tuple[str, ...],
                values: tuple[str, ...]) -> _Head:
    """A route's name, mode and the rest of what its labels say, from its key and raw label values:
    a pure function of them, so each distinct route is worked out once (the same come back in every
    render) and each render only reads the values."""
    kind, ident, service_port = route_key
    parsed, label_problems = _parse_labels(index, keys, values)
    labels = {**LABEL_DEFAULTS, **parsed}  # the table's default for every label not given
    provisional = route_name(ident, service_port) if service_port else sanitise(ident)
    noted = tuple(Problem(provisional, reason) for reason in label_problems)
    group = labels["GROUP"]
    port = labels["PORT"] or service_port
    name = route_name(ident, port) if kind == "app" and port else sanitise(ident)
    vhosts, path = labels["VHOST"], labels["PATH"]
    mode = labels["MODE"] or ("http" if vhosts or path else "tcp")
    problems = []
    if mode == "tcp" and (vhosts or path):
        problems.append(Problem(name, "vhost/path routing needs MODE http: vhost and path ignored"))
        vhosts, path = (), None
    kept = name not in RESERVED_NAMES
    if not kept:
        problems.append(Problem(name, "name is the built-in template's own proxy: left out"))
    fields = (ident if kind == "app" else None, port if kind == "app" else None, mode,
              labels["BALANCE"], labels["STICKY"], labels["REDIRECT_TO_HTTPS"],
              vhosts, path, labels["BACKEND_WEIGHT"], group)
    return _Head(noted, labels["ENABLED"], group, tuple(problems), kept, name, fields,
                 _split_wildcards(vhosts))


@lru_cache(maxsize=65536)
def _split_wildcards(vhosts: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The exact vhosts, and the wildcard ones as suffixes (`*.example.com` -> `.example.com`)."""
    wild = [h for h in vhosts if h.startswith("*.")]
    if not wild:
        return vhosts, ()
    return tuple(h for h in vhosts if not h.startswith("*.")), tuple(h[1:] for h in wild)


_INSTANCE_ORDER = attrgetter("node", "id", "service")
_ADDRESS_PORT, _ADDRESS, _STATUS = attrgetter("address", "port"), attrgetter("address"), attrgetter("status")
_new_route = maker(Route)


def http_rules(routes: Iterable[Route]) -> tuple[Route, ...]:
    """Routes reached through the shared http frontend, in rule order: higher BACKEND_WEIGHT first,
    then longer paths (more specific) first, then by name."""
    return tuple(sorted((r for r in routes if r.http_routed),
                        key=lambda r: (-r.weight, -len(r.path or ""), not r.vhosts, r.name)))
