"""Blue/green deploys, the pure parts: the spec, the colour apps, the plan, the rollback, the route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consul_templates import routes
from consul_templates.snapshot import ServiceInstance, Snapshot
from marathon_apps.bluegreen import group_apps, plan_change, recorded, rollback_change
from marathon_apps.bluegreen_run import routed
from marathon_apps.plan import make_plan
from marathon_apps.spec import expand
from tests.unit.test_apps_plan import as_marathon_shows, repo_app
from wharf.configrepo import Spec
from wharf.haproxy import StatRow

pytestmark = pytest.mark.unit

WEB = {"id": "/shop/web", "cmd": "httpd v1", "instances": 3, "portDefinitions": [{"port": 10100}],
       "labels": {"wharf.owner": "wharf", "wharf.strategy": "bluegreen", "HAPROXY_DEPLOYMENT_ALT_PORT": "10101",
                  "HAPROXY_0_VHOST": "web.test", "HAPROXY_0_MODE": "http"}}


def _live(definition: dict[str, Any], started: str) -> dict[str, Any]:
    app = dict(definition)
    if "HAPROXY_DEPLOYMENT_GROUP" in app["labels"]:
        app["labels"] = {**app["labels"], "HAPROXY_DEPLOYMENT_STARTED_AT": started}
    return as_marathon_shows(app)


def spec_errors(data: dict[str, Any]) -> list[str]:
    _, errors = expand(Spec("apps/shop/web.yaml", "shop/web", data))
    return [str(e) for e in errors]


def test_the_spec_asks_for_the_ports_both_colours_need() -> None:
    base = {"cmd": "httpd", "strategy": "bluegreen", "lb": {"vhost": "web.test", "port": 10100},
            "labels": {"HAPROXY_DEPLOYMENT_ALT_PORT": "10101"}}
    assert spec_errors(base) == []
    definition, _ = expand(Spec("apps/shop/web.yaml", "shop/web", base))
    assert definition["labels"]["wharf.strategy"] == "bluegreen"
    no_alt = {**base, "labels": {}}
    assert any("HAPROXY_DEPLOYMENT_ALT_PORT" in e for e in (spec_errors(no_alt)))
    same = {**base, "labels": {"HAPROXY_DEPLOYMENT_ALT_PORT": "10100"}}
    assert any("must differ" in e for e in (spec_errors(same)))
    assert any("fixed service port" in e for e in (spec_errors({**base, "lb": {"vhost": "web.test"}})))
    assert any("rolling, bluegreen" in e for e in (spec_errors({**base, "strategy": "canary"})))
    assert any("written by wharf" in e for e in (spec_errors(
        {**base, "labels": {"HAPROXY_DEPLOYMENT_ALT_PORT": "10101", "wharf.previous": "{}"}})))


def test_colours_alternate_ids_and_ports_and_share_the_route_port() -> None:
    first = plan_change(WEB, [])
    assert (first.kind, first.live, first.desired["id"]) == ("bluegreen", None, "/shop/web-blue")
    blue = first.desired
    assert blue["portDefinitions"][0]["port"] == 10100 and blue["labels"]["HAPROXY_0_PORT"] == "10100"
    assert blue["labels"]["HAPROXY_DEPLOYMENT_GROUP"] == "/shop/web"
    assert blue["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"] == "3"
    v2 = {**WEB, "cmd": "httpd v2"}
    second = plan_change(v2, [_live(blue, "2026-12-01T00:00:00.000000")])
    green = second.desired
    assert (second.kind, second.live["id"], green["id"]) == ("bluegreen", "/shop/web-blue", "/shop/web-green")
    assert green["portDefinitions"][0]["port"] == 10101 and green["labels"]["HAPROXY_0_PORT"] == "10100"
    assert [f.path for f in second.fields] == ["cmd"]
    # the colour it replaced is recorded as the group's own definition, stamps left out
    previous = json.loads(green["labels"]["wharf.previous"])
    assert previous["id"] == "/shop/web" and previous["cmd"] == "httpd v1"
    assert previous["portDefinitions"][0]["port"] == 10100
    stamps = {"HAPROXY_DEPLOYMENT_STARTED_AT", "HAPROXY_DEPLOYMENT_COLOUR", "wharf.previous"}
    assert not stamps & set(previous["labels"])
    third = plan_change({**WEB, "cmd": "httpd v3"}, [_live(green, "2026-12-02T00:00:00.000000")])
    assert third.desired["id"] == "/shop/web-blue" and third.desired["portDefinitions"][0]["port"] == 10100


def test_no_change_is_unchanged_and_a_count_scales_the_active_colour_in_place() -> None:
    blue = _live(plan_change(WEB, []).desired, "2026-12-01T00:00:00.000000")
    assert plan_change(WEB, [blue]).kind == "unchanged"
    scaled = plan_change({**WEB, "instances": 5}, [blue])
    assert (scaled.kind, scaled.app_id, [f.path for f in scaled.fields]) == ("scale", "/shop/web-blue", ["instances"])
    assert scaled.desired["instances"] == 5


def test_a_plain_app_switching_to_bluegreen_is_replaced_by_a_colour() -> None:
    plain = as_marathon_shows({k: v for k, v in WEB.items() if k != "labels"} | {"labels": {"wharf.owner": "wharf"}})
    change = plan_change(WEB, [plain])
    assert (change.kind, change.live["id"], change.desired["id"]) == ("bluegreen", "/shop/web", "/shop/web-blue")
    assert change.desired["portDefinitions"][0]["port"] == 10101  # the plain app holds the shared port


def test_make_plan_shows_the_strategy_and_prune_keeps_the_colours() -> None:
    blue = _live(plan_change(WEB, []).desired, "2026-12-01T00:00:00.000000")
    plan = make_plan([repo_app({**WEB, "cmd": "httpd v2"})], [blue], "wharf", prune=True)
    (change,) = plan.changes
    assert change.to_json()["strategy"] == "bluegreen" and change.to_json()["action"] == "bluegreen"
    assert (change.to_json()["from"], change.to_json()["to"]) == ("/shop/web-blue", "/shop/web-green")
    assert plan.counts()["delete"] == 0


def test_rollback_deploys_what_the_active_colour_replaced() -> None:
    blue = _live(plan_change(WEB, []).desired, "2026-12-01T00:00:00.000000")
    with pytest.raises(ValueError, match="records no version before it"):
        rollback_change([blue], "/shop/web")
    green = _live(plan_change({**WEB, "cmd": "httpd v2"}, [blue]).desired, "2026-12-02T00:00:00.000000")
    back = rollback_change([green], "/shop/web")
    assert back is not None and back.desired["id"] == "/shop/web-blue" and back.desired["cmd"] == "httpd v1"
    assert back.desired["portDefinitions"][0]["port"] == 10100  # green holds the alternate port
    assert json.loads(back.desired["labels"]["wharf.previous"])["cmd"] == "httpd v2"
    assert rollback_change([green], "/other") is None
    assert [a["id"] for a in group_apps([green, blue], "/shop/web")] == ["/shop/web-blue", "/shop/web-green"]
    assert recorded(green)["labels"]["wharf.strategy"] == "bluegreen"


def instance(app_id: str, own_port: int, port: int, started: str, **labels: str) -> ServiceInstance:
    meta = {"marathon_app_id": app_id, "service_port": str(own_port), "port_index": "0",
            "HAPROXY_0_PORT": "10100", "HAPROXY_DEPLOYMENT_GROUP": "/shop/web",
            "HAPROXY_DEPLOYMENT_STARTED_AT": started, "HAPROXY_0_MODE": "http", **labels}
    name = app_id.strip("/").replace("/", "-")
    return ServiceInstance(f"n1:{name}.{port}", name, "n1", "127.0.0.1", port, (), meta, "passing")


def test_the_renderer_serves_both_colours_as_the_groups_route_with_the_oldest_labels() -> None:
    found, _ = routes.build_routes(Snapshot.of([
        instance("/shop/web-blue", 10100, 31001, "2026-12-01", HAPROXY_0_VHOST="old.test"),
        instance("/shop/web-green", 10101, 31002, "2026-12-02", HAPROXY_0_VHOST="new.test")]))
    (route,) = found
    assert (route.name, route.port, route.app_id) == ("shop_web_10100", 10100, "/shop/web")
    assert sorted(s.port for s in route.servers) == [31001, 31002]
    assert route.vhosts == ("old.test",)  # the oldest colour's labels, as marathon-lb's


def test_routed_reads_a_backend_and_ignores_an_haproxy_without_it() -> None:
    def row(server: str, addr: str, status: str) -> StatRow:
        return StatRow("shop_web_10100", server, {"addr": addr, "status": status})
    rows = [row("BACKEND", "", "UP"), row("s1", "127.0.0.2:31001", "UP"), row("s2", "127.0.0.2:31002", "MAINT"),
            row("s3", "127.0.0.2:31003", "no check")]
    assert routed(rows, "shop_web_10100", {"127.0.0.2:31001", "127.0.0.2:31003"}) is True
    assert routed(rows, "shop_web_10100", {"127.0.0.2:31001", "127.0.0.2:31002"}) is False
    assert routed(rows, "other_10200", {"127.0.0.2:31001"}) is None
