"""Helpers for the framework's tests: scheduler child processes, the master's task list, containers that ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster.process import free_port
from framework.offers import TASK_LABEL
from tests.metrics import metric
from tests.polling import wait_for


@dataclass
class Scheduler:
    """One `wharf framework run` child process."""

    proc: subprocess.Popen[bytes]
    api: str
    metrics_port: int
    log: Path

    def get(self, path: str) -> Any:
        req = urllib.request.Request(self.api + path)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def leading(self) -> bool:
        try:
            return bool(self.get("/v1/leader")["leading"])
        except OSError:
            return False

    def metric(self, name: str) -> float:
        return metric(self.metrics_port, name)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(timeout=60)


def cli_env(zk: str, master: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MESOS_", "MARATHON_", "CONSUL_"))}
    env.update({"WHARF_ZK": zk, "MESOS_MASTER": master})
    return env


def start_scheduler(tmp: Path, zk: str, master: str, root: str, zk_timeout: float = 4.0,
                    env: dict[str, str] | None = None) -> Scheduler:
    """`wharf framework run` on `zk` and `master`, once its API answers; `env`: more variables
    (CONSUL_HTTP_ADDR, for its metrics endpoint to be registered)."""
    api_port, metrics_port = free_port(), free_port()
    log = tmp / f"scheduler-{api_port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wharf", "--log-level", "debug", "framework", "run", "--zk-path", root,
             "--api-port", str(api_port), "--metrics-port", str(metrics_port), "--zk-timeout", str(zk_timeout)],
            env={**cli_env(zk, master), **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    scheduler = Scheduler(proc, f"http://127.0.0.1:{api_port}", metrics_port, log)

    def answering() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            scheduler.get("/v1/leader")
            return True
        except OSError:
            return False

    wait_for(answering, 60, "the scheduler's API")
    return scheduler


def wharf_cli(zk: str, master: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wharf", *args], env=cli_env(zk, master), capture_output=True,
                          text=True, timeout=timeout)


def master_tasks(master_url: str, framework_id: str) -> list[dict[str, Any]]:
    """Every task (active and completed) the master has for the framework."""
    with urllib.request.urlopen(f"{master_url}/master/state", timeout=10) as resp:
        state = json.loads(resp.read())
    tasks: list[dict[str, Any]] = []
    for fw in state["frameworks"] + state.get("completed_frameworks", []):
        if fw["id"] == framework_id:
            tasks += fw["tasks"] + fw["completed_tasks"]
    return tasks


class ContainerWatch:
    """Counts container starts per wharf task id from the engine's live event stream (the engine keeps
    only its last 256 events, so asking afterwards would miss some)."""

    def __init__(self, docker_client: Any) -> None:
        self.started: Counter[str] = Counter()
        self._events = docker_client.events(decode=True, filters={"type": "container", "event": "start",
                                                                  "label": TASK_LABEL})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._events:
                self.started[event["Actor"]["Attributes"][TASK_LABEL]] += 1
        except Exception:  # noqa: BLE001 - the stream is closed at the end
            pass

    def of(self, ids: list[str], expected: int | None = None) -> Counter[str]:
        """The starts of the tasks of the submissions `ids` belong to, once `expected` (default: one
        per id) are seen or 30 s have passed."""
        groups = {i.rsplit("-", 1)[0] for i in ids}

        def mine() -> Counter[str]:
            return Counter({t: n for t, n in list(self.started.items()) if t.rsplit("-", 1)[0] in groups})

        try:
            wait_for(lambda: sum(mine().values()) >= (expected or len(ids)), 30, "the containers' start events")
        except AssertionError:
            pass  # the comparison that follows shows what is missing
        return mine()

    def close(self) -> None:
        self._events.close()


def launches_per_task(tasks: list[dict[str, Any]]) -> Counter[str]:
    """How many Mesos tasks the master has per wharf task id."""
    out: Counter[str] = Counter()
    for task in tasks:
        labels = {lab["key"]: lab["value"] for lab in task.get("labels", [])}
        if TASK_LABEL in labels:
            out[labels[TASK_LABEL]] += 1
    return out
