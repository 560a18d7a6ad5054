"""An immutable, sorted snapshot of the Consul catalog: services, their instances with health, and KV.

Built from Consul's own JSON at the edge (`Snapshot.from_catalog`, `Snapshot.from_health`), so the
rest of the room only sees frozen values. Equal catalogs give equal snapshots, whatever the order in
which Consul listed them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

EMPTY: Mapping[str, str] = MappingProxyType({})

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


def _worst(statuses: Iterable[str]) -> str:
    """The worst status; an unknown one counts as critical."""
    rank = min((_RANK.get(s, 1) for s in statuses), default=3)
    return STATUS_ORDER[rank]


def _check_status(check: Mapping[str, Any]) -> str:
    check_id = str(check.get("CheckID") or "")
    if check_id.startswith(("_service_maintenance", "_node_maintenance")):
        return "maintenance"
    return str(check.get("Status") or "critical")


class Instance(NamedTuple):
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

    def __hash__(self) -> int:
        return hash((self.id, self.service, self.node, self.address, self.port, self.tags,
                     tuple(sorted(self.meta.items())), self.status))


@dataclass(frozen=True, slots=True)
class Service:
    """A service name and every instance registered under it, sorted by node then id."""

    name: str
    instances: tuple[Instance, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag any instance carries, sorted."""
        return tuple(sorted({t for i in self.instances for t in i.tags}))

    @property
    def passing(self) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.passing)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The catalog at one moment: services sorted by name, and KV pairs under the watched prefixes."""

    services: tuple[Service, ...] = ()
    kv: Mapping[str, str] = field(default_factory=lambda: EMPTY)

    def __hash__(self) -> int:
        return hash((self.services, tuple(sorted(self.kv.items()))))

    @property
    def instances(self) -> tuple[Instance, ...]:
        return tuple(i for s in self.services for i in s.instances)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def without(self, names: Iterable[str]) -> Snapshot:
        """The same snapshot without the named services."""
        drop = set(names)
        return replace(self, services=tuple(s for s in self.services if s.name not in drop))

    @classmethod
    def of(cls, instances: Iterable[Instance], kv: Mapping[str, str] | None = None) -> Snapshot:
        """Group instances into services and sort everything."""
        by_name: dict[str, list[Instance]] = {}
        for inst in instances:
            by_name.setdefault(inst.service, []).append(inst)
        services = tuple(
            Service(name, tuple(sorted(insts, key=lambda i: (i.node, i.id))))
            for name, insts in sorted(by_name.items())
        )
        return cls(services, MappingProxyType(dict(sorted((kv or {}).items()))))

    @classmethod
    def from_catalog(cls, nodes: Iterable[Mapping[str, Any]], checks: Iterable[Mapping[str, Any]],
                     kv: Mapping[str, str] | None = None) -> Snapshot:
        """Build from `/v1/catalog/node/<node>` answers (one per node) and `/v1/health/state/any`."""
        with paused_gc():
            return cls._from_catalog(nodes, checks, kv)

    @classmethod
    def _from_catalog(cls, nodes: Iterable[Mapping[str, Any]], checks: Iterable[Mapping[str, Any]],
                      kv: Mapping[str, str] | None) -> Snapshot:
        by_service: dict[tuple[str, str], list[str]] = {}
        by_node: dict[str, list[str]] = {}
        for check in checks:
            node, service_id = str(check.get("Node") or ""), str(check.get("ServiceID") or "")
            if service_id:
                by_service.setdefault((node, service_id), []).append(_check_status(check))
            else:
                by_node.setdefault(node, []).append(_check_status(check))
        node_status = {node: _worst(statuses) for node, statuses in by_node.items()}
        found = []
        for entry in nodes:
            if not entry:
                continue
            info = entry.get("Node") or {}
            node_name, node_addr = str(info.get("Node") or ""), str(info.get("Address") or "")
            for svc in (entry.get("Services") or {}).values():
                sid = str(svc.get("ID") or "")
                own = by_service.get((node_name, sid))
                status = _worst([*own, node_status.get(node_name, "passing")]) if own else \
                    node_status.get(node_name, "passing")
                found.append(_instance(svc, node_name, node_addr, status))
        return cls.of(found, kv)

    @classmethod
    def from_health(cls, entries: Iterable[Mapping[str, Any]], kv: Mapping[str, str] | None = None) -> Snapshot:
        """Build from `/v1/health/service/<name>` entries (Node, Service, Checks), any service mix."""
        found = []
        for entry in entries:
            node = entry.get("Node") or {}
            status = _worst(_check_status(c) for c in entry.get("Checks") or ())
            found.append(_instance(entry.get("Service") or {}, str(node.get("Node") or ""),
                                   str(node.get("Address") or ""), status))
        return cls.of(found, kv)


def _all_strings(values: Iterable[Any]) -> bool:
    """Whether every value is a string (checked in C: `join` refuses anything else)."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


@lru_cache(maxsize=4096)
def _sorted_tags(tags: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(sorted(map(str, tags)))


def _tags(tags: Iterable[Any]) -> tuple[str, ...]:
    """Tags sorted; most instances share a few tag lists, so each is sorted once."""
    try:
        return _sorted_tags(tuple(tags))
    except TypeError:  # an unhashable tag: not Consul's, but never fail a read over it
        return tuple(sorted(map(str, tags)))


def _instance(svc: Mapping[str, Any], node: str, node_addr: str, status: str) -> Instance:
    """One instance from Consul's service JSON. Meta keeps Consul's order, which is sorted by key
    (Consul writes every map with its keys sorted); it is copied, so the snapshot shares nothing."""
    try:
        port = int(svc.get("Port") or 0)
    except (TypeError, ValueError):
        port = 0
    meta = svc.get("Meta")
    tags = svc.get("Tags")
    if meta:
        meta = MappingProxyType(dict(meta) if _all_strings(meta) and _all_strings(meta.values())
                                else {str(k): str(v) for k, v in meta.items()})  # Consul's Meta is strings
    return Instance(  # positional, in field order: thousands are made per read
        str(svc.get("ID") or ""),
        str(svc.get("Service") or ""),
        node,
        str(svc.get("Address") or node_addr),  # Consul's rule: the service's address, else the node's
        port,
        _tags(tags) if tags else (),
        meta or EMPTY,
        status,
    )
