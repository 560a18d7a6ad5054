"""`wharf framework run`: contend for leadership in ZooKeeper; the leader runs the pymesos scheduler.

Every instance serves the HTTP API (`framework.api`); followers redirect to the leader. The
leader's loop drains the scheduler's events in batches, lets `Core` decide, stores the changed
tasks in one fenced ZooKeeper transaction, and only then calls the master (launch, decline,
acknowledge, kill, reconcile, suppress, revive). When the ZooKeeper connection is suspended or
the session lost, the leader stops acting at once: no call, no write; the driver is stopped
without tearing the framework down, and the instance contends again once reconnected.

A submit is stored in its own fenced transaction, whole or not at all. When the master answers
that the framework was removed (torn down, or its failover timeout passed), the stored FrameworkID
is forgotten and the leader registers anew, then reconciles. Finished tasks stay listed for
`task_retention`, then go from memory and from ZooKeeper; a takeover reads only live tasks.
"""

from __future__ import annotations

import getpass
import json
import logging
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException

from framework import metrics
from framework.api import ApiServer
from framework.core import Core, SchedulerEffects
from framework.events import EventHandling
from framework.scheduler import Event
from framework.store import DAY, Store, StoreError
from framework.tasks import STATES, TaskSpec
from wharf.daemon import Daemon
from wharf.errors import Failure, describe
from wharf.log import fields

log = logging.getLogger("wharf.framework")
# pymesos writes its own lines to stderr in a format of its own: its records go to wharf's handler only
logging.getLogger("pymesos").handlers.clear()
WEEK = 7 * 24 * 3600.0
BATCH = 5000  # events handled per loop turn at most
PURGE_EVERY = 60.0  # seconds between purges of finished tasks (sooner with a short retention)


class NotLeading(Failure):
    """This instance stopped leading (session lost, stopping, or the master says another took over)."""


