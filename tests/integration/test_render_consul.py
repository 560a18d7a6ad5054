"""`wharf render` against a real Consul: routing follows registrations through HAProxy and nginx,
membership changes reach HAProxy with no new worker, and a Consul outage never empties the config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import consul as pyconsul
import pytest

from devcluster.process import free_port
from tests.conftest import wharf
from tests.integration.render_support import backends, current_worker, get, own_haproxy, own_nginx, seen_backends
from tests.metrics import metric
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def register(client: Any, app_id: str, service_port: int, port: int, group: str, ttl: bool = False,
             **labels: str) -> str:
    """Register one Marathon task port as the registrator does (Meta with the app's HAPROXY_* labels)."""
    name = app_id.strip("/").replace("/", "-")
    service_id = f"127.0.0.1:{name}.{port}:{port}"
    meta = {"wharf_owner": "test", "marathon_app_id": app_id, "service_port": str(service_port),
            "port_index": "0", "mesos_task_id": f"{name}.{uuid.uuid4().hex[:6]}", "HAPROXY_GROUP": group,
            **{f"HAPROXY_0_{k}": v for k, v in labels.items()}}
    check = pyconsul.Check.ttl("30s") if ttl else None
    client.agent.service.register(name, service_id=service_id, address="127.0.0.1", port=port, meta=meta,
                                  check=check)
    if ttl:
        client.agent.check.ttl_pass(f"service:{service_id}")
    return service_id




class Running:
    """A `wharf render run` child process; its log lines go to a file, read with `log()`."""

    def __init__(self, proc: subprocess.Popen[str], log_path: Path) -> None:
        self.proc, self.log_path = proc, log_path

    def poll(self) -> int | None:
        return self.proc.poll()

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(ln) for ln in self.log_path.read_text().splitlines() if ln.startswith("{")]


