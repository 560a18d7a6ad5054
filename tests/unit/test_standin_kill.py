"""Killing tasks in the Marathon and Mesos stand-ins, without a cluster: Marathon's kill endpoints
(`scale`, `wipe`, `force`), the kill log, kill reasons of deployments, the kill policy a task gets,
and the Mesos master keeping a dead task's host ports out of offers for a while."""

from __future__ import annotations

import json
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devcluster.httpapi import Request, Response, Router
from devcluster.marathon.apps import Instance
from devcluster.marathon.launch import RemainingOffer, app_id_of, fit, new_instance_id, task_id_for, task_info
from devcluster.marathon.scheduler import CAPABILITIES
from devcluster.marathon.server import MarathonApi
from devcluster.marathon.state import MarathonState
from devcluster.mesos.master import Master
from devcluster.mesos.model import StatusReport
from devcluster.mesos.offers import make_agents
from devcluster.mesos.resources import Resources
from devcluster.mesos.zk import master_info
from wharf.contracts.marathon_app import normalize_app

pytestmark = pytest.mark.unit


# --- the Marathon stand-in's API over its state, no framework ------------------------------------

class Stand:
    """A Marathon stand-in's state and router; tasks are added as if Mesos had launched them."""

    def __init__(self) -> None:
        self.state = MarathonState(framework_id="fw")
        self.router: Router = MarathonApi(self.state, lambda: "127.0.0.1:8080").router()  # type: ignore[arg-type]
        self.clock = 100.0

    def call(self, method: str, target: str, body: Any = None) -> Response:
        parts = urlsplit(target)
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.router(Request(method, parts.path, parse_qs(parts.query, keep_blank_values=True), Message(),
                                   data))

    def app(self, app_id: str, instances: int, **extra: Any) -> list[str]:
        """Create the app and give it `instances` running tasks (started one second apart); their ids."""
        created = self.call("POST", "/v2/apps", {"id": app_id, "cmd": "sleep 100", "cpus": 0.01, "mem": 8,
                                                 "instances": instances, **extra})
        assert created.status == 201, created.body
        tasks = [self.task(app_id, f"127.0.0.{2 + n % 2}") for n in range(instances)]
        self.settle()
        return tasks

    def task(self, app_id: str, host: str) -> str:
        self.clock += 1
        stored = self.state.apps[app_id]
        instance_id = new_instance_id(app_id)
        inst = Instance(task_id_for(instance_id), instance_id, app_id, stored["version"],
                        stored["versionInfo"]["lastConfigChangeAt"], "S0", host, (31000,), [], {},
                        self.clock, state="TASK_RUNNING", started_at=self.clock)
        self.state.instances[inst.task_id] = inst
        return inst.task_id

    def settle(self) -> None:
        """Let every deployment finish: the loop's ticks, with killed tasks gone as Mesos reports them."""
        for _ in range(10):
            self.state._cycle(self.clock)
            for task_id in [t for t, i in self.state.instances.items() if i.killing]:
                self.state.instances.pop(task_id)
        assert not self.state.deployments

    def killing(self) -> set[str]:
        return {t for t, i in self.state.instances.items() if i.killing}


def body(response: Response) -> Any:
    return json.loads(response.body)


def test_delete_tasks_with_scale_kills_exactly_those_and_lowers_instances_in_one_deployment() -> None:
    stand = Stand()
    first, second, third, fourth = stand.app("/web", 4)
    other = stand.app("/other", 1)
    answer = stand.call("POST", "/v2/tasks/delete?scale=true", {"ids": [first, third, *other]})
    assert answer.status == 200
    result = body(answer)
    assert set(result) == {"deploymentId", "version"}
    assert dict(answer.headers)["Marathon-Deployment-Id"] == result["deploymentId"]
    (plan,) = stand.state.deployments.values()
    assert plan.plan.id == result["deploymentId"] and set(plan.plan.affected_apps) == {"/web", "/other"}
    assert stand.state.apps["/web"]["instances"] == 2 and stand.state.apps["/other"]["instances"] == 0
    assert stand.state.apps["/web"]["version"] == result["version"]
    assert stand.killing() == {first, third, *other}
    stand.settle()
    assert {t.task_id for t in stand.state.tasks_of("/web")} == {second, fourth}  # the others are untouched
    assert sorted((k["taskId"], k["appId"], k["reason"]) for k in stand.state.kills()) == sorted([
        (first, "/web", "KillingTasksViaApi"), (third, "/web", "KillingTasksViaApi"),
        (other[0], "/other", "KillingTasksViaApi")])


