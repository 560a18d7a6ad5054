"""What wharf relies on of Consul, against the real agent (or `CONSUL_HTTP_ADDR`'s) through py-consul."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from tests.conftest import ConsulUnderTest


def test_a_registration_with_meta_is_read_back_by_a_blocking_health_query_woken_by_a_change(
        consul: ConsulUnderTest) -> None:
    client = consul.client()
    name = f"blocking-{uuid.uuid4().hex[:8]}"
    client.agent.service.register(name, service_id=f"{name}-1", address="127.0.0.2", port=8080,
                                  tags=["v1"], meta={"marathon_app_id": "/shop/web", "port_index": "0"},
                                  check={"TTL": "30s", "Status": "passing"})
    try:
        index, entries = client.health.service(name, passing=True)
        assert [e["Service"]["Meta"] for e in entries] == [{"marathon_app_id": "/shop/web", "port_index": "0"}]
        assert entries[0]["Service"]["Address"] == "127.0.0.2"

        answer: dict[str, Any] = {}

        def watch() -> None:
            # Consul may answer early for an index move of its own (the registration reaching the
            # catalog): as every client must, ask again from the new index until the answer changes
            seen, passing, started = index, entries, time.monotonic()
            while passing and time.monotonic() - started < 25:
                seen, passing = client.health.service(name, passing=True, index=seen, wait="20s")
            answer["result"] = seen, passing, time.monotonic() - started

        watcher = threading.Thread(target=watch)
        watcher.start()
        client.agent.check.ttl_fail(f"service:{name}-1", "going away")
        watcher.join(timeout=30)
        assert not watcher.is_alive()
        new_index, passing, waited = answer["result"]
        assert int(new_index) > int(index) and passing == []
        assert waited < 20, "the blocking query ran to its wait instead of being woken by the change"
    finally:
        client.agent.service.deregister(f"{name}-1")


def test_kv_check_and_set_and_a_transaction(consul: ConsulUnderTest) -> None:
    client = consul.client()
    key = f"wharf-test/{uuid.uuid4().hex[:8]}"
    assert client.kv.put(key, "one", cas=0)
    assert not client.kv.put(key, "again", cas=0), "cas=0 must refuse an existing key"
    _, entry = client.kv.get(key)
    assert not client.kv.put(key, "stale", cas=entry["ModifyIndex"] + 1000)
    assert client.kv.put(key, "two", cas=entry["ModifyIndex"])
    assert client.kv.get(key)[1]["Value"] == b"two"

    import base64

    ops = [{"KV": {"Verb": "set", "Key": f"{key}/a", "Value": base64.b64encode(b"A").decode()}},
           {"KV": {"Verb": "set", "Key": f"{key}/b", "Value": base64.b64encode(b"B").decode()}}]
    result = client.txn.put(ops)
    assert not result.get("Errors")
    _, entries = client.kv.get(f"{key}/", recurse=True)
    assert {e["Key"]: e["Value"] for e in entries} == {f"{key}/a": b"A", f"{key}/b": b"B"}
    client.kv.delete(key, recurse=True)


def test_a_session_lock_is_held_by_one_session_at_a_time(consul: ConsulUnderTest) -> None:
    client = consul.client()
    key = f"wharf-test/lock-{uuid.uuid4().hex[:8]}"
    first = client.session.create(ttl=30, behavior="delete")
    second = client.session.create(ttl=30)
    try:
        assert client.kv.put(key, "first", acquire=first)
        assert not client.kv.put(key, "second", acquire=second)
        assert client.kv.get(key)[1]["Session"] == first
        assert client.kv.put(key, "first", release=first)
        assert client.kv.put(key, "second", acquire=second)
    finally:
        client.session.destroy(first)
        client.session.destroy(second)
        client.kv.delete(key)


def test_acl_mode_refuses_a_request_without_the_token_and_accepts_it_with(consul_factory: Any) -> None:
    import consul as consul_lib

    agent = consul_factory(acl=True)
    assert agent.token
    anonymous = ConsulUnderTest(agent.addr).client()
    with pytest.raises(consul_lib.ACLPermissionDenied):
        anonymous.kv.put("wharf-test/acl", "x")
    assert agent.client().kv.put("wharf-test/acl", "x")
    assert agent.client().kv.get("wharf-test/acl")[1]["Value"] == b"x"


def test_a_restarted_local_agent_is_empty_on_the_same_port(consul_factory: Any) -> None:
    agent = consul_factory()
    client = agent.client()
    client.agent.service.register("before-restart", port=80)
    assert client.kv.put("wharf-test/k", "v")
    agent.restart()
    assert "before-restart" not in client.agent.services()
    assert client.kv.get("wharf-test/k")[1] is None
