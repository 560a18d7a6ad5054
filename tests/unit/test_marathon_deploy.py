"""Deployment action decisions of the Marathon stand-in (pure)."""

from __future__ import annotations

from typing import Any

from devcluster.marathon.constraints import Placement
from devcluster.marathon.deploy import TaskView, bounds_for, decide, holding, steady

OLD, NEW = "v1", "v2"


def app(instances: int, version: str = NEW, **extra: Any) -> dict[str, Any]:
    return {"id": "/a", "instances": instances, "version": version,
            "versionInfo": {"lastConfigChangeAt": version}, **extra}


def task(n: int, version: str = NEW, running: bool = True, healthy: bool = True, killing: bool = False) -> TaskView:
    return TaskView(f"t{n}", version, Placement("S0", "h"), float(n) if running else None, running, healthy, killing)


def test_stop_kills_everything_and_waits_for_it() -> None:
    d = decide("StopApplication", None, [task(1), task(2, killing=True)])
    assert d.kill == ("t1",) and not d.done and d.goal == 0
    assert decide("StopApplication", None, []).done


def test_scale_up_sets_the_goal_and_waits_for_healthy_tasks() -> None:
    d = decide("ScaleApplication", app(3), [task(1)])
    assert (d.goal, d.kill, d.done) == (3, (), False)
    assert not decide("ScaleApplication", app(2), [task(1), task(2, healthy=False)]).done
    assert decide("ScaleApplication", app(2), [task(1), task(2)]).done


def test_scale_down_kills_the_youngest_first_or_the_oldest() -> None:
    tasks = [task(1), task(2), task(3)]
    assert decide("ScaleApplication", app(1), tasks).kill == ("t3", "t2")
    assert decide("ScaleApplication", app(1, killSelection="OLDEST_FIRST"), tasks).kill == ("t1", "t2")


def test_rolling_restart_steps_within_the_bounds() -> None:
    target = app(2, upgradeStrategy={"minimumHealthCapacity": 1, "maximumOverCapacity": 0})
    old = [task(1, OLD), task(2, OLD)]
    bounds = bounds_for(target, old)
    assert bounds.max_capacity == 3  # one instance of over-capacity is allowed
    first = decide("RestartApplication", target, old, bounds)
    assert (first.goal, first.kill, first.done) == (1, (), False)
    second = decide("RestartApplication", target, [*old, task(3)], bounds)
    assert second.kill == ("t1",) and second.goal == 1
    assert decide("RestartApplication", target, [task(3), task(4)], bounds).done


def test_waiting_and_steady_goals() -> None:
    assert holding(app(3), [task(1), task(2, OLD)]) == 1
    assert steady(app(3), [task(1), task(2, OLD)]) == 2
    assert decide("StartApplication", app(3), []).goal == 0
