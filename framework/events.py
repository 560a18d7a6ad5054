"""The leader's event handling, mixed into `FrameworkDaemon`: the pymesos driver, and each event of a turn.

Events come from the driver (`framework.scheduler.Adapter`: subscribed, offers, update, disconnected,
error) and from the API (submit, kill); `_handle` turns each into `Core`'s effects, under the
daemon's lock. Events of a driver already stopped are dropped. When the event stream ends, the
driver is stopped at once and the loop is told when to start a new one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from pymesos import MesosSchedulerDriver

from framework import metrics
from framework.core import Core, SchedulerEffects
from framework.scheduler import Adapter, Event, framework_removed
from framework.store import Store, TooLarge
from framework.tasks import TaskSpec, queued_record
from wharf.errors import Unreachable
from wharf.log import fields

log = logging.getLogger("wharf.framework")
RESTART_DELAY = 1.0  # before a new driver, after the stream closed


class EventHandling:
    """The driver and the events of one turn; `FrameworkDaemon` sets these attributes."""

    master: str
    user: str
    framework_name: str
    failover_timeout: float
    store: Store | None
    core: Core | None
    _events: queue.Queue[Event]
    _driver: Any
    _master_address: str | None

    def _handle(self, item: Event, now: float, fence: str, effects: SchedulerEffects,
                done: list[Future[Any]]) -> float | None:
        """Merge one event's effects into `effects`; returns when to start a new driver if the stream ended."""
        assert self.core is not None
        kind, driver = item[0], item[1] if len(item) > 1 else None
        if kind not in ("wake", "submit", "kill") and driver is not self._driver:
            return None  # from a driver already stopped
        if kind == "subscribed":
            self._subscribed(item[2], fence)
            effects.merge(self.core.subscribed_now(now))
            metrics.SUBSCRIBED.set(1)
        elif kind == "offers":
            offers = item[2]
            metrics.OFFERS.labels("received").inc(len(offers))
            effects.merge(self.core.offers(offers, now))
        elif kind == "update":
            metrics.UPDATES.labels(str(item[2].get("state"))).inc()
            effects.merge(self.core.update(item[2], now))
        elif kind == "submit":
            done.append(item[2])
            effects.merge(self._submit(item[1], now, fence, item[2]))
        elif kind == "kill":
            effects.merge(self._kill(item[1], now, item[2]))
            done.append(item[2])
        elif kind in ("disconnected", "error"):
            return self._stream_ended(item, fence)
        return None

    def _stream_ended(self, item: Event, fence: str) -> float:
        """The driver's event stream closed: stop it; returns when to start a new one."""
        assert self.core is not None
        kind = item[0]
        master = self._master_address or self.master
        log.warning("event stream ended", extra=fields(
            event=kind, detail=str(item[2:]) or "",
            error=Unreachable("the Mesos master", master, "its event stream closed").message))
        self.core.disconnected()
        metrics.SUBSCRIBED.set(0)
        self._stop_driver()
        if kind == "error" and framework_removed(str(item[2])):
            self._forget_framework(fence)
            return time.monotonic()  # register anew at once
        return time.monotonic() + RESTART_DELAY

    def _subscribed(self, framework_id: str, fence: str) -> None:
        assert self.store is not None
        if self.store.framework_id() != framework_id:
            self.store.set_framework_id(framework_id, fence)
        self._master_address = self._driver.master if self._driver is not None else None
        log.info("subscribed", extra=fields(framework_id=framework_id, master=self._master_address))

    def _submit(self, specs: list[TaskSpec], now: float, fence: str, future: Future[Any]) -> SchedulerEffects:
        """Queue a submission: stored whole in one fenced transaction before anything else, or refused whole."""
        assert self.store is not None and self.core is not None
        try:
            self.store.add([queued_record(s, now) for s in specs], fence)
        except TooLarge as exc:
            future.set_exception(exc)
            return SchedulerEffects()
        effects = self.core.submit(specs, now)
        effects.writes.clear()  # stored above
        future.set_result(True)
        return effects

    def _forget_framework(self, fence: str) -> None:
        """The master removed the framework: forget its FrameworkID, so that the next SUBSCRIBE registers
        anew (its launched tasks are then reconciled: the master killed them with the framework)."""
        assert self.store is not None
        framework_id = self.store.framework_id()
        if framework_id is not None:
            self.store.forget_framework_id(fence)
            log.warning("the master removed the framework: its FrameworkID is forgotten, registering anew",
                        extra=fields(framework_id=framework_id))

    def _kill(self, task_id: str, now: float, future: Future[Any]) -> SchedulerEffects:
        assert self.core is not None
        if task_id not in self.core.tasks:
            future.set_exception(KeyError(task_id))
            return SchedulerEffects()
        return self.core.kill(task_id, now)

    def _start_driver(self) -> None:
        assert self.store is not None
        framework: dict[str, Any] = {"user": self.user, "name": self.framework_name,
                                     "failover_timeout": self.failover_timeout,
                                     "capabilities": [{"type": "TASK_KILLING_STATE"}]}
        framework_id = self.store.framework_id()
        if framework_id:
            framework["id"] = {"value": framework_id}
        self._driver = MesosSchedulerDriver(Adapter(self._events), framework, self.master,
                                            implicit_acknowledgements=False)
        self._driver.start()
        log.info("subscribing", extra=fields(master=self.master, framework_id=framework_id or ""))

    def _stop_driver(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.stop(failover=True)  # never TEARDOWN: the framework and its tasks outlive this process
            threading.Thread(target=driver.join, daemon=True).start()
