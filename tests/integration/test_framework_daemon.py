"""The leader's loop in this process, on a real ZooKeeper and the Mesos stand-in without a Docker engine
(every launch then fails at once on its agent: thousands of short tasks end within seconds).

In-process, the daemon takes an injected clock (to pass a retention without waiting for it) and its
ZooKeeper client can be watched: what a takeover reads, and a fence that goes while a submit is stored.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

import framework.leader
from devcluster.mesos import MesosStandin
from framework.leader import FrameworkDaemon
from tests.integration.framework_helpers import wharf_cli
from tests.polling import wait_for

pytestmark = pytest.mark.integration
IMAGE = "wharf/busybox:latest"
HOUR = 3600.0


class Clock:
    """The real time, plus what the test has moved it on by."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


class Daemon:
    """A `FrameworkDaemon` contending in a thread of this process (its cycles retried as `run()` would)."""

    def __init__(self, zk: str, master: str, root: str, **options: Any) -> None:
        self.daemon = FrameworkDaemon(zk, master, root=root, zk_timeout=4.0, **options)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.daemon.api.port != 0, 30, "the daemon's API")

    def _run(self) -> None:
        while not self.daemon.stopping:
            try:
                self.daemon.run_cycle()
            except Exception:  # noqa: BLE001 - as Daemon.run: the next cycle contends again
                pass
            self.daemon.wait(0.2)

    @property
    def url(self) -> str:
        return self.daemon.api.url

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def tasks(self) -> dict[str, dict[str, Any]]:
        status, body = self.call("GET", "/v1/tasks")
        assert status == 200, body
        return {t["spec"]["id"]: t for t in body["tasks"]}

    def ready(self) -> bool:
        """Leading, subscribed and reconciled."""
        try:
            return self.daemon.leading and bool(self.daemon.snapshot(lambda core: core.reconciled))
        except Exception:  # noqa: BLE001 - not leading (any more)
            return False

    def stop(self) -> None:
        self.daemon.stop()
        self.thread.join(30)
        self.daemon.close()


