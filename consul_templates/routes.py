"""marathon-lb's model: instances become routes (one per app service port), configured by labels.

The registrator carries every `HAPROXY_*` label of a Marathon app into each instance's Meta as it is,
plus `marathon_app_id`, `service_port` and `port_index`. Instances sharing an app id and service port
form one route named as marathon-lb names it (`/shop/web` on 10000 -> `shop_web_10000`); other
services form a route named after the service. Labels are declared once, in `LABELS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Any, NamedTuple

from consul_templates import safe
from consul_templates.snapshot import Instance, Snapshot, maker

BALANCES = ("roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random")
APP_ID = re.compile(r"(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)+")
HTTP_FRONTEND = "marathon_http_in"
DEFAULT_GROUP = "external"  # marathon-lb's group for apps that name none
RESERVED_NAMES = frozenset({HTTP_FRONTEND, "stats"})  # proxies the built-in template writes itself


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError("is not true or false")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError("is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"is not in {low}-{high}")
        return value
    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        low = text.strip().lower()
        if low not in choices:
            raise ValueError(f"is not one of {', '.join(choices)}")
        return low
    return parse


def _vhosts(text: str) -> tuple[str, ...]:
    hosts = tuple(filter(None, map(str.strip, text.lower().split(","))))
    if not all(map(safe.is_vhost, hosts)):
        raise ValueError("is not a list of host names")
    return hosts


def _path(text: str) -> str:
    if not safe.is_path(text.strip()):
        raise ValueError("is not a URL path (/ then letters, digits, . _ ~ % - /)")
    return text.strip()


def _group(text: str) -> str:
    if not safe.is_name(text.strip()):
        raise ValueError("is not a group name")
    return text.strip()


@dataclass(frozen=True, slots=True)
class Label:
    """One honoured marathon-lb label: `HAPROXY_{n}_<name>`, how it is parsed, and what it does."""

    name: str
    parse: Callable[[str], Any]
    description: str


#: a label's parser, remembered by value: the same labels come back in every render, and each
#: parser is a pure function of the text to an immutable value (a bad value raises, never remembered)
_remembered = lru_cache(maxsize=65536)

LABELS: tuple[Label, ...] = (
    Label("GROUP", _remembered(_group), "the route's HAProxy group, for `--group` (also the app-wide HAPROXY_GROUP)"),
    Label("VHOST", _remembered(_vhosts), "virtual hosts, comma-separated, routed by Host on the shared http frontend"),
    Label("PATH", _remembered(_path), "a path prefix, routed on the shared http frontend (with or without a vhost)"),
    Label("PORT", _remembered(_int_in(1, 65535)), "the service port the route's own frontend binds (and its name)"),
    Label("MODE", _remembered(_choice("http", "tcp")), "http or tcp (default: http with a vhost or path, else tcp)"),
    Label("BALANCE", _remembered(_choice(*BALANCES)), "the backend's balance algorithm (default roundrobin)"),
    Label("STICKY", _remembered(_bool), "sticky sessions with an inserted cookie"),
    Label("REDIRECT_TO_HTTPS", _remembered(_bool), "redirect plain-HTTP requests to https"),
    Label("BACKEND_WEIGHT", _remembered(_int_in(-1000000, 1000000)), "order of the vhost/path rules: higher first"),
    Label("ENABLED", _remembered(_bool), "false leaves the route out"),
)


_LABEL_BY_NAME = {label.name: label for label in LABELS}
_PORT_LABEL = re.compile(r"HAPROXY_(\d+)_([A-Z_]+)")


def label_problem(key: str, value: object) -> str | None:
    """Why the renderer would ignore the marathon-lb label `key` with `value` (`is not one of ...`),
    or None when it honours it or does not read that label. The spec expansion asks the same
    question before a push is accepted, so a label is never accepted there and dropped here."""
    match = _PORT_LABEL.fullmatch(key)
    label = _LABEL_BY_NAME["GROUP"] if key == "HAPROXY_GROUP" else \
        _LABEL_BY_NAME.get(match.group(2)) if match else None
    if label is None or not isinstance(value, str):
        return None
    try:
        label.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


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
    servers: tuple[Instance, ...]  # the passing instances
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


def route_name(app_id: str, service_port: int) -> str:
    """marathon-lb's frontend/backend name: `/shop/web` on 10000 -> `shop_web_10000`."""
    return f"{app_id.lstrip('/').replace('/', '_')}_{service_port}"


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
    if "HAPROXY_GROUP" in keys and group_key not in keys:
        present.append("HAPROXY_GROUP")
    return tuple(present)


@lru_cache(maxsize=64)
def _label_keys(index: int) -> tuple[str, frozenset[str], Mapping[str, Label]]:
    """Port `index`'s GROUP key, the Meta keys of its honoured labels, and each key's label (the
    app-wide HAPROXY_GROUP's too)."""
    by_key = {f"HAPROXY_{index}_{label.name}": label for label in LABELS}
    group_key = f"HAPROXY_{index}_GROUP"
    return group_key, frozenset(by_key), {**by_key, "HAPROXY_GROUP": by_key[group_key]}


def build_routes(snapshot: Snapshot, groups: Iterable[str] = (),
                 reserved_ports: Iterable[int] = ()) -> tuple[tuple[Route, ...], tuple[Problem, ...]]:
    """Every route, sorted by name, its servers the passing instances; `groups` filters as marathon-lb's
    `--group` does; a route whose own port is in `reserved_ports` or taken loses its own frontend."""
    wanted = set(groups)
    instances = snapshot.unordered
    every_one_passing = list(map(_STATUS, instances)).count("passing") == len(instances)
    grouped: dict[tuple[str, str, int], list[Instance]] = {}
    for inst in instances:  # every instance, so a route whose instances all fail keeps its place
        meta = inst.meta  # the route: the instance's app and service port, else its service (port 0)
        key = _app_key(meta.get("marathon_app_id", ""), meta.get("service_port", "")) or ("service", inst.service, 0)
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
        index_text = meta.get("port_index", "0")
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
            unique: dict[tuple[str, int], Instance] = {}
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
    labels, label_problems = _parse_labels(index, keys, values)
    provisional = route_name(ident, service_port) if service_port else sanitise(ident)
    noted = tuple(Problem(provisional, reason) for reason in label_problems)
    group = labels.get("GROUP", DEFAULT_GROUP)
    port = labels.get("PORT", service_port)
    name = route_name(ident, port) if kind == "app" and port else sanitise(ident)
    vhosts, path = labels.get("VHOST", ()), labels.get("PATH")
    mode = labels.get("MODE") or ("http" if vhosts or path else "tcp")
    problems = []
    if mode == "tcp" and (vhosts or path):
        problems.append(Problem(name, "vhost/path routing needs MODE http: vhost and path ignored"))
        vhosts, path = (), None
    kept = name not in RESERVED_NAMES
    if not kept:
        problems.append(Problem(name, "name is the built-in template's own proxy: left out"))
    fields = (ident if kind == "app" else None, port if kind == "app" else None, mode,
              labels.get("BALANCE", "roundrobin"), labels.get("STICKY", False), labels.get("REDIRECT_TO_HTTPS", False),
              vhosts, path, labels.get("BACKEND_WEIGHT", 0), group)
    return _Head(noted, labels.get("ENABLED") is not False, group, tuple(problems), kept, name, fields,
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
