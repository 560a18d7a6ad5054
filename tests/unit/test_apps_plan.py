"""Deploy order and plans: what changes, field by field, ignoring what Marathon fills in."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devcluster.marathon import apps as standin_apps
from marathon_apps import graph
from marathon_apps.plan import MISSING, FieldChange, diff_app, make_plan
from marathon_apps.spec import App
from wharf.configrepo import Spec
from wharf.contracts.marathon_app import normalize_app

pytestmark = pytest.mark.unit


def repo_app(definition: dict[str, Any]) -> App:
    definition = {"labels": {"wharf.owner": "wharf"}, **definition}
    return App(definition["id"], definition, Spec(f"apps{definition['id']}.yaml", definition["id"][1:], {}))


def as_marathon_shows(definition: dict[str, Any], version: str = "2026-01-01T00:00:00.000Z",
                      **extra: Any) -> dict[str, Any]:
    """What GET /v2/apps returns for it: normalized, service ports given, version stamped, counts."""
    app = normalize_app(definition)
    standin_apps.assign_service_ports(app, [], None)
    standin_apps.stamp(app, version, None, True)
    app.update(tasksRunning=app["instances"], tasksHealthy=0, tasksStaged=0, tasksUnhealthy=0, deployments=[],
               role="*")
    app.update(extra)
    return app


WEB = {"id": "/web", "cmd": "httpd", "instances": 2, "portDefinitions": [{"port": 0, "name": "http"}],
       "healthChecks": [{"protocol": "HTTP", "path": "/"}], "dependencies": ["/api"]}
API = {"id": "/api", "cmd": "api", "env": {"A": "1"}}


def test_levels_put_each_app_after_its_dependencies() -> None:
    deps = {"/web": ["/api"], "/api": ["/db"], "/db": [], "/cron": [], "/ext": ["/elsewhere"]}
    assert graph.levels(deps) == [["/cron", "/db", "/ext"], ["/api"], ["/web"]]
    assert graph.missing(deps) == {"/ext": ["/elsewhere"]}
    assert graph.find_cycle(deps) is None
    assert graph.find_cycle({"/a": ["/b"], "/b": ["/c"], "/c": ["/a"]}) == ["/a", "/b", "/c", "/a"]
    with pytest.raises(ValueError, match="dependency cycle: /a -> /b -> /a"):
        graph.levels({"/a": ["/b"], "/b": ["/a"]})


@given(st.dictionaries(st.sampled_from([f"/app{i}" for i in range(8)]),
                       st.lists(st.sampled_from([f"/app{i}" for i in range(8)]), max_size=3), max_size=8))
def test_order_is_topological_whenever_there_is_no_cycle(deps: dict[str, list[str]]) -> None:
    deps = {a: [d for d in ds if d in deps] for a, ds in deps.items()}
    if graph.find_cycle(deps):
        with pytest.raises(ValueError):
            graph.order(deps)
        return
    order = graph.order(deps)
    assert sorted(order) == sorted(deps)
    for app, wanted in deps.items():
        assert all(order.index(d) < order.index(app) for d in wanted)


def test_a_deployed_app_as_marathon_shows_it_is_unchanged() -> None:
    live = [as_marathon_shows(dict(API, labels={"wharf.owner": "wharf", "wharf.commit": "abc"})),
            as_marathon_shows(dict(WEB, labels={"wharf.owner": "wharf", "wharf.commit": "abc"}))]
    plan = make_plan([repo_app(WEB), repo_app(API)], live, "wharf")
    assert [(c.app_id, c.kind) for c in plan.changes] == [("/api", "unchanged"), ("/web", "unchanged")]
    assert plan.todo() == []


def test_one_changed_field_is_the_only_difference() -> None:
    live = as_marathon_shows(dict(WEB, labels={"wharf.owner": "wharf"}))
    changed = dict(WEB, healthChecks=[{"protocol": "HTTP", "path": "/health"}])
    assert diff_app(repo_app(changed).normalized(), live) == [FieldChange("healthChecks[0].path", "/", "/health")]


def test_removed_env_and_label_keys_count_and_so_does_a_removed_field() -> None:
    live = as_marathon_shows(dict(API, labels={"wharf.owner": "wharf", "x": "1"}, user="nobody"))
    wanted = repo_app(dict(API, env={})).normalized()
    assert diff_app(wanted, live) == [FieldChange("env.A", "1", MISSING), FieldChange("labels.x", "1", MISSING),
                                      FieldChange("user", "nobody", MISSING)]


def test_instances_alone_is_a_scale_and_autoscaled_counts_are_left_alone() -> None:
    live = as_marathon_shows(dict(API, labels={"wharf.owner": "wharf"}, instances=4))
    plan = make_plan([repo_app(dict(API, instances=2))], [live], "wharf")
    (change,) = plan.changes
    assert change.kind == "scale" and change.fields == (FieldChange("instances", 4, 2),)
    scaled = {"wharf.owner": "wharf", "wharf.autoscale.min": "2", "wharf.autoscale.max": "6"}
    live = as_marathon_shows(dict(API, labels=scaled, instances=4))
    assert make_plan([repo_app(dict(API, labels=scaled, instances=2))], [live], "wharf").todo() == []
    live = as_marathon_shows(dict(API, labels=scaled, instances=9))  # outside the bounds: brought back
    assert make_plan([repo_app(dict(API, labels=scaled, instances=2))], [live], "wharf").todo()[0].kind == "scale"


def test_creates_wait_for_changed_dependencies_and_deletes_need_prune_and_ownership() -> None:
    mine = as_marathon_shows({"id": "/old", "cmd": "x", "labels": {"wharf.owner": "wharf"}})
    theirs = as_marathon_shows({"id": "/manual", "cmd": "x"})
    other_repo = as_marathon_shows({"id": "/other", "cmd": "x", "labels": {"wharf.owner": "team-b"}})
    live = [mine, theirs, other_repo]
    plan = make_plan([repo_app(WEB), repo_app(API)], live, "wharf")
    assert [(c.app_id, c.kind, c.after) for c in plan.changes] == [("/api", "create", ()),
                                                                  ("/web", "create", ("/api",))]
    pruned = make_plan([repo_app(WEB), repo_app(API)], live, "wharf", prune=True)
    assert [(c.app_id, c.kind) for c in pruned.changes][-1] == ("/old", "delete")
    assert pruned.counts() == {"create": 2, "update": 0, "scale": 0, "bluegreen": 0, "delete": 1, "unchanged": 0}


def test_an_unchanged_dependency_is_not_waited_for() -> None:
    live = [as_marathon_shows(dict(API, labels={"wharf.owner": "wharf"}))]
    plan = make_plan([repo_app(WEB), repo_app(API)], live, "wharf")
    assert [(c.app_id, c.kind, c.after) for c in plan.changes] == [("/api", "unchanged", ()),
                                                                  ("/web", "create", ())]


def test_deletes_take_dependents_first() -> None:
    live = [as_marathon_shows({"id": "/db", "cmd": "x", "labels": {"wharf.owner": "wharf"}}),
            as_marathon_shows({"id": "/app", "cmd": "x", "dependencies": ["/db"], "labels": {"wharf.owner": "wharf"}})]
    plan = make_plan([], live, "wharf", prune=True)
    assert [(c.app_id, c.after) for c in plan.changes] == [("/app", ()), ("/db", ("/app",))]


def test_plan_json() -> None:
    live = as_marathon_shows(dict(API, labels={"wharf.owner": "wharf"}, instances=4))
    data = make_plan([repo_app(dict(API, instances=2))], [live], "wharf").to_json()
    assert data["changes"] == [{"app": "/api", "action": "scale", "after": [], "strategy": "rolling",
                                "version": live["version"], "fields": [{"field": "instances", "old": 4, "new": 2}]}]
