"""The Marathon stand-in as a framework of the Mesos stand-in, held to Marathon's schema, RAML and client.

Everything runs for real: ZooKeeper (the master registers there, Marathon finds it there), the
Mesos stand-in's agents running Docker containers and host processes, real health checks.
Every app sent is first validated against upstream `AppDefinition.json` (Draft 4), when it is there.

With MARATHON_URL set (the first of several; `http://user:pass@host:port` for basic auth) the tests
of the API run against that real Marathon, and touch only the apps they create; tests of what only
stand-ins on this machine show are then skipped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from devcluster.marathon.standin import MarathonStandin
from devcluster.mesos.agents import OWNER_LABEL
from tests.conftest import Endpoint, stand_in_only
from tests.polling import wait_for
from tests.upstream import optional

pytestmark = pytest.mark.contract

IMAGE = "wharf/busybox:latest"
V2 = ("marathon", "docs", "docs", "rest-api", "public", "api", "v2")


# --- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def app_schema() -> jsonschema.Draft4Validator | None:
    """Marathon's `AppDefinition.json`; None without the upstream artifacts (apps then go unchecked)."""
    path = optional(*V2, "schema", "AppDefinition.json")
    return None if path is None else jsonschema.Draft4Validator(json.loads(path.read_text()))


# Marathon (the fixture `marathon`) and the Mesos master it runs on come from tests/conftest.py.
STANDINS_HERE = ("MARATHON_URL", "MESOS_MASTER")  # tests that look at this machine need both as stand-ins
ISSUED: set[str] = set()  # every app id `unique()` gave out: what a test may clean up on a real Marathon


