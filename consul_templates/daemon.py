"""`wharf render run`: the watches feed the renderer as Consul answers; the passes follow.

The daemon's own thread reads the watches' answers, keeps the catalog (`consul_templates.catalog`)
and hands the services that changed to `Renderer.feed`, which sends a change that only moves servers
to HAProxy there and then. A second thread runs the passes (validate, write, reload) once the
quiescence timer (`--wait`) fires, so a drain never waits behind a pass that is validating.

The first pass waits until the node list, every node, the checks and the KV prefixes have answered
once, as consul-template waits for every dependency. When Consul comes back after failing, or its
index went backwards (restarted empty), every registration it lacks is kept for `grace` seconds.
"""

from __future__ import annotations

import gc
import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from consul_templates import watch
from consul_templates.catalog import Catalog
from consul_templates.passes import Renderer
from consul_templates.quiescence import Quiescence
from consul_templates.snapshot import Service
from wharf.consul_http import Reader, refused
from wharf.daemon import Daemon
from wharf.log import fields
from wharf.retry import Retry

log = logging.getLogger("wharf.render")

RETRY_AFTER_FAILURE = 2.0
#: a change the Runtime API applied reaches the file within this long (later ones in the window with it)
CATCH_UP = 1.0


class RenderDaemon(Daemon):
    """Watch, feed, and pass once quiet; forever."""

    interval = 0.0
    backoff = Retry(delay=0.1, max_delay=0.5, jitter=0.2)

    def __init__(self, renderer: Renderer, reader: Reader, kv_prefixes: Sequence[str] = (),
                 wait: tuple[float, float] = (0.0, 0.0), grace: float = 30.0,
                 metrics_port: int | None = None) -> None:
        super().__init__("render", metrics_port=metrics_port)
        self.renderer = renderer
        self.reader = reader
        self.kv_prefixes = tuple(kv_prefixes)
        self.quiet = Quiescence(*wait)
        self.grace = grace
        self.answers: queue.Queue[watch.Answer] = queue.Queue()
        self.catalog = Catalog()
        self.kv: dict[str, dict[str, str]] = {}
        self.failing: dict[str, list[Any]] = {}  # the critical and the warning checks
        self.checks_index: dict[str, int] = {}  # how new each of those answers is
        self.fresh: dict[str, tuple[int, list[Any]]] = {}  # node -> failing checks read since, and index
        self.feeds: list[watch.Feed] = []  # the node list, the checks, the KV prefixes
        self.nodes: dict[str, watch.Feed] = {}  # one per node
        self.stopped = threading.Event()
        self.frozen = False  # the first pass's objects moved out of the collector's sight
        self.pending: set[str] = set()  # watches that have not answered yet
        self.started = False  # the first whole catalog was fed
        self.recovering_until: float | None = None
        self.catch_up_at: float | None = None  # when the file must have caught up with the Runtime API
        self.due = threading.Event()  # a pass is due
        self.passes: threading.Thread | None = None

    # --- the daemon's thread: answers in, changes fed ---------------------------------------------

    def run_cycle(self) -> None:
        if self.passes is None:
            self._start()
        now = time.monotonic()
        deadlines = [t for t in (self.quiet.fire_at, self.recovering_until, self.catch_up_at) if t is not None]
        timeout = min([0.5, *(max(0.0, t - now) for t in deadlines)])
        changed: set[str] = set()
        kv_changed = False
        try:
            answers = [self.answers.get(timeout=timeout)]
            while not self.answers.empty():
                answers.append(self.answers.get_nowait())
        except queue.Empty:
            answers = []
        for key, kind, data, index in answers:
            try:
                names, kv = self._answer(key, kind, data, index)
            except (ValueError, TypeError, AttributeError) as exc:  # an answer of another shape: skip it
                log.warning("consul answer not understood: skipped", extra=fields(watch=key, error=str(exc)))
                continue
            changed |= names
            kv_changed |= kv
        now = time.monotonic()
        if self.recovering_until is not None and now >= self.recovering_until:
            self.recovering_until = None
            changed |= self.catalog.release()  # serve the catalog as it now is
        if self.pending:
            return
        if not self.started or changed or kv_changed:
            soon = self.renderer.feed(self._services(changed), self._kv() if kv_changed or not self.started else None)
            self.started = True
            if soon:
                self.quiet.change(now)
            else:  # HAProxy has it: the file follows, with whatever else comes in the meantime
                self.catch_up_at = self.catch_up_at or now + CATCH_UP
        if self.quiet.tick(now) or (self.catch_up_at is not None and now >= self.catch_up_at):
            self.catch_up_at = None
            self.due.set()

    def _services(self, changed: set[str]) -> dict[str, Service | None]:
        names = self.catalog.names if not self.started else changed
        return {name: self.catalog.service(name) for name in names}

    def _kv(self) -> dict[str, str]:
        return {k: v for prefix in self.kv_prefixes for k, v in self.kv.get(prefix, {}).items()}

    def _answer(self, key: str, kind: str, data: bytes | None, index: int = 0) -> tuple[set[str], bool]:
        """Apply one answer: the services it changed, and whether the KV pairs did."""
        if kind in ("up", "reset"):
            self.catalog.hold()
            self.recovering_until = time.monotonic() + self.grace
            log.info("consul came back: holding instances it lacks", extra=fields(for_seconds=self.grace))
        if key.startswith("checks:") and kind != "down":
            return self._checks(key, None if data is None else json.loads(data), index), False
        if data is None:
            return set(), False
        self.pending.discard(key)
        parsed = json.loads(data)
        if key == "nodes":
            return self._nodes(watch.node_names(data)), False
        if key.startswith("kv:"):
            pairs = watch.kv_pairs(parsed or [])
            before, self.kv[key[3:]] = self.kv.get(key[3:]), pairs
            return set(), before != pairs
        name = key.removeprefix("node:")
        if name not in self.nodes:
            return set(), False  # a node that has just gone
        fresh = self.started and self.catalog.adds(name, parsed) and self._fresh_checks(name)
        changed = self.catalog.set_node(name, parsed)
        return (changed | self.catalog.set_checks(self._failing())) if fresh else changed, False

    def _checks(self, key: str, failing: list[Any] | None, index: int) -> set[str]:
        """A checks' answer (`failing` None: only its index moved): the services it changed."""
        self.checks_index[key] = index
        if failing is not None:
            self.pending.discard(key)
            self.failing[key] = list(failing or [])
        known = min(self.checks_index.values())
        self.fresh = {node: f for node, f in self.fresh.items() if f[0] > known}  # the answers caught up
        changed: set[str] = set()
        nodes, registrations = self.catalog.improving(self._failing())
        for node in nodes & set(self.nodes):
            changed |= self._reread(node)  # a node's registrations may have gone with its checks
        for name, keys in registrations.items():
            changed |= self._still_there(name, keys)  # a deregistration takes its checks with it
        return changed | self.catalog.set_checks(self._failing())

    def _failing(self) -> list[Any]:
        """The failing checks: the checks' answers, and the newer ones of nodes read since."""
        return [c for checks in self.failing.values() for c in checks] + \
            [c for _, checks in self.fresh.values() for c in checks]

    def _fresh_checks(self, node: str) -> bool:
        """Read `node`'s checks now (its answer brings registrations whose checks the checks' answers
        may not hold yet: one registered critical is not served in between); kept until both checks'
        answers are as new. Whether they were read."""
        try:
            index, checks = self._read(f"/v1/health/node/{node}")
        except Exception as exc:  # noqa: BLE001 - the checks' answers will say it soon anyway
            log.warning("consul node checks not read", extra=fields(node=node, error=str(exc)))
            return False
        self.fresh[node] = (index, [c for c in checks or () if c.get("Status") != "passing"])
        return True

    def _reread(self, node: str) -> set[str]:
        """`node`'s registrations read now, as new as the checks' answer that made one look better."""
        try:
            _, entry = self._read(f"/v1/catalog/node/{node}")
        except Exception as exc:  # noqa: BLE001 - its own query will answer soon anyway
            log.warning("consul node not read", extra=fields(node=node, error=str(exc)))
            return set()
        return self.catalog.set_node(node, entry)

    def _still_there(self, name: str, keys: set[tuple[str, str]]) -> set[str]:
        """Read service `name`'s registrations now; forget those of `keys` Consul no longer has."""
        try:
            _, entries = self._read(f"/v1/catalog/service/{quote(name, safe='')}")
        except Exception as exc:  # noqa: BLE001 - the nodes' own queries will answer soon anyway
            log.warning("consul service not read", extra=fields(service=name, error=str(exc)))
            return set()
        present = {(str(e.get("Node")), str(e.get("ServiceID"))) for e in entries or ()}
        changed: set[str] = set()
        for node in {node for node, _ in keys - present}:
            changed |= self.catalog.forget(node, {sid for n, sid in keys - present if n == node})
        return changed

    def _read(self, path: str) -> tuple[int, Any]:
        """One read of `path` now: Consul's index and the decoded answer."""
        status, headers, body = self.reader.raw(path)
        refused(status, headers, body)
        return int(headers.get("X-Consul-Index") or 0), json.loads(body)

    def _nodes(self, names: set[str]) -> set[str]:
        """Start a query for each new node; stop each gone one's, and drop its registrations."""
        changed: set[str] = set()
        for name in set(self.nodes) - names:
            self.nodes.pop(name).stop()
            self.pending.discard(f"node:{name}")
            changed |= self.catalog.set_node(name, None)
        for name in names - set(self.nodes):
            feed = self.nodes[name] = watch.node_feed(name, self.reader, self.answers)
            self.pending.add(feed.key)
            feed.start()
        return changed

    def _start(self) -> None:
        self.feeds = watch.feeds(self.reader, self.answers, self.kv_prefixes)
        for feed in self.feeds:
            self.pending.add(feed.key)
            feed.start()
        self.passes = threading.Thread(target=self._pass_loop, name="render-passes", daemon=True)
        self.passes.start()

    # --- the passes' thread ------------------------------------------------------------------------

    def _pass_loop(self) -> None:
        while not self.stopped.is_set():
            if not self.due.wait(0.5):
                continue
            self.due.clear()
            try:
                outcomes = self.renderer.flush()
                if not self.frozen:  # the catalog read at start lives long: no later collection walks it
                    gc.collect()
                    gc.freeze()
                    self.frozen = True
            except Exception as exc:  # noqa: BLE001 - a pass never ends the loop
                log.error("render pass failed", extra=fields(error=str(exc)))
                outcomes = []
                failed = True
            else:
                failed = any(o.action == "failed" for o in outcomes)
            if failed and not self.stopped.wait(RETRY_AFTER_FAILURE):
                self.due.set()

    def close(self) -> None:
        self.stopped.set()
        for feed in [*self.feeds, *self.nodes.values()]:
            feed.stop()
        if self.passes is not None:
            self.due.set()
            self.passes.join(timeout=30)
