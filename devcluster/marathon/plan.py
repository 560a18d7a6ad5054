"""Deployment plans as Marathon computes them, and the arithmetic of a rolling restart.

Plans follow Marathon's `DeploymentPlan.apply` (1.x, unchanged through 1.10):

1. one step stopping every app that is gone from the target (all at once, in parallel);
2. one step starting every new app with 0 instances;
3. then the new and changed apps, layered by the length of their longest dependency chain in the
   target: an app with no dependencies is in the first layer, an app depending on it in the next.
   Apps of equal depth share a step, whether related or not. A new app, or one whose only change
   is `instances`, gets ScaleApplication; any other change gets RestartApplication.

Empty steps are dropped. `version` and `versionInfo` are not part of the comparison; a restart
without a change is asked for with `force_restart` (Marathon's `/restart`). Dependencies that name
a group prefix (`/db`) mean every app under it; dependencies on unknown ids are ignored.

Differences from Marathon: actions in a step, and apps in `affectedApps`, are sorted by id (Marathon
leaves them in hash-set order); pods and ResolveArtifacts are never produced; a dependency cycle
is refused with the cycle named, where Marathon only says that one exists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from wharf import toposort

__all__ = [
    "ACTIONS", "Action", "AppDiff", "DependencyCycle", "DeploymentPlan", "RestartAction", "RestartBounds",
    "RestartSituation", "RestartTask", "Step", "compute_plan", "dependency_depths", "diff_apps", "format_version",
    "old_tasks_to_kill", "restart_bounds", "restart_done", "restart_situation", "restart_step",
]

# The app actions of the RAML `DeploymentActionName` enum (its pod actions and ResolveArtifacts
# are not produced by this stand-in).
ACTIONS = ("StartApplication", "StopApplication", "ScaleApplication", "RestartApplication")
# Fields Marathon compares as sets, so that reordering them is no change.
_UNORDERED = ("constraints", "healthChecks", "dependencies", "acceptedResourceRoles")
_NOT_CONFIG = ("instances", "version", "versionInfo")


class DependencyCycle(ValueError):
    """The target's dependencies form a cycle; `cycle` lists it, first id repeated at the end."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__("Dependency graph has cyclic dependencies: " + " -> ".join(self.cycle))


# --- the plan as Marathon shows it ---------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """One action of a step: what happens to which app."""

    action: str
    app: str

    def to_json(self) -> dict[str, str]:
        return {"action": self.action, "app": self.app}


@dataclass(frozen=True)
class Step:
    """Actions that run in parallel; the next step starts when all are done."""

    actions: tuple[Action, ...]

    def to_json(self) -> dict[str, Any]:
        return {"actions": [a.to_json() for a in self.actions]}


@dataclass(frozen=True)
class DeploymentPlan:
    """A deployment; `current_step` counts from 1 as Marathon does (0: not started yet)."""

    id: str
    version: str
    steps: tuple[Step, ...]
    current_step: int = 0

    @property
    def affected_apps(self) -> tuple[str, ...]:
        return tuple(sorted({a.app for s in self.steps for a in s.actions}))

    @property
    def total_steps(self) -> int:
        return len(self.steps)

    @property
    def current_actions(self) -> tuple[Action, ...]:
        if 1 <= self.current_step <= self.total_steps:
            return self.steps[self.current_step - 1].actions
        return ()

    def at_step(self, number: int) -> DeploymentPlan:
        """The same plan, showing step `number` (1-based) as the current one."""
        if not 0 <= number <= self.total_steps:
            raise ValueError(f"step {number} is not between 0 and {self.total_steps}")
        return replace(self, current_step=number)

    def to_json(self) -> dict[str, Any]:
        """The plan as `GET /v2/deployments` lists it (RAML `DeploymentStepInfo`)."""
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": list(self.affected_apps),
            "affectedPods": [],
            "steps": [s.to_json() for s in self.steps],
            "currentActions": [{**a.to_json(), "readinessCheckResults": []} for a in self.current_actions],
            "currentStep": self.current_step,
            "totalSteps": self.total_steps,
        }


