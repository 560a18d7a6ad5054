"""The feeders of the worker's queue: Docker's event stream, the Consul agent's services and, when
Marathon is configured, Marathon's event stream.

All are wharf's shared watchers (`wharf.watch`): reconnecting `Stream`s of Docker's and Marathon's
events and a `ConsulWatch` blocking on the agent's services by content hash. Each runs in its own thread,
reconnects with backoff (capped low, so recovery is seen quickly) and never waits on the worker:
the queue is unbounded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from registrator.consul_agent import Agent
from registrator.marathon import MarathonHealth, TaskKilling, healthy_tasks
from registrator.worker import (
    RECONNECT,
    RECONNECTS,
    ConsulCheck,
    DockerEvent,
    Registrator,
    Resync,
)
from wharf.errors import TimedOut
from wharf.marathon import MarathonClient
from wharf.retry import Retry
from wharf.wait import wait_until
from wharf.watch import ConsulWatch, Stream

log = logging.getLogger("wharf.registrator")


@dataclass
class _Subscription:
    """Docker's event stream and the client it came from, closed together."""

    client: Any
    events: Any

    def __iter__(self) -> Any:
        return iter(self.events)

    def close(self) -> None:
        try:
            self.events.close()
        finally:
            self.client.close()


class DockerWatcher(Stream[dict[str, Any]]):
    """Streams container events into the queue; on every (re)connect queues a fresh `Resync` first."""

    def __init__(self, registrator: Registrator, connect: Callable[[], Any], address: str = "its address") -> None:
        super().__init__("docker events", self._subscribe, self._handle, on_connect=self._connected,
                         on_lost=lambda _: self.connected.clear(), backoff=RECONNECT,
                         system="the Docker engine", address=address, logger=log)
        self.registrator = registrator
        self.client_factory = connect  # -> a docker.APIClient with no read timeout
        self.connected = threading.Event()

    def _subscribe(self) -> _Subscription:
        client = self.client_factory()
        try:
            return _Subscription(client, client.events(decode=True, filters={"type": "container"}))
        except BaseException:
            client.close()
            raise

    def _connected(self, again: bool) -> None:
        if again:
            RECONNECTS.labels("docker").inc()
        # subscribed before the listing, so nothing between the two is missed
        self.registrator.queue.put(Resync(fresh=True))
        self.connected.set()

    def _handle(self, raw: dict[str, Any]) -> None:
        if raw.get("Type", "container") != "container":
            return
        self.registrator.queue.put(DockerEvent(
            str(raw.get("Action") or raw.get("status") or ""), str(raw.get("id") or ""),
            dict((raw.get("Actor") or {}).get("Attributes") or {}),
            float(raw.get("timeNano") or 0) / 1e9 or float(raw.get("time") or 0)))


class ConsulWatcher(ConsulWatch):
    """Blocks on the agent's services; asks for a Consul reconcile when the agent answers again
    after failing (restarted, maybe empty) or when a service we wrote is gone from it.

    At most one query per `rate_limit`: each of our own writes wakes the query, and asking again
    at once would compete with the next write (p99 registration 12 ms -> 6 ms)."""

    def __init__(self, registrator: Registrator, agent: Agent, wait: str = "5s", rate_limit: float = 0.1,
                 address: str = "its address") -> None:
        super().__init__("agent services", self._fetch, by_hash=True, rate_limit=rate_limit, address=address,
                         backoff=Retry(delay=0.05, backoff=2.0, max_delay=0.2, jitter=0.2), logger=log)
        self.name = "consul watch"
        self.registrator = registrator
        self.agent = agent
        self.wait = wait

    def _fetch(self, content_hash: str | None) -> tuple[str | None, tuple[dict[str, int], dict[str, Any]]]:
        before = self.registrator.written_ids()  # what the agent should hold by the time it answers
        content_hash, services = self.agent.watch(content_hash, self.wait)
        return content_hash, (before, services)

    def answered(self, kind: str, data: Any) -> None:
        if kind == "down":
            return
        if kind == "up":
            RECONNECTS.labels("consul").inc()
            self._settle()
            self.registrator.queue.put(ConsulCheck("consul agent answers again"))
        elif (missing := self.registrator.ours_missing(*data)) is not None:
            self.registrator.queue.put(ConsulCheck(f"a service we registered is gone from the agent: {missing}"))

    def _settle(self, limit: float = 5.0) -> None:
        """Wait (up to `limit` seconds) for the restarted agent's cluster to have a leader."""
        with suppress(TimedOut):  # no leader yet: carry on all the same
            wait_until(lambda: self.stopping.is_set() or self._has_leader(), limit, 0.02, "a Consul leader",
                       sleep=self.stopping.wait)

    def _has_leader(self) -> bool:
        try:
            return bool(self.agent.has_leader())
        except Exception:  # noqa: BLE001 - still starting
            return False


class MarathonWatcher(Stream[dict[str, Any]]):
    """Marathon's view of the tasks here, so an instance is routed the moment Marathon counts it
    healthy (and may kill the instances it replaces), as marathon-lb routes: on every (re)connect
    the health of every task (`GET /v2/tasks`); then each `health_status_changed_event` for an app
    with a task here, as it comes (its `taskId`, or Marathon 1.4+'s `instanceId`), and each
    `TASK_KILLING` status update, a drain of that task. Events are queued in the order Marathon sent
    them: a new instance's health before the kill of the one it replaces. Losing the stream only
    delays: Consul's own run of the checks still routes."""

    EVENTS = ("health_status_changed_event", "status_update_event")

    def __init__(self, registrator: Registrator, client: MarathonClient) -> None:
        super().__init__("marathon events", lambda: client.events(self.EVENTS), self._handle,
                         on_connect=self._connected, backoff=RECONNECT, system="Marathon", address=client.shown,
                         logger=log)
        self.registrator = registrator
        self.client = client

    def _connected(self, again: bool) -> None:
        if again:
            RECONNECTS.labels("marathon").inc()
        self.registrator.queue.put(MarathonHealth(healthy_tasks(self.client.tasks()), whole=True))

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("eventType")
        if kind == "status_update_event" and event.get("taskStatus") == "TASK_KILLING" and event.get("taskId"):
            self.registrator.queue.put(TaskKilling(str(event["taskId"])))
        elif kind == "health_status_changed_event" and self.registrator.runs(app_id := str(event.get("appId", ""))):
            task = str(event.get("taskId") or event.get("instanceId") or "")
            if task:
                self.registrator.queue.put(MarathonHealth(app_id=app_id, task=task, alive=bool(event.get("alive"))))
