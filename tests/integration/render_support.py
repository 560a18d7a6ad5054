"""Helpers for the renderer's integration tests: own HAProxy/nginx instances, small HTTP backends."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from consul_templates import apply, passes, render
from consul_templates.snapshot import ServiceInstance
from devcluster.cluster import running
from devcluster.haproxy import HAProxy
from devcluster.nginx import Nginx
from devcluster.process import claim_ports
from wharf.haproxy import send


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = f"backend {self.server.server_address[1]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client (HAProxy, wrk) closing early is not news


class Backends:
    """Small HTTP servers on free loopback ports, each answering `backend <port>`."""

    def __init__(self) -> None:
        self.servers: dict[int, _Server] = {}

    def start(self) -> int:
        server = _Server(("127.0.0.1", 0), _Hello)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        self.servers[port] = server
        return port

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


@contextmanager
def backends(n: int) -> Iterator[tuple[Backends, list[int]]]:
    pool = Backends()
    try:
        yield pool, [pool.start() for _ in range(n)]
    finally:
        pool.close()


@contextmanager
def own_haproxy(directory: Path) -> Iterator[HAProxy]:
    """A fresh HAProxy (master-worker, admin socket) this test may rewrite and reload."""
    ports = claim_ports({flag: None for flag in HAProxy.port_flags})
    with running(HAProxy(directory, ports)) as service:
        assert isinstance(service, HAProxy)
        yield service


@contextmanager
def own_nginx(directory: Path) -> Iterator[Nginx]:
    ports = claim_ports({flag: None for flag in Nginx.port_flags})
    with running(Nginx(directory, ports)) as service:
        assert isinstance(service, Nginx)
        yield service


def get(port: int, path: str = "/", host: str | None = None, timeout: float = 3.0) -> tuple[int, str]:
    """One GET through a load balancer (a new connection); (status, body), or (0, error) on failure."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host or "localhost", "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    except OSError as exc:
        return 0, str(exc)
    finally:
        conn.close()


def seen_backends(port: int, host: str | None = None, tries: int = 12) -> set[str]:
    """Which backends answer through the balancer over a few requests (round robin spreads them)."""
    return {body.strip() for status, body in (get(port, host=host) for _ in range(tries)) if status == 200}


def workers(haproxy: HAProxy) -> list[apply.HAProxyProcess]:
    return [p for p in apply.parse_show_proc(send(haproxy.master_socket, "show proc"))
            if p.kind == "worker"]


def current_worker(haproxy: HAProxy) -> int:
    return next(p.pid for p in workers(haproxy) if p.reloads == 0)


def instance(app_id: str, service_port: int, port: int, node: str = "n1", **labels: str) -> ServiceInstance:
    meta = {"marathon_app_id": app_id, "service_port": str(service_port), "port_index": "0",
            **{f"HAPROXY_0_{k}": v for k, v in labels.items()}}
    name = app_id.strip("/").replace("/", "-")
    return ServiceInstance(f"{node}:{name}.{port}:{port}", name, node, "127.0.0.1", port, (), meta)


def haproxy_renderer(haproxy: HAProxy, http_port: int, spec: str = "haproxy", passive_health: bool = False,
                     **kw: object) -> passes.Renderer:
    """A renderer writing `haproxy`'s own config file and applying to it."""
    settings = render.RenderSettings(http_port=http_port, admin_socket=str(haproxy.admin_socket),
                                     state_file=str(haproxy.dir / "haproxy.state"), passive_health=passive_health)
    template = render.load_template(spec)
    target = passes.Target(template, haproxy.config, passes.validator_for(template.kind, None))
    control = apply.HAProxyControl(str(haproxy.admin_socket), str(haproxy.master_socket), settings.state_file)
    return passes.Renderer([target], settings, control, **kw)  # type: ignore[arg-type]
