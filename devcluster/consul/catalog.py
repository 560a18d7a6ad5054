"""The catalog of the stand-in's single node: services, health checks, and their indexes.

Pure, like the KV store. Index rules follow Consul's state store: the ``nodes``,
``services`` and ``checks`` tables each have an index; every service name has its own
index, bumped by its instances and by checks that affect them (node-level checks affect
every service); a query for a service that does not exist answers with the index at
which the last service disappeared ("extinction"), so a watch on it wakes when it comes
back. Responses are rendered here in Consul's JSON shape (OSS, so no ``Namespace``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from devcluster.consul.model import PASSING, Check, Indexes, Node, Service, format_duration


class Catalog:
    def __init__(self, indexes: Indexes, node: Node) -> None:
        self.ix = indexes
        self.node = node
        self.services: dict[str, Service] = {}
        self.checks: dict[str, Check] = {}
        self.service_index: dict[str, int] = {}
        self.extinction_index = 0

    # -- writes --------------------------------------------------------------------------------

    def _touch_names(self, idx: int, names: Iterable[str]) -> None:
        for name in names:
            self.service_index[name] = idx

    def _names_affected_by(self, check: Check) -> set[str]:
        if check.service_id:
            service = self.services.get(check.service_id)
            return {service.name} if service else set()
        return {s.name for s in self.services.values()}

    def put_service(self, idx: int, service: Service) -> Service:
        existing = self.services.get(service.id)
        created = existing.create_index if existing else idx
        candidate = replace(service, create_index=created, modify_index=existing.modify_index if existing else idx)
        if existing == candidate:
            return existing
        stored = replace(candidate, modify_index=idx)
        self.services[service.id] = stored
        self.ix.touch(idx, "services")
        names = {service.name} | ({existing.name} if existing else set())
        self._touch_names(idx, names)
        if existing and existing.name != service.name:
            self._forget_name_if_extinct(idx, existing.name)
        return stored

    def remove_service(self, idx: int, service_id: str) -> list[str]:
        """Drop a service and its checks; returns the removed check IDs."""
        service = self.services.pop(service_id, None)
        if service is None:
            return []
        removed = [cid for cid, c in self.checks.items() if c.service_id == service_id]
        for cid in removed:
            del self.checks[cid]
        self.ix.touch(idx, "services", *(["checks"] if removed else []))
        self._touch_names(idx, [service.name])
        self._forget_name_if_extinct(idx, service.name)
        return removed

    def _forget_name_if_extinct(self, idx: int, name: str) -> None:
        if not any(s.name == name for s in self.services.values()):
            self.service_index.pop(name, None)
            self.extinction_index = idx

    def put_check(self, idx: int, check: Check) -> Check:
        existing = self.checks.get(check.id)
        stored = replace(check, create_index=existing.create_index if existing else idx, modify_index=idx)
        self.checks[check.id] = stored
        self.ix.touch(idx, "checks")
        self._touch_names(
            idx, self._names_affected_by(stored) | (self._names_affected_by(existing) if existing else set())
        )
        return stored

    def remove_check(self, idx: int, check_id: str) -> bool:
        check = self.checks.pop(check_id, None)
        if check is None:
            return False
        self.ix.touch(idx, "checks")
        self._touch_names(idx, self._names_affected_by(check))
        return True

    def set_status(self, idx: int, check_id: str, status: str, output: str) -> bool:
        """Record a check result; only a status change is a catalog write (Consul defers
        output-only updates to its anti-entropy sync, so they move no index)."""
        check = self.checks.get(check_id)
        if check is None:
            return False
        if check.status == status:
            self.checks[check_id] = replace(check, output=output)
            return False
        self.put_check(idx, replace(check, status=status, output=output))
        return True

    # -- index rules ---------------------------------------------------------------------------

    def service_name_index(self, name: str) -> int:
        if name in self.service_index:
            return self.service_index[name]
        return self.extinction_index or self.ix.table("nodes", "services", "checks")

    # -- queries (index, JSON-ready data) ------------------------------------------------------

    def catalog_services(self) -> tuple[int, dict[str, list[str]]]:
        tags: dict[str, set[str]] = {}
        for service in self.services.values():
            tags.setdefault(service.name, set()).update(service.tags)
        return self.ix.table("services"), {name: sorted(tags[name]) for name in sorted(tags)}

    def instances(self, name: str, tags: Iterable[str] = ()) -> list[Service]:
        wanted = set(tags)
        return [
            self.services[sid]
            for sid in sorted(self.services)
            if self.services[sid].name == name and wanted.issubset(self.services[sid].tags)
        ]

    def catalog_service(self, name: str, tags: Iterable[str] = ()) -> tuple[int, list[dict[str, Any]]]:
        entries = [catalog_service_json(self.node, s) for s in self.instances(name, tags)]
        return self.service_name_index(name), entries

    def checks_for(self, service: Service) -> list[Check]:
        return [self.checks[c] for c in sorted(self.checks) if self.checks[c].service_id in ("", service.id)]

    def health_service(
        self, name: str, tags: Iterable[str] = (), passing: bool = False
    ) -> tuple[int, list[dict[str, Any]]]:
        entries = []
        for service in self.instances(name, tags):
            checks = self.checks_for(service)
            if passing and any(c.status != PASSING for c in checks):
                continue
            entries.append(
                {
                    "Node": node_json(self.node),
                    "Service": node_service_json(service),
                    "Checks": [check_json(c, self.node.name, self.services) for c in checks],
                }
            )
        return self.service_name_index(name), entries

    def health_checks(self, name: str) -> tuple[int, list[dict[str, Any]]]:
        ids = {s.id for s in self.instances(name)}
        checks = [self.checks[c] for c in sorted(self.checks) if self.checks[c].service_id in ids]
        return self.service_name_index(name), [check_json(c, self.node.name, self.services) for c in checks]

    def health_state(self, state: str) -> tuple[int, list[dict[str, Any]]]:
        checks = [self.checks[c] for c in sorted(self.checks) if state == "any" or self.checks[c].status == state]
        return self.ix.table("checks"), [check_json(c, self.node.name, self.services) for c in checks]

    def health_node(self, node: str) -> tuple[int, list[dict[str, Any]]]:
        checks = [self.checks[c] for c in sorted(self.checks)] if node == self.node.name else []
        return self.ix.table("checks"), [check_json(c, self.node.name, self.services) for c in checks]

    def catalog_nodes(self) -> tuple[int, list[dict[str, Any]]]:
        return self.ix.table("nodes"), [node_json(self.node)]

    def catalog_node(self, node: str) -> tuple[int, dict[str, Any] | None]:
        idx = self.ix.table("nodes", "services")
        if node != self.node.name:
            return idx, None
        services = {sid: node_service_json(self.services[sid]) for sid in sorted(self.services)}
        return idx, {"Node": node_json(self.node), "Services": services}

    def agent_services(self) -> dict[str, dict[str, Any]]:
        local = (s for s in self.services.values() if s.local)
        return {s.id: agent_service_json(s, self.node.datacenter) for s in sorted(local, key=lambda s: s.id)}

    def agent_checks(self) -> dict[str, dict[str, Any]]:
        local = [c for c in self.checks.values() if c.id != "serfHealth"]
        return {
            c.id: check_json(c, self.node.name, self.services, agent=True) for c in sorted(local, key=lambda c: c.id)
        }


# -- JSON views -------------------------------------------------------------------------------


def node_json(node: Node) -> dict[str, Any]:
    tagged = {"lan": node.address, "lan_ipv4": node.address, "wan": node.address, "wan_ipv4": node.address}
    return {
        "ID": node.id,
        "Node": node.name,
        "Address": node.address,
        "Datacenter": node.datacenter,
        "TaggedAddresses": tagged,
        "Meta": dict(node.meta),
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    }


def _tagged_addresses(service: Service) -> dict[str, dict[str, Any]]:
    return {name: {"Address": addr, "Port": port} for name, (addr, port) in sorted(service.tagged_addresses.items())}


def agent_service_json(service: Service, datacenter: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ID": service.id,
        "Service": service.name,
        "Tags": list(service.tags),
        "Meta": dict(service.meta),
        "Port": service.port,
        "Address": service.address,
    }
    if service.tagged_addresses:
        data["TaggedAddresses"] = _tagged_addresses(service)
    data.update(
        {
            "Weights": {"Passing": service.weights[0], "Warning": service.weights[1]},
            "EnableTagOverride": service.enable_tag_override,
            "Datacenter": datacenter,
        }
    )
    return data


def node_service_json(service: Service) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ID": service.id,
        "Service": service.name,
        "Tags": list(service.tags),
        "Address": service.address,
    }
    if service.tagged_addresses:
        data["TaggedAddresses"] = _tagged_addresses(service)
    data.update(
        {
            "Meta": dict(service.meta),
            "Port": service.port,
            "Weights": {"Passing": service.weights[0], "Warning": service.weights[1]},
            "EnableTagOverride": service.enable_tag_override,
            # Connect fields are all omitempty since Consul 1.6; only these empty structs remain.
            "Proxy": {"MeshGateway": {}, "Expose": {}},
            "Connect": {},
            "CreateIndex": service.create_index,
            "ModifyIndex": service.modify_index,
        }
    )
    return data


def catalog_service_json(node: Node, service: Service) -> dict[str, Any]:
    base = node_json(node)
    data: dict[str, Any] = {
        "ID": base["ID"],
        "Node": base["Node"],
        "Address": base["Address"],
        "Datacenter": base["Datacenter"],
        "TaggedAddresses": base["TaggedAddresses"],
        "NodeMeta": base["Meta"],
        "ServiceKind": "",
        "ServiceID": service.id,
        "ServiceName": service.name,
        "ServiceTags": list(service.tags),
        "ServiceAddress": service.address,
    }
    if service.tagged_addresses:
        data["ServiceTaggedAddresses"] = _tagged_addresses(service)
    data.update(
        {
            "ServiceWeights": {"Passing": service.weights[0], "Warning": service.weights[1]},
            "ServiceMeta": dict(service.meta),
            "ServicePort": service.port,
            "ServiceSocketPath": "",
            "ServiceEnableTagOverride": service.enable_tag_override,
            "ServiceProxy": {"MeshGateway": {}, "Expose": {}},
            "ServiceConnect": {},
            "CreateIndex": service.create_index,
            "ModifyIndex": service.modify_index,
        }
    )
    return data


def check_json(check: Check, node: str, services: dict[str, Service], agent: bool = False) -> dict[str, Any]:
    """A HealthCheck; the agent endpoints print its local copy, whose raft indexes are 0."""
    service = services.get(check.service_id)
    spec = check.spec
    definition: dict[str, Any] = {}
    if spec.http:
        definition.update(
            HTTP=spec.http,
            Header=dict(spec.header) or None,
            Method=spec.method or None,
            TLSSkipVerify=spec.tls_skip_verify or None,
        )
    if spec.tcp:
        definition["TCP"] = spec.tcp
    for name, seconds in (
        ("Interval", spec.interval),
        ("Timeout", spec.timeout),
        ("DeregisterCriticalServiceAfter", spec.deregister_after),
    ):
        if seconds:
            definition[name] = format_duration(seconds)
    data: dict[str, Any] = {
        "Node": node,
        "CheckID": check.id,
        "Name": check.name,
        "Status": check.status,
        "Notes": check.notes,
        "Output": check.output,
        "ServiceID": check.service_id,
        "ServiceName": service.name if service else "",
        "ServiceTags": list(service.tags) if service else [],
        "Type": spec.kind,
    }
    if spec.interval:
        data["Interval"] = format_duration(spec.interval)
    if spec.timeout:
        data["Timeout"] = format_duration(spec.timeout)
    data["ExposedPort"] = 0
    data["Definition"] = {k: v for k, v in definition.items() if v is not None}
    data["CreateIndex"] = 0 if agent else check.create_index
    data["ModifyIndex"] = 0 if agent else check.modify_index
    return data
