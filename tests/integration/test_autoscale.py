"""The autoscaler end to end: real HAProxy, real containers of a Marathon (stand-in) app routed by
vhost through the shared `marathon_http_in` frontend, wrk load, `wharf autoscale run` as a user runs it.

HAProxy's config is written here from the app's tasks (marathon_router, marathon-lb's names) and
reloaded through the master socket when they change, so every scale step also restarts HAProxy's
counters, which the autoscaler must read through.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.cluster import running
from devcluster.haproxy import HAProxy
from devcluster.process import claim_ports
from tests.conftest import Endpoint, stand_in_only
from tests.integration.marathon_router import Router
from tests.polling import wait_for

pytestmark = pytest.mark.integration
IMAGE = "wharf/busybox:latest"
MIN, MAX = 1, 3


@pytest.fixture
def routed_haproxy(tmp_path: Path) -> Iterator[HAProxy]:
    """An HAProxy of this test's own (the session one serves other tests' configs)."""
    ports = claim_ports({flag: None for flag in HAProxy.port_flags})
    with running(HAProxy(tmp_path / "haproxy", ports)) as haproxy:
        assert isinstance(haproxy, HAProxy)
        yield haproxy


class Watcher(threading.Thread):
    """Records the app's instance count as Marathon reports it, every 0.1 s."""

    def __init__(self, url: str, app_id: str) -> None:
        super().__init__(daemon=True)
        self.url, self.app_id, self.seen, self.done = url, app_id, [], threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                app = requests.get(f"{self.url}/v2/apps{self.app_id}", timeout=5).json()["app"]
            except (requests.RequestException, KeyError, ValueError):
                continue
            self.seen.append((time.monotonic(), app["instances"]))

    def count(self) -> int | None:
        return self.seen[-1][1] if self.seen else None


