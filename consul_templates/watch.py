"""Watching Consul with blocking queries whose number grows with nodes, never with services.

One blocking query on the node list (`/v1/catalog/nodes`), one per node on that node's registrations
(`/v1/catalog/node/<node>`), one on the checks that are not passing (`/v1/health/state/any` with a
filter: a health flip costs an answer the size of what is failing, not of the catalog), and one per
watched KV prefix. Each is a `wharf.watch.ConsulWatch` (consul-template's index rules live there).
Consul's index for a node's registrations is the whole catalog's, so a change anywhere answers every
node's query: an answer whose bytes are the node's last ones is dropped there, unparsed; only a node
whose registrations changed reaches the renderer.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import Gauge

from wharf.log import fields
from wharf.watch import ConsulWatch

log = logging.getLogger("wharf.render.watch")

BLOCKING = Gauge("wharf_render_blocking_queries", "Blocking queries held open against Consul")
READERS = 8  # parallel requests of one full read
WAIT = "30s"
NOT_PASSING = 'Status != "passing"'

#: (watch key, kind, Consul's answer as bytes) for the daemon
Answer = tuple[str, str, bytes | None]


def raw_get(client: Any, path: str, params: Iterable[tuple[str, str]] = ()) -> tuple[str | None, bytes]:
    """GET a Consul endpoint with py-consul's session and token: (X-Consul-Index, the body's bytes).
    A 404 (a KV prefix with no keys) is an empty list; any other failure raises."""
    from consul.callback import CB

    def answer(response: Any) -> tuple[str | None, bytes]:
        if response.code == 404:
            return response.headers.get("X-Consul-Index"), b"[]"
        CB._status(response)
        return response.headers.get("X-Consul-Index"), response.body

    return client.http.get(answer, path, params=list(params), headers=client.prepare_headers(), raw=True)


def blocking(client: Any, path: str, *params: tuple[str, str]) -> Callable[[Any], tuple[Any, bytes]]:
    """The fetch of one blocking query on `path` for a `ConsulWatch`."""
    def fetch(index: Any) -> tuple[Any, bytes]:
        extra = [("index", str(index)), ("wait", WAIT)] if index else []
        return raw_get(client, path, [*params, *extra])
    return fetch


class Feed(ConsulWatch):
    """A blocking query whose news goes to a queue, as (key, kind, bytes): an answer whose bytes are
    the last ones is no news, whatever its index says."""

    def __init__(self, key: str, fetch: Callable[[Any], tuple[Any, bytes]], answers: queue.Queue[Answer],
                 address: str) -> None:
        super().__init__(key, fetch, address=address, logger=log, gauge=BLOCKING)
        self.answers = answers
        self.last: bytes | None = None

    def answered(self, kind: str, data: Any) -> None:
        if kind == "down":
            self.answers.put((self.key, kind, None))
            return
        if kind in ("same", "change") and data == self.last:
            return
        self.last = data
        self.answers.put((self.key, kind, data))


def feeds(client_factory: Callable[[], Any], answers: queue.Queue[Answer], address: str,
          kv_prefixes: Iterable[str] = ()) -> list[Feed]:
    """The queries every catalog needs: the node list, the checks that are not passing, the KV prefixes."""
    found = [Feed("nodes", blocking(client_factory(), "/v1/catalog/nodes"), answers, address),
             Feed("health", blocking(client_factory(), "/v1/health/state/any", ("filter", NOT_PASSING)),
                  answers, address)]
    found += [Feed(f"kv:{prefix}", blocking(client_factory(), f"/v1/kv/{prefix}", ("recurse", "")), answers, address)
              for prefix in kv_prefixes]
    return found


def node_feed(name: str, client_factory: Callable[[], Any], answers: queue.Queue[Answer], address: str) -> Feed:
    """The query on one node's registrations."""
    return Feed(f"node:{name}", blocking(client_factory(), f"/v1/catalog/node/{name}"), answers, address)


def kv_pairs(items: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """KV entries as Consul's JSON gives them (Value base64) or py-consul does (Value bytes): key -> text."""
    import base64

    kv: dict[str, str] = {}
    for item in items or ():
        raw = item.get("Value")
        if raw is None:
            continue
        try:
            value = raw if isinstance(raw, bytes) else base64.b64decode(raw)
            kv[item["Key"]] = value.decode()
        except (UnicodeDecodeError, ValueError, TypeError):
            log.warning("kv value is not UTF-8: left out", extra=fields(key=str(item.get("Key"))[:80]))
    return kv


def node_names(data: bytes) -> set[str]:
    """The names in a `/v1/catalog/nodes` answer."""
    return {n["Node"] for n in json.loads(data) or () if isinstance(n, Mapping) and isinstance(n.get("Node"), str)}


Entries = list[Mapping[str, Any]]


def fetch_catalog(client: Any, kv_prefixes: Iterable[str] = ()) -> tuple[Entries, Entries, dict[str, str]]:
    """One full read: every node's services, every check, every watched KV pair (raises if Consul fails)."""
    _, nodes = client.catalog.nodes()
    names = [node["Node"] for node in nodes or ()]
    with ThreadPoolExecutor(max(1, min(READERS, len(names) + 1))) as pool:  # Consul answers them side by side
        checks_read = pool.submit(client.health.state, "any")
        node_entries = [entry for _, entry in pool.map(client.catalog.node, names)]
        _, checks = checks_read.result()
    kv: dict[str, str] = {}
    for prefix in kv_prefixes:
        _, items = client.kv.get(prefix, recurse=True)
        kv.update(kv_pairs(items or ()))
    return node_entries, list(checks or ()), kv
