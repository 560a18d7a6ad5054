"""Unit tests of Marathon deployment plans and the rolling-restart arithmetic."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from devcluster.marathon.plan import (
    ACTIONS,
    Action,
    DependencyCycle,
    DeploymentPlan,
    RestartAction,
    RestartSituation,
    RestartTask,
    compute_plan,
    dependency_depths,
    diff_apps,
    format_version,
    old_tasks_to_kill,
    restart_bounds,
    restart_done,
    restart_situation,
    restart_step,
)
from tests.upstream import upstream

pytestmark = pytest.mark.unit

RAML_TYPES = ("marathon", "docs", "docs", "rest-api", "public", "api", "v2", "types")
VERSION = "2024-05-01T12:00:00.000Z"


def app(app_id: str, *dependencies: str, instances: int = 1, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 100", "instances": instances, "cpus": 0.1, "mem": 32,
            "dependencies": list(dependencies), "labels": {}, "constraints": [], **fields}


def apps(*definitions: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in definitions}


def plan(current: dict[str, dict[str, Any]], target: dict[str, dict[str, Any]], **kwargs: Any) -> DeploymentPlan:
    return compute_plan(current, target, plan_id="p-1", version=VERSION, **kwargs)


def steps(p: DeploymentPlan) -> list[list[tuple[str, str]]]:
    return [[(a.action, a.app) for a in s.actions] for s in p.steps]


def changed(definitions: dict[str, dict[str, Any]], **fields: Any) -> dict[str, dict[str, Any]]:
    return {i: {**d, **fields} for i, d in definitions.items()}


# --- the plan's JSON against Marathon's RAML -----------------------------------------------------

def raml_types(name: str) -> dict[str, Any]:
    types: dict[str, Any] = yaml.safe_load(upstream(*RAML_TYPES, name).read_text())["types"]
    return types


def properties(type_def: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(all property names, required ones) of a RAML object type."""
    names = set(type_def.get("properties") or {})
    return {n.rstrip("?") for n in names}, {n for n in names if not n.endswith("?")}


def test_plan_json_has_exactly_the_raml_fields() -> None:
    chain = apps(app("/a"), app("/b", "/a"))
    p = plan({}, chain).at_step(2)
    body = p.to_json()

    plan_fields, plan_required = properties(raml_types("deploymentPlan.raml")["DeploymentPlan"])
    info_fields, info_required = properties(raml_types("deploymentEventsInfo.raml")["DeploymentStepInfo"])
    assert set(body) == plan_fields | info_fields
    assert plan_required | info_required <= set(body)

    step_fields, _ = properties(raml_types("deploymentSteps.raml")["DeploymentStep"])
    action_fields, action_required = properties(raml_types("deploymentAction.raml")["DeploymentAction"])
    enum = raml_types("deploymentAction.raml")["DeploymentActionName"]["enum"]
    for step in body["steps"]:
        assert set(step) == step_fields
        for action in step["actions"]:
            assert action_required <= set(action) <= action_fields
            assert action["action"] in enum

    extra_fields, _ = properties(raml_types("deploymentEventsInfo.raml")["DeploymentActionInfo"])
    assert body["currentActions"]
    for action in body["currentActions"]:
        assert set(action) <= action_fields | extra_fields
        assert action_required | extra_fields <= set(action)

    datetime.fromisoformat(body["version"].replace("Z", "+00:00"))
    assert isinstance(body["currentStep"], int) and isinstance(body["totalSteps"], int)


def test_action_names_are_in_the_raml_enum() -> None:
    assert set(ACTIONS) <= set(raml_types("deploymentAction.raml")["DeploymentActionName"]["enum"])


def test_plan_json_values() -> None:
    p = plan(apps(app("/old")), apps(app("/new")))
    assert p.to_json() == {
        "id": "p-1", "version": VERSION, "affectedApps": ["/new", "/old"], "affectedPods": [],
        "steps": [{"actions": [{"action": "StopApplication", "app": "/old"}]},
                  {"actions": [{"action": "StartApplication", "app": "/new"}]},
                  {"actions": [{"action": "ScaleApplication", "app": "/new"}]}],
        "currentActions": [], "currentStep": 0, "totalSteps": 3,
    }
    assert p.at_step(1).to_json()["currentActions"] == [
        {"action": "StopApplication", "app": "/old", "readinessCheckResults": []}]
    assert p.at_step(3).current_actions == (Action("ScaleApplication", "/new"),)
    with pytest.raises(ValueError, match="between 0 and 3"):
        p.at_step(4)


def test_format_version_is_marathons_timestamp() -> None:
    assert format_version(0) == "1970-01-01T00:00:00.000Z"
    assert format_version(1714564800.25) == "2024-05-01T12:00:00.250Z"


