"""Frozen values at the edges: a container as Docker inspects it, a registration as Consul keeps it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wharf.contracts import consul_meta
from wharf.contracts.consul_meta import MAINTENANCE_PREFIX as MAINTENANCE_PREFIX  # re-exported for the room

#: Meta keys of the contract between rooms (`wharf.contracts.consul_meta`); `wharf_digest` is this
#: room's own addition
OWNER_KEY = consul_meta.OWNER
CONTAINER_KEY = consul_meta.CONTAINER_ID
DIGEST_KEY = "wharf_digest"
#: the reason this registrator gives its drains: maintenance with any other reason (an operator's
#: `consul maint`, `wharf apps scale` draining before a kill) is someone else's, left as it is
DRAIN_REASON = "container stopping"


@dataclass(frozen=True)
class Binding:
    """One published port: container port/proto bound on the host's address and port."""

    port: int
    proto: str
    host_ip: str
    host_port: int


@dataclass(frozen=True)
class DockerContainer:
    """What the registrator needs of `docker inspect`."""

    id: str
    name: str
    image: str
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    running: bool = True
    exit_code: int = 0
    network_mode: str = "default"
    ip: str = ""
    exposed: tuple[tuple[int, str], ...] = ()
    published: tuple[Binding, ...] = ()

    @classmethod
    def from_inspect(cls, data: Mapping[str, Any]) -> DockerContainer:
        """Read the dict the Docker API returns for `GET /containers/{id}/json`."""
        config = data.get("Config") or {}
        state = data.get("State") or {}
        host_config = data.get("HostConfig") or {}
        net = data.get("NetworkSettings") or {}
        env: dict[str, str] = {}
        for item in config.get("Env") or []:
            key, _, value = str(item).partition("=")
            env[key] = value
        exposed = {_port_key(k) for k in (config.get("ExposedPorts") or {})}
        published = []
        for key, bindings in sorted((net.get("Ports") or {}).items()):
            port, proto = _port_key(key)
            exposed.add((port, proto))
            for b in bindings or []:
                if str(b.get("HostPort") or "").isdigit():
                    published.append(Binding(port, proto, str(b.get("HostIp") or ""), int(b["HostPort"])))
        ip = str(net.get("IPAddress") or "")
        if not ip:
            for network in (net.get("Networks") or {}).values():
                if network and network.get("IPAddress"):
                    ip = str(network["IPAddress"])
                    break
        return cls(
            id=str(data["Id"]),
            name=str(data.get("Name") or "").lstrip("/"),
            image=str(config.get("Image") or data.get("Image") or ""),
            env=env,
            labels={str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
            running=bool(state.get("Running")) and not bool(state.get("Paused")),
            exit_code=int(state.get("ExitCode") or 0),
            network_mode=str(host_config.get("NetworkMode") or "default"),
            ip=ip,
            exposed=tuple(sorted(exposed)),
            published=tuple(published),
        )


def _port_key(key: str) -> tuple[int, str]:
    port, _, proto = str(key).partition("/")
    return int(port), proto or "tcp"


@dataclass(frozen=True)
class Options:
    """How services are derived (registrator's flags): see `services.desired`."""

    hostname: str
    host_ip: str
    owner: str
    ip: str | None = None
    internal: bool = False
    explicit: bool = False
    tags: tuple[str, ...] = ()
    deregister: str = "always"  # or "on-success"
    node_address: str | None = None  # only containers of this node (see `services.on_node`)


@dataclass(frozen=True)
class Registration:
    """One service this registrator wants in Consul."""

    id: str
    name: str
    address: str
    port: int
    container_id: str
    tags: tuple[str, ...] = ()
    meta: tuple[tuple[str, str], ...] = ()
    checks: tuple[tuple[tuple[str, Any], ...], ...] = ()  # Consul check definitions, as sorted items
    drained: bool = False  # wanted in maintenance (the container is stopping or failed)

    def body(self) -> dict[str, Any]:
        """The `PUT /v1/agent/service/register` body, Meta carrying the digest of the rest."""
        body: dict[str, Any] = {"ID": self.id, "Name": self.name, "Address": self.address, "Port": self.port,
                                "Tags": list(self.tags), "Meta": dict(self.meta)}
        if len(self.checks) == 1:
            body["Check"] = dict(self.checks[0])
        elif self.checks:
            body["Checks"] = [dict(c) for c in self.checks]
        body["Meta"][DIGEST_KEY] = digest(body)
        return body

    @property
    def digest(self) -> str:
        return str(self.body()["Meta"][DIGEST_KEY])


def digest(body: Mapping[str, Any]) -> str:
    """A short fingerprint of a registration body (ignoring any digest already in its Meta)."""
    meta = {k: v for k, v in (body.get("Meta") or {}).items() if k != DIGEST_KEY}
    text = json.dumps({**body, "Meta": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Registered:
    """A service as the Consul agent lists it, reduced to what reconciling needs."""

    id: str
    owner: str | None
    container_id: str | None
    digest: str | None
    maintenance: bool = False  # in maintenance by this registrator's drain (DRAIN_REASON)

    @classmethod
    def from_consul(cls, entry: Mapping[str, Any], maintenance: bool = False) -> Registered:
        """Read one value of `GET /v1/agent/services`."""
        meta = entry.get("Meta") or {}
        return cls(str(entry["ID"]), meta.get(OWNER_KEY), meta.get(CONTAINER_KEY), meta.get(DIGEST_KEY),
                   maintenance)

    @classmethod
    def written(cls, reg: Registration, owner: str, maintenance: bool) -> Registered:
        """What Consul holds after this registrator registered `reg`."""
        return cls(reg.id, owner, reg.container_id, reg.digest, maintenance)


def listing(services: Mapping[str, Mapping[str, Any]], checks: Mapping[str, Any]) -> dict[str, Registered]:
    """Every service of an agent listing, with whether a drain of this registrator holds it in
    maintenance, read from the agent's checks (the maintenance check's notes are its reason)."""
    in_maintenance = {cid[len(MAINTENANCE_PREFIX):] for cid, check in checks.items()
                      if cid.startswith(MAINTENANCE_PREFIX) and (check or {}).get("Notes") == DRAIN_REASON}
    return {sid: Registered.from_consul(entry, sid in in_maintenance) for sid, entry in services.items()}


_WORST = {"passing": 0, "warning": 1, "critical": 2}


def health_rows(services: Mapping[str, Mapping[str, Any]], checks: Mapping[str, Mapping[str, Any]],
                owner: str | None = None) -> list[dict[str, Any]]:
    """One row per service a wharf registrator wrote (of `owner` only, if given), with its health:
    `maintenance` when drained, else the worst of its checks (`passing` when it has none)."""
    by_service: dict[str, list[Mapping[str, Any]]] = {}
    for check in checks.values():
        by_service.setdefault(str(check.get("ServiceID") or ""), []).append(check)
    rows = []
    for sid, entry in sorted(services.items()):
        meta = entry.get("Meta") or {}
        if OWNER_KEY not in meta or (owner is not None and meta[OWNER_KEY] != owner):
            continue
        own = by_service.get(sid, [])
        if any(str(c.get("CheckID", "")).startswith(MAINTENANCE_PREFIX) for c in own):
            health = "maintenance"
        else:
            health = max((str(c.get("Status", "critical")) for c in own), key=lambda s: _WORST.get(s, 2),
                         default="passing")
        rows.append({"id": sid, "name": entry.get("Service"), "address": entry.get("Address"),
                     "port": entry.get("Port"), "health": health, "owner": meta[OWNER_KEY],
                     "marathon_app_id": meta.get(consul_meta.MARATHON_APP_ID)})
    return rows
