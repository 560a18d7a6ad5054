"""A small marathon-lb-shaped HAProxy config from Marathon's tasks, for the autoscaler's tests.

It gives the autoscaler what it reads, and reloads on every change (the renderer would update
servers through the Runtime API instead): the shared `marathon_http_in` frontend with one vhost ACL
per app (its `HAPROXY_0_VHOST` label) and a backend per app named by marathon-lb's contract
(`/shop/web` on service port 10000 → `shop_web_10000`), whose servers are the app's running tasks.
A `Router` thread re-renders when the tasks change and reloads HAProxy through its master socket
(the new worker's counters start at zero).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from devcluster.haproxy import HAProxy, check_config, runtime_command
from wharf.contracts.marathon_lb import route_name, service_ports


@dataclass(frozen=True)
class Route:
    """One backend: its marathon-lb name, the vhost routed to it, and its servers (host, port)."""

    backend: str
    vhost: str
    servers: tuple[tuple[str, int], ...]


def routes_from_apps(apps: Iterable[dict[str, Any]]) -> list[Route]:
    """Routes for apps carrying `HAPROXY_0_VHOST`, from `GET /v2/apps?embed=apps.tasks`."""
    routes = []
    for app in apps:
        vhost = (app.get("labels") or {}).get("HAPROXY_0_VHOST")
        port = service_ports(app).get(0)
        if not vhost or not port:
            continue
        servers = tuple(sorted((t["host"], t["ports"][0]) for t in app.get("tasks") or []
                               if t.get("state") == "TASK_RUNNING" and t.get("ports")))
        routes.append(Route(route_name(app["id"], port), vhost, servers))
    return sorted(routes, key=lambda r: r.backend)


def render(haproxy: HAProxy, routes: Iterable[Route]) -> str:
    """The whole config: the service's sockets and stats listener, the shared frontend, backends."""
    routes = list(routes)
    lines = [
        "global",
        f"    stats socket {haproxy.admin_socket} mode 600 level admin expose-fd listeners",
        "    stats timeout 30s",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    option idle-close-on-response",
        "",
        "frontend marathon_http_in",
        f"    bind 127.0.0.1:{haproxy.ports['--haproxy-port']}",
    ]
    for route in routes:
        acl = f"host_{route.backend}"
        lines += [f"    acl {acl} hdr(host) -i {route.vhost}", f"    use_backend {route.backend} if {acl}"]
    lines += ["    default_backend no_service", "", "backend no_service",
              '    http-request return status 503 content-type text/plain string "no service\\n"', ""]
    for route in routes:
        lines += [f"backend {route.backend}", "    balance roundrobin"]
        lines += [f"    server task{i} {host}:{port}" for i, (host, port) in enumerate(route.servers)]
        lines.append("")
    lines += ["listen stats", f"    bind 127.0.0.1:{haproxy.ports['--haproxy-stats-port']}",
              "    stats enable", "    stats uri /haproxy?stats", ""]
    return "\n".join(lines)


def apply(haproxy: HAProxy, text: str) -> bool:
    """Validate and swap in `text` if it differs, then reload through the master socket."""
    path = haproxy.config
    if path.exists() and path.read_text() == text:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".haproxy.", suffix=".cfg")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    try:
        check_config(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    runtime_command(haproxy.master_socket, "reload")
    return True


class Router(threading.Thread):
    """Keeps `haproxy` routing Marathon's vhost apps to their running tasks; `reloads` counts."""

    def __init__(self, haproxy: HAProxy, marathon_url: str, auth: tuple[str, str] | None = None,
                 interval: float = 0.3) -> None:
        super().__init__(daemon=True, name="router")
        self.haproxy, self.url, self.auth, self.interval = haproxy, marathon_url.rstrip("/"), auth, interval
        self.reloads = 0
        self.routes: list[Route] = []
        self.error: Exception | None = None
        self._halt = threading.Event()

    def sync(self) -> None:
        """One pass: read Marathon's apps and tasks, render, apply."""
        answer = requests.get(f"{self.url}/v2/apps", params={"embed": "apps.tasks"}, auth=self.auth, timeout=5)
        answer.raise_for_status()
        routes = routes_from_apps(answer.json()["apps"])
        if apply(self.haproxy, render(self.haproxy, routes)):
            self.reloads += 1
        self.routes = routes

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.sync()
                self.error = None
            except Exception as exc:  # keep routing; the caller may look at `error`
                self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
