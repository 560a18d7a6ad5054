"""The Marathon stand-in's framework: apps and deployments in, offers to launches, updates to task state.

:class:`Marathon` is the state (apps, their versions, live instances, deployments, under one lock:
:class:`~devcluster.marathon.state.MarathonState`) with the framework around it. Three kinds of
threads touch it: HTTP handlers (through ``deploy``, ``cancel`` and the readers), pymesos's
callbacks (:class:`_Adapter` translates them), and the loop thread, which every tick advances the
current step of each deployment (pure decisions in ``deploy``), keeps apps outside deployments at
their instance count (replacing what died) and revives offers while instances are wanted. Driver
calls are made outside the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pymesos import MesosSchedulerDriver, Scheduler

from devcluster.marathon import deploy as steps
from devcluster.marathon.apps import Instance, service_ports
from devcluster.marathon.constraints import Placement
from devcluster.marathon.health import HealthProbe, HealthState, health_outcome
from devcluster.marathon.launch import RemainingOffer, app_id_of, new_instance_id, place, task_id_for, task_info
from devcluster.marathon.plan import format_version
from devcluster.marathon.state import Backoff, MarathonState

log = logging.getLogger("wharf.devcluster.marathon")

TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
                      "TASK_GONE", "TASK_GONE_BY_OPERATOR"})
TICK = 0.2
REVIVE_EVERY = 1.0
# What Marathon (its `task_killing` feature on) asks of Mesos: TASK_KILLING while a task is being killed.
CAPABILITIES = ("TASK_KILLING_STATE", "PARTITION_AWARE")


class Marathon(MarathonState):
    """The stand-in's state and framework loop; ``start()`` subscribes to the master."""

    def __init__(self, master: str, *, name: str = "marathon", failover_timeout: float = 604800,
                 framework_id: str | None = None, save: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(framework_id=framework_id, save=save)
        self.master = master
        self.name = name
        self.failover_timeout = failover_timeout
        self.registered = threading.Event()
        self._probes: dict[str, list[HealthProbe]] = {}
        self._last_revive = 0.0
        self._stopping = threading.Event()
        self._driver: MesosSchedulerDriver | None = None
        self._loop: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Marathon:
        info: dict[str, Any] = {"user": "root", "name": self.name, "failover_timeout": self.failover_timeout,
                                "checkpoint": True, "capabilities": [{"type": c} for c in CAPABILITIES]}
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
        self._driver = MesosSchedulerDriver(_Adapter(self), info, self.master, use_addict=True)
        self._driver.start()
        self._loop = threading.Thread(target=self._run, name="marathon loop", daemon=True)
        self._loop.start()
        return self

    def stop(self, failover: bool = False) -> None:
        """Stop probing and the loop; tear the framework down (its tasks die) unless ``failover``."""
        self._stopping.set()
        self._wake.set()
        with self.lock:
            probes = [p for ps in self._probes.values() for p in ps]
            self._probes.clear()
        for p in probes:
            p.stop()
        if self._loop is not None:
            self._loop.join(timeout=5)
        self.persist()
        if self._driver is not None:
            self._driver.stop(failover=failover)
            self._driver.join()
            self._driver = None
        self.events.close()

    # --- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                kills, revive = self._cycle(time.time())
                self._send_kills(kills)
                if revive and self._driver is not None and time.monotonic() - self._last_revive > REVIVE_EVERY:
                    self._last_revive = time.monotonic()
                    self._driver.reviveOffers()
            except Exception:  # noqa: BLE001 - the loop must survive one bad cycle
                log.exception("marathon cycle failed")
            self.persist()
            self._wake.wait(TICK)

    def _send_kills(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            if self._driver is not None:
                self._driver.killTask({"value": task_id})

    # --- offers and updates (pymesos thread) --------------------------------------------------

    def on_offers(self, offers: list[Any]) -> None:
        now = time.time()
        driver = self._driver
        if driver is None:
            return
        for raw in offers:
            offer = RemainingOffer.from_mesos(raw)
            with self.lock:
                wanted = {a: w for a, w in self._wanted().items()
                          if w > 0 and self._backoff.get(a, Backoff()).not_before <= now}
                candidates = [(self.apps[a], [self._placement(i) for i in self.instances.values() if i.app_id == a])
                              for a in sorted(wanted)]
                tasks = []
                for app_id, got, before in place(candidates, offer, wanted):
                    app = self.apps[app_id]
                    instance_id = new_instance_id(app_id)
                    info = task_info(app, before, got, task_id_for(instance_id))
                    env = {v["name"]: v["value"] for v in info["command"]["environment"]["variables"]}
                    self.instances[info["task_id"]["value"]] = Instance(
                        info["task_id"]["value"], instance_id, app_id, app["version"], steps.config_version(app),
                        offer.agent_id, offer.hostname, got.host_ports,
                        service_ports(app), env, now)
                    tasks.append(info)
                    self._changed()
                more = any(w > 0 for w in self._wanted().values())
            if tasks:
                driver.launchTasks(raw["id"], tasks, {"refuse_seconds": 1})
            else:
                driver.declineOffer(raw["id"], {"refuse_seconds": 1 if more else 30})

    @staticmethod
    def _placement(inst: Instance) -> Placement:
        return Placement(inst.agent_id, inst.host)

    def on_update(self, status: Mapping[str, Any]) -> None:
        task_id = status["task_id"]["value"]
        state = status["state"]
        now = time.time()
        kill_unknown = False
        with self.lock:
            inst = self.instances.get(task_id)
            if inst is None:
                kill_unknown = state not in TERMINAL
                if kill_unknown:
                    self._log_kill(task_id, app_id_of(task_id), "Unknown")
            else:
                self._update(inst, state, status, now)
        if kill_unknown:
            log.info("killing unknown task %s", task_id)
            self._send_kills([task_id])
        self.wake()

    def _update(self, inst: Instance, state: str, status: Mapping[str, Any], now: float) -> None:
        inst.state = state
        app = self.apps.get(inst.app_id) or self.versions.get(inst.app_id, {}).get(inst.version) or {}
        self.events.publish("status_update_event", slaveId=inst.agent_id, taskId=inst.task_id, taskStatus=state,
                            message=status.get("message", ""), appId=inst.app_id, host=inst.host,
                            ipAddresses=[{"ipAddress": inst.host, "protocol": "IPv4"}], ports=list(inst.ports),
                            version=inst.version)
        if state == "TASK_RUNNING" and inst.task_id not in self._probes:
            inst.started_at = inst.started_at or now
            self._backoff.pop(inst.app_id, None)
            self._start_probes(inst, app)
            self._changed()
        if state in TERMINAL:
            self._forget(inst)
            if not inst.killing and state != "TASK_FINISHED":
                self.last_failure[inst.app_id] = {
                    "appId": inst.app_id, "host": inst.host, "message": status.get("message", ""), "state": state,
                    "taskId": inst.task_id, "instanceId": inst.instance_id, "slaveId": inst.agent_id,
                    "timestamp": format_version(now), "version": inst.version}
                backoff = self._backoff.setdefault(inst.app_id, Backoff())
                backoff.failures += 1
                delay = float(app.get("backoffSeconds", 1)) * float(app.get("backoffFactor", 1.15)) ** (
                    backoff.failures - 1)
                backoff.not_before = now + min(delay, float(app.get("maxLaunchDelaySeconds", 300)))

    def _forget(self, inst: Instance) -> None:
        super()._forget(inst)
        for p in self._probes.pop(inst.task_id, []):
            p.stop()

    # --- health ------------------------------------------------------------------------------

    def _start_probes(self, inst: Instance, app: Mapping[str, Any]) -> None:
        checks = app.get("healthChecks") or []
        started = time.time()
        inst.health = [HealthState(inst.instance_id, started, float(c.get("gracePeriodSeconds", 300)))
                       for c in checks]
        self._probes[inst.task_id] = [HealthProbe(inst.task_id, n, c, inst.host, inst.ports, inst.env,
                                                  self.on_health).start() for n, c in enumerate(checks)]

    def on_health(self, task_id: str, index: int, cause: str | None) -> None:
        with self.lock:
            inst = self.instances.get(task_id)
            app = self.apps.get(inst.app_id) if inst is not None else None
            if inst is None or app is None or index >= len(inst.health) or inst.killing:
                return
            checks = app.get("healthChecks") or []
            check = checks[index] if index < len(checks) else {}
            was_healthy = inst.healthy(len(checks))
            changed = inst.health[index].record(cause is None, time.time(), cause)
            who = {"appId": inst.app_id, "taskId": task_id, "instanceId": inst.instance_id, "version": inst.version,
                   "host": inst.host, "slaveId": inst.agent_id}
            events, kill = health_outcome(who, check, inst.health[index], cause, changed, was_healthy,
                                          inst.healthy(len(checks)))
            for event_type, fields in events:
                self.events.publish(event_type, **fields)
            killed = self._mark_killing([task_id], "FailedHealthChecks") if kill else []
        self._send_kills(killed)
        self.wake()


class _Adapter(Scheduler):  # type: ignore[misc]
    """pymesos callbacks, translated to :class:`Marathon` calls."""

    def __init__(self, marathon: Marathon) -> None:
        self.marathon = marathon

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.marathon.framework_id = framework_id["value"]
        self.marathon.registered.set()
        self.marathon._changed()
        if self.marathon.instances:
            driver.reconcileTasks([])  # a restart from saved state: hear how its tasks are
        log.info("registered as framework %s", framework_id["value"])

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.marathon.registered.set()
        driver.reconcileTasks([])

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802 - pymesos API
        self.marathon.on_offers(offers)

    def statusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802 - pymesos API
        self.marathon.on_update(status)

    def error(self, driver: Any, message: str) -> None:
        log.error("master error: %s", message)