@contextmanager
def render_run(consul_addr: str, *args: str, log_dir: Path, token: str | None = None) -> Iterator[Running]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "CONSUL_"))}
    env["CONSUL_HTTP_ADDR"] = consul_addr
    if token:
        env["CONSUL_HTTP_TOKEN"] = token
    log_path = log_dir / "render-run.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wharf", "--log-format", "json", "render", "run", *args],
                                env=env, stderr=log, text=True)
    try:
        yield Running(proc, log_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _haproxy_args(haproxy: Any, http_port: int) -> list[str]:
    return ["--template", "haproxy", "--dest", str(haproxy.config), "--http-port", str(http_port),
            "--haproxy-socket", str(haproxy.admin_socket), "--haproxy-master-socket", str(haproxy.master_socket)]


def test_routing_follows_register_scale_and_deregister(consul: Any, tmp_path: Path) -> None:
    client = consul.client()
    group = f"g{uuid.uuid4().hex[:8]}"  # the shared Consul may hold other tests' services
    http_port, nginx_port, sp, metrics_port = free_port(), free_port(), free_port(), free_port()
    vhost = f"{group}.example.com"
    with own_haproxy(tmp_path / "haproxy") as haproxy, own_nginx(tmp_path / "nginx") as nginx, \
            backends(4) as (_, ports):
        ids = [register(client, f"/{group}/web", sp, p, group, ttl=True, VHOST=vhost) for p in ports[:2]]
        args = [*_haproxy_args(haproxy, http_port), "--template", "nginx", "--dest", str(nginx.config),
                "--nginx-port", str(nginx_port), "--nginx-prefix", str(nginx.dir), "--group", group,
                "--wait", "0", "--metrics-port", str(metrics_port)]
        with render_run(consul.addr, *args, log_dir=tmp_path, token=consul.token) as proc:
            want = {f"backend {p}" for p in ports[:2]}
            wait_for(lambda: seen_backends(http_port, vhost) == want, timeout=60, what="HAProxy routes the vhost")
            wait_for(lambda: seen_backends(nginx_port, vhost) == want, timeout=30, what="nginx routes the vhost")
            name = f"{group}_web_{sp}"
            assert f"backend {name}" in haproxy.config.read_text()
            worker = current_worker(haproxy)

            # scale up: a membership change, no new worker
            ids.append(register(client, f"/{group}/web", sp, ports[2], group, ttl=True, VHOST=vhost))
            want = {f"backend {p}" for p in ports[:3]}
            wait_for(lambda: seen_backends(http_port, vhost, tries=16) == want, what="scale-up reaches HAProxy")
            assert current_worker(haproxy) == worker
            # a health flip, then a deregistration: still the same worker
            client.agent.check.ttl_fail(f"service:{ids[0]}")
            want = {f"backend {p}" for p in ports[1:3]}
            wait_for(lambda: seen_backends(http_port, vhost, tries=16) == want, what="failing instance leaves")
            client.agent.service.deregister(ids[1])
            wait_for(lambda: seen_backends(http_port, vhost, tries=16) == {f"backend {ports[2]}"},
                     what="deregistered instance leaves")
            assert current_worker(haproxy) == worker
            # counted once the file is written too, just after HAProxy has the change
            wait_for(lambda: metric(metrics_port, "wharf_render_runtime_updates_total") >= 3,
                     what="three runtime updates counted")
            wait_for(lambda: seen_backends(nginx_port, vhost) == {f"backend {ports[2]}"}, what="nginx follows")

            # a new service with its own vhost: structural, one reload
            before = metric(metrics_port, 'wharf_render_reloads_total{kind="haproxy"}')
            register(client, f"/{group}/api", free_port(), ports[3], group, VHOST=f"api.{vhost}")
            wait_for(lambda: seen_backends(http_port, f"api.{vhost}") == {f"backend {ports[3]}"},
                     what="new service routed")
            wait_for(lambda: metric(metrics_port, 'wharf_render_reloads_total{kind="haproxy"}') >= before + 1,
                     what="the reload counted")
            assert metric(metrics_port, 'wharf_render_reloads_total{kind="haproxy"}') == before + 1
            assert current_worker(haproxy) != worker
            assert seen_backends(http_port, vhost) == {f"backend {ports[2]}"}  # kept across the reload
            wait_for(lambda: metric(metrics_port, "wharf_render_blocking_queries") == 4,
                     what="the node list, the one node, the critical and the warning checks held open")
            assert metric(metrics_port, "wharf_render_last_success_age_seconds") < 60
            for sid in ids[2:]:
                client.agent.service.deregister(sid)
            wait_for(lambda: get(http_port, host=vhost)[0] == 503, what="the route goes with its last instance")
            assert proc.poll() is None
        assert proc.returncode == 0
        for svc in client.agent.services():
            if svc.startswith("127.0.0.1:" + group):
                client.agent.service.deregister(svc)


def test_consul_outage_and_empty_restart_never_empty_the_config(consul_factory: Any, tmp_path: Path) -> None:
    agent = consul_factory()
    client = agent.client()
    group = "outage"
    http_port, sp = free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(3) as (_, ports):
        for p in ports:
            register(client, "/shop/web", sp, p, group, VHOST="shop.example.com")
        # the grace must outlast the check below that an empty Consul does not empty the config,
        # however slowly a loaded machine runs it
        args = [*_haproxy_args(haproxy, http_port), "--wait", "0", "--recover-grace", "10"]
        with render_run(agent.addr, *args, log_dir=tmp_path) as proc:
            want = {f"backend {p}" for p in ports}
            wait_for(lambda: seen_backends(http_port, "shop.example.com") == want, timeout=60, what="routing")
            samples: list[str] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append(haproxy.config.read_text())
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            try:
                agent.stop()
                down_until = time.monotonic() + 6  # the full 30 s is in bench/render_outage.py
                while time.monotonic() < down_until:
                    assert seen_backends(http_port, "shop.example.com", tries=3) == want
                    time.sleep(0.2)
                agent.start()  # empty, as a restarted dev agent is
                client = agent.client()
                time.sleep(1.5)  # Consul answers again, still empty: the config must hold
                assert seen_backends(http_port, "shop.example.com") == want
                # the registrator re-registers, one instance fewer: it converges to that
                for p in ports[:2]:
                    register(client, "/shop/web", sp, p, group, VHOST="shop.example.com")
                want = {f"backend {p}" for p in ports[:2]}
                wait_for(lambda: seen_backends(http_port, "shop.example.com", tries=16) == want, timeout=60,
                         what="converged after re-registration")
            finally:
                stop.set()
                sampler.join()
            assert samples and all("backend shop_web_" in s and f"127.0.0.1:{ports[0]}" in s for s in samples)
        msgs = [line.get("msg") for line in proc.log()]
        assert "consul unreachable" in msgs and "consul reachable again" in msgs


def test_once_writes_then_reports_unchanged_and_check_validates(consul: Any, tmp_path: Path) -> None:
    client = consul.client()
    group = f"g{uuid.uuid4().hex[:8]}"
    sid = register(client, f"/{group}/once", 10400, 31999, group, VHOST=f"{group}.example.com")
    dest = tmp_path / "haproxy.cfg"
    env = {"CONSUL_HTTP_ADDR": consul.addr, **({"CONSUL_HTTP_TOKEN": consul.token} if consul.token else {})}
    try:
        common = ["--template", "haproxy", "--dest", str(dest), "--group", group, "--http-port", "18090"]
        first = wharf("render", "once", *common, "--no-reload", "--json", env=env)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)[0]["changed"] is True
        assert f"backend {group}_once_10400" in dest.read_text() and "server slot1 127.0.0.1:31999" in dest.read_text()
        second = wharf("render", "once", *common, "--no-reload", "--json", env=env)
        assert json.loads(second.stdout)[0] == {"dest": str(dest), "changed": False, "action": "none",
                                                "error": None, "excluded": []}
        checked = wharf("render", "check", *common, "--json", env=env)
        assert checked.returncode == 0 and json.loads(checked.stdout)[0]["state"] == "unchanged"
        nobody = f"127.0.0.1:{free_port()}"
        down = wharf("render", "once", *common, env={"CONSUL_HTTP_ADDR": nobody})
        assert down.returncode == 1
        assert down.stderr.strip() == (f"Error: cannot reach Consul at {nobody} (connection refused): is a Consul "
                                       "agent running there? Check CONSUL_HTTP_ADDR or --consul-addr")
        assert f"backend {group}_once_10400" in dest.read_text()
    finally:
        client.agent.service.deregister(sid)


