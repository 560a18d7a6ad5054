"""The framework against a real ZooKeeper and the Mesos stand-in running real containers.

Schedulers run as child processes (`python -m wharf framework run`), as in production; failover is
a real SIGKILL, and session loss a real expiry (the leader is frozen past its session timeout).
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Endpoint, stand_in_only
from tests.integration.framework_helpers import (
    ContainerWatch,
    Scheduler,
    launches_per_task,
    master_tasks,
    start_scheduler,
    wharf_cli,
)
from tests.polling import wait_for

pytestmark = [pytest.mark.integration,
              stand_in_only("MESOS_MASTER", why="counts the containers that ran on the test Docker engine")]
IMAGE = "wharf/busybox:latest"


@pytest.fixture
def cluster(request: pytest.FixtureRequest, zookeeper: Any, docker_engine: Any, mesos_master: Endpoint,
            tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh framework root in ZooKeeper on the module's Mesos stand-in; stops every scheduler after."""
    started: list[Scheduler] = []
    info = {"zk": zookeeper.endpoints()["address"], "master": mesos_master.master, "url": mesos_master.url,
            "root": f"/wharf-test/{uuid.uuid4().hex[:8]}", "tmp": tmp_path, "docker": docker_engine.client(),
            "started": started}
    info["containers"] = ContainerWatch(info["docker"])

    def start() -> Scheduler:
        scheduler = start_scheduler(tmp_path, info["zk"], info["master"], info["root"])
        started.append(scheduler)
        return scheduler

    info["start"] = start
    yield info
    for scheduler in started:
        if scheduler.proc.poll() is None:
            scheduler.kill(signal.SIGCONT)
            scheduler.kill(signal.SIGTERM)
    info["containers"].close()
    info["docker"].close()


def cli(c: dict[str, Any], *args: str) -> Any:
    return wharf_cli(c["zk"], c["master"], *args)


def submit(c: dict[str, Any], *args: str) -> list[str]:
    done = cli(c, "framework", "submit", "--zk-path", c["root"], "--json", "--image", IMAGE, *args)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout)["ids"])


def tasks(leader: Scheduler) -> dict[str, dict[str, Any]]:
    return {t["spec"]["id"]: t for t in leader.get("/v1/tasks")["tasks"]}


def all_in(leader: Scheduler, ids: list[str], states: set[str]) -> bool:
    now = tasks(leader)
    return all(now[i]["state"] in states for i in ids)


def framework_id(c: dict[str, Any]) -> str:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=c["zk"])
    zk.start()
    try:
        return str(zk.get(f"{c['root']}/framework_id")[0].decode())
    finally:
        zk.stop()
        zk.close()


def test_a_batch_runs_to_finished_within_resources_and_constraints_and_idle_suppresses(cluster: Any) -> None:
    leader = cluster["start"]()
    wait_for(leader.leading, 60, "leadership")
    # 3 agents of 4 cpus: at most 7 per host by constraint and 8 by cpus
    ids = submit(cluster, "--instances", "20", "--cpus", "0.5", "--mem", "64", "--cmd", "sleep 1",
                 "--constraint", "hostname:MAX_PER:7")
    stuck = submit(cluster, "--cmd", "true", "--constraint", "zone:LIKE:zone-nowhere")
    wait_for(lambda: all_in(leader, ids, {"FINISHED", "FAILED", "LOST", "KILLED"}), 180, "20 tasks to end")
    final = tasks(leader)
    assert {final[i]["state"] for i in ids} == {"FINISHED"}
    assert all(final[i]["launches"] == 1 for i in ids)
    per_host: dict[str, int] = {}
    for i in ids:
        per_host[final[i]["hostname"]] = per_host.get(final[i]["hostname"], 0) + 1
    assert len(per_host) == 3 and max(per_host.values()) <= 7
    assert final[stuck[0]]["state"] == "QUEUED"  # nowhere to go: stays queued, is not dropped
    assert leader.metric("wharf_framework_offers_suppressed") == 0  # still wants offers for it

    fid = framework_id(cluster)
    assert launches_per_task(master_tasks(cluster["url"], fid)) == {i: 1 for i in ids}
    assert cluster["containers"].of(ids) == {i: 1 for i in ids}

    killed = cli(cluster, "framework", "kill", "--zk-path", cluster["root"], stuck[0])
    assert killed.returncode == 0 and "KILLED" in killed.stdout, killed.stderr
    wait_for(lambda: leader.metric("wharf_framework_offers_suppressed") == 1, 30, "offers suppressed when idle")
    listed = cli(cluster, "framework", "list", "--zk-path", cluster["root"], "--json")
    assert listed.returncode == 0
    assert sorted(t["state"] for t in json.loads(listed.stdout)) == ["FINISHED"] * 20 + ["KILLED"]


