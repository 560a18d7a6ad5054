"""Watching Consul with blocking queries whose number grows with nodes, never with services.

One blocking query on the node list (`/v1/catalog/nodes`), one per node on that node's registrations
(`/v1/catalog/node/<node>`), one on the critical checks and one on the warning ones
(`/v1/health/state/critical|warning`: a health flip costs answers the size of what is failing, not of
the catalog; Consul finds them by an index, where a filter over every check takes it 11 ms at 15,000),
and one per watched KV prefix. Each is a `wharf.watch.ConsulWatch` (consul-template's index rules live there).
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

from wharf.consul_http import Reader, refused
from wharf.log import fields
from wharf.watch import RATE_JITTER, RATE_LIMIT, ConsulWatch

log = logging.getLogger("wharf.render.watch")

BLOCKING = Gauge("wharf_render_blocking_queries", "Blocking queries held open against Consul")
READERS = 8  # parallel requests of one full read
WAIT = "30s"
FAILING = ("critical", "warning")  # a maintenance check is critical
#: the checks query asks again this soon after an answer, with no jitter (consul-template's 100 ms plus
#: up to 20 ms holds for the others): it is one query with small answers, and a drain must not wait
#: behind the answer to the last registration's check
CHECKS_RATE_LIMIT = 0.01

#: (watch key, kind, Consul's answer as bytes, its X-Consul-Index) for the daemon; the bytes are None
#: when the watch went down, or (checks only) when only the index moved
Answer = tuple[str, str, bytes | None, int]


def blocking(reader: Reader, path: str, *params: tuple[str, str]) -> Callable[[Any], tuple[Any, bytes]]:
    """The fetch of one blocking query on `path` for a `ConsulWatch`: (X-Consul-Index, the body's
    bytes); a 404 (a KV prefix with no keys) is an empty list; any other failure raises."""
    def fetch(index: Any) -> tuple[Any, bytes]:
        extra = [("index", str(index)), ("wait", WAIT)] if index else []
        status, headers, body = reader.raw(path, [*params, *extra])
        refused(status, headers, body)
        return headers.get("X-Consul-Index"), b"[]" if status == 404 else body
    return fetch


class Feed(ConsulWatch):
    """A blocking query whose news goes to a queue, as (key, kind, bytes, index): an answer whose bytes
    are the last ones is no news, whatever its index says, unless `indexes` (then it goes with no
    bytes: the daemon learns how new the failing checks it holds are)."""

    def __init__(self, key: str, fetch: Callable[[Any], tuple[Any, bytes]], answers: queue.Queue[Answer],
                 address: str, rate_limit: float = RATE_LIMIT, jitter: float = RATE_JITTER,
                 indexes: bool = False) -> None:
        super().__init__(key, fetch, address=address, logger=log, gauge=BLOCKING, rate_limit=rate_limit,
                         jitter=jitter)
        self.answers, self.indexes = answers, indexes
        self.last: bytes | None = None

    def answered(self, kind: str, data: Any) -> None:
        index = int(self.index or 0)
        if kind == "down":
            self.answers.put((self.key, kind, None, index))
            return
        if kind in ("same", "change") and data == self.last:
            if self.indexes:
                self.answers.put((self.key, kind, None, index))
            return
        self.last = data
        self.answers.put((self.key, kind, data, index))


def feeds(reader: Reader, answers: queue.Queue[Answer], kv_prefixes: Iterable[str] = ()) -> list[Feed]:
    """The queries every catalog needs: the node list, the failing checks, the KV prefixes."""
    address = reader.base_uri
    found = [Feed("nodes", blocking(reader, "/v1/catalog/nodes"), answers, address)]
    found += [Feed(f"checks:{state}", blocking(reader, f"/v1/health/state/{state}"), answers, address,
                   CHECKS_RATE_LIMIT, 0.0, indexes=True) for state in FAILING]
    found += [Feed(f"kv:{prefix}", blocking(reader, f"/v1/kv/{prefix}", ("recurse", "")), answers, address)
              for prefix in kv_prefixes]
    return found


def node_feed(name: str, reader: Reader, answers: queue.Queue[Answer]) -> Feed:
    """The query on one node's registrations."""
    return Feed(f"node:{name}", blocking(reader, f"/v1/catalog/node/{name}"), answers, reader.base_uri)


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


def fetch_catalog(reader: Reader, kv_prefixes: Iterable[str] = ()) -> tuple[Entries, Entries, dict[str, str]]:
    """One full read: every node's services, every check, every watched KV pair (raises if Consul fails)."""
    names = [node["Node"] for node in reader.get("/v1/catalog/nodes") or ()]
    with ThreadPoolExecutor(max(1, min(READERS, len(names) + 1))) as pool:  # Consul answers them side by side
        checks_read = pool.submit(reader.get, "/v1/health/state/any")
        node_entries = list(pool.map(reader.get, [f"/v1/catalog/node/{name}" for name in names]))
        checks = checks_read.result()
    kv: dict[str, str] = {}
    for prefix in kv_prefixes:
        _, items = reader.client().kv.get(prefix, recurse=True)
        kv.update(kv_pairs(items or ()))
    return node_entries, list(checks or ()), kv
