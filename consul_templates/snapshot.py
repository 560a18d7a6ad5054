"""An immutable, sorted snapshot of the Consul catalog: services, their instances with health, and KV.

Built from Consul's own JSON at the edge (`Snapshot.from_catalog`, `Snapshot.from_health`), so the
rest of the room only sees frozen values. Equal catalogs give equal snapshots, whatever the order in
which Consul listed them.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from itertools import chain, groupby, islice, repeat
from operator import attrgetter, itemgetter
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar

EMPTY: Mapping[str, str] = MappingProxyType({})
T = TypeVar("T")

#: worst first: an instance's status is the worst of its own checks and its node's checks
STATUS_ORDER = ("maintenance", "critical", "warning", "passing")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while thousands of small acyclic values are built: its
    collections would otherwise cost more than the building (reference counting frees them all)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}
_PASSING = len(STATUS_ORDER) - 1
_MAINTENANCE_CHECKS = ("_service_maintenance", "_node_maintenance")


def _check_rank(check: Mapping[str, Any]) -> int:
    """A check's place in `STATUS_ORDER`: maintenance checks first, an unknown status as critical."""
    check_id = check.get("CheckID")
    if isinstance(check_id, str) and check_id.startswith(_MAINTENANCE_CHECKS):
        return 0
    status = check.get("Status")
    return _RANK.get(status, 1) if isinstance(status, str) else 1


def maker(cls: type[T]) -> Callable[[tuple[Any, ...]], T]:
    """A fast constructor for the named tuple `cls` from a tuple of every field in order: the
    generated `__new__` costs a Python call, which doubles the cost of the thousands made per read."""
    return partial(tuple.__new__, cls)  # type: ignore[return-value,type-var]


class ServiceInstance(NamedTuple):
    """One registration of a service on a node (a named tuple: thousands are made per read)."""

    id: str
    service: str
    node: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = EMPTY
    status: str = "passing"

    @property
    def passing(self) -> bool:
        return self.status == "passing"

    @property
    def key(self) -> str:
        """`address:port`, where a load balancer sends its traffic."""
        return f"{self.address}:{self.port}"

    def __hash__(self) -> int:
        return hash((self.id, self.service, self.node, self.address, self.port, self.tags,
                     tuple(sorted(self.meta.items())), self.status))