def wrk(http: str, vhost: str, seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(["wrk", "-t1", "-c4", f"-d{seconds}s", "-H", f"Host: {vhost}", f"http://{http}/"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@stand_in_only("MARATHON_URL", "MESOS_MASTER", why="the app's image is built on this machine's Docker engine")
def test_load_through_haproxy_scales_the_app_up_and_back_down(marathon: Endpoint, routed_haproxy: HAProxy,
                                                               tmp_path: Path) -> None:
    app_id = f"/autoscale-it/web{uuid.uuid4().hex[:6]}"
    vhost = f"{app_id.rsplit('/', 1)[1]}.test"
    app: dict[str, Any] = {
        "id": app_id, "instances": 1, "cpus": 0.01, "mem": 16,
        "cmd": "echo ok > index.html && exec httpd -f -p $HOST:$PORT0 -h .",
        "container": {"type": "DOCKER", "docker": {"image": IMAGE}},
        "portDefinitions": [{"port": 0}],
        "labels": {"HAPROXY_0_VHOST": vhost, "wharf.autoscale.target_rps": "20",
                   "wharf.autoscale.min": str(MIN), "wharf.autoscale.max": str(MAX),
                   "wharf.autoscale.scale_down_stabilization": "4"},
    }
    assert requests.post(f"{marathon.url}/v2/apps", json=app, timeout=10).status_code == 201
    router = Router(routed_haproxy, marathon.url)
    router.start()
    watcher = Watcher(marathon.url, app_id)
    watcher.start()
    log_path = tmp_path / "autoscale.log"
    stats = routed_haproxy.endpoints()["stats"].rsplit("/haproxy", 1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_"))}
    metrics_port = claim_ports({"--metrics-port": None})["--metrics-port"]
    with log_path.open("w") as log:
        # marathon-lb-autoscale's own flags: --haproxy is a base URL whose /haproxy?stats;csv is read
        daemon = subprocess.Popen([sys.executable, "-m", "wharf", "autoscale", "run", "--marathon", marathon.url,
                                   "--haproxy", stats, "--interval", "1", "--target-rps", "1000",
                                   "--metrics-port", str(metrics_port),
                                   # this HAProxy is written from Marathon's tasks, not Consul: no
                                   # registration to drain (the drain's own tests are elsewhere)
                                   "--no-drain"],
                                  stdout=log, stderr=subprocess.STDOUT, env=env)
    load = None
    try:
        http = routed_haproxy.endpoints()["http"]
        wait_for(lambda: requests.get(f"http://{http}/", headers={"Host": vhost}, timeout=5).text == "ok\n",
                 60, "the vhost to reach the app's container")
        assert requests.get(f"http://{http}/", headers={"Host": "other.test"}, timeout=5).status_code == 503

        load = wrk(http, vhost, 120)
        wait_for(lambda: watcher.count() == MAX, 60, f"load to scale the app to {MAX}")
        wait_for(lambda: len(next(r for r in router.routes).servers) == MAX, 60, "every instance routed")
        # the reloads that routed the new instances restarted HAProxy's counters: under the same
        # load, three more cycles must keep the count where it is
        held_until = time.monotonic() + 3.5
        while time.monotonic() < held_until:
            assert watcher.count() == MAX, "shrank under load after HAProxy's reload"
            time.sleep(0.1)
        load.terminate()
        load.wait(10)
        stopped = time.monotonic()
        wait_for(lambda: watcher.count() == MIN, 60, f"the app to come back to {MIN} without load")
        came_down = next(t for t, n in watcher.seen if t >= stopped and n < MAX)
        assert came_down - stopped >= 3, "shrank before the down window (4 s) had passed"
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        for line in (f'wharf_autoscale_decisions_total{{action="up",app="{app_id}"}}',
                     f'wharf_autoscale_decisions_total{{action="down",app="{app_id}"}}',
                     f'wharf_autoscale_target_instances{{app="{app_id}"}} {float(MIN)}'):
            assert line in metrics, f"{line} not in the daemon's metrics"
        assert f'wharf_autoscale_observed_rps{{app="{app_id}"}}' in metrics
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(20)
        watcher.done.set()
        router.stop()
        requests.delete(f"{marathon.url}/v2/apps{app_id}", params={"force": "true"}, timeout=10)
    output = log_path.read_text()
    assert code == 0, output
    counts = [n for _, n in watcher.seen]
    assert counts and all(MIN <= n <= MAX for n in counts), f"left [{MIN}, {MAX}]: {sorted(set(counts))}"
    assert "scaled" in output and "scale up to" in output and "scale down to" in output, output
    targets = [int(m) for m in re.findall(r" scaled app=\S+ action=\w+ current=\d+ target=(\d+)", output)]
    assert targets and all(MIN <= n <= MAX for n in targets), f"asked Marathon for {targets}"
    assert router.reloads >= 2, "scaling changed the servers, so HAProxy was reloaded"


@stand_in_only("MARATHON_URL", "MESOS_MASTER", why="the app's image is built on this machine's Docker engine")
def test_status_and_one_cycle_read_the_admin_socket_and_never_show_credentials(
        marathon: Endpoint, routed_haproxy: HAProxy) -> None:
    from tests.conftest import wharf

    app_id = f"/autoscale-it/status{uuid.uuid4().hex[:6]}"
    vhost = f"{app_id.rsplit('/', 1)[1]}.test"
    app = {"id": app_id, "instances": 2, "cpus": 0.01, "mem": 16,
           "cmd": "echo ok > index.html && exec httpd -f -p $HOST:$PORT0 -h .",
           "container": {"type": "DOCKER", "docker": {"image": IMAGE}}, "portDefinitions": [{"port": 0}],
           "labels": {"HAPROXY_0_VHOST": vhost, "wharf.autoscale.target_rps": "50", "wharf.autoscale.max": "4"}}
    assert requests.post(f"{marathon.url}/v2/apps", json=app, timeout=10).status_code == 201
    router = Router(routed_haproxy, marathon.url)
    router.start()
    try:
        wait_for(lambda: any(len(r.servers) == 2 for r in router.routes), 60, "both tasks routed")
        wait_for(lambda: not requests.get(f"{marathon.url}/v2/apps{app_id}", timeout=5).json()["app"]["deployments"],
                 60, "the deployment to finish")
        secret = "pa55-w0rd-xyz"
        with_auth = marathon.url.replace("://", f"://ops:{secret}@")
        sock = str(routed_haproxy.admin_socket)
        status = wharf("autoscale", "status", "--marathon", with_auth, "--haproxy", sock, "--window", "1", "--json")
        assert status.returncode == 0, status.stderr
        (row,) = [r for r in __import__("json").loads(status.stdout)["apps"] if r["app"] == app_id]
        service_port = requests.get(f"{marathon.url}/v2/apps{app_id}", timeout=5).json()["app"]["portDefinitions"][0]
        assert row["backends"] == f"{app_id.lstrip('/').replace('/', '_')}_{service_port['port']}"
        assert (row["instances"], row["rps"], row["target_rps"], row["max"]) == (2, 0.0, 50.0, 4)
        assert row["decision"] == "hold" and "0.0 rps over 2" in row["reason"] and "window" in row["reason"]

        once = wharf("autoscale", "run", "--once", "--dry-run", "--marathon", with_auth,
                     "--marathonCredentials", f"ops:{secret}", "--haproxy", sock, "--apps", "nothing_10999",
                     env={"WHARF_LOG_LEVEL": "debug"})
        assert once.returncode == 0, once.stderr
        assert f"app={app_id}" in once.stderr and "backend=nothing_10999" in once.stderr
        assert secret not in status.stdout + status.stderr + once.stdout + once.stderr
        wrong = wharf("autoscale", "run", "--once", "--marathon", "http://ops:" + secret + "@127.0.0.1:9",
                      "--haproxy", sock)
        assert wrong.returncode == 1 and secret not in wrong.stdout + wrong.stderr
    finally:
        router.stop()
        requests.delete(f"{marathon.url}/v2/apps{app_id}", params={"force": "true"}, timeout=10)
