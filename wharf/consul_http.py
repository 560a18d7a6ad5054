"""The one way wharf makes a py-consul client from `CONSUL_HTTP_ADDR`, its token and CA file."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (`localhost` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client(addr: str, token: str | None = None, cacert: str | None = None, timeout: float = 10.0) -> Any:
    """A `consul.Consul` for `host:port` or `http(s)://host:port` (port 8500, or 443 for https).

    An agent on loopback is reached directly, as Consul's own client does (Go never proxies
    loopback): requests would otherwise send it through `HTTP_PROXY` and rescan the environment
    for proxies and netrc on every call, a millisecond a request."""
    import consul

    parts = urlsplit(addr if "://" in addr else f"http://{addr}")
    if not parts.hostname:
        raise ValueError(f"{addr!r} names no host")
    c = consul.Consul(host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 8500),
                      token=token, scheme=parts.scheme, verify=cacert or True, connections_timeout=timeout)
    if is_loopback(parts.hostname):
        c.http.session.trust_env = False
    return c


def address_of(client: Any) -> str:
    """The agent address a py-consul client talks to (`http://127.0.0.1:8500`), for messages."""
    return str(getattr(getattr(client, "http", None), "base_uri", "its address"))
