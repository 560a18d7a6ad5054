"""The Marathon stand-in's state: apps, their versions, live instances and deployments, under one lock.

:class:`MarathonState` is what the HTTP layer reads and changes (``deploy``, ``cancel``, the
readers) and what the loop decides on each tick (``_cycle``: advance each deployment's current step
with the pure decisions in ``deploy``, keep apps outside deployments at their instance count).
Every kill it decides is written to ``kill_log`` with the reason Marathon gives it (its `KillReason`
names), for tests to check which tasks went and why (``GET /_standin/kills``).
:class:`devcluster.marathon.scheduler.Marathon` adds the framework: the driver, the loop thread,
offers, status updates and health checks.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from devcluster.marathon import deploy as steps
from devcluster.marathon import store
from devcluster.marathon.apps import Instance, stamp
from devcluster.marathon.constraints import Placement
from devcluster.marathon.deploy import AppLocked, Running, plan_event
from devcluster.marathon.events import EventBus
from devcluster.marathon.plan import compute_plan, format_version

log = logging.getLogger("wharf.devcluster.marathon")

KILL_LOG_SIZE = 10000  # entries kept in the kill log, newest last
# why a deployment action kills, as Marathon's KillReason names it
ACTION_KILL_REASONS = {"StopApplication": "DeletingApp", "RestartApplication": "Upgrading",
                       "ScaleApplication": "DeploymentScaling"}
API_KILL = "KillingTasksViaApi"


@dataclass
class Backoff:
    """An app's launch backoff: failures so far, and no launch before ``not_before``."""

    failures: int = 0
    not_before: float = 0.0


class MarathonState:
    """Apps, versions, instances and deployments under one lock, and what HTTP and the loop decide on them."""

    def __init__(self, *, framework_id: str | None = None,
                 save: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.framework_id = framework_id
        self.events = EventBus()
        self.lock = threading.RLock()
        self.apps: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, dict[str, Any]]] = {}
        self.instances: dict[str, Instance] = {}
        self.deployments: dict[str, Running] = {}
        self.last_failure: dict[str, dict[str, Any]] = {}
        self.kill_log: deque[dict[str, Any]] = deque(maxlen=KILL_LOG_SIZE)
        self._goals: dict[str, int] = {}
        self._backoff: dict[str, Backoff] = {}
        self._last_version = 0.0
        self._wake = threading.Event()
        self._save = save
        self._dirty = False

    def wake(self) -> None:
        """Make the loop tick now."""
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

    def kill_and_scale(self, task_ids: Collection[str], *, force: bool = False) -> tuple[str | None, str]:
        """Kill these tasks and lower each app's instances by the number of its tasks killed, in one deployment.

        As Marathon's `killAndScale`: tasks already being killed do not lower the count again, ids
        of no live task are ignored. Returns (deployment id, None when nothing changes; version);
        raises AppLocked (nothing killed) when an app is being deployed and ``force`` is not set.
        """
        with self.lock:
            version = self.new_version()
            found = [self.instances[t] for t in dict.fromkeys(task_ids) if t in self.instances]
            losing: dict[str, int] = {}
            for inst in found:
                if not inst.killing and inst.app_id in self.apps:
                    losing[inst.app_id] = losing.get(inst.app_id, 0) + 1
            target: dict[str, dict[str, Any] | None] = {}
            for app_id, count in losing.items():
                previous = self.apps[app_id]
                scaled = dict(previous, instances=max(0, int(previous.get("instances", 1)) - count))
                stamp(scaled, version, previous, config_changed=False)
                target[app_id] = scaled
            dep_id = self.deploy(target, version, force=force)
            marked = self._mark_killing([i.task_id for i in found], API_KILL)
        self._send_kills(marked)
        return dep_id, version

    def kill_tasks(self, task_ids: Collection[str], *, wipe: bool = False, reason: str = API_KILL) -> list[str]:
        """Kill these tasks (replaced if their app still wants them); returns the ids newly being killed.

        With ``wipe`` they are also forgotten at once, as Marathon expunges them (later news of
        them is then news of an unknown task).
        """
        with self.lock:
            found = [self.instances[t] for t in dict.fromkeys(task_ids) if t in self.instances]
            marked = self._mark_killing([i.task_id for i in found], reason)
            if wipe:
                for inst in found:
                    self._forget(inst)
        self._send_kills(marked)
        return marked

    def kills(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """The kill log (of one app, if given), oldest first."""
        with self.lock:
            return [dict(e) for e in self.kill_log if app_id is None or e["appId"] == app_id]

    def _send_kills(self, task_ids: list[str]) -> None:
        """Ask Mesos to kill these tasks (the framework does it; nothing to do without one)."""

    def _forget(self, inst: Instance) -> None:
        """Drop an instance from the books (it ended, or was wiped)."""
        self.instances.pop(inst.task_id, None)
        self._changed()

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

    # --- one tick's decisions (the loop thread) ----------------------------------------------

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
                    kills += self._mark_killing(decision.kill, ACTION_KILL_REASONS.get(action.action, "Unknown"))
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
            kills += self._mark_killing(orphans, "Orphaned")
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

    def _mark_killing(self, task_ids: Collection[str], reason: str) -> list[str]:
        """Mark live tasks as being killed and log why; returns those not being killed already."""
        marked = []
        for task_id in task_ids:
            inst = self.instances.get(task_id)
            if inst is not None and not inst.killing:
                inst.killing = True
                marked.append(task_id)
                self._log_kill(task_id, inst.app_id, reason)
        return marked

    def _log_kill(self, task_id: str, app_id: str | None, reason: str) -> None:
        self.kill_log.append({"taskId": task_id, "appId": app_id, "at": format_version(time.time()),
                              "reason": reason})

    # --- saving ------------------------------------------------------------------------------

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
