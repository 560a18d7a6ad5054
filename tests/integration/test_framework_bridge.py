"""The framework's `--network BRIDGE`, `--port` and `--parameter` run for real: the task's container
listens on its container port, reached at the agent's loopback address and the host port Mesos gave
it, with its Docker parameters in `docker inspect`; the registrator registers it at that address and port."""

from __future__ import annotations

import http.client
import json
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from framework.offers import TASK_LABEL
from tests.conftest import Endpoint, stand_in_only
from tests.integration.framework_helpers import Scheduler, start_scheduler, wharf_cli
from tests.integration.registrator_kit import owned, registrator
from tests.polling import wait_for

pytestmark = [pytest.mark.integration,
              stand_in_only("MESOS_MASTER", why="inspects the task's container on this machine's Docker engine")]
IMAGE = "wharf/busybox:latest"
MiB = 2**20


def http_get(host: str, port: int) -> str | None:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


@dataclass
class Framework:
    scheduler: Scheduler
    zk: str
    root: str


@pytest.fixture
def framework(zookeeper: Any, mesos_master: Endpoint, tmp_path: Path) -> Iterator[Framework]:
    """A leading `wharf framework run` on a fresh ZooKeeper root; stopped after the test."""
    zk, root = zookeeper.endpoints()["address"], f"/wharf-test/{uuid.uuid4().hex[:8]}"
    started = start_scheduler(tmp_path, zk, mesos_master.master or "", root)
    try:
        wait_for(started.leading, 60, "leadership")
        yield Framework(started, zk, root)
    finally:
        started.kill(signal.SIGTERM)


def test_a_bridge_task_with_parameters_runs_on_the_dev_clusters_bridge_and_is_registered(
        framework: Framework, docker_engine: Any, mesos_master: Endpoint, consul: Any, tmp_path: Path) -> None:
    scheduler, zk, root = framework.scheduler, framework.zk, framework.root
    team = f"t{uuid.uuid4().hex[:8]}"
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0") as watching:
        done = wharf_cli(zk, mesos_master.master or "", "framework", "submit", "--zk-path", root, "--json",
                         "--image", IMAGE, "--network", "BRIDGE", "--port", "8080", "--mem", "64",
                         "--parameter", "memory-swap=64m", "--parameter", f"label=team={team}",
                         "--label", f"SERVICE_NAME={team}",
                         "--cmd", "mkdir -p www && echo hi-$WHARF_TASK_ID > www/index.html && "
                                  "exec httpd -f -p 8080 -h www")
        assert done.returncode == 0, done.stderr
        (task_id,) = json.loads(done.stdout)["ids"]

        def running() -> dict[str, Any] | None:
            record = {t["spec"]["id"]: t for t in scheduler.get("/v1/tasks")["tasks"]}[task_id]
            assert record["state"] not in ("FAILED", "LOST", "ERROR"), record["message"]
            return record if record["state"] == "RUNNING" else None

        record = wait_for(running, 60, "the task to run")
        host, (host_port,) = record["hostname"], record["host_ports"]
        assert wait_for(lambda: http_get(host, host_port), 30, "httpd behind the host port") == f"hi-{task_id}\n"
        engine = docker_engine.client()
        try:
            (container,) = engine.containers.list(filters={"label": f"{TASK_LABEL}={task_id}"})
        finally:
            engine.close()
        assert mesos_master.standin is not None and mesos_master.standin.bridge is not None
        assert container.attrs["HostConfig"]["NetworkMode"] == mesos_master.standin.bridge.name
        assert container.attrs["NetworkSettings"]["Ports"] == {
            "8080/tcp": [{"HostIp": host, "HostPort": str(host_port)}]}
        assert container.attrs["HostConfig"]["MemorySwap"] == container.attrs["HostConfig"]["Memory"] == 64 * MiB
        assert container.labels["team"] == team and f"PORT0={host_port}" in container.attrs["Config"]["Env"]

        # registered as registrator registers a published port: at its host address and port
        (service,) = wait_for(lambda: list(owned(consul.client(), watching.owner).values()), 60, "the registration")
        assert (service["Service"], service["Address"], service["Port"]) == (team, host, host_port)
        assert service["ID"] == f"{watching.hostname}:{container.name}:8080"
        killed = wharf_cli(zk, mesos_master.master or "", "framework", "kill", "--zk-path", root, task_id)
        assert killed.returncode == 0, killed.stderr
        wait_for(lambda: not owned(consul.client(), watching.owner), 60, "the service to go with the task")
