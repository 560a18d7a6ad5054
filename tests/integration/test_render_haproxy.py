"""The renderer against a real HAProxy: routing follows the catalog; membership changes go through the
Runtime API with no new worker; structural changes are one reload; nothing is dropped under load."""

from __future__ import annotations

import http.client
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from consul_templates.snapshot import Snapshot
from devcluster.process import free_port
from tests.integration.render_support import (
    backends,
    current_worker,
    get,
    haproxy_renderer,
    instance,
    own_haproxy,
    seen_backends,
    workers,
)
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def test_membership_changes_use_the_runtime_api_and_structural_ones_one_reload(tmp_path: Path) -> None:
    http_port, sp = free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(4) as (_, ports):
        renderer = haproxy_renderer(haproxy, http_port)
        web = [instance("/shop/web", sp, p, VHOST="shop.example.com") for p in ports]

        [first] = renderer.apply(Snapshot.of(web[:2]))
        assert first.action == "reload"
        assert seen_backends(http_port, "shop.example.com") == {f"backend {p}" for p in ports[:2]}
        assert seen_backends(sp) == {f"backend {p}" for p in ports[:2]}  # its own frontend on the service port
        worker = current_worker(haproxy)

        # scale up, scale down, a health flip: slots change, the worker stays
        for members in (web[:3], web[1:4], [web[0], web[3]]):
            [out] = renderer.apply(Snapshot.of(members))
            assert out.action == "runtime"
            want = {f"backend {i.port}" for i in members}
            assert seen_backends(http_port, "shop.example.com", tries=16) == want
            assert current_worker(haproxy) == worker
        assert "server slot" in haproxy.config.read_text()
        text = haproxy.config.read_text()
        assert f"127.0.0.1:{ports[0]}" in text and f"127.0.0.1:{ports[3]}" in text  # the file carries them too

        # a new vhost: one reload, one new worker, the runtime-set servers kept
        vhosted = [instance("/shop/web", sp, i.port, VHOST="shop.example.com,www.shop.example.com")
                   for i in (web[0], web[3])]
        [out] = renderer.apply(Snapshot.of(vhosted))
        assert out.action == "reload"
        new_worker = current_worker(haproxy)
        assert new_worker != worker
        assert seen_backends(http_port, "www.shop.example.com") == {f"backend {ports[0]}", f"backend {ports[3]}"}

        # deregistering every instance: the route leaves, unknown hosts get HAProxy's 503
        [out] = renderer.apply(Snapshot())
        assert out.action == "reload"
        assert get(http_port, host="shop.example.com")[0] == 503
        reloads = sum(1 for p in workers(haproxy))
        assert reloads >= 1


def test_a_reload_keeps_runtime_state_through_the_server_state_file(tmp_path: Path) -> None:
    http_port, sp = free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(3) as (_, ports):
        renderer = haproxy_renderer(haproxy, http_port)
        web = [instance("/web", sp, p, VHOST="w.example.com") for p in ports]
        renderer.apply(Snapshot.of(web[:1]))
        assert renderer.apply(Snapshot.of(web[:2]))[0].action == "runtime"
        # structure and membership change in one pass: slots set first, state saved, then the reload
        other = instance("/other", free_port(), ports[2], VHOST="o.example.com")
        assert renderer.apply(Snapshot.of([*web[1:3], other]))[0].action == "reload"
        assert (haproxy.dir / "haproxy.state").read_text().startswith("1\n")
        assert seen_backends(http_port, "w.example.com") == {f"backend {ports[1]}", f"backend {ports[2]}"}
        assert seen_backends(http_port, "o.example.com") == {f"backend {ports[2]}"}


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (make bootstrap installs it)")
def test_mixed_catalog_changes_under_wrk_load_fail_no_request(tmp_path: Path) -> None:
    changes = 30  # the full 100 run in bench/render_changes.py
    http_port, sp, extra_port = free_port(), free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(6) as (_, ports):
        renderer = haproxy_renderer(haproxy, http_port)
        web = [instance("/web", sp, p, VHOST="w.example.com") for p in ports]
        renderer.apply(Snapshot.of(web[:3]))
        load = subprocess.Popen(["wrk", "-t2", "-c8", "-d60s", "-H", "Host: w.example.com",
                                 f"http://127.0.0.1:{http_port}/"], stdout=subprocess.PIPE, text=True)
        actions = []
        try:
            wait_for(lambda: get(http_port, host="w.example.com")[0] == 200, what="routing before load")
            for n in range(changes):
                members = web[: 2 + n % 4]  # scale between 2 and 5
                extra = ([instance("/extra", extra_port, ports[5], VHOST=f"x{n}.example.com")]
                         if n % 3 == 0 else [])  # every third change is structural
                actions.append(renderer.apply(Snapshot.of(members + extra))[0].action)
        finally:
            load.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
            out, _ = load.communicate(timeout=30)
        assert "runtime" in actions and "reload" in actions
        requests = int(next(ln.split()[0] for ln in out.splitlines() if "requests in" in ln))
        assert requests > 100, out
        assert "Socket errors" not in out and "Non-2xx" not in out, out


def test_a_restarted_renderer_keeps_the_running_slots(tmp_path: Path) -> None:
    http_port, sp = free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(3) as (_, ports):
        web = [instance("/web", sp, p, VHOST="w.example.com") for p in ports]
        first = haproxy_renderer(haproxy, http_port)
        first.apply(Snapshot.of(web))
        first.apply(Snapshot.of([web[0], web[2]]))  # slot2 emptied at run time
        worker = current_worker(haproxy)
        again = haproxy_renderer(haproxy, http_port)  # a new process: it only has the file
        assert again.apply(Snapshot.of([web[0], web[2]]))[0].action == "none"
        assert again.apply(Snapshot.of(web[:2]))[0].action == "runtime"  # slot3 out, slot2 back
        assert seen_backends(http_port, "w.example.com") == {f"backend {p}" for p in ports[:2]}
        assert current_worker(haproxy) == worker


