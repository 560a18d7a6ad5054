"""The framework's ZooKeeper store on a real ZooKeeper: tasks round-trip, and the fence keeps a scheduler
whose session expired from writing (its election node is gone with its session)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kazoo.client import KazooClient

from framework.store import MAX_TX_BYTES, Store, StoreError, TooLarge, bucket_of
from framework.tasks import Submission, TaskRecord, queued_record
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def client(zookeeper: Any, **kw: Any) -> KazooClient:
    zk = KazooClient(hosts=zookeeper.endpoints()["address"], timeout=4.0, **kw)
    zk.start(timeout=15)
    return zk


def expire(zookeeper: Any, zk: KazooClient) -> None:
    """Really expire `zk`'s session: another connection with its id and password, then closed."""
    session_id, password = zk.client_id
    twin = client(zookeeper, client_id=(session_id, password))
    twin.stop()
    twin.close()


def test_records_round_trip_and_an_expired_leader_cannot_write(zookeeper: Any) -> None:
    root = f"/wharf-test/{uuid.uuid4().hex[:8]}"
    leader, other = client(zookeeper), client(zookeeper)
    try:
        store = Store(leader, root)
        store.ensure()
        lock = leader.Election(store.election_path, "leader").lock
        assert lock.acquire(timeout=10)
        fence = f"{lock.path}/{lock.node}"
        records = [TaskRecord(s, submitted=1.0).moved("QUEUED", 1.0, "submitted")
                   for s in Submission("wharf/busybox:latest", instances=300).tasks("g")]
        store.save(records, fence)
        store.set_framework_id("F-1", fence)
        assert sorted(Store(other, root).load(), key=lambda r: r.id) == sorted(records, key=lambda r: r.id)
        assert Store(other, root).framework_id() == "F-1"

        expire(zookeeper, leader)
        wait_for(lambda: not other.exists(fence), 30, "the expired session's election node to go")
        changed = records[0].moved("STAGING", 2.0, "launching")
        with pytest.raises(StoreError, match="not the leader any more"):
            Store(other, root).save([changed], fence)  # even through a healthy connection
        wait_for(lambda: leader.connected, 30, "the old leader to reconnect with a new session")
        with pytest.raises(StoreError, match="not the leader any more"):
            leader.retry(store.save, [changed], fence)  # a connection lost again meanwhile is retried
        assert {r.id: r.state for r in Store(other, root).load()}[changed.id] == "QUEUED"
    finally:
        for zk in (leader, other):
            zk.stop()
            zk.close()


def znodes(zk: KazooClient, path: str) -> list[str]:
    """Every znode under `path` (itself excluded)."""
    out = []
    for child in zk.get_children(path):
        out += [f"{path}/{child}", *znodes(zk, f"{path}/{child}")]
    return out


def test_a_submit_is_one_transaction_or_refused_whole_saying_why(zookeeper: Any) -> None:
    root = f"/wharf-test/{uuid.uuid4().hex[:8]}"
    zk = client(zookeeper)
    try:
        store = Store(zk, root)
        store.ensure()
        lock = zk.Election(store.election_path, "leader").lock
        assert lock.acquire(timeout=10)
        fence = f"{lock.path}/{lock.node}"
        big = [queued_record(s, 1.0) for s in Submission("wharf/busybox:latest", instances=3000).tasks("big")]
        with pytest.raises(TooLarge) as refused:
            store.add(big, fence)
        assert str(refused.value).startswith("3000 tasks need ")
        assert f"over the {MAX_TX_BYTES:,}-byte limit (ZooKeeper's jute.maxbuffer" in str(refused.value)
        fit = int(str(refused.value).rsplit("at most ", 1)[1].split()[0])
        assert 1000 < fit < 3000 and "\n" not in str(refused.value)
        assert zk.get_children(store.tasks_path) == []  # nothing was stored

        commits: list[int] = []
        real = zk.transaction

        def counted() -> Any:
            tx = real()
            commit = tx.commit
            tx.commit = lambda: commits.append(len(tx.operations)) or commit()
            return tx

        zk.transaction = counted  # type: ignore[method-assign]
        store.add(big[:fit], fence)  # the most that fits: one transaction (the fence check and every create)
        assert commits == [fit + 1] and len(zk.get_children(store.tasks_path)) == fit
    finally:
        zk.stop()
        zk.close()


def test_finished_tasks_move_out_of_the_live_tasks_and_are_purged_after_the_retention(zookeeper: Any) -> None:
    root = f"/wharf-test/{uuid.uuid4().hex[:8]}"
    zk, other = client(zookeeper), client(zookeeper)
    try:
        store = Store(zk, root, retention=100.0)
        store.ensure()
        records = [queued_record(s, 1000.0) for s in Submission("wharf/busybox:latest", instances=4).tasks("g")]
        store.add(records)
        legacy = records[3].moved("FINISHED", 1002.0, "written under tasks/ by an earlier version")
        zk.set(f"{store.tasks_path}/{legacy.id}", json.dumps(legacy.to_json()).encode())
        ended = [records[0].moved("FINISHED", 1000.5, "done"), records[1].moved("FAILED", 1001.0, "exit 1")]
        store.save(ended)
        assert sorted(zk.get_children(store.tasks_path)) == ["g-2", "g-3"]
        assert {r.id for r in Store(other, root).finished()} == {"g-0", "g-1"}

        loaded = Store(other, root, retention=100.0)
        assert {r.id: r.state for r in loaded.load()} == {"g-2": "QUEUED", "g-3": "FINISHED"}
        loaded.save([r for r in loaded.load() if r.terminal])  # the leader moves a legacy one on takeover
        assert zk.get_children(store.tasks_path) == ["g-2"]
        assert {r.id for r in store.finished()} == {"g-0", "g-1", "g-3"}

        assert store.purge(now=1100.0) == 0  # no task's retention has passed yet
        last = int(bucket_of(1002.0, 100.0))
        assert store.purge(now=last) == 3
        assert znodes(zk, store.finished_path) == [] and store.finished() == []
        assert zk.get_children(store.tasks_path) == ["g-2"]  # a live task is never purged
    finally:
        for c in (zk, other):
            c.stop()
            c.close()
