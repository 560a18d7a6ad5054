"""Watching Consul with a constant number of blocking queries, whatever the number of services.

Two blocking queries see every change of the healthy catalog: `/v1/catalog/services` (its index moves
when any registration is added, changed or removed) and `/v1/health/state/any` (moves when any check
changes), plus one per watched KV prefix. A change wakes the runner, which fetches the catalog per
node (`/v1/catalog/node/<node>`: a number of requests that grows with nodes, not services).

Each query is held open by a `wharf.watch.ConsulWatch` (consul-template's index rules live there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import Gauge

from wharf.log import fields
from wharf.watch import Fetch

log = logging.getLogger("wharf.render.watch")

BLOCKING = Gauge("wharf_render_blocking_queries", "Blocking queries held open against Consul")
READERS = 8  # parallel requests of one full read
WAIT = "30s"


def catalog_fetchers(client_factory: Callable[[], Any], kv_prefixes: Iterable[str] = ()) -> dict[str, Fetch]:
    """The blocking queries to hold open: catalog services, health state, and one per KV prefix."""
    services_client, health_client = client_factory(), client_factory()
    fetchers: dict[str, Fetch] = {
        "catalog": lambda index: services_client.catalog.services(index=index or None, wait=WAIT),
        "health": lambda index: health_client.health.state("any", index=index or None, wait=WAIT),
    }
    for prefix in kv_prefixes:
        kv_client = client_factory()
        fetchers[f"kv:{prefix}"] = (lambda c, p: lambda index: c.kv.get(p, recurse=True, index=index or None,
                                                                           wait=WAIT))(kv_client, prefix)
    return fetchers


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
        for item in items or ():
            raw = item.get("Value")
            if raw is None:
                continue
            try:
                kv[item["Key"]] = raw.decode() if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError:
                log.warning("kv value is not UTF-8: left out", extra=fields(key=item["Key"][:80]))
    return node_entries, list(checks or ()), kv
