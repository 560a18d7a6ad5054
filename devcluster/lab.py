"""A routed corner of a running cluster, for measuring what a change costs in failed requests.

`Lab(directory, systems)` starts, beside a running dev cluster (or real Marathon and Consul reached
through the same settings), the chain a user runs: its own HAProxy, `wharf registrator run` (Marathon
tasks on this machine's Docker engine into Consul) and `wharf render run` (Consul into that HAProxy
through its Runtime API and master socket). `web_app` is a Marathon app of busybox httpd that either
keeps serving through its kill grace period or exits at once on SIGTERM; `serving(vhost)` says how
many of its instances HAProxy routes. The integration tests and `bench/zero_downtime.py` share it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from devcluster.cluster import wait_healthy
from devcluster.haproxy import HAProxy
from devcluster.process import Proc, claim_ports, free_port, spawn, stop
from devcluster.service import DevService
from wharf.haproxy import send, servers_state

IMAGE = "wharf/busybox:latest"
#: serves through its grace period: httpd as PID 1 has no SIGTERM handler, so only SIGKILL ends it
KEEPS_SERVING = "echo ok > index.html && exec httpd -f -p $HOST:$PORT0 -h ."
#: exits the moment SIGTERM arrives
EXITS_AT_ONCE = "echo ok > index.html && trap 'exit 0' TERM; httpd -f -p $HOST:$PORT0 -h . & wait"


@dataclass(frozen=True)
class Systems:
    """Where the cluster is: Consul's address and token, Marathon's URL, the Docker engine's socket."""

    consul_addr: str
    marathon_url: str
    docker_host: str
    consul_token: str | None = None


def web_app(app_id: str, vhost: str, instances: int, exits_at_once: bool = False, grace: float = 3.0,
            start_delay: float = 0.0, health: bool = True, **labels: str) -> dict[str, Any]:
    """A Marathon app of busybox httpd routed by `vhost`: it serves `ok` once it listens
    (`start_delay` seconds after it starts), keeps serving through its `grace` after SIGTERM unless
    `exits_at_once`, and has an HTTP health check (every second) unless `health` is False; `labels`
    are more of its `HAPROXY_0_*` labels (`RETRY_ON="none"`)."""
    command = EXITS_AT_ONCE if exits_at_once else KEEPS_SERVING
    if start_delay:
        command = f"sleep {start_delay:g}; {command}"
    app: dict[str, Any] = {
        "id": app_id, "instances": instances, "cpus": 0.01, "mem": 16, "cmd": command,
        "container": {"type": "DOCKER", "docker": {"image": IMAGE}},
        "portDefinitions": [{"port": 0}], "taskKillGracePeriodSeconds": grace,
        "labels": {"HAPROXY_0_VHOST": vhost, "HAPROXY_0_MODE": "http",
                   **{f"HAPROXY_0_{k}": v for k, v in labels.items()}},
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
    }
    if health:
        app["healthChecks"] = [{"protocol": "HTTP", "path": "/index.html", "portIndex": 0, "intervalSeconds": 1,
                                "timeoutSeconds": 1, "gracePeriodSeconds": 60, "maxConsecutiveFailures": 3}]
    return app


def spread_app(app_id: str, vhost: str, instances: int, nodes: int) -> dict[str, Any]:
    """`web_app` spread evenly over `nodes` agents (Marathon's `GROUP_BY hostname`)."""
    return {**web_app(app_id, vhost, instances), "constraints": [["hostname", "GROUP_BY", str(nodes)]]}


