"""The dev cluster's Prometheus (Debian's): it finds every running wharf daemon through Consul and
scrapes it and HAProxy's exporter; each shipped alert rule fires once the test makes its condition true
for real. The dev copy of the rules holds each alert 1 s instead of its production `for:` and lowers
the renderer's staleness threshold to 5 s (devcluster/prometheus.py); the rules are otherwise the
shipped ones. Tests run in order on one cluster: the last ones stop the daemons the first ones need."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.cluster import Cluster, wait_healthy
from devcluster.demos import registrator as registrator_demo
from devcluster.demos import render as render_demo
from devcluster.lab import serving, web_app
from devcluster.load import Load
from devcluster.process import Proc, claim_ports, free_port, spawn, stop
from devcluster.zookeeper import ZooKeeper
from tests.integration.framework_helpers import Scheduler, start_scheduler
from tests.polling import wait_for
from wharf.consul_http import client as consul_client
from wharf.contracts.marathon_lb import app_name

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("prometheus") is None,
                                 reason="prometheus is not installed (Debian's prometheus package)")]

DEADLINE = 60.0
NODE = "wharf-dev"  # the dev Consul's node: the `node` label; `instance` is NODE:port
#: a template `haproxy -c` validates: valid until the KV key it reads holds a timeout HAProxy refuses
REFUSABLE = """global
    stats timeout 30s
defaults
    mode http
    timeout connect 1s
    timeout client {{ kv.get("pm-test/timeout", "1s") }}
    timeout server 1s
frontend probe
    bind 127.0.0.1:PORT
    http-request return status 200
"""


@dataclass
class Dev:
    """The module's dev cluster, and the daemons the tests run on it: name -> (process, metrics port)."""

    state_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    daemons: dict[str, tuple[subprocess.Popen[bytes], int]] = field(default_factory=dict)
    zookeeper: Proc | None = None  # the framework's own, which a test stops
    scheduler: Scheduler | None = None

    def child_env(self, *dropped: str) -> dict[str, str]:
        """This machine's environment pointed at the dev cluster, without the variables `dropped` starts."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_", "MESOS_"))}
        return {**base, **{k: v for k, v in self.env.items() if not (dropped and k.startswith(dropped))}}

    def consul(self) -> Any:
        return consul_client(self.env["CONSUL_HTTP_ADDR"], self.env.get("CONSUL_HTTP_TOKEN"))

    def api(self, path: str, **params: str) -> Any:
        answer = requests.get(self.env["WHARF_PROMETHEUS_URL"] + path, params=params, timeout=5)
        answer.raise_for_status()
        return answer.json()["data"]

    def value(self, query: str) -> float | None:
        """The first value of an instant query, or None when it has none."""
        found = self.api("/api/v1/query", query=query)["result"]
        return float(found[0]["value"][1]) if found else None

    def targets(self, job: str) -> list[dict[str, Any]]:
        return [t for t in self.api("/api/v1/targets", state="active")["activeTargets"] if t["labels"]["job"] == job]

    def firing(self, alert: str, **labels: str) -> list[dict[str, Any]]:
        return [a for a in self.api("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == alert
                and a["state"] == "firing" and all(a["labels"].get(k) == v for k, v in labels.items())]

    def until_firing(self, alert: str, **labels: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = wait_for(lambda: self.firing(alert, **labels), DEADLINE,
                                               f"{alert} {labels or ''} to fire", interval=0.25)
        return found[0]

    def daemon(self, name: str, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
        """`wharf ARGV --metrics-port N` in the background, its log in the state dir."""
        port = free_port()
        with open(self.state_dir / f"{name}-{port}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "wharf", *argv, "--metrics-port", str(port)],
                                    env=env, stdout=log, stderr=subprocess.STDOUT)
        return proc, port

    def deploy(self, app: dict[str, Any]) -> str:
        assert requests.post(f"{self.env['MARATHON_URL']}/v2/apps", json=app, timeout=10).status_code == 201
        return str(app["id"])


def _start_daemons(dev: Dev, tmp: Path) -> None:
    """The registrator and the renderer as the demo runs them, the web view, the autoscaler on the dev
    HAProxy, and a framework scheduler on a ZooKeeper of its own (a test stops it)."""
    port = free_port()
    dev.daemons["registrator"] = (registrator_demo.run_daemon(dev.state_dir, dev.env, "--metrics-port", str(port)),
                                  port)
    port = free_port()
    dev.daemons["render"] = (render_demo.run_daemon(dev.state_dir, dev.env, dev.ports["--haproxy-stats-port"], port),
                             port)
    port = free_port()  # the web view serves its metrics beside its page
    with open(dev.state_dir / "ui.log", "ab") as log:
        dev.daemons["ui"] = (subprocess.Popen([sys.executable, "-m", "wharf", "ui", "--listen", f"127.0.0.1:{port}"],
                                              env=dev.child_env(), stdout=log, stderr=subprocess.STDOUT), port)
    scaler = ["autoscale", "run", "--haproxy", dev.env["WHARF_HAPROXY_SOCKET"], "--interval", "1"]
    dev.daemons["autoscale"] = dev.daemon("autoscale", scaler, dev.child_env())
    zk = ZooKeeper(tmp / "zookeeper", claim_ports({"--zk-port": None}))
    zk.prepare()
    dev.zookeeper = spawn(zk.argv(), zk.log_path, cwd=zk.dir)
    wait_healthy(zk, dev.zookeeper, time.monotonic() + 60)
    consul = {k: v for k, v in dev.env.items() if k.startswith("CONSUL_")}
    dev.scheduler = start_scheduler(tmp, zk.endpoints()["address"], dev.env["MESOS_MASTER"], "/wharf-prometheus",
                                    env=consul)
    dev.daemons["framework"] = (dev.scheduler.proc, dev.scheduler.metrics_port)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    state_dir = tmp_path_factory.mktemp("prometheus")
    cluster = Cluster(state_dir)
    cluster.up()
    state = cluster.read_state()
    assert state is not None
    found = Dev(state_dir, cluster.env(), state["ports"])
    try:
        _start_daemons(found, tmp_path_factory.mktemp("daemons"))
        yield found
    finally:
        try:
            _stop_daemons(found)
        finally:
            cluster.down(purge=True)


def _stop_daemons(dev: Dev) -> None:
    for proc, _ in dev.daemons.values():
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a scheduler waiting for its ZooKeeper does not stop
            proc.kill()
            proc.wait(timeout=10)
    if dev.zookeeper is not None:
        stop(dev.zookeeper)


def fresh(name: str) -> tuple[str, str]:
    folder = f"pm-{uuid.uuid4().hex[:6]}"
    return f"/{folder}/{name}", f"{folder}.test"


def seconds(stamp: str) -> float:
    """An RFC 3339 time of Prometheus's answers (`2026-01-01T00:00:00.123456789Z`), to the second."""
    return datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


