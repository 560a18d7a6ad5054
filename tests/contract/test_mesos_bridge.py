"""The Mesos stand-in's agents run Docker tasks as a Mesos agent's Docker containerizer does: BRIDGE
networking with port mappings published on the agent's loopback address, `DockerInfo.parameters`
as `docker run` options, and `force_pull_image` — on a real Docker engine, events held to the protos."""

from __future__ import annotations

import http.client
import ipaddress
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.marathon.launch import RemainingOffer, fit, task_info
from devcluster.mesos import MesosStandin
from devcluster.mesos.client import SchedulerClient
from devcluster.process import free_port
from tests.conftest import stand_in_only
from tests.contract.test_mesos_standin import (
    FRAMEWORK,
    IMAGE,
    PROTOS,
    Protos,
    docker_task,
    first_port,
    launch,
    next_offers,
    owned_containers,
    port_resource,
    proto_errors,
    scalar,
    wait_state,
)
from tests.polling import wait_for
from tests.upstream import optional
from wharf.contracts.marathon_app import normalize_app

pytestmark = pytest.mark.contract
local_only = stand_in_only("MESOS_MASTER", why="inspects the stand-in's containers and bridge on the local engine")
MiB = 2**20


@pytest.fixture(scope="module")
def protos() -> Protos | None:
    """Mesos's v1 protos; None without the upstream artifacts (behaviour is then checked alone)."""
    where = optional(*PROTOS)
    return None if where is None else Protos(where / "mesos.proto", where / "scheduler" / "scheduler.proto")


@pytest.fixture
def standin(tmp_path: Path, docker_engine: Any) -> Iterator[MesosStandin]:
    """A one-agent stand-in on the test engine."""
    made = MesosStandin(state_dir=tmp_path / "mesos", docker_host=docker_engine.host, agents=1,
                        heartbeat_interval=0.3).start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def client(standin: MesosStandin) -> Iterator[SchedulerClient]:
    made = SchedulerClient(standin.url)
    made.subscribe({**FRAMEWORK, "failover_timeout": 30})
    try:
        yield made
    finally:
        made.close()


def http_get(host: str, port: int, path: str = "/") -> str | None:
    """One GET straight to ``host:port`` (no proxy); None when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def bridged(offer: dict[str, Any], task_id: str, script: str, container_port: int, **docker: Any
            ) -> tuple[dict[str, Any], int]:
    """A BRIDGE task mapping the offer's first port to ``container_port``; (task, host port)."""
    host_port = first_port(offer)
    task = docker_task(task_id, offer, script, container={"type": "DOCKER", "docker": {
        "image": IMAGE, "network": "BRIDGE", **docker,
        "port_mappings": [{"host_port": host_port, "container_port": container_port, "protocol": "tcp"}]}})
    task["resources"] = [*scalar(0.1, 32), port_resource(host_port)]
    task["command"]["environment"] = {"variables": [{"name": "HOST", "value": offer["hostname"]},
                                                    {"name": "PORT0", "value": str(host_port)}]}
    return task, host_port


def links() -> set[str]:
    return {link["ifname"] for link in json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True,
                                                                 text=True, check=True).stdout)}


def routed(subnet: str) -> bool:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True)
    return any(line.split()[:1] == [subnet] for line in out.stdout.splitlines())


