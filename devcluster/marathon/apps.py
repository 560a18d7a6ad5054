"""App definitions as the Marathon stand-in stores and shows them, and its task JSON. Pure.

Stored apps are `normalize_app` output plus `version`, `versionInfo` and service ports
(Marathon gives each service port 0, in portDefinitions or container portMappings, one from 10000
up). Updates (PUT, PATCH) are merged onto the stored definition without its read-only fields, then
validated again.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devcluster.marathon.health import HealthState

SERVICE_PORTS_FROM = 10000
READ_ONLY = ("version", "versionInfo", "tasks", "tasksRunning", "tasksStaged", "tasksHealthy", "tasksUnhealthy",
             "deployments", "lastTaskFailure", "taskStats", "readinessCheckResults", "counts")


def strip_read_only(app: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in app.items() if k not in READ_ONLY}


def merge_update(stored: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """A partial update (PUT/PATCH body) applied to a stored app: given top-level fields replace."""
    merged = strip_read_only(stored)
    merged.update(strip_read_only(update))
    if "cmd" in update and "args" not in update:
        merged.pop("args", None)
    if "args" in update and "cmd" not in update:
        merged.pop("cmd", None)
    return merged


def service_ports(app: Mapping[str, Any]) -> list[int]:
    """Marathon's `servicePorts`: from the container's portMappings if it has any, else portDefinitions."""
    mappings = (app.get("container") or {}).get("portMappings")
    if mappings:
        return [int(m.get("servicePort") or 0) for m in mappings]
    return [int(d.get("port") or 0) for d in app.get("portDefinitions") or []]


def assign_service_ports(app: dict[str, Any], taken: Iterable[int], previous: Mapping[str, Any] | None) -> None:
    """Give every service port 0 (a portDefinition's `port`, a portMapping's `servicePort`) one of its own.

    Marathon's rule: first the previous version's service ports that the new one does not name, in
    order (so an update keeps them), then the lowest ports from 10000 up that no app uses.
    """
    wanted = service_ports(app)
    if 0 not in wanted:
        return
    before = service_ports(previous or {})
    kept = iter([p for p in before if p >= SERVICE_PORTS_FROM and p not in wanted])
    used = set(taken) | set(wanted) | set(before)
    fresh = (p for p in itertools.count(SERVICE_PORTS_FROM) if p not in used)
    assigned = [p or next(kept, None) or next(fresh) for p in wanted]
    mappings = (app.get("container") or {}).get("portMappings")
    if mappings:
        for mapping, port in zip(mappings, assigned, strict=True):
            mapping["servicePort"] = port
    for definition, port in zip(app.get("portDefinitions") or [], assigned, strict=False):
        definition["port"] = port


def stamp(app: dict[str, Any], version: str, previous: Mapping[str, Any] | None, config_changed: bool) -> None:
    """Set `version` and `versionInfo` as Marathon does on each change."""
    info = dict((previous or {}).get("versionInfo") or {})
    app["version"] = version
    if previous is None or config_changed:
        info["lastConfigChangeAt"] = version
    info["lastScalingAt"] = version
    app["versionInfo"] = info


@dataclass
class Instance:
    """One launched task of an app, as the scheduler tracks it until it is terminal."""

    task_id: str
    instance_id: str
    app_id: str
    version: str
    config_version: str
    agent_id: str
    host: str
    ports: tuple[int, ...]
    service_ports: list[int]
    env: dict[str, str]
    staged_at: float
    state: str = "TASK_STAGING"
    started_at: float | None = None
    killing: bool = False
    health: list[HealthState] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == "TASK_RUNNING"

    def healthy(self, checks: int) -> bool:
        """Running, and alive on every check (Marathon's "considered healthy" without checks)."""
        if not self.running:
            return False
        if checks == 0:
            return True
        return len(self.health) == checks and all(h.alive and h.results for h in self.health)

    def unhealthy(self) -> bool:
        return self.running and any(h.results and not h.alive for h in self.health)

    def to_json(self, format_time: Any) -> dict[str, Any]:
        """RAML `Task` (the fields the `marathon` client reads)."""
        out: dict[str, Any] = {
            "id": self.task_id, "appId": self.app_id, "host": self.host, "ports": list(self.ports),
            "servicePorts": list(self.service_ports), "slaveId": self.agent_id, "state": self.state,
            "stagedAt": format_time(self.staged_at), "version": self.version,
            "ipAddresses": [{"ipAddress": self.host, "protocol": "IPv4"}], "localVolumes": [], "role": "*",
            "healthCheckResults": [h.to_json() for h in self.health if h.results],
        }
        if self.started_at is not None:
            out["startedAt"] = format_time(self.started_at)
        return out