def test_prometheus_scrapes_every_daemon_it_finds_through_consul_and_haproxys_exporter(dev: Dev) -> None:
    """Prometheus sends what discovery finds to its scrapes every 5 s: each look polls until then."""
    wanted = {f"{NODE}:{port}": name for name, (_, port) in dev.daemons.items()}

    def all_up() -> dict[str, dict[str, Any]] | None:
        found = {t["labels"]["instance"]: t for t in dev.targets("wharf")}
        haproxy = dev.targets("haproxy")
        up = all(found.get(i, {}).get("health") == "up" for i in wanted) and [t["health"] for t in haproxy] == ["up"]
        return {**found, "haproxy": haproxy[0]} if up else None

    found = wait_for(all_up, DEADLINE, f"every daemon's target up: {wanted}, and HAProxy's", interval=0.25)
    for instance, name in wanted.items():
        port = instance.rsplit(":", 1)[1]
        assert found[instance]["labels"]["daemon"] == name and found[instance]["labels"]["node"] == NODE
        assert found[instance]["scrapeUrl"] == f"http://127.0.0.1:{port}/metrics"
    services = dev.consul().agent.services()
    for name, (_, port) in dev.daemons.items():
        (entry,) = [e for e in services.values() if e["Service"] == f"wharf-{name}" and e["Port"] == port]
        assert entry["Tags"] == ["wharf-metrics"] and entry["Meta"] == {"wharf_daemon": name}
    assert found["haproxy"]["scrapeUrl"] == f"http://127.0.0.1:{dev.ports['--haproxy-stats-port']}/metrics"
    wait_for(lambda: dev.value('count({job="haproxy", __name__=~"haproxy_.+"})'), DEADLINE, "HAProxy's metrics")
    assert "wharf-registrator" not in Path(dev.env["WHARF_HAPROXY_CONFIG"]).read_text(), "never routed"
    assert not dev.firing("WharfDaemonDown")


def test_an_autoscaled_app_failing_its_health_checks_is_below_its_healthy_minimum(dev: Dev) -> None:
    app_id, vhost = fresh("sick")
    app = web_app(app_id, vhost, 2)
    app["labels"].update({"wharf.autoscale.target_rps": "100", "wharf.autoscale.min": "2"})
    app["healthChecks"][0].update(path="/missing.html", maxConsecutiveFailures=0)  # failing, never killed
    assert not dev.firing("WharfAppBelowHealthyMinimum", app=app_id)
    dev.deploy(app)
    alert = dev.until_firing("WharfAppBelowHealthyMinimum", app=app_id)
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["daemon"] == "autoscale"
    assert alert["annotations"]["summary"] == f"{app_id} has 0 healthy instances, under its minimum"


