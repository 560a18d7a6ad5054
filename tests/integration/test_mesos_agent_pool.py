"""The Mesos stand-in's agent pool starts task threads off the master's path: launch() hands the
thread to a starter, and shutdown still waits for every task launched, started or not."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from devcluster.mesos.agents import AgentPool
from devcluster.mesos.model import Launch, StatusReport
from devcluster.mesos.offers import make_agents
from devcluster.mesos.protocol import TERMINAL_STATES, parse_task
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def launches(n: int, command: str) -> list[Launch]:
    agent = make_agents("m", [(31000, 31099)])[0]  # these tasks use no ports
    return [Launch("fw", parse_task({"name": f"t-{i}", "task_id": {"value": f"t-{i}"}, "agent_id": {"value": agent.id},
                                     "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}}],
                                     "command": {"value": command}}), agent, f"c-{i}") for i in range(n)]


def test_every_launched_task_ends_once_and_leaves_no_thread(tmp_path: Path) -> None:
    reports: list[StatusReport] = []
    lock = threading.Lock()

    def report(r: StatusReport) -> None:
        with lock:
            reports.append(r)

    pool = AgentPool(tmp_path, "owner", None, report)
    for launch in launches(40, "true"):
        pool.launch(launch)
    wait_for(lambda: sum(r.state in TERMINAL_STATES for r in reports) == 40, 60, "40 tasks to end")
    assert Counter(r.task_id for r in reports if r.state == "TASK_FINISHED") == {f"t-{i}": 1 for i in range(40)}
    wait_for(lambda: not pool._threads, 30, "the ended tasks' threads to be forgotten")
    pool.shutdown()


def test_shutdown_right_after_launching_waits_for_tasks_not_yet_started(tmp_path: Path) -> None:
    reports: list[StatusReport] = []
    pool = AgentPool(tmp_path, "owner", None, reports.append)
    for launch in launches(40, "sleep 30"):
        pool.launch(launch)
    pool.shutdown(timeout=60)
    ended = Counter(r.task_id for r in reports if r.state in TERMINAL_STATES)
    assert ended == {f"t-{i}": 1 for i in range(40)}
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("task t-"))
