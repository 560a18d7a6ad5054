"""`wharf trace` on the dev cluster: every link healthy exits 0; each link broken for real, one at a
time, is named (exit 1) with what to check."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from devcluster.lab import KEEPS_SERVING, Lab, Systems, run, web_app
from devcluster.load import Load
from devcluster.process import spawn, stop
from tests.conftest import Endpoint, stand_in_only
from tests.polling import wait_for
from wharf.contracts.marathon_lb import app_name

pytestmark = [pytest.mark.integration,
              stand_in_only("MARATHON_URL", "MESOS_MASTER", why="the lab's registrator watches this machine's Docker")]


@pytest.fixture(scope="module")
def lab(marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("trace"), Systems(consul.addr, marathon.url, docker_engine.host,
                                                        consul.token)) as started:
        try:
            yield started
        finally:
            started.delete_apps("/tr-")


def traced(lab: Lab, app_id: str, *flags: str) -> tuple[int, dict[str, Any]]:
    env = {**lab.env(), "WHARF_HAPROXY_SOCKET": str(lab.haproxy.admin_socket),
           "WHARF_HAPROXY_CONFIG": str(lab.haproxy.config)}
    done = run(["trace", app_id, "--json", *flags], env)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def broken_at(lab: Lab, app_id: str) -> str | None:
    return traced(lab, app_id)[1]["broken"]


def deployed(lab: Lab, url: str, app: dict[str, Any], routed: bool = True) -> str:
    app["labels"]["wharf.commit"] = "3f2a9c1"
    assert requests.post(f"{url}/v2/apps", json=app, timeout=10).status_code == 201
    if routed:
        wait_for(lambda: lab.serving(app_name(app["id"]) + "_") == app["instances"], 60, "the app in HAProxy")
    return str(app["id"])


def fresh(name: str) -> tuple[str, str]:
    folder = f"tr-{uuid.uuid4().hex[:6]}"
    return f"/{folder}/{name}", f"{folder}.test"


def test_a_healthy_app_holds_every_link_then_a_maintenance_breaks_consul(
        lab: Lab, marathon: Endpoint, consul: Any) -> None:
    app_id, vhost = fresh("ok")
    deployed(lab, marathon.url, web_app(app_id, vhost, 2))
    code, found = wait_for(lambda: (r := traced(lab, app_id))[0] == 0 and r, 30, "every link to hold")
    assert [(link["name"], link["state"]) for link in found["links"]] == [
        ("config", "ok"), ("marathon", "ok"), ("tasks", "ok"), ("consul", "ok"), ("haproxy", "ok"),
        ("autoscale", "none")]
    every = run(["trace", "--all"], {**lab.env(), "WHARF_HAPROXY_SOCKET": str(lab.haproxy.admin_socket)})
    assert app_id in every.stdout
    c = consul.client()
    _, entries = c.health.service(app_id.strip("/").replace("/", "-"))
    c.agent.service.maintenance(entries[0]["Service"]["ID"], "true", "ops: moving the database")
    code, found = wait_for(lambda: (r := traced(lab, app_id))[0] == 1 and r, 30, "the maintenance seen")
    assert found["broken"] == "consul" and "ops: moving the database" in found["links"][3]["summary"]
    assert found["check"].startswith("lift it when done: `consul maint -disable -service")


def test_a_deployment_that_never_finishes_breaks_marathon(lab: Lab, marathon: Endpoint) -> None:
    app_id, vhost = fresh("stuck")
    app = web_app(app_id, vhost, 1)
    app["cmd"] = "sleep 3600"  # never listens: never healthy, inside a long grace period
    deployed(lab, marathon.url, app, routed=False)
    code, found = wait_for(lambda: (r := traced(lab, app_id))[1]["broken"] == "marathon" and r, 30, "marathon")
    assert code == 1 and "in progress" in found["links"][1]["summary"] and "0/1 healthy" in found["links"][1]["summary"]


def test_a_task_failing_its_health_check_breaks_tasks(lab: Lab, marathon: Endpoint, docker_engine: Any) -> None:
    app_id, vhost = fresh("sick")
    app = web_app(app_id, vhost, 2)
    app["cmd"] = KEEPS_SERVING.replace("echo ok > index.html", "echo ok > index.html && echo ok > health.html")
    app["healthChecks"][0].update(path="/health.html", maxConsecutiveFailures=0)  # failing, never killed
    deployed(lab, marathon.url, app)
    # HAProxy may route both tasks before Marathon has seen both healthy; a check failed before then
    # leaves the deployment unfinished, which the marathon link (rightly) names first
    wait_for(lambda: (a := requests.get(f"{marathon.url}/v2/apps{app_id}", timeout=10).json()["app"])
             ["tasksHealthy"] == 2 and not a["deployments"], 30, "the deployment to finish")
    task = requests.get(f"{marathon.url}/v2/apps{app_id}/tasks", timeout=10).json()["tasks"][0]
    api = docker.APIClient(base_url=docker_engine.host)
    container = next(c["Id"] for c in api.containers()
                     if f"MESOS_TASK_ID={task['id']}" in (api.inspect_container(c["Id"])["Config"]["Env"] or []))
    api.exec_start(api.exec_create(container, ["rm", "health.html"]))
    code, found = wait_for(lambda: (r := traced(lab, app_id))[1]["broken"] == "tasks" and r, 30, "tasks")
    assert code == 1 and task["id"] in found["links"][2]["summary"]
    assert "fails its health check" in found["links"][2]["summary"]


def test_a_config_file_newer_than_what_haproxy_runs_breaks_haproxy(lab: Lab, marathon: Endpoint) -> None:
    app_id, vhost = fresh("cfg")
    deployed(lab, marathon.url, web_app(app_id, vhost, 1))
    wait_for(lambda: broken_at(lab, app_id) is None, 30, "every link to hold")
    config = Path(lab.haproxy.config)
    before = config.read_text()
    try:
        config.write_text(before + "\n# edited by hand, never reloaded\n")
        code, found = traced(lab, app_id)
        assert code == 1 and found["broken"] == "haproxy"
        assert "older config than" in found["links"][4]["summary"]
    finally:
        config.write_text(before)


def test_the_autoscaler_at_its_maximum_breaks_autoscale(lab: Lab, marathon: Endpoint) -> None:
    app_id, vhost = fresh("busy")
    app = web_app(app_id, vhost, 1)
    app["labels"].update({"wharf.autoscale.target_rps": "2", "wharf.autoscale.max": "1"})
    deployed(lab, marathon.url, app)
    argv = ["autoscale", "run", "--marathon", marathon.url, "--haproxy", str(lab.haproxy.admin_socket),
            "--interval", "1"]
    scaler = spawn([sys.executable, "-m", "wharf", *argv], lab.directory / "autoscale.log", env=lab.env())
    try:
        with Load(lab.http_port, vhost, rate=40, connections=2):
            code, found = wait_for(lambda: (r := traced(lab, app_id))[1]["broken"] == "autoscale" and r, 40,
                                   "the autoscaler pinned at its maximum")
    finally:
        stop(scaler)
    assert code == 1 and "held at its maximum 1" in found["links"][5]["summary"]


def test_tasks_no_registrator_registers_break_consul(lab: Lab, marathon: Endpoint) -> None:
    """Last in this module: the lab's registrator stays stopped."""
    stop(lab.procs.pop("registrator"))
    app_id, vhost = fresh("unseen")
    deployed(lab, marathon.url, web_app(app_id, vhost, 2), routed=False)
    code, found = wait_for(lambda: (r := traced(lab, app_id))[1]["broken"] == "consul" and r, 40, "consul")
    assert code == 1 and found["links"][3]["summary"].endswith("none registered in Consul")
    assert "is `wharf registrator run` running on" in found["check"]