def test_a_task_already_being_killed_does_not_lower_the_count_twice() -> None:
    stand = Stand()
    first, second, _ = stand.app("/web", 3)
    stand.call("POST", "/v2/tasks/delete?scale=true&force=true", {"ids": [first]})
    stand.call("POST", "/v2/tasks/delete?scale=true&force=true", {"ids": [first, second]})
    assert stand.state.apps["/web"]["instances"] == 1
    assert [k["taskId"] for k in stand.state.kills()] == [first, second]


def test_delete_tasks_without_scale_answers_the_tasks_and_keeps_the_instances() -> None:
    stand = Stand()
    first, second = stand.app("/web", 2)
    answer = stand.call("POST", "/v2/tasks/delete", {"ids": [second, "web.instance-gone._app.1", "not_known"]})
    assert answer.status == 200 and "Marathon-Deployment-Id" not in dict(answer.headers)
    (task,) = body(answer)["tasks"]
    assert task["id"] == second and task["appId"] == "/web" and task["state"] == "TASK_RUNNING"
    assert stand.state.apps["/web"]["instances"] == 2 and stand.killing() == {second}
    assert not stand.state.deployments
    assert stand.state._wanted()["/web"] == 1  # a replacement is launched at once
    assert body(stand.call("POST", "/v2/tasks/delete", {"ids": ["web.instance-gone._app.1"]})) == {"tasks": []}


def test_wipe_forgets_the_tasks_at_once() -> None:
    stand = Stand()
    first, second = stand.app("/web", 2)
    answer = stand.call("POST", "/v2/tasks/delete?wipe=true", {"ids": [first]})
    assert [t["id"] for t in body(answer)["tasks"]] == [first]
    assert [t["id"] for t in body(stand.call("GET", "/v2/tasks"))["tasks"]] == [second]
    assert stand.state.kills()[0]["taskId"] == first


def test_kill_requests_marathon_refuses_get_its_answers() -> None:
    stand = Stand()
    (first,) = stand.app("/web", 1)
    for target in ("/v2/tasks/delete?scale=true&wipe=true", "/v2/apps/web/tasks?scale=true&wipe=true",
                   f"/v2/apps/web/tasks/{first}?scale=true&wipe=true"):
        method = "POST" if target.startswith("/v2/tasks") else "DELETE"
        refused = stand.call(method, target, {"ids": [first]})
        assert (refused.status, body(refused)) == (400, {"message": "You cannot use scale and wipe at the same time."})
    invalid = stand.call("POST", "/v2/tasks/delete", {"ids": [first, "nope"]})
    assert invalid.status == 400 and body(invalid)["message"].startswith("Invalid task id 'nope'.")
    missing = stand.call("POST", "/v2/tasks/delete", {"taskIds": [first]})
    assert (missing.status, body(missing)["details"]) == (400, [{"path": "/ids", "errors": ["error.path.missing"]}])
    assert stand.call("POST", "/v2/tasks/delete", b"{").status == 400
    unknown = stand.call("DELETE", "/v2/apps/web/tasks/web.instance-nope._app.1")
    assert (unknown.status, body(unknown)) == (404, {"message": "Task 'web.instance-nope._app.1' does not exist"})
    assert body(stand.call("DELETE", "/v2/apps/nothing/tasks")) == {"message": "App '/nothing' does not exist"}
    assert stand.killing() == set() and stand.state.kills() == []
    # with scale, a task id of no live task still answers with a deployment, which changes nothing
    assert set(body(stand.call("DELETE", "/v2/apps/web/tasks/web.instance-nope._app.1?scale=true"))) == {
        "deploymentId", "version"}
    assert stand.state.apps["/web"]["instances"] == 1


