"""The one way wharf makes a py-consul client from `CONSUL_HTTP_ADDR`, its token and CA file, and
`Reader`, for a command that reads the agent's JSON once and exits."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

if TYPE_CHECKING:
    from wharf.settings import Settings


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


def client_from(settings: Settings, timeout: float = 10.0) -> Any:
    """The client wharf's settings name: `CONSUL_HTTP_ADDR`, `CONSUL_HTTP_TOKEN`, `CONSUL_CACERT`."""
    return client(settings["consul_http_addr"], settings["consul_http_token"], settings["consul_cacert"], timeout)


def address_of(client: Any) -> str:
    """The agent address a py-consul client talks to (`http://127.0.0.1:8500`), for messages."""
    return str(getattr(getattr(client, "http", None), "base_uri", "its address"))


class Reader:
    """Consul's answers as bytes, for the renderer (`render once|check` read once; `render run` holds
    blocking queries, each on its own thread): `raw()` the status, headers and body, `get()` the
    data as py-consul's `CB.json(index=True)` decodes it (None for a 404, and the same exceptions).

    An agent on loopback over plain http, where py-consul's requests session adds nothing (no proxy,
    no TLS, no netrc: see `client`), is read with http.client, a connection per thread: no importing
    requests and py-consul (a fifth of a small `render once`), and no gzip (Consul compressing
    megabytes only for this process to inflate them). Anywhere else, py-consul's client reads."""

    def __init__(self, addr: str, token: str | None = None, cacert: str | None = None,
                 timeout: float = 10.0) -> None:
        parts = urlsplit(addr if "://" in addr else f"http://{addr}")
        if not parts.hostname:
            raise ValueError(f"{addr!r} names no host")
        self.addr, self.token, self.cacert, self.timeout = addr, token, cacert, timeout
        self.direct = parts.scheme == "http" and is_loopback(parts.hostname)
        self.host, self.port = parts.hostname, parts.port or 8500
        self.base_uri = f"{parts.scheme}://{self.host}:{self.port}"  # for messages, as py-consul's
        sent = os.environ.get("CONSUL_HTTP_TOKEN", token)  # py-consul's rule: the environment's wins
        self.headers = {"X-Consul-Token": sent} if sent else {}
        self._local = threading.local()
        self._client: Any = None if self.direct else client(addr, token, cacert, timeout)  # before any thread

    def client(self) -> Any:
        """The py-consul client of this reader, made once: what `raw` does not read (KV) goes through it."""
        if self._client is None:
            self._client = client(self.addr, self.token, self.cacert, self.timeout)
        return self._client

    def raw(self, path: str, params: Sequence[tuple[str, str]] = ()) -> tuple[int, Mapping[str, str], bytes]:
        """GET `path` (as `/v1/catalog/nodes`) with `params`: the status, the headers, the body's bytes.
        A blocking query (`wait` given) may take that long, plus Consul's jitter of a sixteenth."""
        if not self.direct:
            c = self.client()
            return c.http.get(lambda r: (r.code, r.headers, r.body), path, params=list(params),
                              headers=c.prepare_headers(), raw=True)
        wait = dict(params).get("wait")
        timeout = self.timeout + (_seconds(wait) * 17 / 16 if wait else 0)
        target = quote(path, safe="/:") + (f"?{urlencode(params)}" if params else "")
        kept = getattr(self._local, "connection", None)
        for connection in ([kept] if kept is not None else []) + [None]:  # a kept one may have been dropped
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(self.host, self.port)
            try:
                connection.timeout = timeout
                if connection.sock is not None:
                    connection.sock.settimeout(timeout)
                connection.request("GET", target, headers=self.headers)
                response = connection.getresponse()
                return response.status, dict(response.headers.items()), response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if connection is kept:
                    continue  # once more, on a fresh connection
                if isinstance(exc, OSError):
                    raise
                raise ConnectionError("connection failed") from exc  # not HTTP, or cut short: requests' words
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        """GET `path` and decode it as py-consul's `CB.json(index=True)` does."""
        return decoded(*self.raw(path))


def _seconds(duration: str) -> float:
    """A Consul duration (`30s`, `5m`) in seconds."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in sorted(units, key=len, reverse=True):
        if duration.endswith(unit):
            return float(duration[: -len(unit)]) * units[unit]
    return float(duration)


def decoded(status: int, headers: Mapping[str, str], body: bytes) -> Any:
    """An answer decoded as py-consul's `CB.json(index=True)` decodes it: a good one here, any other
    by that callback itself, given what requests would have given it (a 404 is None; an error
    status, a missing index or bad JSON raise)."""
    if status == 200 and "X-Consul-Index" in headers:
        try:
            return json.loads(body.decode())
        except ValueError:
            pass
    from consul.base import Response
    from consul.callback import CB
    from requests.structures import CaseInsensitiveDict

    answer = Response(status, CaseInsensitiveDict(headers.items()), body.decode(errors="replace"))
    return CB.json(index=True)(answer)[1]


def refused(status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise py-consul's exception for an answer that is neither good nor a 404."""
    if status not in (200, 404):
        decoded(status, headers, body)
