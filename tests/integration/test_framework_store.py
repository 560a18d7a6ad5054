"""The framework's ZooKeeper store on a real ZooKeeper: tasks round-trip, and the fence keeps a scheduler
whose session expired from writing (its election node is gone with its session)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kazoo.client import KazooClient

from framework.store import Store, StoreError
from framework.tasks import Submission, TaskRecord
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