@local_only
def test_a_bridge_task_serves_its_container_port_on_the_agents_loopback_host_port(
        standin: MesosStandin, client: SchedulerClient, docker_engine: Any, protos: Protos | None) -> None:
    offer = next_offers(client)[0]
    script = "mkdir -p www && env > www/env.txt && exec httpd -f -p 8080 -h www"
    task, host_port = bridged(offer, "web", script, 8080)
    launch(client, offer, task)
    running = wait_state(client, "web", "TASK_RUNNING")
    agent = offer["hostname"]
    assert ipaddress.ip_address(agent).is_loopback and agent != "127.0.0.1"
    text = wait_for(lambda: http_get(agent, host_port, "/env.txt"), what="httpd behind the published port")
    env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert env["PORT0"] == str(host_port) and env["HOST"] == agent  # the host port, as Mesos gives it
    assert http_get("127.0.0.1", host_port) is None  # published on the agent's address only

    (container,) = owned_containers(docker_engine, standin)
    assert standin.bridge is not None
    assert container.attrs["HostConfig"]["NetworkMode"] == standin.bridge.name
    assert container.attrs["NetworkSettings"]["Ports"] == {"8080/tcp": [{"HostIp": agent, "HostPort": str(host_port)}]}
    ip = running["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(standin.bridge.subnet)  # the container's, as Mesos says

    # a mapping outside the task's port resources fails it, as the containerizer does
    offer = next_offers(client)[0]
    outside, given = bridged(offer, "outside", "true", 80)
    outside["container"]["docker"]["port_mappings"][0]["host_port"] = given + 1
    launch(client, offer, outside)
    failed = wait_state(client, "outside", "TASK_FAILED")
    assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert f"Port [{given + 1}] not included in resources" in failed["message"]

    client.call("KILL", {"task_id": {"value": "web"}})
    wait_state(client, "web", "TASK_KILLED")
    wait_for(lambda: not owned_containers(docker_engine, standin), what="the container to go")
    assert proto_errors(protos, client.seen, "mesos.v1.scheduler.Event") == []


@local_only
def test_the_bridge_network_is_made_at_start_and_leaves_nothing_at_stop(tmp_path: Path, docker_engine: Any) -> None:
    standin = MesosStandin(state_dir=tmp_path / "mesos", docker_host=docker_engine.host, agents=1).start()
    try:
        made = standin.bridge
        assert made is not None and made.device in links() and routed(made.subnet)
        assert ipaddress.ip_network(made.subnet).is_private
        # never routed off the machine: the kernel's answer for a container's packet to a far address
        # (a route lookup only, nothing is sent; 203.0.113.0/24 is TEST-NET-3)
        container_ip = str(next(ipaddress.ip_network(made.subnet).hosts()) + 1)
        lookup = subprocess.run(["ip", "route", "get", "203.0.113.7", "from", container_ip, "iif", made.device],
                                capture_output=True, text=True)
        assert lookup.returncode != 0 and "No route to host" in lookup.stderr, lookup.stdout
        engine = docker_engine.client()
        try:
            (network,) = engine.networks.list(names=[made.name])
            assert network.attrs["Driver"] == "bridge"
        finally:
            engine.close()
    finally:
        standin.stop()
    engine = docker_engine.client()
    try:
        assert engine.networks.list(names=[made.name]) == []
    finally:
        engine.close()
    assert made.device not in links() and not routed(made.subnet)


@local_only
def test_parameters_reach_docker_and_one_docker_refuses_fails_the_task(
        client: SchedulerClient, standin: MesosStandin, docker_engine: Any) -> None:
    params = {"memory-swap": "64m", "label": "team=shop", "env": "GREETING=hi", "ulimit": "nofile=512:1024"}
    offer = next_offers(client)[0]
    task = docker_task("params", offer, "exec sleep 300", container={"type": "DOCKER", "docker": {
        "image": IMAGE, "network": "HOST", "parameters": [{"key": k, "value": v} for k, v in params.items()]}})
    task["resources"] = scalar(0.1, 64)
    launch(client, offer, task)
    wait_state(client, "params", "TASK_RUNNING")
    (container,) = owned_containers(docker_engine, standin)
    host_config = container.attrs["HostConfig"]
    assert host_config["MemorySwap"] == host_config["Memory"] == 64 * MiB
    assert host_config["Ulimits"] == [{"Name": "nofile", "Soft": 512, "Hard": 1024}]
    assert container.labels["team"] == "shop" and "GREETING=hi" in container.attrs["Config"]["Env"]

    for task_id, key, value, message in [
            ("unknown", "no-such-flag", "1", "unknown flag: --no-such-flag"),
            ("tight", "memory-swap", "16m", "Minimum memoryswap limit should be larger than memory limit")]:
        offer = next_offers(client)[0]
        bad = docker_task(task_id, offer, "true", container={"type": "DOCKER", "docker": {
            "image": IMAGE, "network": "HOST", "parameters": [{"key": key, "value": value}]}})
        launch(client, offer, bad)
        failed = wait_state(client, task_id, "TASK_FAILED")
        assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED" and message in failed["message"], failed
    assert [c.name for c in owned_containers(docker_engine, standin)] == [container.name]  # none left behind


@local_only
def test_force_pull_image_pulls_and_fails_with_dockers_message_against_no_registry(
        client: SchedulerClient, docker_engine: Any) -> None:
    port = free_port()  # nothing listens there: a registry that is not running
    image = f"127.0.0.1:{port}/wharf/busybox:latest"
    engine = docker_engine.client()
    engine.images.get(IMAGE).tag(image)
    try:
        runs = []
        for task_id, ref, force in [("cached", image, False), ("forced", image, True), ("far", IMAGE, True)]:
            offer = next_offers(client)[0]
            launch(client, offer, docker_task(task_id, offer, "true", container={"type": "DOCKER", "docker": {
                "image": ref, "network": "HOST", "force_pull_image": force}}))
            runs.append(wait_state(client, task_id, "TASK_FINISHED" if task_id == "cached" else "TASK_FAILED"))
        forced, far = runs[1], runs[2]
        assert forced["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert f"docker pull {image}" in forced["message"] and "connection refused" in forced["message"], forced
        assert f"127.0.0.1:{port}" in forced["message"]
        assert "its registry docker.io is not on this machine" in far["message"], far  # never contacted
    finally:
        engine.images.remove(image)
        engine.close()


def test_marathons_bridge_task_info_is_a_valid_mesos_task_info(protos: Protos | None) -> None:
    app = normalize_app({"id": "/shop/web", "cmd": "httpd -f -p 8080", "cpus": 0.1, "mem": 64,
                         "networks": [{"mode": "container/bridge"}],
                         "container": {"type": "DOCKER", "docker": {
                             "image": IMAGE, "forcePullImage": True,
                             "parameters": [{"key": "memory-swap", "value": "64m"}]},
                             "portMappings": [{"containerPort": 8080, "name": "http"},
                                              {"containerPort": 53, "protocol": "udp,tcp"}]}})
    app["version"] = "2026-01-01T00:00:00.000Z"
    offer = {"id": {"value": "O1"}, "agent_id": {"value": "S1"}, "hostname": "127.0.0.2",
             "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                           {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}},
                           {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31009}]}}]}
    view = RemainingOffer.from_mesos(offer)
    got = fit(app, view, [])
    assert got is not None
    info = task_info(app, view, got, "shop_web.instance-1._app.1")
    assert info["container"]["docker"]["port_mappings"][0] == {"host_port": 31000, "container_port": 8080,
                                                               "protocol": "tcp"}
    assert proto_errors(protos, [info], "mesos.v1.TaskInfo") == []