# --- ordering by dependencies --------------------------------------------------------------------

def test_a_changed_chain_deploys_in_three_steps() -> None:
    chain = apps(app("/a"), app("/b", "/a"), app("/c", "/b"))
    assert steps(plan(chain, changed(chain, cmd="sleep 200"))) == [
        [("RestartApplication", "/a")], [("RestartApplication", "/b")], [("RestartApplication", "/c")]]


def test_a_new_chain_starts_with_zero_instances_then_scales_in_order() -> None:
    chain = apps(app("/c", "/b"), app("/b", "/a"), app("/a"))
    assert steps(plan({}, chain)) == [
        [("StartApplication", "/a"), ("StartApplication", "/b"), ("StartApplication", "/c")],
        [("ScaleApplication", "/a")], [("ScaleApplication", "/b")], [("ScaleApplication", "/c")]]


def test_independent_apps_share_a_step() -> None:
    independent = apps(app("/x"), app("/y"), app("/z"))
    assert steps(plan(independent, changed(independent, mem=64))) == [
        [("RestartApplication", "/x"), ("RestartApplication", "/y"), ("RestartApplication", "/z")]]


def test_apps_of_equal_depth_share_a_step_even_when_unrelated() -> None:
    target = apps(app("/db"), app("/web", "/db"), app("/cache"), app("/worker", "/cache"))
    assert steps(plan(changed(target, mem=1), target)) == [
        [("RestartApplication", "/cache"), ("RestartApplication", "/db")],
        [("RestartApplication", "/web"), ("RestartApplication", "/worker")]]


def test_only_changed_apps_appear_but_keep_their_depth() -> None:
    chain = apps(app("/a"), app("/b", "/a"), app("/c", "/b"))
    target = {**chain, "/c": {**chain["/c"], "instances": 3}}
    assert steps(plan(chain, target)) == [[("ScaleApplication", "/c")]]
    assert dependency_depths(chain) == {"/a": 1, "/b": 2, "/c": 3}


def test_depth_is_the_longest_chain() -> None:
    target = apps(app("/a"), app("/b", "/a"), app("/c", "/a", "/b"))
    assert dependency_depths(target) == {"/a": 1, "/b": 2, "/c": 3}


def test_a_group_dependency_means_every_app_under_it() -> None:
    target = apps(app("/db/mysql"), app("/db/redis", "/db/mysql"), app("/web", "/db"), app("/dbx"))
    assert dependency_depths(target)["/web"] == 3
    assert dependency_depths(target)["/dbx"] == 1


def test_dependencies_on_unknown_apps_are_ignored() -> None:
    assert dependency_depths(apps(app("/web", "/nowhere"))) == {"/web": 1}


def test_removed_apps_stop_together_in_the_first_step() -> None:
    # Marathon stops every removed app at once, before anything else, whatever depends on what.
    current = apps(app("/a"), app("/b", "/a"), app("/c", "/b"), app("/keep"))
    target = {"/keep": {**current["/keep"], "instances": 2}, "/new": app("/new")}
    assert steps(plan(current, target)) == [
        [("StopApplication", "/a"), ("StopApplication", "/b"), ("StopApplication", "/c")],
        [("StartApplication", "/new")],
        [("ScaleApplication", "/keep"), ("ScaleApplication", "/new")]]


def test_nothing_to_do_gives_an_empty_plan() -> None:
    same = apps(app("/a"), app("/b", "/a"))
    p = plan(same, same)
    assert p.steps == () and p.total_steps == 0 and p.affected_apps == ()
    assert p.to_json()["steps"] == []


def test_a_cycle_is_refused_naming_it() -> None:
    target = apps(app("/a", "/c"), app("/b", "/a"), app("/c", "/b"), app("/d"))
    with pytest.raises(DependencyCycle) as caught:
        plan({}, target)
    assert caught.value.cycle == ("/a", "/c", "/b", "/a")
    assert str(caught.value) == "Dependency graph has cyclic dependencies: /a -> /c -> /b -> /a"


def test_a_self_dependency_is_a_cycle() -> None:
    with pytest.raises(DependencyCycle, match="/g/a -> /g/a"):
        dependency_depths(apps(app("/g/a", "/g")))


def test_a_cycle_among_unchanged_apps_is_still_refused() -> None:
    cyclic = apps(app("/a", "/b"), app("/b", "/a"))
    with pytest.raises(DependencyCycle, match="/a -> /b -> /a"):
        plan(cyclic, {**cyclic, "/n": app("/n")})


