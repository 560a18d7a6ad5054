"""Marathon apps in BRIDGE mode, as most real ones run: `portMappings` from container port to host
port to service port, Docker `parameters`; through the Marathon and Mesos stand-ins onto the real
engine, registered by the registrator and routed by the renderer through a real HAProxy."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.process import free_port
from marathon_apps.spec import expand
from tests.conftest import Endpoint, stand_in_only
from tests.integration.registrator_kit import owned, registrator
from tests.integration.render_support import own_haproxy, seen_backends
from tests.integration.test_render_consul import _haproxy_args, render_run
from tests.polling import wait_for
from wharf.configrepo import Spec, parse_yaml

pytestmark = [pytest.mark.integration,
              stand_in_only("MARATHON_URL", "MESOS_MASTER",
                            why="inspects the tasks' containers on this machine's Docker engine")]
IMAGE = "wharf/busybox:latest"
MiB = 2**20


def running_tasks(url: str, app_id: str, count: int) -> list[dict[str, Any]] | None:
    app = requests.get(f"{url}/v2/apps{app_id}", params={"embed": "app.tasks"}, timeout=10).json()["app"]
    tasks = app["tasks"]
    return tasks if len(tasks) == count and all(t["state"] == "TASK_RUNNING" for t in tasks) else None


def containers_labelled(docker_engine: Any, label: str) -> list[Any]:
    client = docker_engine.client()
    try:
        return list(client.containers.list(filters={"label": label}))
    finally:
        client.close()


def test_a_bridge_app_with_port_mappings_is_reached_through_haproxy(
        marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path: Path) -> None:
    group = f"b{uuid.uuid4().hex[:8]}"
    app_id, vhost = f"/{group}/web", f"{group}.example.com"
    app = {"id": app_id, "cpus": 0.01, "mem": 32, "instances": 2,
           "cmd": "mkdir -p www && echo hello-$MESOS_TASK_ID > www/index.html && exec httpd -f -p 8080 -h www",
           "networks": [{"mode": "container/bridge"}],
           "container": {"type": "DOCKER", "docker": {"image": IMAGE},
                         "portMappings": [{"containerPort": 8080, "hostPort": 0, "servicePort": 0, "name": "http"}]},
           "labels": {"HAPROXY_GROUP": group, "HAPROXY_0_VHOST": vhost}}
    url, http_port = marathon.url, free_port()
    c = consul.client()
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0", env={"MARATHON_URL": url}) as reg, \
            own_haproxy(tmp_path / "haproxy") as haproxy:
        args = [*_haproxy_args(haproxy, http_port), "--group", group, "--wait", "0"]
        assert requests.post(f"{url}/v2/apps", json=app, timeout=10).status_code == 201
        try:
            tasks = wait_for(lambda: running_tasks(url, app_id, 2), 90, "two BRIDGE tasks running")
            service_port = requests.get(f"{url}/v2/apps{app_id}", timeout=10).json()["app"]["container"][
                "portMappings"][0]["servicePort"]
            # registered at the agent's address and the task's host port, with the service port
            expected = {(t["host"], t["ports"][0]) for t in tasks}
            services = wait_for(lambda: (lambda mine: mine if {(s["Address"], s["Port"]) for s in mine} == expected
                                         else None)(list(owned(c, reg.owner).values())), 60, "the registrations")
            assert all(s["Meta"]["service_port"] == str(service_port) for s in services)
            assert all(s["ID"].endswith(":8080") for s in services)  # registrator's ID: the container port
            assert all(h.startswith("127.") and h != "127.0.0.1" for h, _ in expected)  # agents' loopback addresses

            with render_run(consul.addr, *args, log_dir=tmp_path, token=consul.token) as proc:
                want = {f"hello-{t['id']}" for t in tasks}
                wait_for(lambda: seen_backends(http_port, vhost, tries=16) == want, 60, "HAProxy routes the app")
                assert proc.poll() is None
        finally:
            requests.delete(f"{url}/v2/apps{app_id}", params={"force": "true"}, timeout=10)
        wait_for(lambda: not owned(c, reg.owner), 60, "the services to go with the tasks")


def test_an_app_spec_with_swap_off_gets_memory_swap_equal_to_its_memory(marathon: Endpoint,
                                                                        docker_engine: Any) -> None:
    team = f"t{uuid.uuid4().hex[:8]}"
    text = (f"image: {IMAGE}\ncmd: exec sleep 3600\ncpus: 0.01\nmem: 48\nswap: false\n"
            f"parameters: {{label: team={team}, env: GREETING=hi}}\n"
            "networks: [{mode: container/bridge}]\nports: [{name: http, containerPort: 8080}]\n")
    name = f"{team}/swapless"
    data, lines = parse_yaml(text, f"apps/{name}.yaml")
    app, errors = expand(Spec(f"apps/{name}.yaml", name, data, lines))
    assert not errors, [str(e) for e in errors]
    url = marathon.url
    assert requests.post(f"{url}/v2/apps", json=app, timeout=10).status_code == 201
    try:
        (task,) = wait_for(lambda: running_tasks(url, app["id"], 1), 90, "the task running")
        (container,) = wait_for(lambda: containers_labelled(docker_engine, f"team={team}"), 30, "its container")
        host_config = container.attrs["HostConfig"]
        assert host_config["Memory"] == host_config["MemorySwap"] == 48 * MiB  # no swap
        assert "GREETING=hi" in container.attrs["Config"]["Env"]
        assert f"PORT0={task['ports'][0]}" in container.attrs["Config"]["Env"]
        assert container.attrs["NetworkSettings"]["Ports"] == {
            "8080/tcp": [{"HostIp": task["host"], "HostPort": str(task["ports"][0])}]}
    finally:
        requests.delete(f"{url}/v2/apps{app['id']}", params={"force": "true"}, timeout=10)
