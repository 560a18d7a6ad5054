"""One deployment action, decided from what runs now: how many instances to keep launched, whom to kill.

Pure. The scheduler calls :func:`decide` for every action of the current step on each tick and
applies the answer: `goal` is how many live instances of the app's current configuration it keeps
launched (launching on offers while fewer), `kill` the task ids to kill now, `done` whether the
action is complete. An instance counts as healthy when it is running and, if the app has health
checks, every check reports it alive (Marathon's "considered healthy"). :class:`Running` is a
deployment in progress (its plan, current step, the restart bounds fixed when each restart began).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devcluster.marathon.constraints import Placement, select_kill
from devcluster.marathon.plan import (
    DeploymentPlan,
    RestartBounds,
    RestartTask,
    old_tasks_to_kill,
    restart_bounds,
    restart_done,
    restart_situation,
    restart_step,
)


@dataclass(frozen=True)
class TaskView:
    """A live (not terminal) instance as decisions see it."""

    id: str
    config_version: str
    placement: Placement
    started_at: float | None
    running: bool
    healthy: bool
    killing: bool = False


@dataclass(frozen=True)
class StepDecision:
    goal: int
    kill: tuple[str, ...]
    done: bool


def config_version(app: Mapping[str, Any]) -> str:
    """The version of the app's configuration (scaling does not change it)."""
    info = app.get("versionInfo") or {}
    return str(info.get("lastConfigChangeAt") or app.get("version", ""))


def _plan_tasks(tasks: Sequence[TaskView]) -> list[RestartTask]:
    return [RestartTask(t.id, t.config_version, t.started_at, t.healthy, t.killing) for t in tasks]


def bounds_for(app: Mapping[str, Any], tasks: Sequence[TaskView]) -> RestartBounds:
    """Fix a rolling restart's bounds when it begins, from the healthy instances now."""
    strategy = app.get("upgradeStrategy") or {}
    healthy = sum(1 for t in tasks if t.healthy and not t.killing)
    return restart_bounds(int(app.get("instances", 1)), healthy, float(strategy.get("minimumHealthCapacity", 1)),
                          float(strategy.get("maximumOverCapacity", 1)))


def steady(app: Mapping[str, Any], tasks: Sequence[TaskView]) -> int:
    """The goal of an app outside any deployment: its instances, less old-config ones still live."""
    current = config_version(app)
    old = sum(1 for t in tasks if t.config_version != current and not t.killing)
    return max(0, int(app.get("instances", 1)) - old)


def holding(app: Mapping[str, Any], tasks: Sequence[TaskView]) -> int:
    """The goal of an app waiting for its step: keep what runs of its current configuration, add nothing."""
    current = config_version(app)
    return sum(1 for t in tasks if t.config_version == current and not t.killing)


def _scale(app: Mapping[str, Any], tasks: Sequence[TaskView]) -> StepDecision:
    instances = int(app.get("instances", 1))
    live = [t for t in tasks if not t.killing]
    surplus = len(live) - instances
    kills: list[TaskView] = []
    if surplus > 0:
        kills = select_kill(app.get("constraints") or [], live, surplus, app.get("killSelection", "YOUNGEST_FIRST"))
    current = config_version(app)
    old = sum(1 for t in live if t.config_version != current and t not in kills)
    done = (len(tasks) == instances and all(t.healthy for t in tasks)) if not kills else False
    return StepDecision(max(0, instances - old), tuple(t.id for t in kills), done)


def _restart(app: Mapping[str, Any], tasks: Sequence[TaskView], bounds: RestartBounds) -> StepDecision:
    version = config_version(app)
    plan_tasks = _plan_tasks(tasks)
    now = restart_situation(plan_tasks, version)
    action = restart_step(bounds, now)
    kills = [t.id for t in old_tasks_to_kill(plan_tasks, version, action.kill_old)]
    done = restart_done(bounds, now) and not any(t.killing for t in tasks) and now.new_running == bounds.target
    return StepDecision(now.new_running + action.start_new, tuple(kills), done)


def decide(action: str, app: Mapping[str, Any] | None, tasks: Sequence[TaskView],
           bounds: RestartBounds | None = None) -> StepDecision:
    """The next move of one action (`StartApplication`, `ScaleApplication`, ...) on one app."""
    if action == "StopApplication" or app is None:
        return StepDecision(0, tuple(t.id for t in tasks if not t.killing), not tasks)
    if action == "StartApplication":
        return StepDecision(0, (), True)
    if action == "RestartApplication":
        return _restart(app, tasks, bounds or bounds_for(app, tasks))
    return _scale(app, tasks)


# --- deployments in progress ---------------------------------------------------------------------

class AppLocked(Exception):
    """An affected app is in a running deployment (answer 409 unless forced)."""

    def __init__(self, deployments: list[str]) -> None:
        super().__init__("locked")
        self.deployments = deployments


@dataclass
class Running:
    """A deployment in progress."""

    plan: DeploymentPlan
    original: dict[str, dict[str, Any] | None]  # affected apps before it, for a rollback
    step: int = 1
    bounds: dict[str, RestartBounds] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return self.plan.at_step(min(self.step, self.plan.total_steps)).to_json()


def plan_event(plan: DeploymentPlan) -> dict[str, Any]:
    """The plan as deployment events carry it (Marathon's `DeploymentPlan` JSON)."""
    return {"id": plan.id, "version": plan.version, "steps": [s.to_json() for s in plan.steps],
            "affectedApps": list(plan.affected_apps)}
