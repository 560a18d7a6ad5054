"""What Marathon derives from an app definition: canonical ids, networks, ports. Pure.

Shared by the cross-field rules (`marathon_rules`) and the normaliser (`marathon_app`).
"""

from __future__ import annotations

import re

from wharf.contracts.marathon_schema import ID_SEGMENT
from wharf.errors import BadInput

__all__ = [
    "DEFAULT_PORT", "InvalidAppId", "effective_ports", "engine", "given_port_definitions",
    "given_port_mappings", "is_host", "networks", "parent_id", "parse_app_id",
]

RESERVED_ID_SEGMENTS = ("restart", "tasks", "versions")
DEFAULT_PORT = {"name": "default"}  # the one port an app that declares none gets


# --- ids -----------------------------------------------------------------------------------------

class InvalidAppId(BadInput, ValueError):
    """An app or dependency id Marathon would refuse; the message is Marathon's wording."""


def parse_app_id(raw: str, base: str = "/") -> str:
    """Return the canonical absolute id for `raw`, resolving a relative id (and `..`) against `base`.

    Each segment is lowercase letters, digits and hyphens in dot-separated labels that neither
    start nor end with a hyphen; empty segments are dropped; the result may not be the root nor
    end in a reserved word.
    """
    if not isinstance(raw, str) or not raw:
        raise InvalidAppId("must not be empty")
    segments = [s for s in raw.split("/") if s]
    if any(s != ".." and not re.fullmatch(ID_SEGMENT, s) for s in segments):
        raise InvalidAppId(f"must fully match regular expression '^{ID_SEGMENT}|(\\.\\.)$'")
    parts = [] if raw.startswith("/") else [s for s in base.split("/") if s]
    for segment in segments:
        if segment != "..":
            parts.append(segment)
        elif parts:
            parts.pop()
    if not parts:
        raise InvalidAppId("Path must contain at least one path element")
    if parts[-1] in RESERVED_ID_SEGMENTS:
        raise InvalidAppId("must not end with any of the following reserved keywords: "
                           + ", ".join(RESERVED_ID_SEGMENTS))
    return "/" + "/".join(parts)


def parent_id(app_id: str) -> str:
    """The group an app id is in (`/shop/web` -> `/shop`), against which its relative ids resolve."""
    return app_id.rsplit("/", 1)[0] or "/"


# --- what Marathon derives from an app: networks and ports ---------------------------------------

def networks(app: dict) -> list[dict]:
    """The app's networks as Marathon resolves them (explicit, from docker.network, or host)."""
    if app.get("networks"):
        return [{"mode": "container", **{k: v for k, v in n.items() if v is not None}}
                for n in app["networks"]]
    docker_network = ((app.get("container") or {}).get("docker") or {}).get("network")
    name = (app.get("ipAddress") or {}).get("networkName")
    if docker_network == "BRIDGE":
        return [{"mode": "container/bridge"}]
    if docker_network == "USER" or (docker_network is None and app.get("ipAddress") is not None):
        return [{"mode": "container", **({"name": name} if name else {})}]
    return [{"mode": "host"}]


def is_host(resolved: list[dict]) -> bool:
    """Whether resolved networks (see `networks`) are host networking."""
    return all(n["mode"] == "host" for n in resolved)


def engine(app: dict) -> str | None:
    """The container engine: DOCKER (the default type), MESOS (also implied by `ipAddress`) or None."""
    if app.get("container") is not None:
        return app["container"].get("type") or "DOCKER"
    return "MESOS" if app.get("ipAddress") is not None else None


def given_port_mappings(app: dict) -> tuple[str, list[dict] | None]:
    """Where the app declares its port mappings, and the mappings (None if it declares none)."""
    container = app.get("container") or {}
    if container.get("portMappings") is not None:
        return "/container/portMappings", container["portMappings"]
    docker = container.get("docker") or {}
    if docker.get("portMappings") is not None:
        return "/container/docker/portMappings", docker["portMappings"]
    ports = ((app.get("ipAddress") or {}).get("discovery") or {}).get("ports")
    if ports and engine(app) == "MESOS":
        return "/ipAddress/discovery/ports", [
            {"containerPort": p.get("number", 0), "name": p["name"], "protocol": p.get("protocol", "tcp"),
             **({"labels": p["labels"]} if p.get("labels") else {})} for p in ports]
    return "/container/portMappings", None


def given_port_definitions(app: dict) -> list[dict] | None:
    if app.get("portDefinitions") is not None:
        return app["portDefinitions"]
    if app.get("ports") is not None:
        return [{"port": p} for p in app["ports"]]
    return None


def effective_ports(app: dict) -> list[dict]:
    """The port definitions (host networking) or port mappings (otherwise) a task gets."""
    if is_host(networks(app)):
        given = given_port_definitions(app)
    else:
        given = given_port_mappings(app)[1]
    return [dict(DEFAULT_PORT)] if given is None else given
