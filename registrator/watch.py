"""The two feeders of the worker's queue: Docker's event stream and the Consul agent's services.

Each runs in its own thread, reconnects with backoff (capped at half a second, so recovery is
seen quickly) and never waits on the worker: the queue is unbounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from registrator.consul_agent import Agent
from registrator.runner import RECONNECT, RECONNECTS, ConsulCheck, Event, Registrator, Resync
from wharf.errors import cannot_reach
from wharf.log import fields

log = logging.getLogger("wharf.registrator")


class DockerWatcher(threading.Thread):
    """Streams container events into the queue; on every (re)connect queues a fresh `Resync` first."""

    def __init__(self, registrator: Registrator, connect: Callable[[], Any], address: str = "its address") -> None:
        super().__init__(name="docker events", daemon=True)
        self.registrator = registrator
        self.connect = connect  # -> a docker.APIClient with no read timeout
        self.address = address  # the engine's, for the log
        self.stopping = threading.Event()
        self._stream: Any = None
        self.connected = threading.Event()

    def run(self) -> None:
        delays = RECONNECT.delays()
        first = True
        while not self.stopping.is_set():
            client = None
            try:
                client = self.connect()
                self._stream = client.events(decode=True, filters={"type": "container"})
                if not first:
                    RECONNECTS.labels("docker").inc()
                    log.info("docker events reconnected")
                first = False
                # subscribed before the listing, so nothing between the two is missed
                self.registrator.queue.put(Resync(fresh=True))
                self.connected.set()
                delays = RECONNECT.delays()
                for raw in self._stream:
                    if raw.get("Type", "container") != "container":
                        continue
                    self.registrator.queue.put(Event(
                        str(raw.get("Action") or raw.get("status") or ""), str(raw.get("id") or ""),
                        dict((raw.get("Actor") or {}).get("Attributes") or {}),
                        float(raw.get("timeNano") or 0) / 1e9 or float(raw.get("time") or 0)))
                if not self.stopping.is_set():
                    raise ConnectionError("event stream ended")
            except Exception as exc:
                self.connected.clear()
                if self.stopping.is_set():
                    break
                delay = next(delays)
                log.warning("docker events lost; reconnecting",
                            extra=fields(error=cannot_reach("the Docker engine", self.address, exc),
                                         retry_in=round(delay, 2)))
                self.stopping.wait(delay)
            finally:
                if client is not None:
                    client.close()

    def stop(self) -> None:
        self.stopping.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - closing a broken stream
                pass


class ConsulWatcher(threading.Thread):
    """Blocks on the agent's services; asks for a Consul reconcile when the agent answers again
    after failing (restarted, maybe empty) or when a service we wrote is gone from it."""

    def __init__(self, registrator: Registrator, agent: Agent, wait: str = "5s", rate_limit: float = 0.1,
                 address: str = "its address") -> None:
        super().__init__(name="consul watch", daemon=True)
        self.registrator = registrator
        self.agent = agent
        self.address = address  # the agent's, for the log
        self.wait = wait
        self.rate_limit = rate_limit
        self.stopping = threading.Event()

    def run(self) -> None:
        content_hash: str | None = None
        failing = False
        delays = RECONNECT.delays()
        last = 0.0
        while not self.stopping.is_set():
            # at most one query per `rate_limit`: each of our own writes wakes the query, and asking
            # again at once would compete with the next write (p99 registration 12 ms -> 6 ms)
            pause = last + self.rate_limit - time.monotonic()
            if pause > 0 and self.stopping.wait(pause):
                break
            last = time.monotonic()
            before = self.registrator.written_ids()
            try:
                content_hash, services = self.agent.watch(content_hash, self.wait)
            except Exception as exc:
                content_hash = None
                if not failing:
                    log.warning("consul agent not answering",
                                extra=fields(error=cannot_reach("Consul", self.address, exc)))
                failing = True
                self.stopping.wait(min(next(delays), 0.2))
                continue
            delays = RECONNECT.delays()
            if failing:
                failing = False
                RECONNECTS.labels("consul").inc()
                self._settle()
                self.registrator.queue.put(ConsulCheck("consul agent answers again"))
            elif (missing := self.registrator.ours_missing(before, services)) is not None:
                self.registrator.queue.put(ConsulCheck(f"a service we registered is gone from the agent: {missing}"))

    def stop(self) -> None:
        self.stopping.set()

    def _settle(self, limit: float = 5.0) -> None:
        """Wait (up to `limit` seconds) for the restarted agent's cluster to have a leader."""
        deadline = time.monotonic() + limit
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                if self.agent.has_leader():
                    return
            except Exception:  # noqa: BLE001 - still starting
                pass
            self.stopping.wait(0.02)