def test_a_kill_with_scale_waits_for_a_running_deployment_unless_forced() -> None:
    stand = Stand()
    first, _ = stand.app("/web", 2)
    assert stand.call("PATCH", "/v2/apps/web", {"cmd": "sleep 101"}).status == 200  # a restart, in progress
    locked = stand.call("DELETE", f"/v2/apps/web/tasks/{first}?scale=true")
    assert locked.status == 409 and body(locked)["deployments"]
    assert stand.killing() == set() and stand.state.apps["/web"]["instances"] == 2  # nothing happened
    forced = stand.call("DELETE", f"/v2/apps/web/tasks/{first}?scale=true&force=true")
    assert forced.status == 200 and stand.killing() == {first} and stand.state.apps["/web"]["instances"] == 1


def test_app_tasks_are_killed_by_host_or_all_at_once() -> None:
    stand = Stand()
    tasks = stand.app("/web", 4)
    on_a = [t for t in tasks if stand.state.instances[t].host == "127.0.0.2"]
    answer = stand.call("DELETE", "/v2/apps/web/tasks?host=127.0.0.2&scale=true")
    assert set(body(answer)) == {"deploymentId", "version"}
    assert stand.killing() == set(on_a) and stand.state.apps["/web"]["instances"] == 2
    stand.settle()
    everything = stand.call("DELETE", "/v2/apps/web/tasks")
    assert {t["id"] for t in body(everything)["tasks"]} == set(tasks) - set(on_a)
    assert stand.state.apps["/web"]["instances"] == 2


def test_one_task_is_killed_by_its_id_and_answered_alone() -> None:
    stand = Stand()
    first, second = stand.app("/web", 2)
    answer = stand.call("DELETE", f"/v2/apps/web/tasks/{second}")
    assert answer.status == 200 and body(answer)["task"]["id"] == second
    assert stand.killing() == {second}


def test_deployments_log_their_kills_with_marathons_reasons_and_oldest_first_is_honoured() -> None:
    stand = Stand()
    oldest, middle, youngest = stand.app("/web", 3, killSelection="OLDEST_FIRST")
    assert stand.call("PATCH", "/v2/apps/web", {"instances": 1}).status == 200
    stand.settle()
    assert [t.task_id for t in stand.state.tasks_of("/web")] == [youngest]
    assert [(k["taskId"], k["reason"]) for k in stand.state.kills()] == [
        (oldest, "DeploymentScaling"), (middle, "DeploymentScaling")]
    stand.app("/gone", 1)
    assert stand.call("DELETE", "/v2/apps/gone").status == 200
    stand.settle()
    assert stand.state.kills("/gone")[0]["reason"] == "DeletingApp"
    log = body(stand.call("GET", "/_standin/kills?appId=/web"))
    assert [k["taskId"] for k in log] == [oldest, middle]
    assert set(log[0]) == {"taskId", "appId", "at", "reason"} and log[0]["at"].endswith("Z")
    assert len(body(stand.call("GET", "/_standin/kills"))) == 3


def test_marathon_registers_for_task_killing_and_says_so_in_its_info() -> None:
    assert "TASK_KILLING_STATE" in CAPABILITIES
    stand = Stand()
    stand.state.master = "zk://127.0.0.1:2181/mesos"  # type: ignore[attr-defined]
    stand.state.name, stand.state.failover_timeout = "marathon", 60  # type: ignore[attr-defined]
    assert body(stand.call("GET", "/v2/info"))["marathon_config"]["features"] == ["task_killing"]


# --- what a task is told about its kill ------------------------------------------------------------

def launched(**fields: Any) -> dict[str, Any]:
    app = normalize_app({"id": "/web", "cmd": "sleep 1", "cpus": 0.1, "mem": 8, **fields})
    app["version"] = "2026-01-01T00:00:00.000Z"
    offer = RemainingOffer("o1", "S0", "127.0.0.2", 1, 512, 0, ((31000, 31009),))
    got = fit(app, offer, [])
    assert got is not None
    return task_info(app, offer, got, "t1")


