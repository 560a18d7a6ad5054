"""marathon-lb's model: instances become routes (one per app service port), configured by labels.

The registrator carries every `HAPROXY_*` label of a Marathon app into each instance's Meta as it is,
plus `marathon_app_id`, `service_port` and `port_index`. Instances sharing an app id and service port
form one route named as marathon-lb names it (`/shop/web` on 10000 -> `shop_web_10000`); the colour
apps of a blue/green group (`HAPROXY_DEPLOYMENT_GROUP`) count as the group's app on the port their
`HAPROXY_{i}_PORT` labels share, as marathon-lb merges them; other services form a route named after
the service, but for a wharf daemon's own metrics endpoint (tagged `wharf-metrics`). Labels, their
parsers and defaults, and the names are marathon-lb's contract (`wharf.contracts.marathon_lb`); the
Meta keys are `wharf.contracts.consul_meta`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from consul_templates import safe
from consul_templates.snapshot import ServiceInstance, Snapshot
from wharf.contracts.consul_meta import MARATHON_APP_ID, METRICS_TAG, PORT_INDEX, SERVICE_PORT
from wharf.contracts.marathon_lb import (
    APP_GROUP_LABEL,
    DEPLOYMENT_STARTED_AT,
    LABEL_DEFAULTS,
    LABELS,
    deployment_group,
    label_service_ports,
    route_name,
)

APP_ID = re.compile(r"(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)+")
HTTP_FRONTEND = "marathon_http_in"
RESERVED_NAMES = frozenset({HTTP_FRONTEND, "stats"})  # proxies the built-in template writes itself


class Route(NamedTuple):
    """One marathon-lb service: a backend, maybe its own frontend, maybe vhost/path rules."""

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
    retry_on: str | None = None  # HAPROXY_{n}_RETRY_ON; None: the renderer's --retry-on

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


RouteKey = tuple[str, str, int]  # ("app", app id, service port) or ("service", name, 0)


def route_key(inst: ServiceInstance) -> RouteKey:
    """The route an instance serves: its app (or blue/green group) and service port, else its
    service (port 0)."""
    app_id, port_text = inst.meta.get(MARATHON_APP_ID, ""), inst.meta.get(SERVICE_PORT, "")
    group = deployment_group(inst.meta)
    if group and app_id:
        index = inst.meta.get(PORT_INDEX, "0")
        shared = label_service_ports(inst.meta).get(int(index) if index.isdigit() else 0)
        app_id, port_text = group, str(shared) if shared else port_text
    if app_id and APP_ID.fullmatch(app_id) and port_text.isdigit() and safe.is_port(int(port_text)):
        return "app", app_id, int(port_text)
    return "service", inst.service, 0


def group_routes(instances: Iterable[ServiceInstance]) -> dict[RouteKey, list[ServiceInstance]]:
    """Instances by route key, every instance (so a route whose instances all fail keeps its place)."""
    grouped: dict[RouteKey, list[ServiceInstance]] = {}
    for inst in instances:
        grouped.setdefault(route_key(inst), []).append(inst)
    return grouped


def parse_labels(meta: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The labels of an instance's port (`port_index`), parsed, with the table's default for each
    label not given (the app-wide HAPROXY_GROUP unless the port has its own); why bad ones are ignored."""
    index_text = meta.get(PORT_INDEX, "0")
    index = int(index_text) if index_text.isdigit() else 0
    given = {f"HAPROXY_{index}_{label.name}": label for label in LABELS}
    if f"HAPROXY_{index}_GROUP" not in meta and APP_GROUP_LABEL in meta:
        given[APP_GROUP_LABEL] = given[f"HAPROXY_{index}_GROUP"]
    labels: dict[str, Any] = dict(LABEL_DEFAULTS)
    problems: list[str] = []
    for key in sorted(given.keys() & meta.keys()):
        try:
            labels[given[key].name] = given[key].parse(meta[key])
        except ValueError as exc:
            problems.append(f"label {key}={meta[key]!r} {exc}: ignored")
    return labels, problems


@dataclass(frozen=True)
class Candidate:
    """What one route key makes: its route (servers included), or None when it is disabled or not in
    the wanted groups, and the problems to log."""

    route: Route | None
    problems: tuple[Problem, ...] = ()


