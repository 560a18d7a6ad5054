"""An immutable, sorted snapshot of the Consul catalog: services, their instances with health, and KV.

The rest of the room only sees these frozen values. Equal catalogs give equal snapshots, whatever the
order in which Consul listed them. Consul's JSON is read in one place, `consul_templates.catalog`;
`Snapshot.from_catalog` goes through it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import groupby
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


class ServiceInstance(NamedTuple):
    """One registration of a service on a node."""

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


def instance_order(inst: ServiceInstance) -> tuple[str, str]:
    """Instances of one service are sorted by node, then id."""
    return inst.node, inst.id


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

    def __hash__(self) -> int:
        return hash((self.services, tuple(sorted(self.kv.items()))))

    @property
    def instances(self) -> tuple[ServiceInstance, ...]:
        """Every instance, sorted by service, node and id."""
        return tuple(i for s in self.services for i in s.instances)

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def without(self, names: Iterable[str]) -> Snapshot:
        """The same snapshot without the named services."""
        drop = set(names)
        return replace(self, services=tuple(s for s in self.services if s.name not in drop))

    @classmethod
    def of(cls, instances: Iterable[ServiceInstance], kv: Mapping[str, str] | None = None) -> Snapshot:
        """Group instances into services and sort everything."""
        found = sorted(instances, key=lambda i: (i.service, i.node, i.id))
        services = tuple(Service(name=name, instances=tuple(group))
                         for name, group in groupby(found, key=lambda i: i.service))
        return cls(services=services, kv=MappingProxyType(dict(sorted((kv or {}).items()))))

    @classmethod
    def from_catalog(cls, nodes: Iterable[Mapping[str, Any]], checks: Iterable[Mapping[str, Any]],
                     kv: Mapping[str, str] | None = None) -> Snapshot:
        """Build from `/v1/catalog/node/<node>` answers (one per node) and `/v1/health/state/any`."""
        from consul_templates.catalog import Catalog

        return Catalog.read(nodes, checks, kv).snapshot()

    @classmethod
    def from_health(cls, entries: Iterable[Mapping[str, Any]], kv: Mapping[str, str] | None = None) -> Snapshot:
        """Build from `/v1/health/service/<name>` entries (Node, Service, Checks), any service mix."""
        from consul_templates.catalog import Catalog, text

        answers: dict[str, dict[str, Any]] = {}  # as `/v1/catalog/node/<node>` would answer, per node
        for entry in entries:
            node = entry.get("Node") or {}
            answer = answers.setdefault(text(node.get("Node")), {"Node": node, "Services": {}})
            service = entry.get("Service") or {}
            answer["Services"][text(service.get("ID"))] = service
        checks = [c for e in entries for c in e.get("Checks") or ()]
        return Catalog.read(answers.values(), checks, kv).snapshot()