class Api:
    """Plain HTTP against Marathon; ``post_app`` checks the app against the upstream schema first (if present)."""

    def __init__(self, url: str, schema: jsonschema.Draft4Validator | None,
                 auth: tuple[str, str] | None = None) -> None:
        self.url, self.schema, self.auth = url, schema, auth

    def call(self, method: str, path: str, body: Any = None, data: bytes | None = None,
             **params: Any) -> requests.Response:
        return requests.request(method, self.url + path, json=body, data=data, params=params, timeout=10,
                                auth=self.auth)

    def checked(self, app: dict[str, Any]) -> dict[str, Any]:
        if self.schema is not None:
            self.schema.validate(app)
        return app

    def post_app(self, app: dict[str, Any]) -> requests.Response:
        return self.call("POST", "/v2/apps", self.checked(app))

    def app(self, app_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/v2/apps{app_id}", embed="app.tasks")
        assert response.status_code == 200, response.text
        return dict(response.json()["app"])

    def deployed(self, app_id: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the app has no deployment left; returns it."""
        return wait_for(lambda: (a := self.app(app_id)) and not a["deployments"] and a, timeout,
                        f"the deployment of {app_id}")


@pytest.fixture
def api(marathon: Endpoint, app_schema: jsonschema.Draft4Validator | None) -> Iterator[Api]:
    client = Api(marathon.url, app_schema, marathon.auth)
    yield client
    if marathon.real:  # only what the tests made
        ours = [app["id"] for app in client.call("GET", "/v2/apps").json()["apps"] if app["id"] in ISSUED]
    else:
        ours = [app["id"] for app in client.call("GET", "/v2/apps").json()["apps"]]
    for app_id in ours:
        client.call("DELETE", f"/v2/apps{app_id}", force="true")
    wait_for(lambda: not [t for t in client.call("GET", "/v2/tasks").json()["tasks"]
                          if not marathon.real or t["appId"] in ISSUED], 60, "every task to end")


def unique(name: str) -> str:
    app_id = f"/{name}-{uuid.uuid4().hex[:6]}"
    ISSUED.add(app_id)
    return app_id


def app_ids(api: Api) -> set[str]:
    """The ids of the apps Marathon has now."""
    return {app["id"] for app in api.call("GET", "/v2/apps").json()["apps"]}


def deployments(marathon: Endpoint, api: Api, *app_ids: str) -> list[dict[str, Any]]:
    """`/v2/deployments`; on a real Marathon, only those of the given apps (others may be deploying)."""
    plans = api.call("GET", "/v2/deployments").json()
    return [p for p in plans if not marathon.real or set(p["affectedApps"]) & set(app_ids)]


class Events:
    """Reads `/v2/events` in a thread; ``events`` holds what came, in order."""

    def __init__(self, marathon: Endpoint, *types: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.response = requests.get(marathon.url + "/v2/events", params={"event_type": list(types)}, stream=True,
                                     headers={"Accept": "text/event-stream"}, timeout=(5, None),
                                     auth=marathon.auth)
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                self.lines.append(line)
                if line.startswith("data:"):
                    self.events.append(json.loads(line[5:]))
        except (requests.RequestException, AttributeError, ValueError):
            pass

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e["eventType"] == kind
                and all(e.get(k) == v for k, v in match.items())]

    def close(self) -> None:
        self.response.close()


def sleeper(app_id: str, instances: int = 1, **extra: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 3600", "cpus": 0.01, "mem": 8, "instances": instances, **extra}


def containers(docker_engine: Any, mesos: Endpoint) -> list[Any]:
    client = docker_engine.client()
    try:
        return list(client.containers.list(filters={"label": f"{OWNER_LABEL}={mesos.standin.state_dir}"}))
    finally:
        client.close()


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return str(resp.read().decode())
    except OSError:
        return None


# --- the Python client ------------------------------------------------------------------------

def test_the_marathon_client_creates_scales_lists_deletes_and_streams_events(
        marathon: Endpoint, api: Api) -> None:
    from marathon import MarathonApp, MarathonClient

    username, password = marathon.auth or (None, None)
    client = MarathonClient(marathon.url, username=username, password=password)
    before = app_ids(api)  # a real Marathon runs other apps: they are left out below (none on the stand-in)
    seen: list[Any] = []

    def listen() -> None:
        for event in client.event_stream(event_types=["event_stream_attached", "api_post_event",
                                                      "deployment_success", "status_update_event"]):
            seen.append(event)

    threading.Thread(target=listen, daemon=True).start()
    wait_for(lambda: seen, 10, "the event stream to attach")
    assert seen[0].event_type == "event_stream_attached"

    app_id = unique("client")
    api.checked(sleeper(app_id, 2))
    created = client.create_app(app_id, MarathonApp(cmd="sleep 3600", cpus=0.01, mem=8, instances=2))
    assert created.id == app_id and created.instances == 2
    api.deployed(app_id)
    tasks = client.list_tasks(app_id)
    assert len(tasks) == 2 and {t.state for t in tasks} == {"TASK_RUNNING"}
    assert all(t.id.startswith(app_id.strip("/") + ".instance-") for t in tasks)

    result = client.scale_app(app_id, instances=3)
    assert set(result) == {"deploymentId", "version"}
    wait_for(lambda: client.get_app(app_id).tasks_running == 3 and not client.get_app(app_id).deployments,
             30, "the scale-up")
    listed = [a for a in client.list_apps(embed_tasks=True) if a.id not in before]
    assert [a.id for a in listed] == [app_id] and len(listed[0].tasks) == 3

    client.delete_app(app_id)
    wait_for(lambda: not [a for a in client.list_apps() if a.id not in before]
             and not [t for t in client.list_tasks() if t.app_id not in before], 30, "the app to go")
    kinds = [e.event_type for e in seen]
    assert {"api_post_event", "deployment_success", "status_update_event"} <= set(kinds)
    running = [e for e in seen if e.event_type == "status_update_event" and e.task_status == "TASK_RUNNING"
               and e.app_id not in before]
    assert len(running) >= 3 and all(e.app_id == app_id for e in running)


# --- launching --------------------------------------------------------------------------------

@stand_in_only(*STANDINS_HERE, why="inspects the task's container on the local Docker engine")
def test_docker_app_gets_marathons_environment_labels_and_a_real_health_check(
        api: Api, marathon: Endpoint, docker_engine: Any) -> None:
    app_id = unique("web")
    app = {"id": app_id, "cpus": 0.1, "mem": 32, "instances": 1,
           "cmd": "mkdir -p www && echo ok > www/index.html && sleep 3 && exec httpd -f -p $HOST:$PORT0 -h www",
           "container": {"type": "DOCKER", "docker": {"image": IMAGE}},
           "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0}],
           "labels": {"SERVICE_NAME": "web", "tier": "front"}, "env": {"GREETING": "hi"},
           "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 60,
                             "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}]}
    assert api.post_app(app).status_code == 201

    saw_unhealthy_running = False

    def healthy() -> dict[str, Any] | None:
        nonlocal saw_unhealthy_running
        current = api.app(app_id)
        tasks = current["tasks"]
        if current["tasksHealthy"] == 1:
            task = tasks[0]
            assert fetch(f"http://{task['host']}:{task['ports'][0]}/") == "ok\n", "healthy but not answering"
            return current
        if tasks and tasks[0]["state"] == "TASK_RUNNING":
            saw_unhealthy_running = True
        return None

    current = wait_for(healthy, 60, "the health check to pass")
    assert saw_unhealthy_running, "the task was healthy before httpd could have started"
    (task,) = current["tasks"]
    (result,) = task["healthCheckResults"]
    assert result["alive"] is True and result["instanceId"] == task["id"].rsplit("._app.", 1)[0]
    assert current["tasksUnhealthy"] == 0 and not api.deployed(app_id)["deployments"]

    assert marathon.mesos is not None
    (container,) = containers(docker_engine, marathon.mesos)
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
    ports = task["ports"]
    assert env["HOST"] == task["host"] and env["PORT0"] == env["PORT"] == env["PORT_HTTP"] == str(ports[0])
    assert env["PORT1"] == str(ports[1]) and env["PORTS"] == f"{ports[0]},{ports[1]}"
    assert env["MARATHON_APP_ID"] == app_id and env["MARATHON_APP_VERSION"] == current["version"]
    assert env["MARATHON_APP_DOCKER_IMAGE"] == IMAGE
    assert env["MARATHON_APP_RESOURCE_CPUS"] == "0.1" and env["MARATHON_APP_RESOURCE_MEM"] == "32.0"
    assert env["MARATHON_APP_LABELS"] == "SERVICE_NAME TIER"
    assert env["MARATHON_APP_LABEL_SERVICE_NAME"] == "web" and env["MARATHON_APP_LABEL_TIER"] == "front"
    assert env["MESOS_TASK_ID"] == task["id"] and env["GREETING"] == "hi"
    assert container.labels["SERVICE_NAME"] == "web" and container.labels["tier"] == "front"
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert task["servicePorts"][0] >= 10000 and task["slaveId"]

    # a killed container is replaced, and the replacement becomes healthy again
    container.kill()
    replaced = wait_for(lambda: (a := api.app(app_id))["tasksHealthy"] == 1 and a["tasks"][0]["id"] != task["id"]
                        and a, 60, "a healthy replacement")
    assert len(replaced["tasks"]) == 1
    failure = api.call("GET", f"/v2/apps{app_id}", embed="app.lastTaskFailure").json()["app"]["lastTaskFailure"]
    assert failure["taskId"] == task["id"] and failure["state"] == "TASK_FAILED"


@stand_in_only(*STANDINS_HERE, why="reads files the tasks write on this machine; needs two agents")
def test_command_app_runs_on_the_host_with_ports_from_the_offer(api: Api, tmp_path: Path) -> None:
    app_id = unique("cmd")
    out = tmp_path / "env"
    # written aside, then renamed: the test never reads a file the task is still writing
    cmd = f"env > {out}.tmp.$MESOS_TASK_ID && mv {out}.tmp.$MESOS_TASK_ID {out}.$MESOS_TASK_ID && exec sleep 3600"
    app = {"id": app_id, "cmd": cmd, "cpus": 0.01, "mem": 8,
           "instances": 2, "requirePorts": False, "portDefinitions": [{"port": 0, "name": "admin"}],
           "constraints": [["hostname", "UNIQUE"]]}
    assert api.post_app(app).status_code == 201
    current = api.deployed(app_id)
    assert current["tasksRunning"] == 2 and current["tasksHealthy"] == 0
    hosts = {t["host"] for t in current["tasks"]}
    assert len(hosts) == 2, "UNIQUE hostname must spread the instances"
    for task in current["tasks"]:
        path = Path(f"{out}.{task['id']}")
        wait_for(path.exists, 10, "the env file")
        env = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        assert env["PORT_ADMIN"] == str(task["ports"][0]) and env["HOST"] == task["host"]
        assert "MARATHON_APP_DOCKER_IMAGE" not in env and env["MARATHON_APP_LABELS"] == ""


# --- bad input and conflicts ------------------------------------------------------------------

def test_bad_input_gets_marathons_errors(api: Api) -> None:
    bad_json = api.call("POST", "/v2/apps", data=b'{"id": "/x", ')
    assert bad_json.status_code == 400 and bad_json.json()["message"] == "Invalid JSON"

    for app, path in (({"id": "/ok", "cmd": "true", "cpus": -1}, "/cpus"), ({"id": "/Bad_Id", "cmd": "true"}, "/id")):
        invalid = api.call("POST", "/v2/apps", app)
        assert invalid.status_code == 422
        body = invalid.json()
        assert body["message"] == "Object is not valid"
        assert [d["path"] for d in body["details"]] == [path] and body["details"][0]["errors"]

    app_id = unique("dup")
    assert api.post_app(sleeper(app_id)).status_code == 201
    again = api.post_app(sleeper(app_id))
    assert again.status_code == 409 and again.json()["message"] == f"An app with id [{app_id}] already exists."
    missing = api.call("GET", "/v2/apps/nothing-here")
    assert missing.status_code == 404 and "does not exist" in missing.json()["message"]
    assert api.call("DELETE", "/v2/deployments/nope").status_code == 404


def test_locked_app_conflicts_and_deployments_roll_back_or_stop(marathon: Endpoint, api: Api) -> None:
    app_id = unique("stuck")
    never_healthy = sleeper(app_id, healthChecks=[{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 0,
                                                   "intervalSeconds": 1, "timeoutSeconds": 1,
                                                   "maxConsecutiveFailures": 0}])
    created = api.post_app(never_healthy)
    assert created.status_code == 201
    (deployment,) = created.json()["deployments"]

    current = wait_for(lambda: (a := api.app(app_id))["tasksUnhealthy"] == 1 and a, 30, "an unhealthy task")
    (task,) = current["tasks"]
    assert current["tasksHealthy"] == 0 and current["deployments"] == [deployment]
    assert task["healthCheckResults"][0]["alive"] is False
    assert "TCP connection" in task["healthCheckResults"][0]["lastFailureCause"]

    (plan,) = deployments(marathon, api, app_id)
    assert plan["id"] == deployment["id"] and plan["affectedApps"] == [app_id]
    assert plan["currentStep"] == plan["totalSteps"] == 2
    assert plan["currentActions"] == [{"action": "ScaleApplication", "app": app_id, "readinessCheckResults": []}]

    conflict = api.call("PUT", f"/v2/apps{app_id}", {"instances": 2})
    assert conflict.status_code == 409
    assert conflict.json() == {
        "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
                   "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
        "deployments": [deployment]}
    assert api.call("DELETE", f"/v2/apps{app_id}").status_code == 409

    # the unhealthy task is never killed (maxConsecutiveFailures 0), however often it fails
    failing = wait_for(lambda: (t := api.app(app_id)["tasks"])[0]["healthCheckResults"][0]["consecutiveFailures"] >= 4
                       and t, 30, "four failures")
    assert [t["id"] for t in failing] == [task["id"]]

    forced = api.call("PUT", f"/v2/apps{app_id}", {"instances": 2}, force="true")
    assert forced.status_code == 200 and set(forced.json()) == {"deploymentId", "version"}
    (plan,) = deployments(marathon, api, app_id)
    assert plan["id"] == started(forced)

    rollback = api.call("DELETE", f"/v2/deployments/{plan['id']}")
    assert rollback.status_code == 200 and set(rollback.json()) == {"deploymentId", "version"}
    (plan,) = deployments(marathon, api, app_id)
    assert plan["id"] == started(rollback)
    assert api.app(app_id)["instances"] == 1  # scaled back to what it was before the forced change

    stopped = api.call("DELETE", f"/v2/deployments/{plan['id']}", force="true")
    assert stopped.status_code == 202 and deployments(marathon, api, app_id) == []
    assert "Marathon-Deployment-Id" not in stopped.headers  # no deployment started


def test_failing_health_checks_kill_and_replace_the_task(marathon: Endpoint, api: Api) -> None:
    events = Events(marathon, "unhealthy_instance_kill_event", "failed_health_check_event",
                    "health_status_changed_event")
    try:
        app_id = unique("flaky")
        app = sleeper(app_id, healthChecks=[{"protocol": "COMMAND", "command": {"value": "test -n \"$NOPE\""},
                                             "gracePeriodSeconds": 0, "intervalSeconds": 1, "timeoutSeconds": 2,
                                             "maxConsecutiveFailures": 2}])
        assert api.post_app(app).status_code == 201
        killed = wait_for(lambda: events.of("unhealthy_instance_kill_event", appId=app_id), 30, "a kill")
        first = killed[0]["taskId"]
        wait_for(lambda: any(t["id"] != first for t in api.app(app_id)["tasks"]), 30, "a replacement")
        failed = events.of("failed_health_check_event", appId=app_id)
        assert len([e for e in failed if e["taskId"] == first]) >= 2
        assert failed[0]["healthCheck"]["protocol"] == "COMMAND"
        assert events.of("health_status_changed_event", appId=app_id, taskId=first, alive=False)
    finally:
        events.close()


# --- deployments ------------------------------------------------------------------------------

def test_rolling_restart_honours_the_upgrade_strategy(marathon: Endpoint, api: Api) -> None:
    app_id = unique("roll")
    app = sleeper(app_id, 3, upgradeStrategy={"minimumHealthCapacity": 1, "maximumOverCapacity": 0})
    assert api.post_app(app).status_code == 201
    before = {t["id"] for t in api.deployed(app_id)["tasks"]}
    events = Events(marathon, "event_stream_attached", "deployment_info", "deployment_step_success",
                    "deployment_success")
    try:
        wait_for(lambda: events.lines, 10, "the stream")
        changed = api.call("PUT", f"/v2/apps{app_id}", api.checked({"id": app_id, "cmd": "sleep 3601"}))
        assert changed.status_code == 200
        dep_id = changed.json()["deploymentId"]
        most, fewest_running = 0, 3

        def restarted() -> bool:
            nonlocal most, fewest_running
            app = api.app(app_id)
            most = max(most, len(app["tasks"]))
            fewest_running = min(fewest_running, sum(1 for t in app["tasks"] if t["state"] == "TASK_RUNNING"))
            return not app["deployments"]

        wait_for(restarted, 120, "the rolling restart to end", interval=0)
        current = api.app(app_id)
        assert current["tasksRunning"] == 3 and not {t["id"] for t in current["tasks"]} & before
        assert all(t["version"] == changed.json()["version"] for t in current["tasks"])
        assert most <= 4 and fewest_running >= 3  # minimumHealthCapacity 1; one extra allowed
        wait_for(lambda: events.of("deployment_success", id=dep_id), 10, "deployment_success")
        info = events.of("deployment_info")[0]
        assert info["plan"]["id"] == dep_id and info["currentStep"]["actions"][0]["action"] == "RestartApplication"
    finally:
        events.close()
    versions = api.call("GET", f"/v2/apps{app_id}/versions").json()["versions"]
    assert versions[0] == changed.json()["version"] and len(versions) == 2
    old = api.call("GET", f"/v2/apps{app_id}/versions/{versions[1]}").json()
    assert old["cmd"] == "sleep 3600"

    restarted = api.call("POST", f"/v2/apps{app_id}/restart")
    assert restarted.status_code == 200
    after = api.deployed(app_id)
    assert after["tasksRunning"] == 3 and not {t["id"] for t in after["tasks"]} & {t["id"] for t in current["tasks"]}


def test_scale_down_kills_the_youngest_and_keeps_the_rest(api: Api) -> None:
    app_id = unique("scale")
    assert api.post_app(sleeper(app_id, 1)).status_code == 201
    (first,) = api.deployed(app_id)["tasks"]
    assert api.call("PUT", f"/v2/apps{app_id}", {"instances": 3}).status_code == 200
    assert len(api.deployed(app_id)["tasks"]) == 3
    assert api.call("PATCH", f"/v2/apps{app_id}", {"instances": 1}).status_code == 200
    (left,) = api.deployed(app_id)["tasks"]
    assert left["id"] == first["id"]


def test_scale_down_with_oldest_first_kills_the_oldest(marathon: Endpoint, api: Api) -> None:
    app_id = unique("oldest")
    assert api.post_app(sleeper(app_id, 1, killSelection="OLDEST_FIRST")).status_code == 201
    (first,) = api.deployed(app_id)["tasks"]
    assert api.call("PUT", f"/v2/apps{app_id}", {"instances": 3}).status_code == 200
    younger = {t["id"] for t in api.deployed(app_id)["tasks"]} - {first["id"]}
    assert api.call("PATCH", f"/v2/apps{app_id}", {"instances": 2}).status_code == 200
    assert {t["id"] for t in api.deployed(app_id)["tasks"]} == younger
    log = kill_log(marathon, app_id)
    assert log is None or [(k["taskId"], k["reason"]) for k in log] == [(first["id"], "DeploymentScaling")]


# --- killing tasks ----------------------------------------------------------------------------

def kill_log(marathon: Endpoint, app_id: str) -> list[dict[str, Any]] | None:
    """What the stand-in killed of one app (`GET /_standin/kills`); None on a real Marathon, which has no such log."""
    if marathon.real:
        return None
    response = requests.get(marathon.url + "/_standin/kills", params={"appId": app_id}, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json())


def by_start(tasks: list[dict[str, Any]]) -> list[str]:
    return [t["id"] for t in sorted(tasks, key=lambda t: (t["startedAt"], t["id"]))]


def test_killing_tasks_with_scale_takes_exactly_those_and_lowers_the_instances(marathon: Endpoint, api: Api) -> None:
    app_id = unique("drain")
    assert api.post_app(sleeper(app_id, 4)).status_code == 201
    oldest, second, *youngest = by_start(api.deployed(app_id)["tasks"])  # a scale-down would kill the youngest
    answer = api.call("POST", "/v2/tasks/delete", {"ids": [oldest, second]}, scale="true")
    started(answer)
    assert set(answer.json()) == {"deploymentId", "version"}
    current = api.deployed(app_id)
    assert current["instances"] == 2 and sorted(t["id"] for t in current["tasks"]) == sorted(youngest)
    assert {t["state"] for t in current["tasks"]} == {"TASK_RUNNING"}  # untouched
    log = kill_log(marathon, app_id)
    assert log is None or sorted((k["taskId"], k["reason"]) for k in log) == sorted(
        [(oldest, "KillingTasksViaApi"), (second, "KillingTasksViaApi")])

    # without scale: the answer lists the task, which is replaced; the app keeps its instances
    victim, survivor = youngest
    unknown = f"{app_id.strip('/')}.instance-{uuid.uuid4()}._app.1"  # well formed, of no task: passed over
    answer = api.call("POST", "/v2/tasks/delete", {"ids": [victim, unknown]})
    assert answer.status_code == 200 and "Marathon-Deployment-Id" not in answer.headers
    assert [t["id"] for t in answer.json()["tasks"]] == [victim]
    replaced = wait_for(lambda: (a := api.app(app_id))["tasksRunning"] == 2
                        and victim not in {t["id"] for t in a["tasks"]} and a, 60, "a replacement")
    assert replaced["instances"] == 2 and survivor in {t["id"] for t in replaced["tasks"]}
    log = kill_log(marathon, app_id)
    assert log is None or sorted(k["taskId"] for k in log) == sorted([oldest, second, victim])

    both = api.call("POST", "/v2/tasks/delete", {"ids": [survivor]}, scale="true", wipe="true")
    assert (both.status_code, both.json()) == (400, {"message": "You cannot use scale and wipe at the same time."})
    assert api.call("POST", "/v2/tasks/delete", {"ids": ["nope"]}).status_code == 400
    missing = api.call("DELETE", f"/v2/apps{app_id}/tasks/{unknown}")
    assert missing.status_code == 404 and missing.json()["message"] == f"Task '{unknown}' does not exist"


def test_killing_an_apps_tasks_on_one_host_with_scale(marathon: Endpoint, api: Api) -> None:
    app_id = unique("host")
    assert api.post_app(sleeper(app_id, 3)).status_code == 201
    tasks = api.deployed(app_id)["tasks"]
    host = tasks[0]["host"]
    on_host = {t["id"] for t in tasks if t["host"] == host}
    started(api.call("DELETE", f"/v2/apps{app_id}/tasks", host=host, scale="true"))
    current = api.deployed(app_id)
    assert current["instances"] == 3 - len(on_host)
    assert {t["id"] for t in current["tasks"]} == {t["id"] for t in tasks} - on_host
    log = kill_log(marathon, app_id)
    assert log is None or {k["taskId"] for k in log} == on_host


def moment(timestamp: str) -> float:
    """Seconds since the epoch of a Marathon timestamp (`2026-01-02T03:04:05.678Z`)."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@stand_in_only(*STANDINS_HERE, why="reads the file the task writes on this machine when it gets SIGTERM")
def test_a_task_is_task_killing_from_sigterm_until_its_grace_period_ends(
        marathon: Endpoint, api: Api, tmp_path: Path) -> None:
    term = tmp_path / "term"
    app_id = unique("stubborn")  # ignores SIGTERM (noting when it came): only SIGKILL ends it
    app = sleeper(app_id, 1, cmd=f"trap 'date +%s.%N > {term}' TERM; while true; do sleep 0.1; done",
                  taskKillGracePeriodSeconds=3)
    events = Events(marathon, "event_stream_attached", "status_update_event")
    try:
        wait_for(lambda: events.lines, 10, "the stream")
        assert api.post_app(app).status_code == 201
        (task,) = api.deployed(app_id)["tasks"]
        started(api.call("POST", "/v2/tasks/delete", {"ids": [task["id"]]}, scale="true"))
        (killing,) = wait_for(lambda: events.of("status_update_event", taskId=task["id"], taskStatus="TASK_KILLING"),
                              10, "TASK_KILLING")
        shown = api.call("GET", f"/v2/apps{app_id}", embed="apps.tasks").json()["app"]
        listed = [t for t in api.call("GET", "/v2/tasks").json()["tasks"] if t["id"] == task["id"]]
        assert [t["state"] for t in shown["tasks"]] == [t["state"] for t in listed] == ["TASK_KILLING"]
        assert shown["tasksRunning"] == 0 and shown["instances"] == 0
        assert killing["appId"] == app_id and {"slaveId", "host", "ports", "version"} <= set(killing)
        (killed,) = wait_for(lambda: events.of("status_update_event", taskId=task["id"], taskStatus="TASK_KILLED"),
                             20, "TASK_KILLED")
        sigterm_at = float(str(wait_for(lambda: term.exists() and term.read_text().strip(), 5, "the SIGTERM note")))
        assert moment(killing["timestamp"]) - 0.5 <= sigterm_at < moment(killed["timestamp"])
        assert 2.5 <= moment(killed["timestamp"]) - sigterm_at < 10  # SIGKILL only once the 3 s grace is over
        assert not api.deployed(app_id)["tasks"]
    finally:
        events.close()
    assert [(k["taskId"], k["reason"]) for k in kill_log(marathon, app_id) or []] == [
        (task["id"], "KillingTasksViaApi")]


def test_bulk_update_deploys_dependencies_in_order(marathon: Endpoint, api: Api) -> None:
    base, dependent = unique("db"), unique("api")
    slow = {"id": base, "cmd": "echo ok > index.html && sleep 2 && exec busybox httpd -f -p $HOST:$PORT0 -h .",
            "cpus": 0.01, "mem": 8,
            "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "gracePeriodSeconds": 30, "intervalSeconds": 1,
                              "timeoutSeconds": 1}]}
    events = Events(marathon, "event_stream_attached", "status_update_event", "health_status_changed_event",
                    "deployment_step_success")
    try:
        wait_for(lambda: events.lines, 10, "the stream")
        answer = api.call("PUT", "/v2/apps", [api.checked(slow), api.checked(sleeper(dependent,
                                                                                       dependencies=[base]))])
        assert answer.status_code == 200, answer.text
        api.deployed(dependent)
        healthy_at = events.events.index(events.of("health_status_changed_event", appId=base, alive=True)[0])
        first_dependent = events.events.index(events.of("status_update_event", appId=dependent)[0])
        assert healthy_at < first_dependent
        assert len(events.of("deployment_step_success")) == 3
    finally:
        events.close()