# --- scale or restart ----------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "kind"), [
    ({"instances": 5}, "scaled"),
    ({"cmd": "sleep 5"}, "restarted"),
    ({"labels": {"HAPROXY_GROUP": "external"}}, "restarted"),
    ({"upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0}}, "restarted"),
    ({"dependencies": ["/other"]}, "restarted"),
    ({"instances": 5, "mem": 64}, "restarted"),
    ({"version": "2030-01-01T00:00:00.000Z"}, None),
    ({"versionInfo": {"lastScalingAt": "x", "lastConfigChangeAt": "y"}}, None),
])
def test_scale_only_versus_restart(change: dict[str, Any], kind: str | None) -> None:
    before = app("/a", version="2024-01-01T00:00:00.000Z")
    diff = diff_apps({"/a": before}, {"/a": {**before, **change}})
    found = [name for name in ("restarted", "scaled") if getattr(diff, name) == ("/a",)]
    assert found == ([kind] if kind else [])
    assert diff.added == diff.removed == ()


def test_reordering_set_valued_fields_is_no_change() -> None:
    before = app("/a", "/x", "/y", constraints=[["hostname", "UNIQUE"], ["rack", "GROUP_BY"]],
                 healthChecks=[{"protocol": "TCP"}, {"protocol": "HTTP", "path": "/"}])
    after = {**before, "dependencies": ["/y", "/x"], "constraints": before["constraints"][::-1],
             "healthChecks": before["healthChecks"][::-1]}
    assert diff_apps({"/a": before}, {"/a": after}).restarted == ()
    args = {**before, "args": ["a", "b"]}
    assert diff_apps({"/a": args}, {"/a": {**args, "args": ["b", "a"]}}).restarted == ("/a",)


def test_force_restart_restarts_an_unchanged_app() -> None:
    same = apps(app("/a"), app("/b"))
    assert steps(plan(same, same, force_restart={"/a"})) == [[("RestartApplication", "/a")]]
    assert diff_apps(same, same, force_restart={"/a"}).restarted == ("/a",)


def test_diff_apps_sorts_each_kind() -> None:
    current = apps(app("/gone2"), app("/gone1"), app("/s"), app("/r"), app("/same"))
    target = apps(app("/new2"), app("/new1"), app("/s", instances=3), app("/r", cmd="x"), app("/same"))
    diff = diff_apps(current, target)
    assert diff.added == ("/new1", "/new2") and diff.removed == ("/gone1", "/gone2")
    assert diff.scaled == ("/s",) and diff.restarted == ("/r",)


# --- rolling restart: the bounds -----------------------------------------------------------------

def first_kill(target: int, running: int, mhc: float, moc: float) -> int:
    bounds = restart_bounds(target, running, mhc, moc)
    return restart_step(bounds, RestartSituation(running, running, 0, 0)).kill_old


@pytest.mark.parametrize(("target", "running", "mhc", "moc", "max_capacity", "kill_now"), [
    # the non-resident cases of Marathon's RestartStrategyTest
    (1, 1, 0.5, 0, 2, 0),
    (1, 0, 0.5, 0, 1, 0),
    (2, 2, 0.5, 0, 2, 1),
    (10, 1, 0.1, 0, 10, 0),
    (10, 10, 0.1, 1.0, 20, 9),
    (10, 10, 1, 1.0, 20, 0),
])
def test_bounds_match_marathons_restart_strategy(target: int, running: int, mhc: float, moc: float,
                                                 max_capacity: int, kill_now: int) -> None:
    assert restart_bounds(target, running, mhc, moc).max_capacity == max_capacity
    assert first_kill(target, running, mhc, moc) == kill_now


def test_min_healthy_rounds_up_and_max_capacity_rounds_down() -> None:
    bounds = restart_bounds(3, 3, 0.5, 0.5)
    assert (bounds.min_healthy, bounds.max_capacity) == (2, 4)
    assert restart_bounds(100, 100, 0.07, 0).min_healthy == 8  # 100 * 0.07 == 7.000000000000001 in doubles


def test_full_health_without_over_capacity_allows_one_extra_instance() -> None:
    bounds = restart_bounds(3, 3, 1, 0)
    assert bounds.max_capacity == 4
    assert restart_step(bounds, RestartSituation(3, 3, 0, 0)) == RestartAction(1, 0)
    assert restart_step(bounds, RestartSituation(3, 3, 1, 1)) == RestartAction(0, 1)
    assert restart_step(bounds, RestartSituation(3, 2, 1, 1, old_killing=1)) == RestartAction(0, 0)
    assert restart_step(bounds, RestartSituation(2, 2, 1, 1)) == RestartAction(1, 0)


