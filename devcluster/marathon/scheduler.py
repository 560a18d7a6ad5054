"""The Marathon stand-in's framework: apps and deployments in, offers to launches, updates to task state.

:class:`Marathon` owns the state (apps, their versions, live instances, deployments) under one
lock. Three kinds of threads touch it: HTTP handlers (through ``deploy``, ``cancel`` and the
readers), pymesos's callbacks (:class:`_Adapter` translates them), and the loop thread, which
every tick advances the current step of each deployment (pure decisions in ``deploy``), keeps apps
outside deployments at their instance count (replacing what died) and revives offers while
instances are wanted. Driver calls are made outside the lock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pymesos import MesosSchedulerDriver, Scheduler

from devcluster.marathon import deploy as steps
from devcluster.marathon import store
from devcluster.marathon.apps import Instance, service_ports
from devcluster.marathon.constraints import Placement
from devcluster.marathon.deploy import AppLocked, Running, plan_event
from devcluster.marathon.events import EventBus
from devcluster.marathon.health import HealthProbe, HealthState, health_outcome
from devcluster.marathon.launch import Offer, new_instance_id, place, task_id_for, task_info
from devcluster.marathon.plan import compute_plan, format_version

log = logging.getLogger("wharf.devcluster.marathon")

TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED",
                      "TASK_GONE", "TASK_GONE_BY_OPERATOR"})
TICK = 0.2
REVIVE_EVERY = 1.0


@dataclass
class Backoff:
    failures: int = 0
    not_before: float = 0.0


class Marathon:
    """The stand-in's state and framework loop; ``start()`` subscribes to the master."""

    def __init__(self, master: str, *, name: str = "marathon", failover_timeout: float = 604800,
                 framework_id: str | None = None, save: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.master = master
        self.name = name
        self.failover_timeout = failover_timeout
        self.framework_id = framework_id
        self.events = EventBus()
        self.lock = threading.RLock()
        self.apps: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}
        self.instances: dict[str, Instance] = {}
        self.deployments: dict[str, Running] = {}
        self.last_failure: dict[str, dict[str, Any]] = {}
        self.registered = threading.Event()
        self._goals: dict[str, int] = {}
        self._backoff: dict[str, Backoff] = {}
        self._probes: dict[str, list[HealthProbe]] = {}
        self._last_version = 0.0
        self._last_revive = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._save = save
        self._dirty = False
        self._driver: MesosSchedulerDriver | None = None
        self._loop: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Marathon:
        info: dict[str, Any] = {"user": "root", "name": self.name, "failover_timeout": self.failover_timeout,
                                "checkpoint": True, "capabilities": [{"type": "PARTITION_AWARE"}]}
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

    def wake(self) -> None:
        self._wake.set()

    # --- versions and deployments (called by the HTTP layer) ----------------------------------

    def new_version(self) -> str:
        """A version timestamp later than every earlier one."""
        with self.lock:
            now = max(time.time(), self._last_version + 0.001)
            self._last_version = now
            return format_version(now)

    def locks(self, app_ids: Collection[str]) -> list[str]:
        """Ids of running deployments affecting any of ``app_ids``."""
        with self.lock:
            return [i for i, d in self.deployments.items() if set(d.plan.affected_apps) & set(app_ids)]

    def deploy(self, target: Mapping[str, dict[str, Any] | None], version: str, *, force: bool = False,
               force_restart: Collection[str] = ()) -> str | None:
        """Apply ``target`` (app id -> stamped app, or None to remove) and start its deployment.

        Returns the deployment id (None when nothing changes); raises AppLocked when an affected
        app is being deployed and ``force`` is not set (with it, those deployments are cancelled).
        """
        with self.lock:
            current = dict(self.apps)
            wanted = {**current, **{k: v for k, v in target.items() if v is not None}}
            for app_id, app in target.items():
                if app is None:
                    wanted.pop(app_id, None)
            plan = compute_plan(current, wanted, plan_id=str(uuid.uuid4()), version=version,
                                force_restart=force_restart)
            conflicts = self.locks(plan.affected_apps)
            if conflicts and not force:
                raise AppLocked(conflicts)
            for dep_id in conflicts:
                self._finish(dep_id, ok=False, reason="overridden by a forced deployment")
            for app_id, app in target.items():
                if app is None:
                    self.apps.pop(app_id, None)
                else:
                    self.apps[app_id] = app
                    self.versions.setdefault(app_id, {})[app["version"]] = app
            if not plan.steps:
                self._changed()
                return None
            original = {a: current.get(a) for a in plan.affected_apps}
            self.deployments[plan.id] = Running(plan, original)
            self.events.publish("deployment_info", plan=plan_event(plan), currentStep=plan.steps[0].to_json())
        self._changed()
        self.wake()
        return plan.id

    def cancel(self, deployment_id: str, rollback: bool) -> tuple[str | None, str] | None:
        """Stop a deployment; with ``rollback``, deploy its affected apps back as they were.

        Returns (new deployment id, version) for a rollback, (None, "") for a plain stop, None if unknown.
        """
        with self.lock:
            running = self.deployments.get(deployment_id)
            if running is None:
                return None
            self._finish(deployment_id, ok=False, reason="cancelled")
            if not rollback:
                return None, ""
            version = self.new_version()
            target: dict[str, dict[str, Any] | None] = {}
            for app_id, app in running.original.items():
                if app is None:
                    target[app_id] = None
                else:
                    restored = dict(app, version=version)
                    info = dict(app.get("versionInfo") or {})
                    info.update(lastConfigChangeAt=version, lastScalingAt=version)
                    restored["versionInfo"] = info
                    target[app_id] = restored
            new_id = self.deploy(target, version, force=True)
            return new_id, version

    def _finish(self, deployment_id: str, ok: bool, reason: str = "") -> None:
        running = self.deployments.pop(deployment_id)
        plan = plan_event(running.plan)
        if ok:
            self.events.publish("deployment_success", id=deployment_id, plan=plan)
        else:
            self.events.publish("deployment_failed", id=deployment_id, plan=plan, reason=reason)

    # --- reading -----------------------------------------------------------------------------

    def tasks_of(self, app_id: str) -> list[Instance]:
        with self.lock:
            return sorted((i for i in self.instances.values() if i.app_id == app_id), key=lambda i: i.staged_at)

    def deployments_of(self, app_id: str) -> list[str]:
        with self.lock:
            return [i for i, d in self.deployments.items() if app_id in d.plan.affected_apps]

    # --- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                kills, revive = self._cycle(time.time())
                self._kill(kills)
                if revive and self._driver is not None and time.monotonic() - self._last_revive > REVIVE_EVERY:
                    self._last_revive = time.monotonic()
                    self._driver.reviveOffers()
            except Exception:  # noqa: BLE001 - the loop must survive one bad cycle
                log.exception("marathon cycle failed")
            self.persist()
            self._wake.wait(TICK)

    def _views(self, app_id: str) -> list[steps.TaskView]:
        checks = len((self.apps.get(app_id) or {}).get("healthChecks") or [])
        return [steps.TaskView(i.task_id, i.config_version, Placement(i.agent_id, i.host), i.started_at,
                                i.running, i.healthy(checks), i.killing)
                for i in self.instances.values() if i.app_id == app_id]

    def _cycle(self, now: float) -> tuple[list[str], bool]:
        """One tick: advance deployments, settle goals; returns (task ids to kill, offers wanted)."""
        kills: list[str] = []
        changed = False
        with self.lock:
            deploying: set[str] = set()
            for dep_id, running in list(self.deployments.items()):
                step = running.plan.steps[running.step - 1]
                done = True
                for action in step.actions:
                    deploying.add(action.app)
                    app = self.apps.get(action.app)
                    views = self._views(action.app)
                    bounds = None
                    if action.action == "RestartApplication" and app is not None:
                        bounds = running.bounds.setdefault(action.app, steps.bounds_for(app, views))
                    decision = steps.decide(action.action, app, views, bounds)
                    self._goals[action.app] = decision.goal
                    kills += self._mark_killing(decision.kill)
                    done = done and decision.done
                    if decision.done and action.action == "StopApplication":
                        self._goals.pop(action.app, None)
                if done:
                    self._step_done(dep_id, running)
                    changed = True
            waiting = {a for d in self.deployments.values() for a in d.plan.affected_apps} - deploying
            for app_id, app in self.apps.items():
                if app_id in waiting:  # its step is still to come: launch nothing for it yet
                    self._goals[app_id] = steps.holding(app, self._views(app_id))
                elif app_id not in deploying:
                    self._goals[app_id] = steps.steady(app, self._views(app_id))
            for app_id in list(self._goals):
                if app_id not in self.apps:
                    self._goals.pop(app_id)
            orphans = [i.task_id for i in self.instances.values()  # of an app gone outside any deployment
                       if i.app_id not in self.apps and i.app_id not in deploying | waiting]
            kills += self._mark_killing(orphans)
            revive = any(w > 0 and self._backoff.get(a, Backoff()).not_before <= now
                         for a, w in self._wanted().items())
        if changed:
            self._changed()
        return kills, revive

    def _step_done(self, dep_id: str, running: Running) -> None:
        plan = running.plan
        for action in plan.steps[running.step - 1].actions:
            if action.action == "StopApplication":
                self.events.publish("app_terminated_event", appId=action.app)
        self.events.publish("deployment_step_success", plan=plan_event(plan),
                            currentStep=plan.steps[running.step - 1].to_json())
        running.step += 1
        if running.step > plan.total_steps:
            self._finish(dep_id, ok=True)
        else:
            self.events.publish("deployment_info", plan=plan_event(plan),
                                currentStep=plan.steps[running.step - 1].to_json())

    def _wanted(self) -> dict[str, int]:
        """Per app, how many more instances of its current configuration to launch."""
        out = {}
        for app_id, goal in self._goals.items():
            app = self.apps.get(app_id)
            if app is None:
                continue
            version = steps.config_version(app)
            live = sum(1 for i in self.instances.values()
                       if i.app_id == app_id and i.config_version == version and not i.killing)
            out[app_id] = goal - live
        return out

    def _mark_killing(self, task_ids: Collection[str]) -> list[str]:
        marked = []
        for task_id in task_ids:
            inst = self.instances.get(task_id)
            if inst is not None and not inst.killing:
                inst.killing = True
                marked.append(task_id)
        return marked

    def _kill(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            if self._driver is not None:
                self._driver.killTask({"value": task_id})

    def kill_tasks(self, task_ids: Collection[str]) -> list[str]:
        """Kill these tasks (they are replaced if their app still wants them)."""
        with self.lock:
            marked = self._mark_killing(task_ids)
        self._kill(marked)
        return marked

    def _changed(self) -> None:
        self._dirty = True

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take back what ``store.load`` read: apps, versions, instances, the framework id."""
        with self.lock:
            self.framework_id = data.get("frameworkId") or self.framework_id
            self.apps = dict(data.get("apps") or {})
            self.versions = {k: dict(v) for k, v in (data.get("versions") or {}).items()}
            self.instances = {i.task_id: i for i in data.get("instances") or []}

    def persist(self) -> None:
        """Write the state out if it changed (no-op without a ``save`` function)."""
        if self._save is None or not self._dirty:
            return
        with self.lock:
            self._dirty = False
            data = store.snapshot(self.framework_id, self.apps, self.versions, self.instances)
        try:
            self._save(data)
        except Exception:  # noqa: BLE001 - persisting must not stop the stand-in
            log.exception("saving state failed")

    # --- offers and updates (pymesos thread) --------------------------------------------------

    def on_offers(self, offers: list[Any]) -> None:
        now = time.time()
        driver = self._driver
        if driver is None:
            return
        for raw in offers:
            offer = Offer.from_mesos(raw)
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
            else:
                self._update(inst, state, status, now)
        if kill_unknown:
            log.info("killing unknown task %s", task_id)
            self._kill([task_id])
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
            self._changed()
            self.instances.pop(inst.task_id, None)
            for p in self._probes.pop(inst.task_id, []):
                p.stop()
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

    # --- health ------------------------------------------------------------------------------

    def _start_probes(self, inst: Instance, app: Mapping[str, Any]) -> None:
        checks = app.get("healthChecks") or []
        started = time.time()
        inst.health = [HealthState(inst.instance_id, started, float(c.get("gracePeriodSeconds", 300)))
                       for c in checks]
        self._probes[inst.task_id] = [HealthProbe(inst.task_id, n, c, inst.host, inst.ports, inst.env,
                                                  self.on_health).start() for n, c in enumerate(checks)]

    def on_health(self, task_id: str, index: int, cause: str | None) -> None:
        kill = False
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
            inst.killing = inst.killing or kill
        if kill:
            self._kill([task_id])
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
