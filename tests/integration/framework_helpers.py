"""Helpers for the framework's tests: scheduler child processes, the master's task list, containers that ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster.process import free_port
from framework.offers import TASK_LABEL
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
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith(name + " ") or line.startswith(name + "{"):
                    return float(line.rsplit(" ", 1)[1])
        return 0.0

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(timeout=60)


def cli_env(zk: str, master: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MESOS_", "MARATHON_", "CONSUL_"))}
    env.update({"WHARF_ZK": zk, "MESOS_MASTER": master})
    return env


def start_scheduler(tmp: Path, zk: str, master: str, root: str, zk_timeout: float = 4.0) -> Scheduler:
    api_port, metrics_port = free_port(), free_port()
    log = tmp / f"scheduler-{api_port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wharf", "--log-level", "debug", "framework", "run", "--zk-path", root,
             "--api-port", str(api_port), "--metrics-port", str(metrics_port), "--zk-timeout", str(zk_timeout)],
            env=cli_env(zk, master), stdout=out, stderr=subprocess.STDOUT)
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


def containers_started(docker_client: Any, since: float, ids: list[str]) -> Counter[str]:
    """How many containers started since `since` per wharf task id of the groups of `ids` (from the
    engine's event log)."""
    groups = {i.rsplit("-", 1)[0] for i in ids}
    events = docker_client.events(since=int(since) - 1, until=int(time.time()) + 1, decode=True,
                                  filters={"type": "container", "event": "start", "label": TASK_LABEL})
    started = (e["Actor"]["Attributes"][TASK_LABEL] for e in events)
    return Counter(t for t in started if t.rsplit("-", 1)[0] in groups)


def launches_per_task(tasks: list[dict[str, Any]]) -> Counter[str]:
    """How many Mesos tasks the master has per wharf task id."""
    out: Counter[str] = Counter()
    for task in tasks:
        labels = {lab["key"]: lab["value"] for lab in task.get("labels", [])}
        if TASK_LABEL in labels:
            out[labels[TASK_LABEL]] += 1
    return out