def started(response: requests.Response) -> str:
    """The deployment a change started: Marathon names it in the body and in `Marathon-Deployment-Id`."""
    assert response.status_code in (200, 201), response.text
    body = response.json()
    dep_id = str(body["deployments"][0]["id"] if "deployments" in body else body["deploymentId"])
    assert response.headers.get("Marathon-Deployment-Id") == dep_id, dict(response.headers)
    return dep_id


def test_every_change_names_its_deployment_in_marathons_header(api: Api) -> None:
    app_id, other = unique("named"), unique("named-put")
    started(api.post_app(sleeper(app_id)))
    (task,) = api.deployed(app_id)["tasks"]
    started(api.call("PUT", f"/v2/apps{app_id}", {"instances": 2}))  # a scale
    started(api.call("PUT", f"/v2/apps{app_id}", {"instances": 1}, force="true"))  # overriding that deployment
    api.deployed(app_id)
    started(api.call("PATCH", f"/v2/apps{app_id}", {"instances": 2}))
    api.deployed(app_id)
    started(api.call("PUT", f"/v2/apps{other}", api.checked(sleeper(other))))  # a PUT that creates
    started(api.call("PUT", "/v2/apps", [{"id": app_id, "instances": 3}]))
    api.deployed(app_id)
    started(api.call("POST", f"/v2/apps{app_id}/restart"))
    tasks = api.deployed(app_id)["tasks"]
    assert task["id"] not in {t["id"] for t in tasks}
    started(api.call("DELETE", f"/v2/apps{app_id}/tasks/{tasks[0]['id']}", scale="true"))
    assert api.deployed(app_id)["instances"] == 2
    started(api.call("DELETE", f"/v2/apps{app_id}"))
    started(api.call("DELETE", f"/v2/apps{other}"))