@pytest.mark.parametrize(("grace", "nanoseconds"), [(3, 3_000_000_000), (0.5, 500_000_000), (0, 0)])
def test_the_kill_grace_period_goes_into_the_task_as_its_kill_policy(grace: float, nanoseconds: int) -> None:
    info = launched(taskKillGracePeriodSeconds=grace)
    assert info["kill_policy"] == {"grace_period": {"nanoseconds": nanoseconds}}
    assert "kill_policy" not in launched()  # Mesos's default grace then


def test_a_task_id_names_its_app() -> None:
    assert app_id_of(task_id_for(new_instance_id("/shop/web"))) == "/shop/web"
    assert app_id_of("legacy_app.2f3c") == "/legacy/app" and app_id_of("nope") is None


# --- the Mesos master: a dead task's host ports stay out of offers for a while ----------------------

T0 = 1000.0


def master_with_task(quarantine: float) -> tuple[Master, str, int]:
    """A one-agent master with one framework whose task holds the agent's first port; (master, framework, port)."""
    master = Master("m", make_agents("m", [(31000, 31099)]), master_info("m", "127.0.0.1", 5050, "127.0.0.1", "1.11.0"),
                    started=T0, port_quarantine=quarantine)
    effects = master.subscribe({"framework_info": {"user": "root", "name": "fw"}}, None, "s1", T0)
    framework_id = effects.events[0][1]["subscribed"]["framework_id"]["value"]
    (offer,) = offered(master, T0, keep=True)
    port = 31000
    task = {"name": "t1", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"], "command": {"value": "true"},
            "resources": [*Resources.of(cpus=0.1, mem=8).to_proto(),
                          {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": port, "end": port}]}}]}
    accept = {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
              "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}
    master.accept(master.frameworks[framework_id], accept, T0)
    return master, framework_id, port


def offered(master: Master, now: float, keep: bool = False) -> list[dict[str, Any]]:
    """The offers a tick at `now` makes; unless kept, they are declined at once (no filter)."""
    offers = [o for _, ev in master.tick(now).events if ev["type"] == "OFFERS" for o in ev["offers"]["offers"]]
    for offer in [] if keep else offers:
        master.offers.pop(offer["id"]["value"], None)
    return offers


def offered_ports(offers: list[dict[str, Any]]) -> set[int]:
    return {p for o in offers for r in Resources.from_proto(o["resources"]).ranges.get("ports", ())
            for p in range(r[0], r[1] + 1)}


def test_a_dead_tasks_host_port_is_not_offered_again_within_the_quarantine() -> None:
    master, framework_id, port = master_with_task(quarantine=5.0)
    assert port not in offered_ports(offered(master, T0 + 1))
    master.agent_update(StatusReport(framework_id, "t1", "TASK_FINISHED"), T0 + 2)
    assert master.next_deadline() == T0 + 7
    (soon,) = offered(master, T0 + 2.5)
    assert port not in offered_ports([soon]) and Resources.from_proto(soon["resources"]).scalar("cpus") == 4
    assert port not in offered_ports(offered(master, T0 + 6.9))
    assert port in offered_ports(offered(master, T0 + 7))
    assert master.quarantined == []


def test_without_a_quarantine_a_freed_port_comes_back_at_once() -> None:
    master, framework_id, port = master_with_task(quarantine=0)
    master.agent_update(StatusReport(framework_id, "t1", "TASK_KILLED"), T0 + 2)
    assert port in offered_ports(offered(master, T0 + 2))


def test_the_ports_of_a_removed_frameworks_tasks_are_held_back_too() -> None:
    master, framework_id, port = master_with_task(quarantine=5.0)
    other = master.subscribe({"framework_info": {"user": "root", "name": "other"}}, None, "s2", T0)
    other_id = other.events[0][1]["subscribed"]["framework_id"]["value"]
    master.teardown(master.frameworks[framework_id], T0 + 1)
    assert master.frameworks[other_id] and port not in offered_ports(offered(master, T0 + 2))
    assert port in offered_ports(offered(master, T0 + 6))
