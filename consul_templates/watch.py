"""Watching Consul with a constant number of blocking queries, whatever the number of services.

Two blocking queries see every change of the healthy catalog: `/v1/catalog/services` (its index moves
when any registration is added, changed or removed) and `/v1/health/state/any` (moves when any check
changes), plus one per watched KV prefix. A change wakes the runner, which fetches the catalog per
node (`/v1/catalog/node/<node>`: a number of requests that grows with nodes, not services).

`next_index` holds consul-template's index rules; `Watch` is the thread around one query.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from wharf.errors import cannot_reach
from wharf.log import fields
from wharf.retry import Retry

log = logging.getLogger("wharf.render.watch")

BLOCKING = Gauge("wharf_render_blocking_queries", "Blocking queries held open against Consul")
READERS = 8  # parallel requests of one full read
RATE_LIMIT = 0.1  # at least this long between two queries of one watch (plus up to 20 ms of jitter)


def next_index(last: int, returned: int) -> tuple[int, bool]:
    """The index for the next query and whether the answer may hold news.

    Equal: a timeout, nothing new. Backwards (Consul restarted, or a snapshot restore): start again
    from 0, which answers at once. Below 1: treat as 1, so the next query still blocks.
    """
    returned = max(returned, 1)
    if returned < last:
        return 0, True
    return returned, returned != last


Fetch = Callable[[int], tuple[int, Any]]


@dataclass
class WatchState:
    """What one watch knows: its index, whether Consul answered last time, and how it resets."""

    index: int = 0
    healthy: bool = True
    resets: int = 0


class Watch(threading.Thread):
    """One blocking query, repeated forever: calls `notify(name, kind)` with kind `change`,
    `reset` (index went backwards), `down` or `up` (Consul unreachable, then back)."""

    def __init__(self, name: str, fetch: Fetch, notify: Callable[[str, str], None],
                 backoff: Retry | None = None, rate_limit: float = RATE_LIMIT, address: str = "") -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.key, self.fetch, self.notify = name, fetch, notify
        self.address = address  # Consul's, for the log
        self.backoff = backoff or Retry(delay=0.05, backoff=2.0, max_delay=0.5, jitter=0.2)
        self.rate_limit = rate_limit
        self.state = WatchState()
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        delays = None
        last_call = 0.0
        while not self.stopping.is_set():
            pause = last_call + self.rate_limit + random.uniform(0, 0.02) - time.monotonic()
            if pause > 0 and self.stopping.wait(pause):
                return
            last_call = time.monotonic()
            BLOCKING.inc()
            try:
                returned, _ = self.fetch(self.state.index)
            except Exception as exc:  # Consul away or erroring: keep trying, forever
                BLOCKING.dec()
                # start over with a query that answers at once, so Consul's return is seen within
                # one backoff step (an old index could hold the query open on a restarted agent)
                self.state.index = 0
                if self.state.healthy:
                    self.state.healthy = False
                    error = cannot_reach("Consul", self.address or "its address", exc)
                    log.warning("consul unreachable", extra=fields(watch=self.key, error=error))
                    self.notify(self.key, "down")
                delays = delays or self.backoff.delays()
                if self.stopping.wait(next(delays)):
                    return
                continue
            BLOCKING.dec()
            delays = None
            try:
                returned = int(returned)
            except (TypeError, ValueError):
                returned = 0
            index, news = next_index(self.state.index, returned)
            went_back = max(returned, 1) < self.state.index
            self.state.index = index
            if not self.state.healthy:
                self.state.healthy = True
                log.info("consul reachable again", extra=fields(watch=self.key))
                self.notify(self.key, "up")
            elif went_back:
                self.state.resets += 1
                self.notify(self.key, "reset")
            elif news:
                self.notify(self.key, "change")


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
