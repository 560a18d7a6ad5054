"""`wharf trace`'s judgement, pure: each link breaks on its own evidence and names what to check."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from observe.gather import decisions, registrations
from observe.links import CatalogEntry, Check, ConfigFile, View, app_ids, trace
from wharf.haproxy import Applied, StatRow

pytestmark = pytest.mark.unit

NOW = 1_800_000_000.0


def task(n: int, alive: bool = True, failure: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"alive": alive}
    if failure:
        result.update(lastFailure="2027-01-15T08:00:00.000Z", lastFailureCause=failure)
    return {"id": f"web.instance-{n}._app.1", "appId": "/web", "host": "127.0.0.2", "ports": [31000 + n],
            "state": "TASK_RUNNING", "healthCheckResults": [result]}


def app(**extra: Any) -> dict[str, Any]:
    base = {"id": "/web", "instances": 2, "tasksRunning": 2, "tasksHealthy": 2, "version": "2027-01-15T08:00:00.000Z",
            "portDefinitions": [{"port": 10000}], "healthChecks": [{"protocol": "HTTP"}],
            "labels": {"wharf.commit": "3f2a9c1d00000000"}, "tasks": [task(1), task(2)]}
    return {**base, **extra}


def reg(n: int, *checks: Check) -> CatalogEntry:
    return CatalogEntry(f"h:mesos-{n}:31000", "web", "node1", "127.0.0.2", 31000 + n,
                        {"marathon_app_id": "/web", "mesos_task_id": f"web.instance-{n}._app.1"},
                        checks or (Check(f"service:h:mesos-{n}:31000", "Marathon health check 0 (HTTP)", "passing"),))


def row(n: int, status: str = "UP") -> StatRow:
    return StatRow("web_10000", f"web_10000-{n}", {"addr": f"127.0.0.2:{31000 + n}", "status": status, "scur": "0"})


def view(**changes: Any) -> View:
    base = View(NOW, {"/web": app()}, [], [reg(1), reg(2)], {"socket": [row(1), row(2)]})
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_every_link_holds_and_the_json_says_so() -> None:
    found = trace(view(), "/web")
    assert found.broken is None
    assert [(link.name, link.state) for link in found.links] == [
        ("config", "ok"), ("marathon", "ok"), ("tasks", "ok"), ("consul", "ok"), ("haproxy", "ok"),
        ("autoscale", "none")]
    data = found.to_json()
    assert (data["ok"], data["broken"], data["links"][4]["evidence"]["backends"]) == (True, None, ["web_10000"])


def test_a_missing_app_and_a_stuck_deployment_break_marathon() -> None:
    assert trace(view(apps={}), "/web").broken.name == "marathon"  # type: ignore[union-attr]
    stuck = view(apps={"/web": app(tasksHealthy=0)},
                 deployments=[{"id": "d1", "affectedApps": ["/web"], "version": "2027-01-15T07:59:00.000Z"}])
    broken = trace(stuck, "/web").broken
    assert broken is not None and broken.name == "marathon" and "deployment d1 in progress" in broken.summary
    assert "0/2 healthy" in broken.summary


def test_a_task_failing_its_health_check_breaks_tasks() -> None:
    sick = app(tasksHealthy=1, tasks=[task(1), task(2, alive=False, failure="HTTP status 500")])
    broken = trace(view(apps={"/web": sick}), "/web").broken
    assert broken is not None and broken.name == "tasks" and "HTTP status 500" in broken.summary
    assert "127.0.0.2:31002" in broken.summary


def test_unregistered_tasks_a_maintenance_and_consul_down_break_consul() -> None:
    broken = trace(view(registrations=[]), "/web").broken
    assert broken is not None and broken.name == "consul"
    assert broken.summary == "2 tasks running on 127.0.0.2, none registered in Consul"
    assert broken.check == "is `wharf registrator run` running on 127.0.0.2?"
    held = reg(1, Check("_service_maintenance:h:mesos-1:31000", "Service Maintenance Mode", "critical",
                        notes="db move"))
    broken = trace(view(registrations=[held, reg(2)]), "/web").broken
    assert broken is not None and broken.name == "consul" and "db move" in broken.summary
    draining = reg(1, Check("_service_maintenance:x", "m", "critical", notes="wharf: draining before kill"))
    consul = trace(view(registrations=[draining, reg(2)]), "/web").links[3]
    assert consul.state == "warn" and "1 draining" in consul.summary  # a drain in progress is not a break
    assert trace(view(unreachable={"consul": "refused"}), "/web").broken.name == "consul"  # type: ignore[union-attr]


def test_out_of_rotation_and_a_stale_config_break_haproxy() -> None:
    broken = trace(view(haproxies={"socket": [row(1), row(2, "MAINT")]}), "/web").broken
    assert broken is not None and broken.name == "haproxy" and "127.0.0.2:31002" in broken.summary
    old = Applied(100, 1, NOW - 60, "reload")
    stale = ConfigFile("/etc/haproxy/haproxy.cfg", NOW - 5, old, matches=False)
    broken = trace(view(config=stale), "/web").broken
    assert broken is not None and "older config than /etc/haproxy/haproxy.cfg" in broken.summary
    assert trace(view(config=ConfigFile("x", NOW, old, True)), "/web").broken is None
    assert trace(view(haproxies={}), "/web").links[4].state == "none"


def test_the_autoscaler_pinned_at_its_maximum_breaks_autoscale() -> None:
    scaled = app(labels={"wharf.autoscale.target_rps": "50", "wharf.autoscale.max": "2"})
    decision = {"app": "/web", "at": NOW - 10, "action": "hold", "current": 2, "target": 2, "recommendation": 5,
                "min": 1, "max": 2, "rps": 240.0, "target_rps": 50.0, "reason": "..."}
    broken = trace(view(apps={"/web": scaled}, decisions={"/web": decision}), "/web").broken
    assert broken is not None and broken.name == "autoscale" and "held at its maximum 2" in broken.summary
    calm = {**decision, "recommendation": 2}
    assert trace(view(apps={"/web": scaled}, decisions={"/web": calm}), "/web").broken is None
    assert trace(view(apps={"/web": scaled}), "/web").links[5].state == "warn"  # no decision recorded


def test_a_bluegreen_group_is_traced_as_one_app() -> None:
    blue = app(id="/web-blue", labels={"HAPROXY_DEPLOYMENT_GROUP": "/web", "HAPROXY_0_PORT": "10000"})
    for t in blue["tasks"]:
        t["appId"] = "/web-blue"
    regs = [CatalogEntry(r.id, r.service, r.node, r.address, r.port, {**r.meta, "marathon_app_id": "/web-blue"},
                         r.checks) for r in (reg(1), reg(2))]
    grouped = view(apps={"/web-blue": blue}, registrations=regs)
    assert app_ids(grouped) == ["/web"]
    found = trace(grouped, "/web")
    assert found.broken is None and found.links[4].evidence["backends"] == ["web_10000"]


def test_the_catalog_reads_into_registrations_and_decisions() -> None:
    nodes = [{"Node": {"Node": "n1", "Address": "127.0.0.2"},
              "Services": {"s1": {"ID": "s1", "Service": "web", "Port": 31001, "Address": "", "Meta": {"k": "v"}}}}]
    checks = [{"Node": "n1", "ServiceID": "s1", "CheckID": "c1", "Name": "http", "Status": "critical", "Output": "500"},
              {"Node": "n1", "ServiceID": "", "CheckID": "serfHealth", "Name": "Serf", "Status": "passing"}]
    (found,) = registrations(nodes, checks)
    assert (found.address, found.status) == ("127.0.0.2", "critical")
    assert [c.id for c in found.checks] == ["serfHealth", "c1"]
    entries = [{"Key": "wharf/autoscale/decisions/web", "Value": b'{"app": "/web", "action": "hold"}'},
               {"Key": "wharf/autoscale/decisions/bad", "Value": b"not json"}]
    assert decisions(entries) == {"/web": {"app": "/web", "action": "hold"}}
    assert copy.deepcopy(decisions(None)) == {}


@pytest.mark.parametrize("argv, says", [
    ([], "APP: give one app, or --all"),
    (["/web", "--all"], "APP: give one app, or --all"),
    (["/Bad App"], "APP: "),
])
def test_trace_refuses_bad_input_in_one_line_with_exit_2(argv: list[str], says: str) -> None:
    from click.testing import CliRunner

    from wharf.cli import cli

    result = CliRunner().invoke(cli, ["--marathon-url", "http://127.0.0.1:9", "trace", *argv])
    assert result.exit_code == 2 and says in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_trace_without_marathon_names_the_setting() -> None:
    from click.testing import CliRunner

    from wharf.cli import cli

    result = CliRunner(env={"MARATHON_URL": ""}).invoke(cli, ["trace", "/web"])
    assert result.exit_code == 2 and "MARATHON_URL: not set" in result.output
