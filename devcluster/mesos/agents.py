"""The dev cluster's agent pool: tasks really run, as Docker containers or host processes.

Every task gets a thread that launches it, waits for it to end and reports each state change
(TASK_STARTING, TASK_RUNNING, then FINISHED/FAILED/KILLED) to the master through ``report``.
Containers are named ``mesos-<container id>`` like Mesos names them, use host networking or (BRIDGE)
the dev cluster's bridge network with their host ports published on the agent's address, and
carry the TaskInfo's labels plus :data:`OWNER_LABEL`, so leftovers of an earlier run can be
found and removed. ``docker_run`` says how a container is run, ``images`` pulls what it needs.
Host processes run in their own session, in a sandbox under the state dir.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster.bridge import Bridge, keep_on_machine
from devcluster.mesos.docker_run import (
    DOCKER_SANDBOX,
    LaunchError,
    create_kwargs,
    docker_command,
    task_environment,
)
from devcluster.mesos.images import ensure_image
from devcluster.mesos.model import Kill, Launch, StatusReport

__all__ = ["DOCKER_SANDBOX", "OWNER_LABEL", "AgentPool", "docker_command", "host_argv", "task_environment"]

log = logging.getLogger("wharf.devcluster.mesos.agents")

OWNER_LABEL = "wharf.devcluster.mesos.owner"
DEFAULT_GRACE = 3.0  # the command executor's default kill grace period


@dataclass
class _Running:
    launch: Launch
    sandbox: Path
    killed: threading.Event = field(default_factory=threading.Event)
    grace: float = DEFAULT_GRACE
    process: subprocess.Popen[bytes] | None = None
    container: str | None = None  # set once the container is started
    started: bool = False  # TASK_RUNNING was reported

    @property
    def name(self) -> str:
        return f"mesos-{self.launch.container_id}"


def host_argv(launch: Launch) -> tuple[list[str], str | None]:
    """(argv, executable) for a host process: ``sh -c value``, or ``value`` run with ``arguments``."""
    command = launch.task.command
    assert command is not None and command.value is not None
    if command.shell:
        return ["/bin/sh", "-c", command.value], None
    return list(command.arguments) or [command.value], command.value


class AgentPool:
    """Runs and kills tasks for the master; ``shutdown()`` leaves nothing running."""

    def __init__(self, state_dir: Path, owner: str, docker_host: str | None,
                 report: Callable[[StatusReport], None], bridge: Bridge | None = None) -> None:
        self.state_dir = state_dir
        self.owner = owner
        self.docker_host = docker_host
        self.bridge = bridge  # the Docker network BRIDGE tasks join (see devcluster.bridge)
        self._report = report
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], _Running] = {}
        self._threads: set[threading.Thread] = set()  # each task's thread removes itself when it ends
        self._closing = False
        # Threads are started by one starter thread: Thread.start() waits for the new thread to run,
        # which must not hold up the master's ACCEPT (a real master hands tasks to agents asynchronously).
        self._to_start: queue.SimpleQueue[threading.Thread | None] = queue.SimpleQueue()
        self._starter = threading.Thread(target=self._start_threads, name="agents starter", daemon=True)
        self._starter.start()

    def _start_threads(self) -> None:
        while (thread := self._to_start.get()) is not None:
            thread.start()

    def _docker(self, timeout: float | None = 60) -> Any:
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=timeout)

    def purge(self) -> int:
        """Force-remove every container this stand-in (same state dir) left behind; returns how many."""
        if not self.docker_host:
            return 0
        client = self._docker()
        try:
            leftovers = client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={self.owner}"})
            for container in leftovers:
                container.remove(force=True)
            return len(leftovers)
        finally:
            client.close()

    def launch(self, launch: Launch) -> None:
        """Start the task's thread; never blocks and never reports from the caller's thread."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", launch.task.task_id)
        sandbox = self.state_dir / "sandboxes" / launch.agent.id / launch.framework_id / safe / launch.container_id
        record = _Running(launch, sandbox)
        thread = threading.Thread(target=self._run, args=(record,), name=f"task {launch.task.task_id}", daemon=True)
        with self._lock:
            if self._closing:
                log.warning("not launching %s: the agents are shutting down", launch.task.task_id)
                return
            self._running[(launch.framework_id, launch.task.task_id)] = record
            self._threads.add(thread)
            self._to_start.put(thread)

    def kill(self, kill: Kill) -> None:
        """Stop a task (SIGTERM, SIGKILL after its grace); reports come from another thread."""
        with self._lock:
            record = self._running.get((kill.framework_id, kill.task_id))
        if record is None or record.killed.is_set():
            return
        if kill.grace is not None:
            record.grace = kill.grace
        record.killed.set()
        threading.Thread(target=self._kill, args=(record,), daemon=True).start()

    def _kill(self, record: _Running) -> None:
        self._status(record, "TASK_KILLING")
        self._stop(record)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Kill every task (short grace), wait for their threads, then remove any container left."""
        with self._lock:
            self._closing = True
            self._to_start.put(None)
        self._starter.join(timeout)  # every launched task's thread has started
        with self._lock:
            records = list(self._running.values())
            threads = list(self._threads)
        stoppers = []
        for record in records:
            record.grace = min(record.grace, 2.0)
            record.killed.set()
            stoppers.append(threading.Thread(target=self._stop, args=(record,), daemon=True))
            stoppers[-1].start()
        for thread in stoppers + threads:
            thread.join(timeout)
        self.purge()

    # --- one task ---------------------------------------------------------------------------

    def _status(self, record: _Running, state: str, message: str | None = None, reason: str | None = None,
                source: str = "SOURCE_EXECUTOR", container_status: dict[str, Any] | None = None) -> None:
        launch = record.launch
        self._report(StatusReport(launch.framework_id, launch.task.task_id, state, message, reason, source,
                                  container_status))

    def _run(self, record: _Running) -> None:
        launch = record.launch
        try:
            record.sandbox.mkdir(parents=True, exist_ok=True)
            self._status(record, "TASK_STARTING")
            if record.killed.is_set():
                self._status(record, "TASK_KILLED", "Task killed before it started",
                             "REASON_TASK_KILLED_DURING_LAUNCH")
                return
            container = launch.task.container
            if container is not None and container.type == "DOCKER":
                self._run_container(record)
            else:
                self._run_process(record)
        except Exception as err:  # noqa: BLE001 - whatever broke, the framework must hear about it
            if record.started:
                log.exception("lost track of task %s", launch.task.task_id)
                self._status(record, "TASK_FAILED", f"Lost track of the task: {err}",
                             "REASON_EXECUTOR_TERMINATED", "SOURCE_AGENT")
            else:
                log.warning("task %s failed to launch: %s", launch.task.task_id, err)
                self._status(record, "TASK_FAILED", f"Failed to launch container: {err}",
                             "REASON_CONTAINER_LAUNCH_FAILED", "SOURCE_AGENT")
        finally:
            with self._lock:
                self._running.pop((launch.framework_id, launch.task.task_id), None)
                self._threads.discard(threading.current_thread())

    def _container_status(self, record: _Running, ip: str | None = None) -> dict[str, Any]:
        """The agent's address, or (BRIDGE) the container's own, as the containerizer reports it."""
        ip = ip or record.launch.agent.hostname
        return {"container_id": {"value": record.launch.container_id},
                "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": ip}]}]}

    def _finish(self, record: _Running, code: int, what: str) -> None:
        if record.killed.is_set():
            self._status(record, "TASK_KILLED", f"{what} terminated (killed)")
        elif code == 0:
            self._status(record, "TASK_FINISHED", f"{what} exited with status 0")
        else:
            self._status(record, "TASK_FAILED", f"{what} exited with status {code}",
                         "REASON_COMMAND_EXECUTOR_FAILED")

    def _run_process(self, record: _Running) -> None:
        launch = record.launch
        argv, executable = host_argv(launch)
        env = {**os.environ, **task_environment(launch, str(record.sandbox))}
        with open(record.sandbox / "stdout", "ab") as out, open(record.sandbox / "stderr", "ab") as err:
            record.process = subprocess.Popen(argv, executable=executable, cwd=record.sandbox, env=env,
                                              stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                              start_new_session=True)
        if record.killed.is_set():
            self._stop(record)
        record.started = True
        self._status(record, "TASK_RUNNING", container_status=self._container_status(record))
        code = record.process.wait()
        self._finish(record, code, "Command")

    def _run_container(self, record: _Running) -> None:
        launch = record.launch
        spec = launch.task.container
        assert spec is not None and spec.image is not None
        if not self.docker_host:
            raise RuntimeError("this stand-in was started without a Docker engine (--docker-host)")
        bridge = self.bridge
        kwargs = create_kwargs(launch, record.sandbox, record.name, {**dict(launch.task.labels),
                               OWNER_LABEL: self.owner}, bridge.name if bridge else None)
        if spec.network == "BRIDGE" and bridge is not None:
            keep_on_machine(bridge.device)  # again: a restarted engine makes the bridge afresh
        client = self._docker()
        try:
            ensure_image(client, spec.image, spec.force_pull)
            created = self._create_and_start(client, kwargs)
            record.container = record.name
            if record.killed.is_set():
                self._stop(record)
            record.started = True
            self._status(record, "TASK_RUNNING", container_status=self._container_status(
                record, self._bridge_ip(created, bridge) if spec.network == "BRIDGE" else None))
            waiter = self._docker(timeout=None)
            try:
                code = int(waiter.api.wait(record.name)["StatusCode"])
            finally:
                waiter.close()
            self._save_logs(created, record.sandbox)
            created.remove(force=True)
        finally:
            client.close()
        self._finish(record, code, "Container")

    @staticmethod
    def _create_and_start(client: Any, kwargs: dict[str, Any]) -> Any:
        """``docker run`` in two steps; the daemon's refusal becomes the task's message, as Docker's CLI prints it."""
        import docker.errors

        created = None
        try:
            created = client.containers.create(**kwargs)
            created.start()
            return created
        except docker.errors.APIError as err:
            if created is not None:
                created.remove(force=True)
            raise LaunchError(f"Error response from daemon: {err.explanation or err}") from None

    @staticmethod
    def _bridge_ip(container: Any, bridge: Bridge | None) -> str | None:
        if bridge is None:
            return None
        try:
            container.reload()
            return str(container.attrs["NetworkSettings"]["Networks"][bridge.name]["IPAddress"]) or None
        except Exception:  # noqa: BLE001 - gone already: the agent's address will do
            return None

    @staticmethod
    def _save_logs(container: Any, sandbox: Path) -> None:
        """Keep the container's output in the sandbox, as Mesos's executors do."""
        try:
            (sandbox / "stdout").write_bytes(container.logs(stdout=True, stderr=False))
            (sandbox / "stderr").write_bytes(container.logs(stdout=False, stderr=True))
        except Exception:  # noqa: BLE001 - logs are a courtesy
            log.debug("could not save logs of %s", container.name, exc_info=True)

    def _stop(self, record: _Running) -> None:
        """SIGTERM, then SIGKILL after the grace period (``docker stop -t``, whole seconds as Mesos passes them)."""
        if record.process is not None:
            self._stop_process(record.process, record.grace)
        elif record.container is not None:
            client = self._docker(timeout=record.grace + 30)
            try:
                client.api.stop(record.container, timeout=max(0, int(record.grace)))
            except Exception:  # noqa: BLE001 - already gone is fine
                log.debug("stopping %s", record.container, exc_info=True)
            finally:
                client.close()

    @staticmethod
    def _stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                os.killpg(process.pid, signal.SIGKILL)  # the group may outlive its leader
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return

