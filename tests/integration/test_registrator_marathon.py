"""A Marathon app deployed through the Marathon stand-in is registered the way the rooms after it
(renderer, autoscaler) expect: at each task's agent address and port, with the contract's Meta."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Endpoint, stand_in_only
from tests.integration.registrator_kit import owned, registrator
from tests.polling import wait_for

pytestmark = pytest.mark.integration

IMAGE = "wharf/busybox:latest"


@stand_in_only("MARATHON_URL", "MESOS_MASTER",
               why="the registrator watches this machine's Docker engine, where only the stand-in's tasks run")
def test_a_marathon_app_is_registered_at_its_agents_with_the_contracts_meta(
        marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path: Path) -> None:
    app_id = f"/reg-{uuid.uuid4().hex[:6]}/web"
    labels = {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "shop.example.com", "HAPROXY_0_MODE": "http",
              "HAPROXY_1_PORT": "10999"}
    app = {"id": app_id, "cpus": 0.01, "mem": 16, "instances": 2,
           "cmd": "trap 'exit 0' TERM; sleep 3600 & wait",
           "container": {"type": "DOCKER", "docker": {"image": IMAGE}},
           "portDefinitions": [{"port": 0, "name": "http"}, {"port": 0, "name": "admin"}],
           "constraints": [["hostname", "UNIQUE"]], "labels": labels}
    c = consul.client()
    url = marathon.url
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0", env={"MARATHON_URL": url}) as reg, \
            registrator(consul, docker_engine.host, tmp_path, "--resync", "0") as no_marathon:
        assert requests.post(f"{url}/v2/apps", json=app, timeout=10).status_code == 201
        try:
            def running() -> dict[str, Any] | None:
                got = requests.get(f"{url}/v2/apps{app_id}", params={"embed": "app.tasks"}, timeout=10).json()["app"]
                ok = len(got["tasks"]) == 2 and all(t["state"] == "TASK_RUNNING" for t in got["tasks"])
                return got if ok else None

            def matching(owner: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
                current = running()
                if current is None:
                    return None
                expected = {(t["host"], t["ports"][i], t["id"], i) for t in current["tasks"] for i in range(2)}
                mine = list(owned(c, owner).values())
                got = {(s["Address"], s["Port"], s["Meta"]["mesos_task_id"], int(s["Meta"]["port_index"]))
                       for s in mine}
                return (current, mine) if got == expected and len(mine) == 4 else None

            # each task's two ports, at its agent's address, with its task id (tasks may be replaced
            # meanwhile: what is compared is Marathon's view and Consul's at the same moment)
            current, services = wait_for(lambda: matching(reg.owner), 60, "Consul to match Marathon's tasks")
            service_ports = [d["port"] for d in current["portDefinitions"]]
            assert all(p >= 10000 for p in service_ports)
            assert len({t["host"] for t in current["tasks"]}) == 2  # two agents, two addresses
            for s in services:
                i = int(s["Meta"]["port_index"])
                assert s["Service"] == app_id.strip("/").replace("/", "-")
                assert s["ID"] == f"{reg.hostname}:{s['ID'].split(':')[1]}:{s['Port']}"
                assert s["Meta"]["marathon_app_id"] == app_id
                assert s["Meta"]["service_port"] == str(service_ports[i])  # asked of Marathon
                assert {k: v for k, v in s["Meta"].items() if k.startswith("HAPROXY_")} == labels

            # without Marathon configured, the HAPROXY_{i}_PORT label is the service port
            _, fallback = wait_for(lambda: matching(no_marathon.owner), 30, "the same four without Marathon")
            assert {s["Meta"].get("service_port") for s in fallback if s["Meta"]["port_index"] == "1"} == {"10999"}
            assert all("service_port" not in s["Meta"] for s in fallback if s["Meta"]["port_index"] == "0")
        finally:
            requests.delete(f"{url}/v2/apps{app_id}", params={"force": "true"}, timeout=10)
        wait_for(lambda: not owned(c, reg.owner) and not owned(c, no_marathon.owner), 60,
                 "the app's services to go with its tasks")


@stand_in_only("MARATHON_URL", "MESOS_MASTER",
               why="the registrator watches this machine's Docker engine, where only the stand-in's tasks run")
def test_a_slow_starter_is_registered_critical_until_its_marathon_health_check_passes(
        marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path: Path) -> None:
    """Ready before routed: the task's Consul service carries the app's Marathon health check and
    stays critical (not routed) while the task does not listen yet, then passes."""
    app_id = f"/reg-{uuid.uuid4().hex[:6]}/slow"
    app = {"id": app_id, "cpus": 0.01, "mem": 16, "instances": 1,
           "cmd": "echo ok > index.html; sleep 4; exec httpd -f -p $HOST:$PORT0 -h .",
           "container": {"type": "DOCKER", "docker": {"image": IMAGE}},
           "portDefinitions": [{"port": 0}],
           "healthChecks": [{"protocol": "HTTP", "path": "/index.html", "portIndex": 0, "intervalSeconds": 1,
                             "timeoutSeconds": 1, "gracePeriodSeconds": 30}]}
    c = consul.client()
    name = app_id.strip("/").replace("/", "-")
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0", env={"MARATHON_URL": marathon.url}):
        assert requests.post(f"{marathon.url}/v2/apps", json=app, timeout=10).status_code == 201
        try:
            def statuses() -> set[str]:
                _, entries = c.health.service(name)
                return {ch["Status"] for e in entries for ch in e["Checks"] if ch["Name"].startswith("Marathon")}

            assert wait_for(statuses, 30, "the task's service with its Marathon check") == {"critical"}
            wait_for(lambda: statuses() == {"passing"}, 30, "the check to pass once the task listens")
            _, entries = c.health.service(name, passing=True)
            assert len(entries) == 1
        finally:
            requests.delete(f"{marathon.url}/v2/apps{app_id}", params={"force": "true"}, timeout=10)


@stand_in_only("MARATHON_URL", "MESOS_MASTER",
               why="the registrator watches this machine's Docker engine, where only the stand-in's tasks run")
def test_marathons_healthy_registers_the_checks_passing_and_keeps_a_drain_someone_else_set(
        marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path: Path) -> None:
    """Marathon counts a task healthy before Consul's own first run of the check (staggered up to
    an interval): the registrator follows Marathon's events and registers the task's checks again,
    passing, under new IDs. A drain set meanwhile by someone else (`wharf apps scale`) stays."""
    app_id = f"/reg-{uuid.uuid4().hex[:6]}/ready"
    app = {"id": app_id, "cpus": 0.01, "mem": 16, "instances": 1,
           "cmd": "echo ok > index.html; sleep 2; exec httpd -f -p $HOST:$PORT0 -h .",
           "container": {"type": "DOCKER", "docker": {"image": IMAGE}}, "portDefinitions": [{"port": 0}],
           "healthChecks": [{"protocol": "HTTP", "path": "/index.html", "portIndex": 0, "intervalSeconds": 1,
                             "timeoutSeconds": 1, "gracePeriodSeconds": 30}]}
    c = consul.client()
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0", env={"MARATHON_URL": marathon.url}) as reg:
        assert requests.post(f"{marathon.url}/v2/apps", json=app, timeout=10).status_code == 201
        try:
            def checks() -> dict[str, dict[str, Any]]:
                ours = {sid for sid, s in owned(c, reg.owner).items() if s["Meta"]["marathon_app_id"] == app_id}
                return {cid: ch for cid, ch in c.agent.checks().items() if ch["ServiceID"] in ours}

            starting = wait_for(lambda: checks() or None, 30, "the task registered with its Marathon check")
            ((sid_check, check),) = starting.items()
            assert check["Status"] == "critical" and not sid_check.endswith(":healthy")
            service_id = check["ServiceID"]
            c.agent.service.maintenance(service_id, "true", "wharf: draining before kill")

            def healthy() -> dict[str, dict[str, Any]] | None:
                now = checks()
                return now if any(cid.endswith(":healthy") for cid in now) else None

            now = wait_for(healthy, 30, "the checks registered again once Marathon counts the task healthy")
            assert sid_check not in now  # the starting generation is gone...
            # ...and the drain stays
            assert now[f"_service_maintenance:{service_id}"]["Notes"] == "wharf: draining before kill"
            assert now[f"{sid_check}:healthy"]["Status"] in ("passing", "critical")
            tasks = requests.get(f"{marathon.url}/v2/apps{app_id}/tasks", timeout=10).json()["tasks"]
            assert [r["alive"] for t in tasks for r in t["healthCheckResults"]] == [True]
        finally:
            requests.delete(f"{marathon.url}/v2/apps{app_id}", params={"force": "true"}, timeout=10)