def bridged(app_id: str, *mappings: dict[str, Any]) -> dict[str, Any]:
    """A Docker app behind the bridge (never started here: no instances)."""
    return {"id": app_id, "cmd": "sleep 3600", "cpus": 0.01, "mem": 8, "instances": 0,
            "networks": [{"mode": "container/bridge"}],
            "container": {"type": "DOCKER", "docker": {"image": IMAGE}, "portMappings": list(mappings)}}


def test_port_mappings_get_service_ports_of_their_own_that_updates_keep(api: Api) -> None:
    first, second = unique("lb-a"), unique("lb-b")
    for app_id in (first, second):
        started(api.post_app(bridged(app_id, {"containerPort": 80, "servicePort": 0}, {"containerPort": 81})))

    def service_ports(app_id: str) -> list[int]:
        app = api.deployed(app_id)
        assert [t["servicePorts"] for t in app["tasks"]] == []
        return [int(m["servicePort"]) for m in app["container"]["portMappings"]]

    a, b = service_ports(first), service_ports(second)
    assert 0 not in a + b and len(set(a + b)) == 4  # marathon-lb binds each of them
    started(api.call("PUT", f"/v2/apps{first}", {"cmd": "sleep 3601"}))
    assert service_ports(first) == a
    resent = bridged(first, {"containerPort": 80, "servicePort": 0}, {"containerPort": 81, "servicePort": 0})
    started(api.call("PUT", f"/v2/apps{first}", api.checked(resent)))
    assert service_ports(first) == a  # all zeros again: Marathon hands back the same ports


