"""The Chronos stand-in's framework: the thin pymesos side of its scheduler.

:class:`ChronosFramework` is a `Scheduler` whose callbacks take the lock and delegate to the pure
`ChronosState` (`devcluster.chronos.state`: due runs, retries, dependents) and `plan_launches`
(`devcluster.chronos.launch`: offers -> TaskInfos), and a clock thread that calls `tick` and
revives or suppresses offers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pymesos import MesosSchedulerDriver, Scheduler

from devcluster.chronos.launch import plan_launches
from devcluster.chronos.state import ChronosState

log = logging.getLogger("wharf.devcluster.chronos.runner")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ChronosFramework(Scheduler):  # type: ignore[misc]
    """Chronos as a Mesos framework: offers and updates go to the shared `ChronosState` under `lock`."""

    TICK = 0.2  # seconds between clock ticks (a change through the API ticks at once)

    def __init__(self, state: ChronosState, lock: threading.Lock, master: str, *, clock: Clock = utc_now,
                 name: str = "chronos", user: str = "root") -> None:
        self.state, self.lock, self.master, self.clock = state, lock, master, clock
        self.framework_info = {"user": user, "name": name, "failover_timeout": 0.0,
                               "capabilities": [{"type": "TASK_KILLING_STATE"}]}
        self.driver: Any = None
        self.registered_event = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._wanting = False
        self._want_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="chronos clock", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.driver = MesosSchedulerDriver(self, self.framework_info, self.master, use_addict=True)
        self.driver.start()
        self._thread.start()

    def stop(self) -> None:
        """Tear the framework down (Mesos kills its tasks) and end the clock thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.driver is not None:
            self.driver.stop(failover=False)
            self.driver.join()
            self.driver = None

    def poke(self) -> None:
        """Tick now: the API changed something (a new job, a manual start)."""
        self._wake.set()

    def kill(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            if self.driver is not None:
                self.driver.killTask({"value": task_id})

    # --- pymesos callbacks -------------------------------------------------------------------

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        """A new framework id: tasks of an earlier registration are gone, and their runs retried."""
        log.info("registered with Mesos as framework %s", framework_id.get("value", framework_id))
        with self.lock:
            self.state.lost_all("the framework registered anew", self.clock())
        with self._want_lock:
            self._wanting = True  # a new subscription is not suppressed
        self.registered_event.set()
        self.poke()

    def reregistered(self, driver: Any, master_info: Any) -> None:
        """Same framework id after a reconnection: ask the master about the tasks we think run."""
        with self.lock:
            task_ids = list(self.state.running)
        with self._want_lock:
            self._wanting = True
        if task_ids:
            driver.reconcileTasks([{"task_id": {"value": task_id}} for task_id in task_ids])
        self.poke()

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802 - pymesos API
        with self.lock:
            self.state.tick(self.clock())
            plan = plan_launches(self.state, offers)
            for _, chosen in plan:
                for run, _ in chosen:
                    self.state.launched(run)
            waiting = bool(self.state.queue)
        for offer_id, chosen in plan:
            if chosen:
                log.info("launching %s", ", ".join(run.task_id for run, _ in chosen))
                driver.launchTasks({"value": offer_id}, [info for _, info in chosen], {"refuse_seconds": 1})
            else:
                driver.declineOffer({"value": offer_id}, {"refuse_seconds": 1 if waiting else 60})
        if not waiting:
            self._want(False)

    def statusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802 - pymesos API
        with self.lock:
            queued = self.state.status(str(status["task_id"]["value"]), str(status["state"]),
                                       str(status.get("message") or ""), self.clock())
        if queued:
            self.poke()

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:  # noqa: N802 - pymesos API
        pass

    def error(self, driver: Any, message: str) -> None:
        log.error("Mesos reported an error: %s", message)

    # --- the clock ---------------------------------------------------------------------------

    def _want(self, wanted: bool) -> None:
        """Revive offers when runs wait for one, suppress them when none does."""
        with self._want_lock:
            if wanted == self._wanting or self.driver is None or not self.registered_event.is_set():
                return
            self._wanting = wanted
            if wanted:
                self.driver.reviveOffers()
            else:
                self.driver.suppressOffers()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                with self.lock:
                    self.state.tick(self.clock())
                    waiting = bool(self.state.queue)
                self._want(waiting)
            except Exception:  # noqa: BLE001 - the clock must keep ticking
                log.exception("chronos tick failed")
            self._wake.wait(self.TICK)