class Service(NamedTuple):
    """A service name and every instance registered under it, sorted by node then id."""

    name: str
    instances: tuple[ServiceInstance, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag any instance carries, sorted."""
        return tuple(sorted({t for i in self.instances for t in i.tags}))

    @property
    def passing(self) -> tuple[ServiceInstance, ...]:
        return tuple(i for i in self.instances if i.passing)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The catalog at one moment: services sorted by name, and KV pairs under the watched prefixes."""

    services: tuple[Service, ...] = ()
    kv: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    #: the same instances in the order they were read, which is the order Consul's answers lie in
    #: memory: visiting thousands of them that way is faster (empty when not known)
    read_order: tuple[ServiceInstance, ...] = field(default=(), compare=False, repr=False)

    def __hash__(self) -> int:
        return hash((self.services, tuple(sorted(self.kv.items()))))

    @property
    def instances(self) -> tuple[ServiceInstance, ...]:
        """Every instance, sorted by service, node and id."""
        return tuple(chain.from_iterable(map(_INSTANCES, self.services)))

    @property
    def unordered(self) -> tuple[ServiceInstance, ...]:
        """Every instance, in the fastest order to visit them: as read if known, else sorted."""
        return self.read_order or self.instances

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def without(self, names: Iterable[str]) -> Snapshot:
        """The same snapshot without the named services."""
        drop = set(names)
        return replace(self, services=tuple(s for s in self.services if s.name not in drop), read_order=())

    @classmethod
    def of(cls, instances: Iterable[ServiceInstance], kv: Mapping[str, str] | None = None) -> Snapshot:
        """Group instances into services and sort everything."""
        read = tuple(instances)
        found = sorted(read, key=_ID)  # by service, node and id: three stable sorts on strings are
        found.sort(key=_NODE)  # faster than one on tuples
        found.sort(key=_SERVICE)
        services = tuple([_new_service((name, tuple(group))) for name, group in groupby(found, _SERVICE)])
        return cls(services, MappingProxyType(dict(sorted((kv or {}).items()))), read)

    @classmethod
    def from_catalog(cls, nodes: Iterable[Mapping[str, Any]], checks: Iterable[Mapping[str, Any]],
                     kv: Mapping[str, str] | None = None) -> Snapshot:
        """Build from `/v1/catalog/node/<node>` answers (one per node) and `/v1/health/state/any`.
        The answers are handed over: each instance keeps a read-only view of its own Meta dict, not
        a copy (at thousands of instances, copies cost more memory traffic than the rest of the read)."""
        with paused_gc():
            return cls._from_catalog(nodes, checks, kv)

    @classmethod
    def _from_catalog(cls, nodes: Iterable[Mapping[str, Any]], checks: Iterable[Mapping[str, Any]],
                      kv: Mapping[str, str] | None) -> Snapshot:
        own_rank: dict[str, dict[str, int]] = {}  # node -> service id -> the worst of its checks
        node_rank: dict[str, int] = {}
        for check in _changing(checks if isinstance(checks, list) else list(checks)):
            if check.get("Status") == "passing" and not str(check.get("CheckID", "")).startswith(_MAINTENANCE_CHECKS):
                continue  # the common case: a passing check that is not a maintenance one changes nothing
            rank, node, service_id = _check_rank(check), _text(check.get("Node")), _text(check.get("ServiceID"))
            if not service_id:
                node_rank[node] = min(rank, node_rank.get(node, _PASSING))
            else:
                ranks = own_rank.setdefault(node, {})
                ranks[service_id] = min(rank, ranks.get(service_id, _PASSING))
        on_nodes = []
        for entry in nodes:
            if entry:
                info = entry.get("Node") or {}
                name = _text(info.get("Node"))
                on_node = node_rank.get(name, _PASSING)  # a node's checks count for each of its services
                statuses = {sid: STATUS_ORDER[min(rank, on_node)] for sid, rank in own_rank.get(name, {}).items()}
                on_nodes.append((name, _text(info.get("Address")), STATUS_ORDER[on_node], statuses,
                                 (entry.get("Services") or {}).values()))
        found = _as_consul_writes(on_nodes)
        if found is None:  # something of another shape: read every value with care
            found = [_instance(svc, name, address, statuses.get(_text(svc.get("ID")), status))
                     for name, address, status, statuses, services in on_nodes for svc in services]
        return cls.of(found, kv)

    @classmethod
    def from_health(cls, entries: Iterable[Mapping[str, Any]], kv: Mapping[str, str] | None = None) -> Snapshot:
        """Build from `/v1/health/service/<name>` entries (Node, Service, Checks), any service mix."""
        found = []
        for entry in entries:
            node = entry.get("Node") or {}
            status = STATUS_ORDER[min((_check_rank(c) for c in entry.get("Checks") or ()), default=_PASSING)]
            found.append(_instance(entry.get("Service") or {}, _text(node.get("Node")),
                                   _text(node.get("Address")), status))
        return cls.of(found, kv)


_ID, _NODE, _SERVICE, _INSTANCES = attrgetter("id"), attrgetter("node"), attrgetter("service"), attrgetter("instances")


def _changing(checks: list[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """The checks to read one by one: none when every check is passing and none is a maintenance
    one, which is the common case, found in C for all of them at once; else all of them."""
    try:
        if list(map(_STATUS_OF, checks)).count("passing") < len(checks):
            return checks
        ids = "\n" + "\n".join(map(_CHECK_ID_OF, checks))
    except (KeyError, TypeError):  # something of another shape: read each with care
        return checks
    return checks if any(f"\n{prefix}" in ids for prefix in _MAINTENANCE_CHECKS) else ()


_STATUS_OF, _CHECK_ID_OF = itemgetter("Status"), itemgetter("CheckID")


def _text(value: Any) -> str:
    """A JSON value where Consul puts a string (null and missing as empty)."""
    return value if type(value) is str else str(value or "")


@lru_cache(maxsize=4096)
def _sorted_tags(tags: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(sorted(map(str, tags)))


def _tags(tags: Iterable[Any]) -> tuple[str, ...]:
    """Tags sorted; most instances share a few tag lists, so each is sorted once."""
    try:
        return _sorted_tags(tuple(tags))
    except TypeError:  # an unhashable tag: not Consul's, but never fail a read over it
        return tuple(sorted(map(str, tags)))


def _instance(svc: Mapping[str, Any], node: str, node_addr: str, status: str) -> ServiceInstance:
    """One instance from Consul's service JSON, whatever the types in it. Meta keeps Consul's order,
    which is sorted by key (Consul writes every map with its keys sorted); `safe.clean` leaves out
    any entry that is not a string."""
    port = svc.get("Port")
    if type(port) is not int:
        try:
            port = int(port or 0)
        except (TypeError, ValueError):
            port = 0
    meta, tags, address = svc.get("Meta"), svc.get("Tags"), svc.get("Address")
    return ServiceInstance(  # positional, in field order: thousands are made per read
        _text(svc.get("ID")),
        _text(svc.get("Service")),
        node,
        _text(address) if address else node_addr,  # Consul's rule: the service's address, else the node's
        port,
        _tags(tags) if tags else (),
        MappingProxyType(dict(meta)) if meta and isinstance(meta, Mapping) else EMPTY,
        status,
    )


#: a node's name, address and status, its services' statuses by id, and its services
NodeServices = tuple[str, str, str, Mapping[str, str], Iterable[Mapping[str, Any]]]


def _as_consul_writes(on_nodes: Iterable[NodeServices]) -> list[ServiceInstance] | None:
    """Every instance, read fast on the assumption that each value has the type Consul gives it
    (checked for a few hundred at once); None when one does not. A node's services are read a field
    at a time, in C, `CHUNK` at a time: the several passes over a chunk then find it in the CPU's
    cache, where passes over a whole node's thousands would each fetch it from memory again."""
    found: list[ServiceInstance] = []
    # one object per distinct address and port, shared by the instances that have it: the later
    # passes over thousands of servers then read a few values that stay in the CPU's cache, not
    # thousands scattered through the answers (a value equal to an int is read as that int anyway)
    addresses: dict[Any, Any] = {}
    ports: dict[Any, Any] = {}
    try:
        for name, address, status, statuses, services in on_nodes:
            rest = iter(services)
            while rows := list(map(_FIELDS, islice(rest, CHUNK))):
                ids, names, addrs, port_values, tag_lists, metas = zip(*rows, strict=True)
                if not (_all_strings(ids) and _all_strings(names) and set(map(type, port_values)) <= {int}):
                    return None
                if not all(addrs):  # Consul's rule: the service's address, else the node's
                    addrs = tuple(a or address for a in addrs)
                if not _all_strings(addrs):
                    return None
                views = (map(MappingProxyType, metas) if all(metas)
                         else [MappingProxyType(m) if m else EMPTY for m in metas])
                found += map(_new_instance, zip(
                    ids, names, repeat(name), map(addresses.setdefault, addrs, addrs),
                    map(ports.setdefault, port_values, port_values),
                    [_tags(t) if t else () for t in tag_lists] if any(tag_lists) else repeat(()),
                    views,
                    map(statuses.get, ids, repeat(status)) if statuses else repeat(status)))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return found


_FIELDS = itemgetter("ID", "Service", "Address", "Port", "Tags", "Meta")
CHUNK = 256  # services read together: a chunk's answers and instances fit in a core's own cache
_new_instance, _new_service = maker(ServiceInstance), maker(Service)


def _all_strings(values: Iterable[Any]) -> bool:
    """Whether every value is a string (checked in C: `join` refuses anything else)."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