class FrameworkDaemon(EventHandling, Daemon):
    """One `wharf framework run` instance (its event handling is `framework.events`)."""

    interval = 0.5

    def __init__(self, zk_hosts: str, master: str, *, root: str, api_port: int = 0,
                 metrics_port: int | None = None, name: str = "wharf", user: str | None = None,
                 zk_timeout: float = 10.0, failover_timeout: float = WEEK, task_retention: float = DAY,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__("framework", metrics_port)
        self.zk_hosts, self.master, self.root = zk_hosts, master, root
        self.framework_name, self.user = name, user or getpass.getuser()
        self.zk_timeout, self.failover_timeout = zk_timeout, failover_timeout
        self.task_retention, self.clock = task_retention, clock
        self.zk: KazooClient | None = None
        self.store: Store | None = None
        self.api = ApiServer(self, port=api_port)
        self.election: Any = None
        self.lock = threading.Lock()  # guards `core` between the loop and API threads
        self.core: Core | None = None
        self.leading = False
        self._acting = False
        self._lost = threading.Event()
        self._events: queue.Queue[Event] = queue.Queue()
        self._driver: Any = None
        self._master_address: str | None = None
        self._agents: tuple[float, list[dict[str, float]]] | None = None
        self._recalled: Core | None = None  # the Core that finished tasks were read back into

    # --- daemon skeleton -----------------------------------------------------------------

    def run_cycle(self) -> None:
        if self.zk is None:
            zk = KazooClient(hosts=self.zk_hosts, timeout=self.zk_timeout)
            zk.add_listener(self._zk_state)
            try:
                zk.start(timeout=max(15.0, self.zk_timeout))
                store = Store(zk, self.root, self.task_retention)
                store.ensure()
            except Exception:
                zk.stop()
                zk.close()
                raise
            self.zk, self.store = zk, store
            self.api.start()  # once ZooKeeper answers, so that the API can always name the leader
            log.info("contending", extra=fields(api=self.api.url, zk=self.zk_hosts, root=self.root))
        if self.zk.state != KazooState.CONNECTED:
            raise Failure("ZooKeeper is not connected")
        self._lost.clear()
        self.election = self.zk.Election(self.store.election_path if self.store else "", self.api.url)
        self.election.run(self._lead)

    def stop(self, *_: object) -> None:
        super().stop()
        self._lost.set()
        self._events.put(("wake",))
        if self.election is not None:
            self.election.cancel()

    def close(self) -> None:
        self.api.stop()
        if self.zk is not None:
            self.zk.stop()
            self.zk.close()

    def _zk_state(self, state: str) -> None:
        """kazoo's listener (its own thread, must not block): anything but CONNECTED ends leadership now."""
        if state != KazooState.CONNECTED:
            self._acting = False
            self._lost.set()
            self._events.put(("wake",))

    # --- leading -------------------------------------------------------------------------

    def _lead(self) -> None:
        if self._lost.is_set() or self.stopping:
            return
        assert self.zk is not None and self.store is not None
        fence = f"{self.election.lock.path}/{self.election.lock.node}"
        started = time.monotonic()
        records = self.store.load()  # live tasks only: finished ones are read when the API asks
        legacy = [r for r in records if r.terminal]  # written by an earlier version under tasks/
        if legacy:
            self.store.save(legacy, fence)  # moved to finished/, and purged with the others
        with self.lock:
            self.core = Core(records)
        self.leading = self._acting = True
        metrics.LEADER.set(1)
        metrics.FAILOVERS.inc()
        log.info("leading", extra=fields(tasks=len(records), framework_id=self.store.framework_id(),
                                         load_seconds=round(time.monotonic() - started, 3)))
        try:
            self._loop(fence)
        except NotLeading as why:
            log.warning("stopped leading", extra=fields(reason=str(why)))
        except Exception as exc:
            log.warning("leader loop failed", extra=fields(error=describe(exc)))
            raise
        finally:
            self._acting = self.leading = False
            metrics.LEADER.set(0)
            metrics.SUBSCRIBED.set(0)
            self._stop_driver()
            with self.lock:
                self.core = None

    def _loop(self, fence: str) -> None:
        assert self.store is not None and self.core is not None
        restart_at = purge_at = 0.0
        was_reconciling = True
        while True:
            self._check()
            if self._driver is None and time.monotonic() >= restart_at:
                self._start_driver()
            batch = self._next_batch()
            self._check()
            now = self.clock()
            t_decide = time.monotonic()
            effects = SchedulerEffects()
            done: list[Future[Any]] = []
            with self.lock:
                ended, t_store = self._decide_and_store(batch, now, fence, effects, done)
                if ended is not None:
                    restart_at = ended
                if was_reconciling and self.core.reconciled:
                    log.info("reconciled", extra=fields(tasks=len(self.core.tasks)))
                was_reconciling = not self.core.reconciled
                counts = self.core.counts()
                metrics.RECONCILING.set(len(self.core.reconciling))
                metrics.SUPPRESSED.set(1 if self.core.suppressed else 0)
            for future in done:
                if not future.done():
                    future.set_result(True)
            for state in STATES:
                metrics.TASKS.labels(state).set(counts.get(state, 0))
            for seconds in effects.to_running:
                metrics.TO_RUNNING.observe(seconds)
            t_call = time.monotonic()
            self._call_master(effects)
            metrics.LOOP_SECONDS.labels("decide").inc(t_store - t_decide)
            metrics.LOOP_SECONDS.labels("store").inc(t_call - t_store)
            metrics.LOOP_SECONDS.labels("call").inc(time.monotonic() - t_call)
            if now >= purge_at:
                purge_at = now + min(PURGE_EVERY, max(1.0, self.task_retention / 10))
                self._purge(now, fence)
            if batch:
                log.debug("turn", extra=fields(events=len(batch), writes=len(effects.writes),
                                               launches=sum(len(i) for _, i in effects.launches),
                                               acks=len(effects.acks), decide_s=round(t_store - t_decide, 4),
                                               store_s=round(t_call - t_store, 4),
                                               call_s=round(time.monotonic() - t_call, 4)))

    def _next_batch(self) -> list[Event]:
        """The events waiting (up to `BATCH`), after waiting a moment for the first."""
        try:
            batch = [self._events.get(timeout=0.2)]
        except queue.Empty:
            batch = []
        while len(batch) < BATCH:
            try:
                batch.append(self._events.get_nowait())
            except queue.Empty:
                break
        return batch

    def _decide_and_store(self, batch: list[Event], now: float, fence: str, effects: SchedulerEffects,
                          done: list[Future[Any]]) -> tuple[float | None, float]:
        """Handle `batch` into `effects` and store its writes in one fenced transaction (under `lock`).

        Returns when to start a new driver (None: no need) and when storing began. On failure every
        request in `done` gets the exception, and NotLeading is raised.
        """
        assert self.store is not None and self.core is not None
        restart_at: float | None = None
        try:
            for item in batch:
                ended = self._handle(item, now, fence, effects, done)
                if ended is not None:
                    restart_at = ended
            effects.merge(self.core.tick(now))
            self._check()
            t_store = time.monotonic()
            if effects.writes:
                self.store.save(effects.writes.values(), fence)
        except (NotLeading, StoreError, KazooException) as exc:
            for future in done:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, NotLeading):
                raise
            raise NotLeading(f"cannot store: {type(exc).__name__}: {exc}") from exc
        return restart_at, t_store

    def _check(self) -> None:
        if self.stopping:
            raise NotLeading("stopping")
        if self._lost.is_set() or not self._acting:
            raise NotLeading("ZooKeeper session suspended or lost")

    def _purge(self, now: float, fence: str) -> None:
        """Finished tasks past their retention: dropped from memory, their znodes deleted."""
        assert self.store is not None
        with self.lock:
            forgotten = self.core.forget_finished(now, self.task_retention) if self.core is not None else 0
        try:
            purged = self.store.purge(now, fence)
        except (StoreError, KazooException) as exc:
            raise NotLeading(f"cannot purge: {type(exc).__name__}: {exc}") from exc
        if forgotten or purged:
            log.info("purged finished tasks", extra=fields(forgotten=forgotten, purged=purged,
                                                            retention=self.task_retention))

    def _call_master(self, effects: SchedulerEffects) -> None:
        """Make the calls the stored decision asked for (only while acting as the leader)."""
        driver = self._driver
        if driver is None or not self._acting:
            return
        failed_launches: list[str] = []
        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        for offer_id, infos in effects.launches:
            calls.append((driver.launchTasks, ({"value": offer_id}, infos, {"refuse_seconds": 1.0})))
        if effects.declines:
            calls.append((driver.declineOffer, ([{"value": o} for o in effects.declines],
                                                {"refuse_seconds": effects.refuse_seconds})))
        for status in effects.acks:
            calls.append((driver.acknowledgeStatusUpdate, (status,)))
        for mesos_id, _agent in effects.kills:
            calls.append((driver.killTask, ({"value": mesos_id},)))
        if effects.reconcile:
            tasks = [{"task_id": {"value": t}, **({"agent_id": {"value": a}} if a else {})}
                     for t, a in effects.reconcile]
            calls.append((driver.reconcileTasks, (tasks,)))
        if effects.revive:
            calls.append((driver.reviveOffers, ()))
        if effects.suppress:
            calls.append((driver.suppressOffers, ()))
        for func, args in calls:
            if not self._acting:
                return  # the session went while calling: not one call more
            try:
                func(*args)
            except Exception as exc:
                log.warning("call to the master failed", extra=fields(call=func.__name__, error=str(exc)))
                if func == driver.launchTasks:
                    failed_launches += [i["task_id"]["value"] for i in args[1]]
        metrics.OFFERS.labels("used").inc(effects.offers_used)
        metrics.OFFERS.labels("declined").inc(len(effects.declines))
        metrics.LAUNCHED.inc(sum(len(infos) for _, infos in effects.launches))
        if failed_launches:
            with self.lock:
                if self.core is not None:
                    self.core.recheck(failed_launches, self.clock())

    # --- for the API (any thread) --------------------------------------------------------

    def leader_url(self) -> str | None:
        """The API URL of the elected leader (from the election's contenders)."""
        if self.leading:
            return self.api.url
        if self.zk is None or self.store is None:
            return None
        try:
            contenders = (self.election or self.zk.Election(self.store.election_path)).contenders()
        except Exception:  # noqa: BLE001 - no ZooKeeper: nobody known
            return None
        return contenders[0] if contenders else None

    def recall(self) -> None:
        """Once per leadership, when the API first needs them: read back the tasks that finished before this
        instance led (within retention), so that they are listed as before. A takeover never reads them."""
        with self.lock:
            core = self.core
        if core is None or self.store is None:
            raise NotLeading("not leading")
        if self._recalled is core:
            return
        finished = self.store.finished()
        with self.lock:
            if self.core is core:
                core.remember(finished, self.clock(), self.task_retention)
                self._recalled = core

    def submit(self, specs: list[TaskSpec], timeout: float = 30.0) -> None:
        """Queue tasks through the leader's loop; returns once they are stored."""
        future: Future[Any] = Future()
        self._events.put(("submit", specs, future))
        future.result(timeout)

    def kill(self, task_id: str, timeout: float = 30.0) -> None:
        future: Future[Any] = Future()
        self._events.put(("kill", task_id, future))
        future.result(timeout)

    def snapshot(self, read: Callable[[Core], Any]) -> Any:
        with self.lock:
            if self.core is None:
                raise NotLeading("not leading")
            return read(self.core)

    def agents(self) -> list[dict[str, float]]:
        """Every agent's total cpus, mem, disk and port count, from the master (cached for 10 s)."""
        if self._agents is not None and time.monotonic() - self._agents[0] < 10:
            return self._agents[1]
        if not self._master_address:
            raise NotLeading("not subscribed to a Mesos master yet")
        with urllib.request.urlopen(f"http://{self._master_address}/master/slaves", timeout=10) as resp:
            slaves = json.loads(resp.read())["slaves"]
        agents = [agent_totals(s.get("resources") or {}) for s in slaves if s.get("active", True)]
        self._agents = (time.monotonic(), agents)
        return agents


def agent_totals(resources: dict[str, Any]) -> dict[str, float]:
    """An agent's `resources` from /master/slaves: scalars, and `ports` as a count of ports."""
    out = {k: float(resources.get(k) or 0) for k in ("cpus", "mem", "disk")}
    ports = str(resources.get("ports") or "").strip("[]")
    count = 0
    for part in filter(None, (p.strip() for p in ports.split(","))):
        begin, _, end = part.partition("-")
        count += int(end or begin) - int(begin) + 1
    out["ports"] = float(count)
    return out
