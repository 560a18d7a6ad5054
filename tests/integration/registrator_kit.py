"""What the registrator's integration tests share: the daemon as a user runs it, web containers, and
the two questions every fault test asks (any ghost? any gap?)."""

from __future__ import annotations

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

from devcluster.cluster import wait_healthy
from devcluster.docker_engine import BASE_IMAGE
from devcluster.process import Proc, free_port, spawn, stop
from tests.metrics import metric

TEST_LABEL = "wharf.test.registrator"

_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def distinct_port() -> int:
    """A free port never handed out before in this process: the kernel's ephemeral picks repeat
    (200 picks from ~28,000 ports share one about half the time), and a second httpd on a taken
    port exits at once, which would pass for a container the registrator missed."""
    with _handed_out_lock:
        while (port := free_port()) in _handed_out:
            pass
        _handed_out.add(port)
        return port


class RunningRegistrator:
    """`wharf registrator run` in a child process; `.log` is what it printed."""

    def __init__(self, consul: Any, docker_host: str, log: Path, *args: str, hostname: str | None = None,
                 owner: str | None = None, env: dict[str, str] | None = None) -> None:
        self.hostname = hostname or f"h{uuid.uuid4().hex[:8]}"
        self.owner = owner or f"test-{self.hostname}"
        self.metrics_port = free_port()
        self.args = ["--hostname", self.hostname, "--owner", self.owner, "--host-ip", "127.0.0.1",
                     "--metrics-port", str(self.metrics_port), "--docker-host", docker_host, *args]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_"))}
        self.env["CONSUL_HTTP_ADDR"] = consul.addr
        if consul.token:
            self.env["CONSUL_HTTP_TOKEN"] = consul.token
        self.env.update(env or {})
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RunningRegistrator:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "wharf", "--log-format", "json", "registrator", "run",
                                          *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self.proc.kill()
            self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metric(self, name: str) -> float:
        return metric(self.metrics_port, name)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def registrator(consul: Any, docker_host: str, tmp_path: Path, *args: str, **kw: Any
                ) -> Iterator[RunningRegistrator]:
    reg = RunningRegistrator(consul, docker_host, tmp_path / f"registrator-{uuid.uuid4().hex[:6]}.log", *args,
                             **kw).start()
    try:
        yield reg
    except BaseException:
        print(f"--- the registrator's log (last lines) ---\n{reg.output()[-6000:]}")
        raise
    finally:
        if reg.alive():
            reg.stop()


def web(client: Any, tag: str, labels: dict[str, str] | None = None, *, port: int | None = None,
        name: str | None = None, start: bool = True, restart: bool = False, www: bool = True,
        stops_on_term: bool = False, term_exit: int = 0) -> tuple[str, str, int]:
    """A busybox httpd on 127.0.0.1:port with host networking, the port exposed; (id, name, port).

    httpd runs as PID 1 without a TERM handler, so `docker stop -t N` waits N seconds, then kills;
    with `stops_on_term` a shell runs it and exits on TERM with `term_exit`."""
    port = port or distinct_port()
    name = name or f"reg-{uuid.uuid4().hex[:10]}"
    serve = f"httpd -f -p 127.0.0.1:{port} -h {'/www' if www else '/'}"
    prepare = "mkdir -p /www && echo ok > /www/health && " if www else ""
    script = (f"{prepare}trap 'exit {term_exit}' TERM; {serve} & wait" if stops_on_term else f"{prepare}exec {serve}")
    host_config = client.api.create_host_config(
        network_mode="host", restart_policy={"Name": "always"} if restart else None)
    created = client.api.create_container(BASE_IMAGE, ["sh", "-c", script], name=name, ports=[port],
                                          labels={TEST_LABEL: tag, **(labels or {})}, host_config=host_config)
    if start:
        client.api.start(created["Id"])
    return created["Id"], name, port


def remove_all(client: Any, tag: str) -> None:
    for c in client.api.containers(all=True, filters={"label": f"{TEST_LABEL}={tag}"}):
        try:
            client.api.remove_container(c["Id"], force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def owned(consul_client: Any, owner: str) -> dict[str, dict[str, Any]]:
    """The agent's services carrying `owner` in Meta wharf_owner."""
    return {sid: s for sid, s in consul_client.agent.services().items()
            if (s.get("Meta") or {}).get("wharf_owner") == owner}


def consistent(consul_client: Any, docker_client: Any, reg: RunningRegistrator, tag: str) -> bool:
    """No ghost and no gap: the registrator's services of tagged containers are exactly one per
    running tagged container, and none of its services belongs to a container that is not running."""
    running = {c["Id"]: c["Names"][0].lstrip("/") for c in docker_client.api.containers(
        filters={"label": f"{TEST_LABEL}={tag}", "status": "running"})}
    mine = owned(consul_client, reg.owner)
    running_anywhere = {c["Id"] for c in docker_client.api.containers()}
    ghosts = [sid for sid, s in mine.items() if s["Meta"].get("container_id") not in running_anywhere]
    covered = {s["Meta"].get("container_id") for s in mine.values()}
    gaps = [cid for cid in running if cid not in covered]
    return not ghosts and not gaps


class Restartable:
    """One dev-cluster service run on its own and restarted on the same ports, as
    `wharf dev restart NAME` does (stop, clean up, start, wait until healthy)."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.proc: Proc | None = None

    def start(self) -> float:
        """Start it; returns when it answered (time.perf_counter())."""
        self.service.check_installed()
        self.service.prepare()
        self.proc = spawn(self.service.argv(), self.service.log_path, cwd=self.service.dir)
        wait_healthy(self.service, self.proc, time.monotonic() + 60)
        answered = time.perf_counter()
        self.service.after_start()
        return answered

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        self.service.clean_up()

    def restart(self) -> float:
        self.stop()
        return self.start()