# --- events and the small endpoints -----------------------------------------------------------

def test_event_stream_filters_and_carries_marathons_fields(marathon: Endpoint, api: Api) -> None:
    everything = Events(marathon)
    only = Events(marathon, "event_stream_attached", "deployment_success", "app_terminated_event")
    unattached = Events(marathon, "app_terminated_event")
    try:
        wait_for(lambda: everything.events and only.events, 10, "both streams")
        assert everything.events[0]["eventType"] == only.events[0]["eventType"] == "event_stream_attached"
        assert everything.events[0]["remoteAddress"] and everything.events[0]["timestamp"]
        assert everything.lines[:2] == ["event: event_stream_attached", everything.lines[1]]
        app_id = unique("ev")
        assert api.post_app(sleeper(app_id)).status_code == 201
        api.deployed(app_id)
        assert api.call("DELETE", f"/v2/apps{app_id}").status_code == 200
        wait_for(lambda: only.of("app_terminated_event", appId=app_id), 30, "app_terminated_event")
        kinds = {e["eventType"] for e in only.events}
        assert kinds == {"event_stream_attached", "deployment_success", "app_terminated_event"}
        (post,) = everything.of("api_post_event")
        assert post["appDefinition"]["id"] == app_id and post["uri"] == f"/v2/apps{app_id}" and post["clientIp"]
        running = everything.of("status_update_event", appId=app_id, taskStatus="TASK_RUNNING")[0]
        assert {"slaveId", "taskId", "host", "ports", "version", "ipAddresses", "timestamp"} <= set(running)
        assert everything.of("deployment_info") and everything.of("deployment_step_success")
        wait_for(lambda: unattached.events, 10, "the filtered stream")
        assert [e["eventType"] for e in unattached.events] == ["app_terminated_event"]  # the filter holds for all
    finally:
        everything.close()
        only.close()
        unattached.close()


