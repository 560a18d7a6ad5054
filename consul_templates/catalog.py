"""The catalog as the watches last answered it, kept up to date by what changed.

Consul's JSON is read here and only here: each node's registrations (`/v1/catalog/node/<node>`), the
checks (`/v1/health/state/...`) and KV pairs. Every update returns the names of the services it
changed, so what is built from them (safety checks, routes, rendered fragments) is redone for those
services only. A full read is the same updates, starting from nothing (`Catalog.read`).

After Consul comes back empty (restarted, or a snapshot restored), `hold()` keeps serving every
registration it then lacks until `release()`, so a half-refilled catalog never replaces a full one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from consul_templates.snapshot import EMPTY, STATUS_ORDER, Service, ServiceInstance, Snapshot, instance_order

PASSING = len(STATUS_ORDER) - 1
MAINTENANCE_CHECKS = ("_service_maintenance", "_node_maintenance")


def check_rank(check: Mapping[str, Any]) -> int:
    """A check's place in `STATUS_ORDER`: maintenance checks first, an unknown status as critical."""
    check_id = check.get("CheckID")
    if isinstance(check_id, str) and check_id.startswith(MAINTENANCE_CHECKS):
        return 0
    status = check.get("Status")
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else 1


def text(value: Any) -> str:
    """A JSON value where Consul puts a string (null and missing as empty)."""
    return value if isinstance(value, str) else str(value or "")


def port_of(value: Any) -> int:
    """A JSON value where Consul puts a port (0 when it is not a number)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def make_instance(svc: Mapping[str, Any], node: str, node_address: str, status: str) -> ServiceInstance:
    """One instance from Consul's service JSON, whatever the types in it. Tags are sorted; Meta keeps
    Consul's order (sorted by key); `safe.clean` leaves out any entry that is not a string."""
    tags, meta, address = svc.get("Tags"), svc.get("Meta"), svc.get("Address")
    return ServiceInstance(
        id=text(svc.get("ID")),
        service=text(svc.get("Service")),
        node=node,
        address=text(address) if address else node_address,  # Consul's rule: the service's, else the node's
        port=port_of(svc.get("Port")),
        tags=tuple(sorted(map(str, tags))) if isinstance(tags, list) else (),
        meta=MappingProxyType(dict(meta)) if isinstance(meta, Mapping) and meta else EMPTY,
        status=status,
    )


def _ranks(checks: Iterable[Mapping[str, Any]]) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The worst rank of the failing checks of each registration ((node, service id)) and of each
    node's own checks; passing checks count for nothing."""
    service_ranks: dict[tuple[str, str], int] = {}
    node_ranks: dict[str, int] = {}
    for check in checks:
        if not isinstance(check, Mapping):
            continue
        rank, node, service_id = check_rank(check), text(check.get("Node")), text(check.get("ServiceID"))
        if rank == PASSING:
            continue
        if service_id:
            service_ranks[node, service_id] = min(rank, service_ranks.get((node, service_id), PASSING))
        else:
            node_ranks[node] = min(rank, node_ranks.get(node, PASSING))
    return service_ranks, node_ranks