def test_a_failed_reload_is_retried_on_the_next_pass_even_with_no_change(tmp_path: Path) -> None:
    http_port, sp = free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(1) as (_, ports):
        renderer = haproxy_renderer(haproxy, http_port)
        assert renderer.haproxy is not None
        good_master = renderer.haproxy.master_socket
        renderer.haproxy.master_socket = str(tmp_path / "no-such.sock")
        snap = Snapshot.of([instance("/web", sp, ports[0], VHOST="w.example.com")])
        [out] = renderer.apply(snap)
        assert out.action == "failed"
        assert "backend web_" in haproxy.config.read_text()  # written, validated, not yet running
        renderer.haproxy.master_socket = good_master
        assert renderer.apply(snap)[0].action == "reload"
        assert seen_backends(http_port, "w.example.com") == {f"backend {ports[0]}"}


def test_a_drain_reaches_haproxy_while_a_structural_pass_is_still_validating(tmp_path: Path) -> None:
    """The Runtime API is not behind the pass: a health flip (a drain) is served while the pass that
    brings a new service is held inside its validation; the reload after it keeps the drain."""
    http_port, sp, sp2 = free_port(), free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(3) as (_, ports):
        renderer = haproxy_renderer(haproxy, http_port)
        web = [instance("/shop/web", sp, p, VHOST="shop.example.com") for p in ports[:2]]
        assert renderer.apply(Snapshot.of(web))[0].action == "reload"
        assert seen_backends(http_port, "shop.example.com") == {f"backend {p}" for p in ports[:2]}
        target = renderer.targets[0]
        validating, release = threading.Event(), threading.Event()
        check = target.validate

        def held(path: Path) -> None:
            validating.set()
            release.wait(30)
            assert check is not None
            check(path)
        target.validate = held
        api = instance("/shop/api", sp2, ports[2], VHOST="api.example.com")
        renderer.feed({"shop-api": Snapshot.of([api]).services[0]})  # structural: left to the pass
        structural = threading.Thread(target=renderer.flush)
        structural.start()
        try:
            assert validating.wait(30)
            drained = web[1]._replace(status="maintenance")
            renderer.feed({"shop-web": Snapshot.of([web[0], drained]).services[0]})
            assert seen_backends(http_port, "shop.example.com") == {f"backend {ports[0]}"}
            assert structural.is_alive()  # the pass is still validating
        finally:
            release.set()
            structural.join(30)
        assert seen_backends(http_port, "api.example.com") == {f"backend {ports[2]}"}  # the reload came
        assert seen_backends(http_port, "shop.example.com") == {f"backend {ports[0]}"}  # and kept the drain


@contextmanager
def hanging_up() -> Iterator[int]:
    """A server on a free loopback port that reads each request and closes without answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                with suppress(OSError):
                    conn.recv(65536)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def request(port: int, method: str, host: str) -> int:
    """One request on a new connection; its status, 0 when the connection failed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, "/", body=None,
                     headers={"Host": host, "Connection": "close"})
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize("passive_health", [False, True])
def test_a_server_dead_before_its_drain_costs_an_idempotent_request_nothing(tmp_path: Path,
                                                                            passive_health: bool) -> None:
    """An instance that exits at once on SIGTERM is gone before its drain reaches HAProxy: the
    built-in template retries a refused connection on another server at once. With
    HAPROXY_0_RETRY_ON=none every request round robin sends there fails, unless `--passive-health`
    marks the dead server down on its first error."""
    http_port, sp, sp2 = free_port(), free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(3) as (pool, ports):
        renderer = haproxy_renderer(haproxy, http_port, passive_health=passive_health)
        default = [instance("/retried", sp, p, VHOST="r.example.com") for p in ports]
        bare = [instance("/bare", sp2, p, VHOST="b.example.com", RETRY_ON="none") for p in ports]
        assert renderer.apply(Snapshot.of([*default, *bare]))[0].action == "reload"
        assert seen_backends(http_port, "r.example.com") == {f"backend {p}" for p in ports}
        assert seen_backends(http_port, "b.example.com") == {f"backend {p}" for p in ports}
        dead = pool.servers.pop(ports[0])
        dead.shutdown()
        dead.server_close()  # refuses connections; the catalog still says passing

        # round robin: three in a row meet every server once, the dead one included
        assert [request(http_port, "POST", "r.example.com") for _ in range(3)] == [200] * 3  # never reached it
        assert [request(http_port, "GET", "r.example.com") for _ in range(30)] == [200] * 30
        failed = [request(http_port, "GET", "b.example.com") for _ in range(30)].count(503)
        assert (1 <= failed <= 2) if passive_health else failed == 10


def test_an_empty_response_is_retried_for_idempotent_methods_only(tmp_path: Path) -> None:
    """A server that takes the request and hangs up: a GET is answered by another server, a POST
    (which that server may have acted on) is not sent twice."""
    http_port, sp = free_port(), free_port()
    with own_haproxy(tmp_path / "haproxy") as haproxy, backends(1) as (_, ports), hanging_up() as rude:
        renderer = haproxy_renderer(haproxy, http_port)
        members = [instance("/api", sp, p, VHOST="a.example.com") for p in (rude, ports[0])]
        assert renderer.apply(Snapshot.of(members))[0].action == "reload"
        # round robin over the two: every other request meets the one that hangs up
        assert [request(http_port, "GET", "a.example.com") for _ in range(4)] == [200] * 4
        assert sorted(request(http_port, "POST", "a.example.com") for _ in range(4)) == [200, 200, 502, 502]
