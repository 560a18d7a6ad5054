"""The dev cluster: start, check and stop its services, remembering them in `cluster.json`."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devcluster import nodes
from devcluster.consul import Consul
from devcluster.docker_engine import DockerEngine
from devcluster.haproxy import HAProxy
from devcluster.nginx import Nginx
from devcluster.process import Proc, claim_ports, spawn, stop
from devcluster.prometheus import Prometheus, PrometheusTargets
from devcluster.registry import Registry
from devcluster.service import DevService
from devcluster.standins import ChronosStandIn, MarathonStandIn, MesosStandIn
from devcluster.zookeeper import ZooKeeper
from wharf.atomic import write_atomic
from wharf.errors import BadInput, Failure, TimedOut
from wharf.wait import wait_until

#: in start order (a service starts once the ones it `needs` are healthy); stopped in reverse
SERVICE_TYPES: tuple[type[DevService], ...] = (
    ZooKeeper, HAProxy, Nginx, DockerEngine, Registry, Consul, MesosStandIn, MarathonStandIn, ChronosStandIn,
    PrometheusTargets, Prometheus,
)


def service_types(options: Mapping[str, Any] | None = None) -> tuple[type[DevService], ...]:
    """The services a cluster with these options runs, in start order: `SERVICE_TYPES`, then its nodes'."""
    return SERVICE_TYPES + nodes.node_types(options)


def claim_service_ports(types: tuple[type[DevService], ...], given: Mapping[str, int | None]) -> dict[str, int]:
    """Every port the services need: the ones `given` checked, free ones for the rest, each claimed on
    the address its service binds (`port_host`, 127.0.0.1 unless a service says otherwise)."""
    by_host: dict[str, dict[str, int | None]] = {}
    for service_type in types:
        host = str(getattr(service_type, "port_host", "127.0.0.1"))
        by_host.setdefault(host, {}).update({flag: given.get(flag) for flag in service_type.port_flags})
    chosen: dict[str, int] = {}
    for host, wanted in by_host.items():
        chosen.update(claim_ports(wanted, host))
    return chosen


def wait_healthy(service: DevService, proc: Proc, deadline: float) -> None:
    """Poll `service.probe()` until it passes; fail if the process dies or the deadline passes."""
    last: list[Exception | None] = [None]

    def healthy() -> bool:
        if not proc.alive():
            raise Failure(f"{service.name} exited during start-up: {log_tail(service.log_path)}")
        try:
            service.probe()
            return True
        except Exception as exc:  # not ready yet
            last[0] = exc
            return False

    try:
        wait_until(healthy, deadline - time.monotonic(), 0.05, f"{service.name} to become healthy")
    except TimedOut:
        raise Failure(f"{service.name} did not become healthy in time: {last[0]}") from None


def log_tail(path: Path, lines: int = 1) -> str:
    """The last non-empty line(s) of a log, for one-line error messages."""
    try:
        text = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


@contextmanager
def running(service: DevService, timeout: float = 60.0) -> Iterator[DevService]:
    """Run one service on its own (for tests and tools): start, wait healthy, yield, stop, unmount."""
    service.check_installed()
    service.prepare()
    proc = spawn(service.argv(), service.log_path, cwd=service.dir, env=service.child_env())
    try:
        wait_healthy(service, proc, time.monotonic() + timeout)
        service.after_start()
        yield service
    finally:
        stop(proc)
        service.clean_up()