@dataclass
class Node:
    """One node's answer: its address and its registrations by service id (Consul's JSON, as sent)."""

    address: str = ""
    services: dict[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class Catalog:
    """Nodes, the ranks of the checks that are not passing, and KV; and which registrations serve each
    service name."""

    nodes: dict[str, Node] = field(default_factory=dict)
    service_ranks: dict[tuple[str, str], int] = field(default_factory=dict)  # (node, service id) -> rank
    node_ranks: dict[str, int] = field(default_factory=dict)
    kv: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    members: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # service -> (node, id)
    held: dict[str, Node] | None = None  # what to keep serving while Consul refills

    @classmethod
    def read(cls, nodes: Iterable[Mapping[str, Any]], checks: Iterable[Mapping[str, Any]],
             kv: Mapping[str, str] | None = None) -> Catalog:
        """A catalog from one full read: every node's answer, every check, the KV pairs."""
        catalog = cls()
        for entry in nodes:
            if entry:
                catalog.set_node(text((entry.get("Node") or {}).get("Node")), entry)
        catalog.set_checks(checks)
        catalog.set_kv(kv or {})
        return catalog

    # --- updates: each returns the names of the services it changed ------------------------------

    def set_node(self, name: str, entry: Mapping[str, Any] | None) -> set[str]:
        """A node's answer (None: the node is gone)."""
        before = self.nodes.get(name) or Node()
        if entry:
            info = entry.get("Node") or {}
            services = entry.get("Services") or {}
            after = Node(text(info.get("Address")),
                         {text(sid): svc for sid, svc in services.items() if isinstance(svc, Mapping)}
                         if isinstance(services, Mapping) else {})
            self.nodes[name] = after
        else:
            after = Node()
            self.nodes.pop(name, None)
        changed: set[str] = set()
        for sid in before.services.keys() | after.services.keys():
            old, new = before.services.get(sid), after.services.get(sid)
            if old is not None and (new is None or old != new or before.address != after.address):
                changed.add(self._leave(name, sid, old))
            if new is not None and (old is None or old != new or before.address != after.address):
                changed.add(self._join(name, sid, new))
        return changed

    def set_checks(self, checks: Iterable[Mapping[str, Any]]) -> set[str]:
        """Every check that is not passing (passing ones may be given too: they change nothing)."""
        service_ranks, node_ranks = _ranks(checks)
        changed: set[str] = set()
        for node in node_ranks.keys() ^ self.node_ranks.keys() | {
                n for n in node_ranks.keys() & self.node_ranks.keys() if node_ranks[n] != self.node_ranks[n]}:
            changed |= {self._name(node, sid) for sid in self._services_on(node)}
        for key in service_ranks.keys() | self.service_ranks.keys():
            if service_ranks.get(key) != self.service_ranks.get(key):
                changed.add(self._name(*key))
        self.service_ranks, self.node_ranks = service_ranks, node_ranks
        changed.discard("")
        return changed

    # --- what an answer needs checked against the other side -------------------------------------

    def improving(self, checks: Iterable[Mapping[str, Any]]) -> tuple[set[str], dict[str, set[tuple[str, str]]]]:
        """What `checks` (the failing ones now) would leave better off than now: the nodes whose own
        checks improve, and by service name the registrations ((node, service id)) whose do. A
        failing check gone is a recovery, or the registration went with it: which one, only a read
        of the registrations as new as these checks can tell."""
        service_ranks, node_ranks = _ranks(checks)
        nodes = {node for node, rank in self.node_ranks.items() if node_ranks.get(node, PASSING) > rank}
        registrations: dict[str, set[tuple[str, str]]] = {}
        for (node, sid), rank in self.service_ranks.items():
            if service_ranks.get((node, sid), PASSING) > rank and node not in nodes:
                registrations.setdefault(self._name(node, sid), set()).add((node, sid))
        registrations.pop("", None)
        return nodes, registrations

    def forget(self, node: str, service_ids: Iterable[str]) -> set[str]:
        """Registrations Consul no longer has, taken off their node (as its next answer would)."""
        known = self.nodes.get(node)
        gone = set(service_ids)
        if known is None or not gone & known.services.keys():
            return set()
        return self.set_node(node, {"Node": {"Node": node, "Address": known.address},
                                    "Services": {k: v for k, v in known.services.items() if k not in gone}})

    def adds(self, name: str, entry: Mapping[str, Any] | None) -> bool:
        """Whether a node's answer holds a registration the catalog lacks: its checks (a critical
        one it was registered with) may not have reached the checks' answers yet."""
        services = (entry or {}).get("Services") or {}
        known = (self.nodes.get(name) or Node()).services
        return isinstance(services, Mapping) and any(text(sid) not in known for sid in services)

    def set_kv(self, kv: Mapping[str, str]) -> bool:
        """The watched KV pairs; whether they changed."""
        new = MappingProxyType(dict(sorted(kv.items())))
        changed, self.kv = new != self.kv, new
        return changed

    def hold(self) -> None:
        """Keep serving every registration known now, until `release()`, whatever Consul answers."""
        if self.held is None:
            self.held = {name: Node(n.address, dict(n.services)) for name, n in self.nodes.items()}

    def release(self) -> set[str]:
        """Stop holding: the services that were served only because they were held."""
        held, self.held = self.held, None
        changed: set[str] = set()
        for name, node in (held or {}).items():
            current = self.nodes.get(name) or Node()
            for sid, svc in node.services.items():
                if current.services.get(sid) != svc or current.address != node.address:
                    changed.add(text(svc.get("Service")))
                    self._drop_member(text(svc.get("Service")), name, sid)
                    if sid in current.services:
                        changed.add(self._join(name, sid, current.services[sid]))
        changed.discard("")
        return changed

    # --- reading ----------------------------------------------------------------------------------

    def service(self, name: str) -> Service | None:
        """The service's instances now, sorted by node and id; None when none is registered."""
        found = [i for node, sid in self.members.get(name, ()) if (i := self._instance(node, sid)) is not None
                 and i.service == name]
        return Service(name=name, instances=tuple(sorted(found, key=instance_order))) if found else None

    @property
    def names(self) -> list[str]:
        """Every service name, sorted."""
        return sorted(self.members)

    def snapshot(self) -> Snapshot:
        services = (self.service(name) for name in self.names)
        return Snapshot(services=tuple(s for s in services if s is not None), kv=self.kv)

    # --- bookkeeping ------------------------------------------------------------------------------

    def _registration(self, node: str, sid: str) -> tuple[str, Mapping[str, Any]] | None:
        """A registration's node address and JSON: as Consul answers now, else as held."""
        current = self.nodes.get(node)
        if current is not None and sid in current.services:
            return current.address, current.services[sid]
        kept = (self.held or {}).get(node)
        if kept is not None and sid in kept.services:
            return kept.address, kept.services[sid]
        return None

    def _instance(self, node: str, sid: str) -> ServiceInstance | None:
        found = self._registration(node, sid)
        if found is None:
            return None
        rank = min(self.service_ranks.get((node, sid), PASSING), self.node_ranks.get(node, PASSING))
        return make_instance(found[1], node, found[0], STATUS_ORDER[rank])

    def _name(self, node: str, sid: str) -> str:
        found = self._registration(node, sid)
        return text(found[1].get("Service")) if found else ""

    def _services_on(self, node: str) -> set[str]:
        return set((self.nodes.get(node) or Node()).services) | set(((self.held or {}).get(node) or Node()).services)

    def _join(self, node: str, sid: str, svc: Mapping[str, Any]) -> str:
        name = text(svc.get("Service"))
        self.members.setdefault(name, set()).add((node, sid))
        return name

    def _leave(self, node: str, sid: str, svc: Mapping[str, Any]) -> str:
        name = text(svc.get("Service"))
        if self._registration(node, sid) is None or self._name(node, sid) != name:
            self._drop_member(name, node, sid)  # still served when held: kept as a member
        return name

    def _drop_member(self, name: str, node: str, sid: str) -> None:
        if self._registration(node, sid) is not None and self._name(node, sid) == name:
            return
        members = self.members.get(name)
        if members is not None:
            members.discard((node, sid))
            if not members:
                del self.members[name]