def test_quiescence_kv_and_exec_with_a_user_template(consul: Any, tmp_path: Path) -> None:
    client = consul.client()
    group = f"g{uuid.uuid4().hex[:8]}"
    prefix = f"{group}/cfg/"
    template = tmp_path / "list.txt.j2"
    template.write_text("{% for r in routes %}{{ r.name }}{% for s in r.servers %} {{ s.port }}{% endfor %}"
                        "{{ '\\n' }}{% endfor %}greeting={{ kv.get('" + prefix + "greeting', 'none') }}\n")
    dest, log = tmp_path / "out" / "list.txt", tmp_path / "exec.log"
    metrics_port = free_port()
    ids: list[str] = []
    try:
        args = ["--template", str(template), "--dest", str(dest), "--group", group, "--kv-prefix", prefix,
                "--wait", "2:20", "--exec", f"echo ran >> {log}", "--metrics-port", str(metrics_port)]
        with render_run(consul.addr, *args, log_dir=tmp_path, token=consul.token):
            wait_for(lambda: dest.exists() and "greeting=none" in dest.read_text(), timeout=60, what="first render")
            wait_for(lambda: metric(metrics_port, "wharf_render_blocking_queries") == 5,
                     what="the node list, the one node, the failing checks and one KV prefix held open")
            writes = metric(metrics_port, 'wharf_render_writes_total{target="list.txt"}')
            # a burst: five registrations and a KV write, all inside the 2 s quiet period
            for port in range(32000, 32005):
                ids.append(register(client, f"/{group}/app", 10500, port, group))
            client.kv.put(prefix + "greeting", "hello")
            wait_for(lambda: "greeting=hello" in dest.read_text(), timeout=60, what="the burst rendered")
            assert dest.read_text().startswith(f"{group}_app_10500 32000 32001 32002 32003 32004\n")
            wait_for(lambda: log.read_text().count("ran") == 2, what="--exec after the burst's write")
            assert metric(metrics_port, 'wharf_render_writes_total{target="list.txt"}') == writes + 1
            assert log.read_text().count("ran") == 2  # once for the first file, once for the burst
    finally:
        for sid in ids:
            client.agent.service.deregister(sid)
        client.kv.delete(prefix, recurse=True)


def test_routing_to_real_containers(consul: Any, docker_engine: Any, tmp_path: Path) -> None:
    client, engine = consul.client(), docker_engine.client()
    group = f"g{uuid.uuid4().hex[:8]}"
    http_port, sp = free_port(), free_port()
    containers, ids = [], []
    try:
        with own_haproxy(tmp_path / "haproxy") as haproxy:
            args = [*_haproxy_args(haproxy, http_port), "--group", group, "--wait", "0"]
            with render_run(consul.addr, *args, log_dir=tmp_path, token=consul.token):
                for n in range(3):
                    port = free_port()
                    script = (f"mkdir -p /www && echo c{n} > /www/index.html && "
                              f"exec httpd -f -p 127.0.0.1:{port} -h /www")
                    containers.append(engine.containers.run("wharf/busybox:latest", ["sh", "-c", script],
                                                            network_mode="host", detach=True))
                    ids.append(register(client, f"/{group}/box", sp, port, group, VHOST="box.example.com"))
                    want = {f"c{i}" for i in range(n + 1)}
                    wait_for(lambda w=want: seen_backends(http_port, "box.example.com", tries=12) == w,
                             timeout=60, what=f"{n + 1} containers routed")
                containers[0].remove(force=True)  # the container dies; its registration goes with it
                client.agent.service.deregister(ids.pop(0))
                wait_for(lambda: seen_backends(http_port, "box.example.com", tries=12) == {"c1", "c2"},
                         timeout=60, what="the stopped container's instance leaves")
    finally:
        for sid in ids:
            client.agent.service.deregister(sid)
        for container in containers[1:]:
            container.remove(force=True)
