"""A blue/green deploy under steady load through a real HAProxy kept by `wharf render run`: the new
colour comes up beside the old, then the old is drained and removed; a new version that never gets
healthy is removed while the old one serves; a rollback goes back across colours. No request fails,
for an app that exits at once on SIGTERM, with HAProxy's retries off for it."""

from __future__ import annotations

import http.client
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from devcluster.lab import Lab, Systems, bluegreen_spec, run
from devcluster.load import Load
from tests.conftest import Endpoint, stand_in_only
from tests.polling import wait_for
from wharf.contracts.marathon_lb import app_name

pytestmark = pytest.mark.integration


def served(lab: Lab, vhost: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", lab.http_port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": vhost})
        return conn.getresponse().read().decode().strip()
    finally:
        conn.close()


def colours(url: str, group: str) -> list[str]:
    apps = requests.get(f"{url}/v2/apps", timeout=10).json()["apps"]
    return sorted(a["id"] for a in apps if a["id"].startswith(group))


@stand_in_only("MARATHON_URL", "MESOS_MASTER", why="the registrator watches this machine's Docker engine")
def test_bluegreen_deploys_fails_safe_and_rolls_back_with_no_failed_request(
        marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path: Path) -> None:
    folder = f"bg-{uuid.uuid4().hex[:6]}"
    group, vhost, port = f"/{folder}/web", f"{folder}.test", random.randrange(11000, 19000, 2)
    repo = tmp_path / "repo"
    (repo / "apps" / folder).mkdir(parents=True)

    def deploy(version: str, *flags: str, listens: bool = True) -> Any:
        (repo / "apps" / folder / "web.yaml").write_text(yaml.safe_dump(
            bluegreen_spec(version, vhost, port, listens=listens, RETRY_ON="none")))
        return run(["apps", "deploy", str(repo), "--json", *flags], env)

    lab = Lab(tmp_path / "lab", Systems(consul.addr, marathon.url, docker_engine.host, consul.token))
    with lab:
        env = {**lab.env(), "WHARF_HAPROXY_SOCKET": str(lab.haproxy.admin_socket)}
        prefix = app_name(group) + "_"
        try:
            first = deploy("v1")
            assert first.returncode == 0, first.stdout + first.stderr
            assert colours(marathon.url, group) == [f"{group}-blue"]
            wait_for(lambda: lab.serving(prefix) == 3, 60, "blue's 3 instances in HAProxy")
            blue_tasks = {t["id"] for t in requests.get(f"{marathon.url}/v2/apps{group}-blue/tasks", timeout=10)
                          .json()["tasks"]}
            with Load(lab.http_port, vhost, rate=100, connections=4) as load:
                wait_for(lambda: load.total >= 100, 30, "steady load")
                second = deploy("v2")
                assert second.returncode == 0, second.stdout + second.stderr
                assert json.loads(second.stdout)["deployed"] == [group]
                assert colours(marathon.url, group) == [f"{group}-green"]
                assert served(lab, vhost) == "v2"
                # every old task was drained, then killed by name (not by the app's deletion)
                kills = requests.get(f"{marathon.url}/_standin/kills", params={"appId": f"{group}-blue"},
                                     timeout=10).json()
                assert {(k["taskId"], k["reason"]) for k in kills} == {(t, "KillingTasksViaApi") for t in blue_tasks}
                # a version that never listens: removed after the timeout, green serves throughout
                broken = deploy("v3", "--timeout", "8", listens=False)
                assert broken.returncode == 1 and "removed it" in broken.stdout + broken.stderr
                assert json.loads(broken.stdout)["rolled_back"] == [group]
                assert colours(marathon.url, group) == [f"{group}-green"] and served(lab, vhost) == "v2"
                # back to what green replaced, as a new blue
                back = run(["apps", "rollback", group, "--json"], env)
                assert back.returncode == 0, back.stdout + back.stderr
                assert colours(marathon.url, group) == [f"{group}-blue"] and served(lab, vhost) == "v1"
                wait_for(lambda: lab.serving(prefix) == 3, 30, "blue's 3 instances in rotation")
                after = load.total
                wait_for(lambda: load.total >= after + 100, 30, "100 more requests")
            assert load.failed() == 0, f"{load.summary()}; failures at {load.failures[:5]}"
            assert load.total > 300
        finally:
            for colour in colours(marathon.url, group):
                requests.delete(f"{marathon.url}/v2/apps{colour}", params={"force": "true"}, timeout=10)
