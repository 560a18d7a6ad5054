"""Zero failed requests through a scale-down under steady load through a real HAProxy kept by
`wharf render run`, with the registrator putting the stand-in's tasks in Consul."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.lab import Lab, Systems, run, web_app
from devcluster.load import Load
from tests.conftest import Endpoint, stand_in_only
from tests.polling import wait_for
from wharf.contracts.marathon_lb import app_name

pytestmark = pytest.mark.integration


def lab_for(tmp_path: Path, marathon: Endpoint, consul: Any, docker_engine: Any) -> Lab:
    return Lab(tmp_path, Systems(consul.addr, marathon.url, docker_engine.host, consul.token))


def deployed(lab: Lab, url: str, app: dict[str, Any]) -> str:
    """Post the app and wait until HAProxy routes every instance; the backend names' prefix."""
    assert requests.post(f"{url}/v2/apps", json=app, timeout=10).status_code == 201
    prefix = app_name(app["id"]) + "_"
    wait_for(lambda: lab.serving(prefix) == app["instances"], 90, f"{app['instances']} instances in HAProxy")
    return prefix


def steady(load: Load, requests_at_least: int) -> None:
    wait_for(lambda: load.total >= requests_at_least, 30, f"{requests_at_least} requests through HAProxy")


@stand_in_only("MARATHON_URL", "MESOS_MASTER", why="the registrator watches this machine's Docker engine")
def test_scale_down_drains_before_it_kills_an_app_that_exits_at_once(
        marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path: Path) -> None:
    """HAProxy retries are off for this app (HAPROXY_0_RETRY_ON=none): no request fails only if
    every killed task had left rotation first."""
    app_id = f"/zd-{uuid.uuid4().hex[:6]}/web"
    vhost = f"{app_id.split('/')[1]}.test"
    with lab_for(tmp_path, marathon, consul, docker_engine) as lab:
        try:
            prefix = deployed(lab, marathon.url, web_app(app_id, vhost, 4, exits_at_once=True, RETRY_ON="none"))
            tasks_before = {t["id"] for t in requests.get(f"{marathon.url}/v2/apps{app_id}/tasks", timeout=10)
                            .json()["tasks"]}
            with Load(lab.http_port, vhost, rate=100, connections=4) as load:
                steady(load, 100)
                result = run(["apps", "scale", app_id, "1", "--drain-timeout", "10", "--json"],
                             {**lab.env(), "WHARF_HAPROXY_SOCKET": str(lab.haproxy.admin_socket)})
                assert result.returncode == 0, result.stderr
                wait_for(lambda: lab.serving(prefix) == 1, 30, "one instance left in HAProxy")
                steady(load, load.total + 100)
            assert load.failed() == 0, f"{load.summary()}; failures at {load.failures[:5]}; {result.stdout}"
            report, _ = json.JSONDecoder().raw_decode(result.stdout)  # then the follow-up lines
            assert (report["from"], report["instances"], len(report["killed"])) == (4, 1, 3)
            assert set(report["killed"]) < tasks_before and not report["timed_out"]
            assert report["haproxy_servers_watched"] == 3
            kills = requests.get(f"{marathon.url}/_standin/kills", params={"appId": app_id}, timeout=10).json()
            assert {k["taskId"] for k in kills} == set(report["killed"])  # no other task touched
        finally:
            requests.delete(f"{marathon.url}/v2/apps{app_id}", params={"force": "true"}, timeout=10)


@stand_in_only("MARATHON_URL", "MESOS_MASTER", why="the registrator watches this machine's Docker engine")
def test_a_rolling_restart_by_marathon_of_an_app_that_exits_at_once_fails_no_request(
        marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path: Path) -> None:
    """Marathon kills each old task the moment its own probe finds a new one healthy: the new one
    must be in rotation by then (the registrator follows Marathon's health events), with the
    built-in template's default retries."""
    app_id = f"/zd-{uuid.uuid4().hex[:6]}/web"
    vhost = f"{app_id.split('/')[1]}.test"
    with lab_for(tmp_path, marathon, consul, docker_engine) as lab:
        try:
            prefix = deployed(lab, marathon.url, web_app(app_id, vhost, 3, exits_at_once=True, start_delay=1))
            old = {t["id"] for t in requests.get(f"{marathon.url}/v2/apps{app_id}/tasks", timeout=10).json()["tasks"]}
            with Load(lab.http_port, vhost, rate=100, connections=4) as load:
                steady(load, 100)
                requests.post(f"{marathon.url}/v2/apps{app_id}/restart", timeout=10).raise_for_status()

                def restarted() -> bool:
                    app = requests.get(f"{marathon.url}/v2/apps{app_id}", timeout=10).json()["app"]
                    ids = {t["id"] for t in app.get("tasks") or []}
                    return (not app["deployments"] and app["tasksHealthy"] == 3 and not ids & old
                            and lab.serving(prefix) == 3)

                wait_for(restarted, 60, "every task replaced, healthy and in HAProxy")
                steady(load, load.total + 100)
            assert load.failed() == 0, f"{load.summary()}; failures at {load.failures[:5]}"
        finally:
            requests.delete(f"{marathon.url}/v2/apps{app_id}", params={"force": "true"}, timeout=10)