def make_route(key: RouteKey, instances: Sequence[ServiceInstance], groups: Iterable[str] = ()) -> Candidate:
    """The route of one key from its instances (labels from the first, in node and id order, of the
    oldest colour of a blue/green group, as marathon-lb's; servers the passing ones, one per address
    and port). A wharf daemon's own metrics endpoint is for Prometheus, never routed."""
    kind, ident, service_port = key
    if kind == "service" and any(METRICS_TAG in i.tags for i in instances):
        return Candidate(None)
    insts = sorted(instances, key=lambda i: (i.meta.get(DEPLOYMENT_STARTED_AT, ""), i.node, i.id, i.service))
    labels, label_problems = parse_labels(insts[0].meta)
    provisional = route_name(ident, service_port) if service_port else sanitise(ident)
    noted = tuple(Problem(provisional, reason) for reason in label_problems)
    wanted = set(groups)
    if not labels["ENABLED"] or (wanted and "*" not in wanted and labels["GROUP"] not in wanted):
        return Candidate(None, noted)
    port = labels["PORT"] or service_port
    name = route_name(ident, port) if kind == "app" and port else sanitise(ident)
    vhosts, path = labels["VHOST"], labels["PATH"]
    mode = labels["MODE"] or ("http" if vhosts or path else "tcp")
    problems = list(noted)
    if mode == "tcp" and (vhosts or path):
        problems.append(Problem(name, "vhost/path routing needs MODE http: vhost and path ignored"))
        vhosts, path = (), None
    if name in RESERVED_NAMES:
        problems.append(Problem(name, "name is the built-in template's own proxy: left out"))
        return Candidate(None, tuple(problems))
    servers: dict[tuple[str, int], ServiceInstance] = {}
    for inst in insts:
        if inst.passing:
            servers.setdefault((inst.address, inst.port), inst)  # one server per address and port: the first
    route = Route(name=name, service=insts[0].service, app_id=ident if kind == "app" else None,
                  port=port if kind == "app" else None, mode=mode, balance=labels["BALANCE"],
                  sticky=labels["STICKY"], redirect_to_https=labels["REDIRECT_TO_HTTPS"], vhosts=vhosts,
                  path=path, weight=labels["BACKEND_WEIGHT"], group=labels["GROUP"],
                  servers=tuple(servers.values()),
                  exact_vhosts=tuple(h for h in vhosts if not h.startswith("*.")),
                  wildcard_suffixes=tuple(h[1:] for h in vhosts if h.startswith("*.")),
                  retry_on=labels["RETRY_ON"])
    return Candidate(route, tuple(problems))


def claim_names(candidates: Mapping[RouteKey, Candidate]) -> dict[str, RouteKey]:
    """Which key keeps each route name: the first, in key order."""
    owners: dict[str, RouteKey] = {}
    for key in sorted(candidates):
        route = candidates[key].route
        if route is not None:
            owners.setdefault(route.name, key)
    return owners


def arrange(candidates: Mapping[RouteKey, Candidate], reserved_ports: Iterable[int] = ()
            ) -> tuple[tuple[Route, ...], tuple[Problem, ...]]:
    """Every route, sorted by name: the first key (in key order) keeps a name two keys make, and the
    first route (in name order) keeps a port two routes bind; a route whose own port is reserved or
    taken loses its own frontend."""
    owners = claim_names(candidates)
    problems: list[Problem] = []
    routes: dict[str, Route] = {}
    for key in sorted(candidates):
        found = candidates[key]
        problems += found.problems
        route = found.route
        if route is None:
            continue
        if owners[route.name] != key:
            owner = candidates[owners[route.name]].route
            problems.append(Problem(route.name, f"name already used by service {owner.service if owner else '?'}: "
                                    "left out"))
            continue
        routes[route.name] = route
    used = set(reserved_ports)
    final = []
    for name in sorted(routes):
        route = routes[name]
        if route.port is not None and route.port in used:
            problems.append(Problem(route.name, f"port {route.port} already bound: its own frontend left out"))
            route = route._replace(port=None)
        elif route.port is not None:
            used.add(route.port)
        final.append(route)
    return tuple(final), tuple(problems)


def build_routes(snapshot: Snapshot, groups: Iterable[str] = (),
                 reserved_ports: Iterable[int] = ()) -> tuple[tuple[Route, ...], tuple[Problem, ...]]:
    """Every route, sorted by name, its servers the passing instances; `groups` filters as marathon-lb's
    `--group` does; a route whose own port is in `reserved_ports` or taken loses its own frontend."""
    groups = tuple(groups)
    candidates = {key: make_route(key, insts, groups) for key, insts in group_routes(snapshot.instances).items()}
    return arrange(candidates, reserved_ports)


def http_rules(routes: Iterable[Route]) -> tuple[Route, ...]:
    """Routes reached through the shared http frontend, in rule order: higher BACKEND_WEIGHT first,
    then longer paths (more specific) first, then by name."""
    return tuple(sorted((r for r in routes if r.http_routed),
                        key=lambda r: (-r.weight, -len(r.path or ""), not r.vhosts, r.name)))