def test_zero_minimum_health_kills_every_old_instance_first() -> None:
    bounds = restart_bounds(4, 4, 0, 0)
    assert restart_step(bounds, RestartSituation(4, 4, 0, 0)) == RestartAction(0, 4)
    assert restart_step(bounds, RestartSituation(4, 0, 0, 0, old_killing=4)) == RestartAction(0, 0)
    assert restart_step(bounds, RestartSituation(0, 0, 0, 0)) == RestartAction(4, 0)


def test_restart_to_zero_instances_only_kills() -> None:
    bounds = restart_bounds(0, 3, 1, 1)
    assert restart_step(bounds, RestartSituation(3, 3, 0, 0)) == RestartAction(0, 3)
    assert restart_done(bounds, RestartSituation(0, 0, 0, 0))


def test_unhealthy_old_instances_are_always_killable() -> None:
    bounds = restart_bounds(3, 1, 1, 0)
    assert restart_step(bounds, RestartSituation(3, 1, 0, 0)) == RestartAction(0, 2)


def test_bounds_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        restart_bounds(-1, 0, 1, 1)
    with pytest.raises(ValueError):
        restart_bounds(1, 0, 1.5, 1)


def test_situation_from_tasks_and_which_old_ones_go_first() -> None:
    tasks = [RestartTask("o1", "v1", 10.0, healthy=True), RestartTask("o2", "v1", 5.0, healthy=True),
             RestartTask("o3", "v1", 20.0, healthy=False), RestartTask("o4", "v1", 1.0, healthy=True, killing=True),
             RestartTask("n1", "v2", 30.0, healthy=True), RestartTask("n2", "v2", None)]
    assert restart_situation(tasks, "v2") == RestartSituation(
        old_running=4, old_healthy=2, new_running=2, new_healthy=1, old_killing=1)
    assert [t.id for t in old_tasks_to_kill(tasks, "v2", 2)] == ["o3", "o2"]
    assert [t.id for t in old_tasks_to_kill(iter(tasks), "v2", 9)] == ["o3", "o2", "o1"]


# --- rolling restart: the property ---------------------------------------------------------------

CAPACITIES = st.one_of(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 1.0]), st.floats(0, 1))


@settings(max_examples=300, deadline=None)
@given(target=st.integers(0, 8), old_count=st.integers(0, 10), data=st.data(),
       mhc=CAPACITIES, moc=CAPACITIES, failures=st.integers(0, 3))
def test_any_order_of_events_keeps_the_bounds_and_finishes(
        target: int, old_count: int, data: st.DataObject, mhc: float, moc: float, failures: int) -> None:
    old_healthy_now = data.draw(st.integers(0, old_count), label="old healthy")
    old = [{"healthy": i < old_healthy_now, "killing": False} for i in range(old_count)]
    new: list[dict[str, bool]] = []
    bounds = restart_bounds(target, old_healthy_now, mhc, moc)
    ceiling = max(bounds.max_capacity, old_count)

    def situation() -> RestartSituation:
        return RestartSituation(
            old_running=len(old), old_healthy=sum(o["healthy"] and not o["killing"] for o in old),
            new_running=len(new), new_healthy=sum(n["healthy"] for n in new),
            old_killing=sum(o["killing"] for o in old))

    def healthy() -> int:
        now = situation()
        return now.old_healthy + now.new_healthy

    def act() -> None:
        start, kill = restart_step(bounds, situation())
        victims = sorted((o for o in old if not o["killing"]), key=lambda o: o["healthy"])[:kill]
        assert len(victims) == kill
        for victim in victims:
            victim["killing"] = True
        new.extend({"healthy": False} for _ in range(start))
        assert healthy() >= bounds.healthy_floor, "a kill took healthy capacity below the floor"
        assert len(old) + len(new) <= ceiling
        if start:
            assert len(old) + len(new) <= bounds.max_capacity, "a start went over maximum capacity"
        assert restart_step(bounds, situation()) == (0, 0), "calling again without news must do nothing"

    act()
    for _ in range(4 * (old_count + target + failures) + 4):
        if restart_done(bounds, situation()):
            break
        events = [("healthy", i) for i, n in enumerate(new) if not n["healthy"]]
        events += [("dead", i) for i, o in enumerate(old) if o["killing"]]
        if failures:
            events += [("failed", i) for i, n in enumerate(new) if not n["healthy"]]
        assert events, f"stuck with nothing pending: {situation()} under {bounds}"
        kind, index = data.draw(st.sampled_from(events), label="event")
        if kind == "healthy":
            new[index]["healthy"] = True
        elif kind == "dead":
            old.pop(index)
        else:
            failures -= 1
            new.pop(index)
        act()
    assert restart_done(bounds, situation())
    assert len(new) == target and all(n["healthy"] for n in new) and not old