def test_an_app_at_its_autoscaler_maximum_under_load_is_pinned(dev: Dev) -> None:
    app_id, vhost = fresh("busy")
    app = web_app(app_id, vhost, 1)
    app["labels"].update({"wharf.autoscale.target_rps": "2", "wharf.autoscale.max": "1"})
    dev.deploy(app)
    wait_for(lambda: serving(dev.env["WHARF_HAPROXY_SOCKET"], app_name(app_id) + "_") == 1, DEADLINE,
             "the app routed by the dev HAProxy")
    assert not dev.firing("WharfAppPinnedAtMax", app=app_id)
    with Load(int(dev.env["WHARF_HAPROXY_HTTP"].rsplit(":", 1)[1]), vhost, rate=40, connections=2):
        alert = dev.until_firing("WharfAppPinnedAtMax", app=app_id)
    assert alert["labels"]["severity"] == "warning"


def test_a_renderer_refusing_its_config_fires_validation_failing_then_goes_stale(dev: Dev, tmp_path: Path) -> None:
    template, dest = tmp_path / "haproxy-refusable.cfg.j2", tmp_path / "haproxy.cfg"
    template.write_text(REFUSABLE.replace("PORT", str(free_port())))
    env = dev.child_env("WHARF_HAPROXY_", "WHARF_NGINX_")  # this renderer leaves the dev HAProxy alone
    proc, port = dev.daemon("render-refusable", ["render", "run", "--template", str(template), "--dest", str(dest),
                                                 "--kv-prefix", "pm-test/", "--wait", "0"], env)
    instance = f"{NODE}:{port}"
    consul = dev.consul()
    try:
        success = wait_for(lambda: dev.value(f'wharf_render_last_success_timestamp_seconds{{instance="{instance}"}}'),
                           DEADLINE, "a first good render", interval=0.25)
        good = dest.read_text()
        consul.kv.put("pm-test/timeout", "forever")  # a word the renderer writes, one haproxy -c refuses
        failing = dev.until_firing("WharfRenderValidationFailing", instance=instance)
        assert failing["labels"]["target"] == dest.name and failing["labels"]["severity"] == "warning"
        stale = dev.until_firing("WharfRenderStale", instance=instance)
        assert stale["labels"]["severity"] == "critical"
        assert seconds(stale["activeAt"]) >= success + 4, "not before the dev threshold of 5 s since the success"
        assert dest.read_text() == good, "the last good file stays"
    finally:
        consul.kv.delete("pm-test/", recurse=True)
        proc.terminate()
        proc.wait(timeout=30)


def test_framework_schedulers_that_lost_zookeeper_have_no_leader(dev: Dev) -> None:
    assert dev.zookeeper is not None and dev.scheduler is not None
    wait_for(lambda: dev.scheduler is not None and dev.scheduler.leading(), DEADLINE, "a leader")
    wait_for(lambda: dev.value('max(wharf_framework_leader{job="wharf"})') == 1, DEADLINE, "the leader scraped")
    assert not dev.firing("WharfFrameworkNoLeader")
    stop(dev.zookeeper)  # the framework's ZooKeeper is gone: its leader stops leading at once
    alert = dev.until_firing("WharfFrameworkNoLeader")
    assert alert["labels"]["severity"] == "critical" and dev.scheduler.proc.poll() is None
    assert dev.scheduler.metric("wharf_framework_leader") == 0


def test_a_registrator_stopped_cleanly_is_absent_and_one_killed_is_down(dev: Dev) -> None:
    proc, port = dev.daemons.pop("registrator")
    assert not dev.firing("WharfRegistratorAbsent")
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    assert not [e for e in dev.consul().agent.services().values() if e["Port"] == port], "deregistered on SIGTERM"
    dev.until_firing("WharfRegistratorAbsent")
    # Prometheus applies what discovery finds every 5 s: the target goes then, not with the alert
    wait_for(lambda: not [t for t in dev.targets("wharf") if t["labels"]["daemon"] == "registrator"], DEADLINE,
             "the registrator's target gone", interval=0.25)
    # until then its last scrapes failed; with the dev copy's 1 s `for:` (not 5m) that may have fired
    wait_for(lambda: not dev.firing("WharfDaemonDown", daemon="registrator"), DEADLINE, "no daemon down",
             interval=0.25)

    port = free_port()
    proc = registrator_demo.run_daemon(dev.state_dir, dev.env, "--metrics-port", str(port))
    dev.daemons["registrator"] = (proc, port)
    wait_for(lambda: not dev.firing("WharfRegistratorAbsent"), DEADLINE, "a registrator again", interval=0.25)
    proc.kill()
    proc.wait(timeout=30)
    alert = dev.until_firing("WharfDaemonDown", instance=f"{NODE}:{port}")
    assert alert["labels"]["daemon"] == "registrator" and alert["labels"]["severity"] == "critical"
    assert any(e["Port"] == port for e in dev.consul().agent.services().values()), "a killed one stays registered"


def test_no_renderer_left_is_absent(dev: Dev) -> None:
    """Last in this module: the renderer stays stopped."""
    proc, _ = dev.daemons.pop("render")
    assert not dev.firing("WharfRendererAbsent")
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    alert = dev.until_firing("WharfRendererAbsent")
    assert alert["annotations"]["summary"] == "No wharf renderer answers"
