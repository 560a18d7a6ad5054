"""Marathon health checks, really run: HTTP(S), TCP and COMMAND probes against a task.

:class:`HealthState` is the pure bookkeeping of one check on one task (Marathon's `Health`):
failures inside `gracePeriodSeconds` before the first success do not count, `alive` means the last
probe succeeded, and :meth:`HealthState.should_kill` says when `maxConsecutiveFailures` (0: never)
is reached. :class:`HealthProbe` is a thread that probes every `intervalSeconds` and reports each
result through a callback; the scheduler decides what follows.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devcluster.marathon.plan import format_version

log = logging.getLogger("wharf.devcluster.marathon.health")


@dataclass
class HealthState:
    """One health check's record for one instance."""

    instance_id: str
    started: float
    grace: float
    alive: bool = False
    consecutive_failures: int = 0
    first_success: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_failure_cause: str | None = None
    results: int = 0  # probes that counted

    def record(self, ok: bool, now: float, cause: str | None = None) -> bool:
        """Count one probe result; returns whether `alive` changed."""
        before = (self.alive, self.results > 0)
        if ok:
            self.alive = True
            self.consecutive_failures = 0
            self.last_success = now
            self.first_success = self.first_success or now
        elif self.first_success is None and now - self.started < self.grace:
            return False  # within the grace period, failures are ignored until a first success
        else:
            self.alive = False
            self.consecutive_failures += 1
            self.last_failure = now
            self.last_failure_cause = cause
        self.results += 1
        return before != (self.alive, True)

    def should_kill(self, max_consecutive_failures: int) -> bool:
        return 0 < max_consecutive_failures <= self.consecutive_failures

    def to_json(self) -> dict[str, Any]:
        """Marathon's `Health` (RAML `healthCheck.raml`)."""
        out: dict[str, Any] = {"alive": self.alive, "consecutiveFailures": self.consecutive_failures,
                               "instanceId": self.instance_id}
        for key, value in (("firstSuccess", self.first_success), ("lastSuccess", self.last_success),
                           ("lastFailure", self.last_failure)):
            if value is not None:
                out[key] = format_version(value)
        if self.last_failure_cause is not None:
            out["lastFailureCause"] = self.last_failure_cause
        return out


def health_outcome(who: Mapping[str, str], check: Mapping[str, Any], state: HealthState, cause: str | None,
                   changed: bool, was_healthy: bool, healthy: bool) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """The events one recorded probe result causes, and whether the task must now be killed.

    ``who`` holds the task's appId, taskId, instanceId, version, host and slaveId; ``was_healthy``
    and ``healthy`` are the instance's health over all its checks before and after the result.
    """
    ids = {k: who[k] for k in ("appId", "taskId", "instanceId")}
    events: list[tuple[str, dict[str, Any]]] = []
    if changed:
        events.append(("health_status_changed_event", {**ids, "version": who["version"], "alive": state.alive}))
    if cause is not None and state.results:
        events.append(("failed_health_check_event", {**ids, "healthCheck": dict(check)}))
    if was_healthy != healthy:
        events.append(("instance_health_changed_event", {"instanceId": who["instanceId"], "runSpecId": who["appId"],
                                                         "runSpecVersion": who["version"], "healthy": healthy}))
    kill = cause is not None and state.should_kill(int(check.get("maxConsecutiveFailures", 3)))
    if kill:
        events.append(("unhealthy_instance_kill_event", {**dict(who), "reason": state.last_failure_cause or ""}))
    return events, kill


def check_port(check: Mapping[str, Any], ports: Sequence[int]) -> int | None:
    """The port a check probes: its `port`, else the task's port at `portIndex`."""
    if check.get("port"):
        return int(check["port"])
    index = int(check.get("portIndex", 0) or 0)
    return ports[index] if index < len(ports) else None


def probe(check: Mapping[str, Any], host: str, ports: Sequence[int], env: Mapping[str, str]) -> str | None:
    """Run one probe; None when healthy, else the cause of the failure."""
    protocol = check.get("protocol", "HTTP")
    timeout = float(check.get("timeoutSeconds", 20))
    if protocol == "COMMAND":
        command = (check.get("command") or {}).get("value", "")
        try:
            done = subprocess.run(["/bin/sh", "-c", command], env={**os.environ, **env}, timeout=timeout,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  check=False)
        except subprocess.TimeoutExpired:
            return f"Command timed out after {timeout:g}s"
        return None if done.returncode == 0 else f"Command exited with status {done.returncode}"
    port = check_port(check, ports)
    if port is None:
        return "the task has no port at the check's portIndex"
    if protocol in ("TCP", "MESOS_TCP"):
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as err:
            return f"TCP connection to {host}:{port} failed: {err}"
        return None
    secure = protocol in ("HTTPS", "MESOS_HTTPS")
    conn: http.client.HTTPConnection
    if secure:
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", check.get("path") or "/")
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as err:
        return f"{type(err).__name__}: {err}"
    finally:
        conn.close()
    if 200 <= status < 400 or (status < 200 and check.get("ignoreHttp1xx")):
        return None
    return f"HTTP status {status}"


Report = Callable[[str, int, str | None], None]  # (task id, check index, failure cause or None)


class HealthProbe:
    """A thread probing one check of one task until ``stop()``; results go to ``report``."""

    def __init__(self, task_id: str, index: int, check: Mapping[str, Any], host: str, ports: Sequence[int],
                 env: Mapping[str, str], report: Report) -> None:
        self.task_id, self.index, self.check = task_id, index, dict(check)
        self.host, self.ports, self.env = host, tuple(ports), dict(env)
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"health {task_id}#{index}", daemon=True)

    def start(self) -> HealthProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        interval = float(self.check.get("intervalSeconds", 60))
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                cause = probe(self.check, self.host, self.ports, self.env)
            except Exception as err:  # noqa: BLE001 - a probe that breaks is a failed probe
                cause = f"{type(err).__name__}: {err}"
            if self._stop.is_set():
                return
            self._report(self.task_id, self.index, cause)
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))