def bluegreen_spec(version: str, vhost: str, port: int, instances: int = 3, exits_at_once: bool = True,
                   listens: bool = True, **labels: str) -> dict[str, Any]:
    """The config-repository spec (`apps/<name>.yaml`) of a `strategy: bluegreen` busybox httpd that
    serves `version` (or never listens), routed by `vhost` on service port `port`, the colours
    alternating with `port + 1`; `labels` are more of its `HAPROXY_0_*` labels."""
    command = (EXITS_AT_ONCE if exits_at_once else KEEPS_SERVING).replace("echo ok", f"echo {version}")
    return {"image": IMAGE, "cmd": command if listens else "sleep 3600", "instances": instances, "cpus": 0.01,
            "mem": 16, "strategy": "bluegreen", "ports": [{"name": "http"}], "taskKillGracePeriodSeconds": 3,
            "health": {"http": "/index.html", "interval": 1, "timeout": 1, "grace": 60},
            "lb": {"vhost": vhost, "mode": "http", "port": port},
            "labels": {"HAPROXY_DEPLOYMENT_ALT_PORT": str(port + 1),
                       **{f"HAPROXY_0_{k}": v for k, v in labels.items()}}}


@dataclass
class Lab:
    """Own HAProxy + registrator + renderer on `systems`, files and logs under `directory`."""

    directory: Path
    systems: Systems
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ports = claim_ports({flag: None for flag in HAProxy.port_flags})
        self.haproxy = HAProxy(self.directory / "haproxy", ports)
        self.owner = f"lab-{free_port()}"

    @property
    def http_port(self) -> int:
        return int(self.haproxy.ports["--haproxy-port"])

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_"))}
        env.update(CONSUL_HTTP_ADDR=self.systems.consul_addr, MARATHON_URL=self.systems.marathon_url)
        if self.systems.consul_token:
            env["CONSUL_HTTP_TOKEN"] = self.systems.consul_token
        return env

    def __enter__(self) -> Lab:
        self._start(self.haproxy)
        self.start_renderer()
        self.procs["registrator"] = spawn(
            [sys.executable, "-m", "wharf", "registrator", "run", "--hostname", self.owner, "--owner", self.owner,
             "--host-ip", "127.0.0.1", "--docker-host", self.systems.docker_host, "--resync", "0"],
            self.directory / "registrator.log", env=self.env())
        return self

    def start_renderer(self) -> None:
        """`wharf render run` onto this lab's HAProxy (again, after `stop_renderer`)."""
        h = self.haproxy
        self.procs["renderer"] = spawn(
            [sys.executable, "-m", "wharf", "render", "run", "--template", "haproxy", "--dest", str(h.config),
             "--http-port", str(self.http_port), "--stats-port", str(h.ports["--haproxy-stats-port"]),
             "--haproxy-socket", str(h.admin_socket), "--haproxy-master-socket", str(h.master_socket),
             "--wait", "0"], self.directory / "renderer.log", env=self.env())

    def stop_renderer(self) -> None:
        stop(self.procs.pop("renderer"))

    def _start(self, service: DevService) -> None:
        service.check_installed()
        service.prepare()
        proc = spawn(service.argv(), service.log_path, cwd=service.dir)
        self.procs[service.name] = proc
        wait_healthy(service, proc, time.monotonic() + 30)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for name in ("registrator", "renderer", "haproxy"):
            if name in self.procs:
                stop(self.procs.pop(name))

    def delete_apps(self, prefix: str) -> None:
        """Delete (forced) every Marathon app whose id starts with `prefix`: a test's own, at its end."""
        url = self.systems.marathon_url
        for app in requests.get(f"{url}/v2/apps", timeout=10).json()["apps"]:
            if app["id"].startswith(prefix):
                requests.delete(f"{url}/v2/apps{app['id']}", params={"force": "true"}, timeout=10)

    def serving(self, backend_prefix: str) -> int:
        """How many servers of the backends named `backend_prefix*` HAProxy has up in rotation."""
        return serving(self.haproxy.admin_socket, backend_prefix)

    def log(self, name: str) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def serving(admin_socket: Path | str, backend_prefix: str) -> int:
    """How many servers of the backends named `backend_prefix*` the HAProxy of `admin_socket` has up in
    rotation (0 while it does not answer)."""
    try:
        state = servers_state(send(admin_socket, "show servers state"))
    except OSError:
        return 0
    return sum(1 for (backend, _), server in state.items() if backend.startswith(backend_prefix) and server.up)


def run(argv: list[str], env: dict[str, str], timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """`python -m wharf ARGV` with `env`, its output captured."""
    return subprocess.run([sys.executable, "-m", "wharf", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout)
