"""One odd registration never freezes routing: values a config cannot hold are left out, each with one
log line naming the service, the field and the reason, and every good service is still routed."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.process import free_port
from tests.conftest import wharf
from tests.integration.render_support import backends, own_haproxy, seen_backends
from tests.integration.test_render_consul import register, render_run
from tests.metrics import metric
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def register_unsafe(client: Any, group: str, good_app: str, service_port: int, port: int) -> list[str]:
    """Registrations carrying, each, a value the safety check refuses: a service name, an address,
    a tag and a meta entry. The tag and the meta entry ride on an instance of the good app, which
    must still be routed without them."""
    meta = {"wharf_owner": "test", "HAPROXY_GROUP": group, "HAPROXY_0_VHOST": f"evil.{group}.example.com"}
    ids = [f"{group}-evil-name", f"{group}-evil-address"]
    client.agent.service.register(f"{group} evil;name", service_id=ids[0], address="127.0.0.1", port=port,
                                  meta=meta)
    client.agent.service.register(f"{group}-evil-address", service_id=ids[1], port=port, meta=meta,
                                  address="127.0.0.1\n    server evil 10.0.0.1:80")
    name = good_app.strip("/").replace("/", "-")
    sid = f"127.0.0.1:{name}.odd:{port}"
    client.agent.service.register(name, service_id=sid, address="127.0.0.1", port=port,
                                  tags=["fine", "bad tag#comment"],
                                  meta={"wharf_owner": "test", "marathon_app_id": good_app,
                                        "service_port": str(service_port), "port_index": "0",
                                        "HAPROXY_GROUP": group, "HAPROXY_0_VHOST": f"{group}.example.com",
                                        "notes": "line one\nbackend evil"})
    return [*ids, sid]


@pytest.fixture
def group(consul: Any) -> Iterator[str]:
    name = f"g{uuid.uuid4().hex[:8]}"  # the shared Consul may hold other tests' services
    yield name
    client = consul.client()
    for sid, svc in client.agent.services().items():
        if name in sid or svc.get("Meta", {}).get("HAPROXY_GROUP") == name:
            client.agent.service.deregister(sid)


def test_once_leaves_out_unsafe_values_and_routes_every_good_service(consul: Any, group: str,
                                                                       tmp_path: Path) -> None:
    client = consul.client()
    sp_web, sp_api = free_port(), free_port()
    register(client, f"/{group}/web", sp_web, 31001, group, VHOST=f"{group}.example.com")
    register(client, f"/{group}/api", sp_api, 31002, group, VHOST=f"api.{group}.example.com")
    register_unsafe(client, group, f"/{group}/web", sp_web, 31003)
    dest = tmp_path / "haproxy.cfg"
    env = {"CONSUL_HTTP_ADDR": consul.addr, **({"CONSUL_HTTP_TOKEN": consul.token} if consul.token else {})}

    done = wharf("--log-format", "json", "render", "once", "--template", "haproxy", "--dest", str(dest),
                 "--group", group, "--http-port", str(free_port()), "--no-reload", env=env)

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    config = dest.read_text()
    subprocess.run(["haproxy", "-c", "-q", "-f", str(dest)], check=True)
    assert f"backend {group}_web_{sp_web}" in config and f"backend {group}_api_{sp_api}" in config
    assert "127.0.0.1:31001" in config and "127.0.0.1:31002" in config
    assert "127.0.0.1:31003" in config, "the instance that only carried a bad tag and meta is still served"
    assert "evil" not in config and "#comment" not in config
    lines = [ln for ln in done.stderr.splitlines() if "left out of the config" in ln]
    assert len(lines) == 4, done.stderr  # one line per value, each naming service, field and reason
    by_what = {ln.split('"what": "')[1].split('"')[0]: ln for ln in lines}
    assert set(by_what) == {"service", "instance", "tag", "meta"}
    assert f'"service": "{group}-web"' in by_what["tag"] and "bad tag#comment" in by_what["tag"]
    assert f'"service": "{group}-web"' in by_what["meta"] and '"name": "\'notes\'"' in by_what["meta"]
    assert f'"service": "{group}-evil-address"' in by_what["instance"] and "address" in by_what["instance"]
    assert "evil;name" in by_what["service"]
    assert all('"reason": "' in ln for ln in lines)


def test_run_keeps_applying_good_changes_while_an_unsafe_registration_stays(consul: Any, group: str,
                                                                            tmp_path: Path) -> None:
    client = consul.client()
    http_port, sp, metrics_port = free_port(), free_port(), free_port()
    vhost = f"{group}.example.com"
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(3) as (_, ports):
        register(client, f"/{group}/web", sp, ports[0], group, VHOST=vhost)
        register_unsafe(client, group, f"/{group}/web", sp, ports[1])
        args = ["--template", "haproxy", "--dest", str(haproxy.config), "--http-port", str(http_port),
                "--haproxy-socket", str(haproxy.admin_socket), "--haproxy-master-socket",
                str(haproxy.master_socket), "--group", group, "--wait", "0", "--metrics-port", str(metrics_port)]
        with render_run(consul.addr, *args, log_dir=tmp_path, token=consul.token) as proc:
            want = {f"backend {p}" for p in ports[:2]}
            wait_for(lambda: seen_backends(http_port, vhost) == want, timeout=60, what="the good instances routed")
            # a change of the good service, with the unsafe registrations still there
            register(client, f"/{group}/web", sp, ports[2], group, VHOST=vhost)
            want = {f"backend {p}" for p in ports}
            wait_for(lambda: seen_backends(http_port, vhost, tries=16) == want, what="the scale-up is applied")
            register(client, f"/{group}/api", free_port(), ports[0], group, VHOST=f"api.{vhost}")
            wait_for(lambda: seen_backends(http_port, f"api.{vhost}") == {f"backend {ports[0]}"},
                     what="a new service is routed")
            assert metric(metrics_port, "wharf_render_dropped_values") == 4
            assert proc.poll() is None
        assert proc.returncode == 0
        log = proc.log()
        assert not [line for line in log if line.get("msg") == "cycle failed"]
        dropped = [line for line in log if line.get("msg") == "left out of the config"]
        assert len(dropped) == 4, "each value is logged once while it stays, not on every pass"