@pytest.fixture
def setup(zookeeper: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """ZooKeeper, a fresh framework root, a Docker-less stand-in, and a maker of daemons stopped at the end."""
    standin = MesosStandin(state_dir=tmp_path / "mesos", agents=2, heartbeat_interval=1.0).start()
    zk_address = zookeeper.endpoints()["address"]
    zk = KazooClient(hosts=zk_address, timeout=10.0)
    zk.start(timeout=15)
    made: list[Daemon] = []
    root = f"/wharf-test/{uuid.uuid4().hex[:8]}"

    def make(**options: Any) -> Daemon:
        made.append(Daemon(zk_address, f"127.0.0.1:{standin.port}", root, **options))
        return made[-1]

    try:
        yield {"make": make, "zk": zk, "root": root, "zk_address": zk_address, "standin": standin}
    finally:
        for daemon in made:
            daemon.stop()
        zk.stop()
        zk.close()
        standin.stop()


def znodes(zk: KazooClient, path: str) -> list[str]:
    """Every znode under `path` (itself excluded; one deleted meanwhile is left out)."""
    try:
        children = zk.get_children(path)
    except NoNodeError:
        return []
    out = []
    for child in children:
        out += [f"{path}/{child}", *znodes(zk, f"{path}/{child}")]
    return out


class Reads(KazooClient):
    """A KazooClient that notes every path it reads (get, get_async, get_children)."""

    seen: list[tuple[str, str]] = []

    def get(self, path: str, *args: Any, **kw: Any) -> Any:
        self.seen.append(("get", path))
        return super().get(path, *args, **kw)

    def get_async(self, path: str, *args: Any, **kw: Any) -> Any:
        self.seen.append(("get", path))
        return super().get_async(path, *args, **kw)

    def get_children(self, path: str, *args: Any, **kw: Any) -> Any:
        self.seen.append(("children", path))
        return super().get_children(path, *args, **kw)


def test_finished_tasks_are_purged_after_the_retention_and_a_takeover_reads_only_live_ones(
        setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    clock, zk, root = Clock(), setup["zk"], setup["root"]
    first = setup["make"](task_retention=HOUR, clock=clock)
    wait_for(first.ready, 60, "the first daemon to lead, subscribed and reconciled")
    status, stuck = first.call("POST", "/v1/tasks", {"image": IMAGE, "constraints": ["zone:LIKE:zone-nowhere"]})
    assert status == 201, stuck
    status, short = first.call("POST", "/v1/tasks", {"image": IMAGE, "cmd": "true", "instances": 1000,
                                                     "cpus": 0.01, "mem": 1})
    assert status == 201, short
    ids = short["ids"]
    wait_for(lambda: {t["state"] for i, t in first.tasks().items() if i in ids} == {"FAILED"}, 120,
             "1,000 tasks to end", interval=0.5)

    assert zk.get_children(f"{root}/tasks") == stuck["ids"]  # only the live task is among the live ones
    kept = [p for p in znodes(zk, f"{root}/finished") if p.count("/") == root.count("/") + 3]
    assert sorted(p.rsplit("/", 1)[1] for p in kept) == sorted(ids)
    assert len(first.tasks()) == 1001  # finished tasks stay listed within the retention

    Reads.seen = []
    monkeypatch.setattr(framework.leader, "KazooClient", Reads)
    second = setup["make"](task_retention=HOUR, clock=clock)
    first.stop()
    wait_for(second.ready, 60, "the standby to take over, subscribed and reconciled")
    read = list(Reads.seen)
    assert {p.rsplit("/", 1)[1] for kind, p in read if kind == "get" and p.startswith(f"{root}/tasks/")} == set(
        stuck["ids"])
    assert [p for _, p in read if p.startswith(f"{root}/finished/")] == []  # not one finished record, nor bucket
    listed = second.tasks()  # the API reads the finished ones back when first asked, after the takeover
    assert len(listed) == 1001 and {listed[i]["state"] for i in ids} == {"FAILED"}

    clock.skew += 2 * HOUR  # past every task's retention
    wait_for(lambda: znodes(zk, f"{root}/finished") == [], 30, "the finished tasks' znodes to be purged")
    assert list(second.tasks()) == stuck["ids"]
    assert not [p for p in znodes(zk, root) if p.rsplit("/", 1)[1] in set(ids)]


def _fence_goes(daemon: Daemon, zk: KazooClient, when: str) -> list[int]:
    """Delete the leader's election node just before, or just after, the first transaction creating tasks;
    returns the number of tasks each such transaction stored (filled in as they commit)."""
    client = daemon.daemon.zk
    assert client is not None and daemon.daemon.election is not None
    fence = f"{daemon.daemon.election.lock.path}/{daemon.daemon.election.lock.node}"
    tasks_path = f"{daemon.daemon.store.root}/tasks/" if daemon.daemon.store else ""
    real = client.transaction
    carried: list[int] = []

    def hooked() -> Any:
        tx = real()
        commit = tx.commit

        def committing() -> Any:
            creates = sum(1 for op in tx.operations if type(op).__name__ == "Create" and op.path.startswith(tasks_path))
            if creates and not carried and when == "before":
                zk.delete(fence)
            result = commit()
            if creates and not any(isinstance(r, Exception) for r in result):
                carried.append(creates)
                if len(carried) == 1 and when == "after":
                    zk.delete(fence)
            return result

        tx.commit = committing
        return tx

    client.transaction = hooked  # type: ignore[method-assign]
    return carried


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_fence_lost_while_a_large_submit_is_stored_stores_all_of_it_or_nothing(
        setup: dict[str, Any], when: str) -> None:
    """`before`: the fence is gone when the submit is written. `after`: it goes right after the first
    transaction that creates tasks (as a session expiring between two transactions would)."""
    leader = setup["make"]()
    wait_for(leader.ready, 60, "the daemon to lead, subscribed and reconciled")
    carried = _fence_goes(leader, setup["zk"], when)
    status, body = leader.call("POST", "/v1/tasks", {"image": IMAGE, "cmd": "true", "instances": 1500,
                                                     "cpus": 0.01, "mem": 1})
    root = setup["root"]  # the daemon leads again meanwhile, and tasks move from tasks/ to finished/: list both
    stored = {p.rsplit("/", 1)[1] for p in znodes(setup["zk"], f"{root}/tasks")}
    stored |= {p.rsplit("/", 1)[1] for p in znodes(setup["zk"], f"{root}/finished")
               if p.count("/") == root.count("/") + 3}
    if when == "before":
        assert status == 503 and "not the leader any more" in body["error"], body
        assert stored == set() and carried == []
    else:
        assert len(stored) in (0, 1500), f"{len(stored)} of 1500 tasks stored: the submit was split"
        assert status == 201, body
        assert stored == set(body["ids"]) and carried[0] == 1500  # one transaction held them all


def test_a_too_large_submit_is_refused_at_the_cli_storing_nothing(setup: dict[str, Any]) -> None:
    leader = setup["make"]()
    wait_for(leader.ready, 60, "the daemon to lead, subscribed and reconciled")
    done = wharf_cli(setup["zk_address"], "127.0.0.1:5050", "framework", "submit", "--api", leader.url,
                     "--image", IMAGE, "--cmd", "true", "--instances", "5000", "--cpus", "0.01", "--mem", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "submit rejected: 5000 tasks need " in line and "jute.maxbuffer" in line and "at most " in line
    assert setup["zk"].get_children(f"{setup['root']}/tasks") == [] and leader.tasks() == {}
    fit = int(line.rsplit("at most ", 1)[1].split()[0])
    status, body = leader.call("POST", "/v1/tasks", {"image": IMAGE, "cmd": "true", "instances": fit,
                                                     "cpus": 0.01, "mem": 1})
    assert status == 201 and len(body["ids"]) == fit  # what the message says fits, fits


def test_run_takes_a_task_retention(setup: dict[str, Any]) -> None:
    from tests.conftest import wharf

    bad = wharf("--zk", setup["zk_address"], "framework", "run", "--task-retention", "soon",
                env={"MESOS_MASTER": "127.0.0.1:5050"})
    assert bad.returncode == 2 and "--task-retention" in bad.stderr and "not a duration" in bad.stderr
    shown = wharf("framework", "run", "--help")
    assert "--task-retention DURATION" in shown.stdout and "[default: 1d]" in shown.stdout