def test_a_failing_task_is_retried_with_backoff_then_failed(cluster: Any) -> None:
    leader = cluster["start"]()
    wait_for(leader.leading, 60, "leadership")
    [task] = submit(cluster, "--cmd", "exit 3", "--retries", "2")
    wait_for(lambda: all_in(leader, [task], {"FAILED"}), 120, "the task to fail for good")
    record = tasks(leader)[task]
    assert record["launches"] == 3 and record["failures"] == 3
    assert "exited with status 3" in record["message"]
    history = record["history"]
    retries = [h for h in history if "retry" in h[2]]
    assert [h[2].split("; ")[1] for h in retries] == ["retry 1 of 2 in 2s", "retry 2 of 2 in 4s"]
    launches = [h[0] for h in history if h[1] == "STAGING"]
    assert launches[1] - retries[0][0] >= 2 and launches[2] - retries[1][0] >= 4  # the backoff was waited
    logs = cli(cluster, "framework", "logs", "--zk-path", cluster["root"], task)
    assert logs.returncode == 0 and logs.stdout.count("STAGING") == 3 and "FAILED" in logs.stdout
    assert cluster["containers"].of([task], expected=3) == {task: 3}


@pytest.mark.parametrize(("args", "reason"), [
    (["--image", IMAGE, "--cpus", "64"], "no agent can hold cpus=64"),
    (["--image", IMAGE, "--mem", "100000"], "no agent can hold cpus=0.1 mem=100000"),
    (["--image", IMAGE, "--constraint", "hostname:NEAR:x"], "unknown operator 'NEAR'"),
    (["--image", "Bad Image!:tag"], "--image: 'Bad Image!:tag' is not a valid image reference"),
    (["--image", IMAGE, "--env", "no-equals"], "--env: 'no-equals' is not KEY=VALUE"),
])
def test_bad_input_is_rejected_at_submit_with_a_reason(cluster: Any, args: list[str], reason: str) -> None:
    leader = cluster["start"]()
    wait_for(leader.leading, 60, "leadership")
    wait_for(lambda: leader.metric("wharf_framework_subscribed") == 1, 60, "subscription")
    done = cli(cluster, "framework", "submit", "--zk-path", cluster["root"], *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert reason in done.stderr
    assert tasks(leader) == {}  # nothing was queued


def test_a_follower_redirects_the_api_to_the_leader(cluster: Any) -> None:
    first = cluster["start"]()
    wait_for(first.leading, 60, "leadership")
    second = cluster["start"]()
    assert second.get("/v1/leader") == {"leader": first.api, "self": second.api, "leading": False}
    done = cli(cluster, "framework", "submit", "--api", second.api, "--image", IMAGE, "--cmd", "true")
    assert done.returncode == 0, done.stderr
    assert list(tasks(first)) == done.stdout.split()


def _leader_of(schedulers: list[Scheduler]) -> Scheduler | None:
    leading = [s for s in schedulers if s.proc.poll() is None and s.leading()]
    return leading[0] if len(leading) == 1 else None


def _taken_over(cluster: Any, live: list[Scheduler], fid: str) -> Scheduler:
    """Wait for one of `live` to lead, subscribed as framework `fid` and reconciled."""
    leader = wait_for(lambda: _leader_of(live), 60, "the standby to take over")
    wait_for(lambda: leader.metric("wharf_framework_subscribed") == 1, 60, "the new leader to subscribe")
    assert framework_id(cluster) == fid  # re-subscribed as the same framework
    wait_for(lambda: leader.metric("wharf_framework_reconciling_tasks") == 0, 60, "reconciliation")
    return leader


def test_failover_rounds_launch_nothing_twice_and_lose_nothing(cluster: Any) -> None:
    """The short form of bench/framework_failover.py: SIGKILL the leader while tasks queue and run."""
    live = [cluster["start"](), cluster["start"]()]
    leader = wait_for(lambda: _leader_of(live), 60, "a leader")
    # 1.5 cpus each: at most 2 run per agent (6 at a time), the rest wait in the queue
    ids = submit(cluster, "--instances", "42", "--cpus", "1.5", "--mem", "64", "--cmd", "sleep 3")
    wait_for(lambda: any(t["state"] == "RUNNING" for t in tasks(leader).values()), 60, "tasks running")
    fid = framework_id(cluster)
    for _round in range(3):
        states = {t["state"] for t in tasks(leader).values()}
        assert "QUEUED" in states and states & {"STAGING", "RUNNING"}, f"nothing at stake this round: {states}"
        leader.kill(signal.SIGKILL)
        live.remove(leader)
        live.append(cluster["start"]())  # the killed one's replacement, the new standby
        leader = _taken_over(cluster, live, fid)
    wait_for(lambda: all_in(leader, ids, {"FINISHED", "FAILED", "LOST", "KILLED"}), 240, "every task to end")
    assert {t["state"] for t in tasks(leader).values()} == {"FINISHED"}
    assert launches_per_task(master_tasks(cluster["url"], fid)) == {i: 1 for i in ids}
    assert cluster["containers"].of(ids) == {i: 1 for i in ids}


def test_a_leader_that_loses_its_session_stops_acting(cluster: Any) -> None:
    live = [cluster["start"](), cluster["start"]()]
    old = wait_for(lambda: _leader_of(live), 60, "a leader")
    standby = next(s for s in live if s is not old)
    ids = submit(cluster, "--instances", "6", "--cpus", "1.5", "--mem", "64", "--cmd", "sleep 2")
    old.kill(signal.SIGSTOP)  # frozen past its 4 s session: ZooKeeper expires it
    wait_for(standby.leading, 60, "the standby to take over")
    wait_for(lambda: standby.metric("wharf_framework_subscribed") == 1, 60, "the new leader to subscribe")
    old.kill(signal.SIGCONT)
    wait_for(lambda: "stopped leading" in old.log.read_text(), 30, "the old leader to notice")
    assert not old.leading()
    wait_for(lambda: all_in(standby, ids, {"FINISHED", "FAILED", "LOST", "KILLED"}), 120, "every task to end")
    assert standby.leading() and standby.metric("wharf_framework_subscribed") == 1
    assert {t["state"] for t in tasks(standby).values()} == {"FINISHED"}
    fid = framework_id(cluster)
    assert launches_per_task(master_tasks(cluster["url"], fid)) == {i: 1 for i in ids}
    assert cluster["containers"].of(ids) == {i: 1 for i in ids}


def test_a_framework_removed_on_the_master_registers_anew_and_runs_its_queue_within_10s(cluster: Any) -> None:
    leader = cluster["start"]()
    wait_for(leader.leading, 60, "leadership")
    wait_for(lambda: leader.metric("wharf_framework_subscribed") == 1, 60, "subscription")
    [running] = submit(cluster, "--cmd", "sleep 300")
    wait_for(lambda: all_in(leader, [running], {"RUNNING"}), 60, "a task running")
    old = framework_id(cluster)

    req = urllib.request.Request(f"{cluster['url']}/master/teardown", data=f"frameworkId={old}".encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    removed_at = time.monotonic()
    [queued] = submit(cluster, "--cmd", "true")  # queued while the framework is gone from the master

    left = 10 - (time.monotonic() - removed_at)
    wait_for(lambda: all_in(leader, [queued], {"FINISHED"}), left, "the queued task to run under a new id")
    new = framework_id(cluster)
    assert new != old
    frameworks = json.loads(urllib.request.urlopen(f"{cluster['url']}/master/frameworks", timeout=10).read())
    assert [f["id"] for f in frameworks["frameworks"] if f["id"] in (old, new)] == [new]
    assert old in [f["id"] for f in frameworks["completed_frameworks"]]
    # reconciled: the task the master killed with the old framework is known to be gone, not left RUNNING
    wait_for(lambda: all_in(leader, [running], {"LOST"}), 30, "the killed task to be reconciled")
    assert launches_per_task(master_tasks(cluster["url"], new)) == {queued: 1}
    log = leader.log.read_text()
    assert log.count("the master removed the framework") == 1 and log.count(old) >= 1
    assert leader.leading() and leader.metric("wharf_framework_subscribed") == 1


def test_missing_settings_are_bad_input() -> None:
    from tests.conftest import wharf

    run = wharf("framework", "run", env={"MESOS_MASTER": "127.0.0.1:5050"})
    assert run.returncode == 2 and "WHARF_ZK (--zk)" in run.stderr
    run = wharf("--zk", "127.0.0.1:2181", "framework", "run", env={"MESOS_MASTER": ""})
    assert run.returncode == 2 and "MESOS_MASTER (--mesos-master)" in run.stderr
    submit = wharf("framework", "submit", "--image", IMAGE)
    assert submit.returncode == 2 and "--api or WHARF_ZK" in submit.stderr