@stand_in_only("MARATHON_URL", why="compares with the stand-in's own framework id and port")
def test_info_leader_ping(marathon: Endpoint, api: Api) -> None:
    assert api.call("GET", "/ping").text == "pong\n"
    info = api.call("GET", "/v2/info").json()
    assert info["name"] == "marathon" and info["frameworkId"] == marathon.standin.marathon.framework_id
    assert info["leader"] == api.call("GET", "/v2/leader").json()["leader"] == f"127.0.0.1:{marathon.standin.port}"


@stand_in_only("MARATHON_URL", why="runs `python -m devcluster.marathon` here")
def test_python_m_runs_in_the_foreground_and_exits_0_on_sigterm(marathon: Endpoint, tmp_path: Path) -> None:
    assert marathon.mesos is not None
    proc = subprocess.Popen([sys.executable, "-m", "devcluster.marathon", "--port", "0", "--master",
                             str(marathon.mesos.master), "--state-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ})
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert wait_for(lambda: fetch(url + "/ping"), 10, "ping") == "pong\n"
        framework_id = wait_for(lambda: json.loads(fetch(url + "/v2/info") or "{}").get("frameworkId"), 20,
                                "the registration")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    saved = json.loads((tmp_path / "marathon-state.json").read_text())
    assert saved["frameworkId"] == framework_id and saved["apps"] == {}


@stand_in_only("MARATHON_URL", why="fails over by stopping and restarting Marathon stand-ins")
@pytest.mark.parametrize("kept_in", ["state_dir", "zk"])
def test_a_restart_with_saved_state_keeps_the_framework_apps_and_tasks(
        marathon: Endpoint, zookeeper: Any, app_schema: jsonschema.Draft4Validator | None, tmp_path: Path,
        kept_in: str) -> None:
    mesos = marathon.mesos
    assert mesos is not None and mesos.master
    where: dict[str, Any] = {"state_dir": tmp_path} if kept_in == "state_dir" else {
        "zk": f"zk://{zookeeper.endpoints()['address']}/marathon-{uuid.uuid4().hex[:8]}"}
    first = MarathonStandin(mesos.master, **where).start()
    try:
        api = Api(first.url, app_schema)
        app_id = unique("kept")
        assert api.post_app(sleeper(app_id, 2)).status_code == 201
        tasks = {t["id"] for t in api.deployed(app_id)["tasks"]}
        framework_id = first.marathon.framework_id
    finally:
        first.stop()  # a failover: the tasks keep running
    second = MarathonStandin(mesos.master, **where).start()
    try:
        api = Api(second.url, app_schema)
        assert second.marathon.framework_id == framework_id
        current = api.deployed(app_id)
        assert {t["id"] for t in current["tasks"]} == tasks and current["tasksRunning"] == 2
        state = requests.get(mesos.url + "/master/state", timeout=10).json()
        (framework,) = [f for f in state["frameworks"] if f["id"] == framework_id]
        assert {t["id"] for t in framework["tasks"] if t["state"] == "TASK_RUNNING"} == tasks
        assert api.call("DELETE", f"/v2/apps{app_id}").status_code == 200
        wait_for(lambda: not api.call("GET", "/v2/tasks").json()["tasks"], 30, "the tasks to end")
    finally:
        second.stop()