def format_version(epoch_seconds: float) -> str:
    """A Marathon timestamp (ISO 8601, milliseconds, UTC `Z`), as used for versions."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- what changed --------------------------------------------------------------------------------

@dataclass(frozen=True)
class AppDiff:
    """App ids by what a deployment does to them (each tuple sorted)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    restarted: tuple[str, ...]
    scaled: tuple[str, ...]


def _config(app: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in app.items():
        if key in _NOT_CONFIG:
            continue
        if key in _UNORDERED and isinstance(value, list):
            value = sorted(json.dumps(v, sort_keys=True) for v in value)
        out[key] = json.dumps(value, sort_keys=True)
    return out


def _change(old: Mapping[str, Any], new: Mapping[str, Any], forced: bool) -> str | None:
    """Marathon's verdict on an existing app: "scale" (only `instances`), "restart", or None."""
    if _config(old) != _config(new):
        return "restart"
    if old.get("instances", 1) != new.get("instances", 1):
        return "scale"
    return "restart" if forced else None


def diff_apps(current: Mapping[str, Mapping[str, Any]], target: Mapping[str, Mapping[str, Any]],
              force_restart: Collection[str] = ()) -> AppDiff:
    """Which apps a deployment from `current` to `target` (id -> normalized app) adds, removes,
    restarts (any change but `instances`, or forced) and only scales."""
    changes = {i: _change(current[i], target[i], i in force_restart) for i in current.keys() & target.keys()}
    return AppDiff(
        added=tuple(sorted(target.keys() - current.keys())),
        removed=tuple(sorted(current.keys() - target.keys())),
        restarted=tuple(sorted(i for i, kind in changes.items() if kind == "restart")),
        scaled=tuple(sorted(i for i, kind in changes.items() if kind == "scale")),
    )


# --- dependency order ----------------------------------------------------------------------------

def _edges(apps: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    ids = sorted(apps)
    edges: dict[str, list[str]] = {}
    for app_id in ids:
        targets: set[str] = set()
        for dep in apps[app_id].get("dependencies") or []:
            prefix = dep.rstrip("/") + "/"
            targets.update(i for i in ids if i == dep or i.startswith(prefix))
        edges[app_id] = sorted(targets)
    return edges


def dependency_depths(apps: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """For each app, the number of apps on its longest dependency chain (itself included).

    Raises DependencyCycle, naming the first cycle found, when there is no such order.
    """
    try:
        waves = toposort.levels(_edges(apps))
    except toposort.CycleError as cycle:
        raise DependencyCycle(cycle.cycle) from None
    return {app_id: n for n, wave in enumerate(waves, start=1) for app_id in wave}


def compute_plan(current: Mapping[str, Mapping[str, Any]], target: Mapping[str, Mapping[str, Any]], *,
                 plan_id: str, version: str, force_restart: Collection[str] = ()) -> DeploymentPlan:
    """The plan Marathon makes to go from `current` to `target` (id -> normalized app)."""
    diff = diff_apps(current, target, force_restart)
    depths = dependency_depths(target)
    layered: dict[int, list[Action]] = {}
    for app_id in sorted({*diff.added, *diff.scaled, *diff.restarted}):
        kind = "RestartApplication" if app_id in diff.restarted else "ScaleApplication"
        layered.setdefault(depths[app_id], []).append(Action(kind, app_id))
    steps = [
        Step(tuple(Action("StopApplication", i) for i in diff.removed)),
        Step(tuple(Action("StartApplication", i) for i in diff.added)),
        *(Step(tuple(layered[d])) for d in sorted(layered)),
    ]
    return DeploymentPlan(plan_id, version, tuple(s for s in steps if s.actions))


# --- rolling restart -----------------------------------------------------------------------------
#
# Marathon's TaskReplaceActor (1.10) fixes two bounds when a restart begins:
#   minHealthy  = ceil(instances * minimumHealthCapacity)
#   maxCapacity = floor(instances * (1 + maximumOverCapacity))   (Scala's Double.toInt truncates)
# both in IEEE doubles, so 100 * 0.07 = 7.000000000000001 gives minHealthy 8, here as there. When
# minHealthy == maxCapacity and at least that many instances are healthy (minimumHealthCapacity 1
# with maximumOverCapacity 0, say) no old instance could be killed nor a new one started, so
# Marathon allows one instance of temporary over-capacity (it is resident apps, not modelled here,
# that kill one first instead). It then kills `healthy - minHealthy` old instances at once, starts
# new ones while old-not-yet-dead + new <= maxCapacity, and kills one old instance per new instance
# that becomes healthy. minimumHealthCapacity 0 therefore kills every old instance first.
#
# `restart_step` is that rule as a function of the current counts: healthy capacity never drops
# below min(minHealthy, healthy at the start) through a kill, and new instances start only while
# the total stays within maxCapacity. One deliberate difference: old instances that are not healthy
# add nothing to healthy capacity and are always killable (Marathon 1.10 kills them first, but
# within the same count). And a restart to 0 instances kills every old one here, where Marathon's
# DeploymentActor skips restarting an app with 0 instances altogether.

@dataclass(frozen=True)
class RestartBounds:
    """The bounds of one restart, fixed when it begins."""

    target: int
    min_healthy: int
    healthy_floor: int
    max_capacity: int


def restart_bounds(target: int, healthy: int, minimum_health_capacity: float,
                   maximum_over_capacity: float) -> RestartBounds:
    """Bounds for restarting to `target` new instances while `healthy` instances are healthy now."""
    if target < 0 or healthy < 0:
        raise ValueError("target and healthy must not be negative")
    if not (0 <= minimum_health_capacity <= 1 and 0 <= maximum_over_capacity <= 1):
        raise ValueError("minimumHealthCapacity and maximumOverCapacity must be between 0 and 1")
    min_healthy = math.ceil(target * minimum_health_capacity)
    max_capacity = math.floor(target * (1 + maximum_over_capacity))
    if target > 0 and min_healthy == max_capacity <= healthy:
        max_capacity += 1
    return RestartBounds(target, min_healthy, min(min_healthy, healthy), max_capacity)


@dataclass(frozen=True)
class RestartSituation:
    """Counts of a restart in progress. Old counts include instances being killed until they are
    terminal; `old_healthy` counts only old instances not being killed. `new_running` counts new
    instances launched and not terminal (staging or running)."""

    old_running: int
    old_healthy: int
    new_running: int
    new_healthy: int
    old_killing: int = 0


class RestartAction(NamedTuple):
    """What to do next: launch `start_new` new instances, kill `kill_old` old ones (unhealthy first)."""

    start_new: int
    kill_old: int


def restart_step(bounds: RestartBounds, now: RestartSituation) -> RestartAction:
    """The next action of a rolling restart; call it again after every launch, kill or health change."""
    killable = now.old_running - now.old_killing
    surplus = now.old_healthy + now.new_healthy - bounds.healthy_floor
    kill = min(killable, (killable - now.old_healthy) + max(0, surplus))
    room = bounds.max_capacity - now.old_running - now.new_running
    start = min(bounds.target - now.new_running, room)
    return RestartAction(max(0, start), max(0, kill))


def restart_done(bounds: RestartBounds, now: RestartSituation) -> bool:
    """Whether the restart is complete: all new instances healthy, no old instance left."""
    return now.old_running == 0 and now.new_healthy >= bounds.target


@dataclass(frozen=True)
class RestartTask:
    """An app instance as the restart arithmetic sees it. `healthy` means passing health checks,
    or running when the app has none (Marathon's "considered healthy")."""

    id: str
    version: str
    started_at: float | None = None
    healthy: bool = False
    killing: bool = False


def restart_situation(tasks: Iterable[RestartTask], version: str) -> RestartSituation:
    """Count live (not terminal) `tasks` against the app `version` being rolled out."""
    live = list(tasks)
    old = [t for t in live if t.version != version]
    new = [t for t in live if t.version == version]
    return RestartSituation(
        old_running=len(old),
        old_healthy=sum(1 for t in old if t.healthy and not t.killing),
        new_running=sum(1 for t in new if not t.killing),
        new_healthy=sum(1 for t in new if t.healthy and not t.killing),
        old_killing=sum(1 for t in old if t.killing),
    )


def old_tasks_to_kill(tasks: Iterable[RestartTask], version: str, count: int) -> list[RestartTask]:
    """The `count` old tasks to kill next: unhealthy before healthy, then oldest first."""
    old = [t for t in tasks if t.version != version and not t.killing]
    old.sort(key=lambda t: (t.healthy, t.started_at is not None, t.started_at or 0.0))
    return old[:max(0, count)]