class Cluster:
    """The dev cluster kept in one state directory."""

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.state_file = self.state_dir / "cluster.json"

    def services(self, ports: dict[str, int], options: dict[str, Any] | None = None) -> list[DevService]:
        return [t(self.state_dir / t.name, ports, options) for t in service_types(options)]

    def _services_of(self, state: dict[str, Any]) -> list[DevService]:
        return self.services(state["ports"], state.get("options"))

    def read_state(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None

    def _write_state(self, state: dict[str, Any]) -> None:
        write_atomic(self.state_file, json.dumps(state, indent=2))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _procs(self, state: dict[str, Any]) -> dict[str, Proc]:
        return {name: Proc(**p) for name, p in state.get("procs", {}).items()}

    def running(self) -> bool:
        """True if any process of this cluster is alive."""
        state = self.read_state()
        return bool(state) and any(p.alive() for p in self._procs(state or {}).values())

    def up(self, ports: dict[str, int | None] | None = None, timeout: float = 90.0,
           options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start every service and wait until all are healthy; a running cluster is left as it is.

        `options` are choices beyond ports, kept with the cluster (e.g. `{"consul_acl": True}`).
        """
        with self._locked():
            if self.running():
                return {**self.status(), "already_running": True}
            stale = self.read_state()
            if stale:  # left by a cluster whose processes died: clean up after it
                self._stop_all(stale)
            self._clear()
            types = service_types(options)
            for service_type in types:
                service_type(self.state_dir / service_type.name, {}, options).check_installed()
            chosen = claim_service_ports(types, ports or {})
            state: dict[str, Any] = {"ports": chosen, "options": dict(options or {}), "procs": {},
                                     "started_at": time.time()}
            services = self._services_of(state)
            by_name = {s.name: s for s in services}
            healthy: set[str] = set()
            deadline = time.monotonic() + timeout

            def ensure_healthy(name: str) -> None:
                if name not in healthy:
                    wait_healthy(by_name[name], self._procs(state)[name], deadline)
                    by_name[name].after_start()
                    healthy.add(name)

            try:
                for service in services:
                    for need in service.needs:
                        ensure_healthy(need)
                    service.prepare()
                    proc = spawn(service.argv(), service.log_path, cwd=service.dir, env=service.child_env())
                    state["procs"][service.name] = proc.to_json()
                    self._write_state(state)
                for service in services:
                    ensure_healthy(service.name)
            except BaseException:
                self._stop_all(state)
                self._clear()
                raise
            return {**self.status(), "already_running": False}

    def restart(self, name: str, timeout: float = 90.0) -> dict[str, Any]:
        """Stop one service and start it again on the same ports (fault injection for tests)."""
        with self._locked():
            state = self._running_state()
            names = [s.name for s in self._services_of(state)]
            if name not in names:
                raise BadInput(f"{name}: not a dev cluster service (one of {', '.join(names)})")
            self._restart(state, [name], timeout)
            return self.status()["services"][name]

    def restart_node(self, index: int, timeout: float = 90.0) -> dict[str, Any]:
        """Start node `index`'s services again on the same ports, its agent with a clean data dir (a
        rebooted host), and wait until they are healthy. Returns the node's `status` row."""
        with self._locked():
            state = self._running_state()
            nodes.check_node(state.get("options"), index, "NODE")
            self._restart(state, nodes.node_service_names(state.get("options"), index), timeout)
            return self._node_row(index)

    def kill_node(self, index: int) -> dict[str, Any]:
        """SIGKILL node `index`'s services at once, as a host dropping off the network: nothing is
        deregistered and its containers keep running. Returns the node's `status` row."""
        with self._locked():
            state = self._running_state()
            nodes.check_node(state.get("options"), index, "NODE")
            procs = self._procs(state)
            names = nodes.node_service_names(state.get("options"), index)
            doomed = [procs[name] for name in names if name in procs]
            for proc in doomed:
                if proc.alive():
                    os.kill(proc.pid, signal.SIGKILL)
            for proc in doomed:
                stop(proc)  # waits until it is gone (a SIGTERM to a dying process changes nothing)
            return self._node_row(index)

    def _node_row(self, index: int) -> dict[str, Any]:
        return dict(self.status()["nodes"][index - 1])

    def _running_state(self) -> dict[str, Any]:
        state = self.read_state()
        if state is None or not self.running():
            raise Failure(f"no dev cluster running in {self.state_dir} (run `wharf dev up`)")
        return state

    def _restart(self, state: dict[str, Any], names: list[str], timeout: float) -> None:
        """Stop the services `names` (last first), then start them in order, each healthy before the next."""
        services = {s.name: s for s in self._services_of(state)}
        deadline = time.monotonic() + timeout
        for name in reversed(names):
            old = self._procs(state).get(name)
            if old:
                stop(old)
            services[name].clean_up()
        for name in names:
            service = services[name]
            proc = spawn(service.argv(), service.log_path, cwd=service.dir, env=service.child_env())
            state["procs"][name] = proc.to_json()
            self._write_state(state)
            wait_healthy(service, proc, deadline)
            service.after_start()

    def status(self) -> dict[str, Any]:
        """Each service's pid, liveness, health and endpoints."""
        state = self.read_state()
        if state is None:
            return {"state_dir": str(self.state_dir), "running": False, "services": {}}
        procs = self._procs(state)
        services: dict[str, Any] = {}
        for service in self._services_of(state):
            proc = procs.get(service.name)
            row: dict[str, Any] = {"pid": proc.pid if proc else None, "running": bool(proc and proc.alive())}
            error = None
            if row["running"]:
                try:
                    service.probe()
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
            else:
                error = "not running"
            row.update(healthy=error is None, error=error, log=str(service.log_path), **service.endpoints())
            services[service.name] = row
        healthy = all(s["healthy"] for s in services.values())
        result = {"state_dir": str(self.state_dir), "running": healthy, "services": services}
        if nodes.node_count(state.get("options")):
            result["nodes"] = nodes.node_rows(state.get("options"), services)
        return result

    def env(self, node: int | None = None) -> dict[str, str]:
        """Variables that point clients at the running cluster; with `node`, at that node's Consul agent."""
        state = self.read_state()
        if state is None:
            raise Failure(f"no dev cluster in {self.state_dir} (run `wharf dev up`)")
        merged: dict[str, str] = {}
        services = self._services_of(state)
        for service in services:
            merged.update(service.env())
        if node is not None:
            agent = nodes.node_consul_type(nodes.check_node(state.get("options"), node, "--node"))
            merged.update(next(s for s in services if isinstance(s, agent)).client_env())
        return merged

    def down(self, purge: bool = False) -> list[str]:
        """Stop every process of the cluster; harmless when nothing runs. Returns what was stopped.

        With `purge`, also delete what the services kept (ZooKeeper's data, hence Marathon's apps;
        images; logs), so the next `up` starts empty. Only the services' own directories go.
        """
        with self._locked():
            state = self.read_state()
            stopped = self._stop_all(state) if state else []
            left = [name for name, proc in self._procs(state or {}).items() if proc.alive()]
            if left:
                raise Failure(f"{', '.join(left)} still running after SIGKILL; state kept in {self.state_file}")
            self._clear()
            if purge:
                for service_type in service_types((state or {}).get("options")):
                    shutil.rmtree(self.state_dir / service_type.name, ignore_errors=True)
                for leftover in nodes.node_dirs(self.state_dir):
                    shutil.rmtree(leftover, ignore_errors=True)
            return stopped

    def _stop_all(self, state: dict[str, Any]) -> list[str]:
        """Stop the services in reverse start order; those of one batch (`nodes.stop_batches`) together."""
        procs = self._procs(state)
        stopped = []
        for batch in nodes.stop_batches(list(reversed(self._services_of(state)))):
            alive = [s.name for s in batch if s.name in procs and procs[s.name].alive()]
            with ThreadPoolExecutor(max_workers=max(1, len(alive))) as pool:
                list(pool.map(lambda name: stop(procs[name]), alive))
            stopped += alive
            for service in batch:
                if not (service.name in procs and procs[service.name].alive()):
                    service.clean_up()
        return stopped

    def _clear(self) -> None:
        self.state_file.unlink(missing_ok=True)
