"""Health bookkeeping and real probes of the Marathon stand-in."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from devcluster.httpapi import Router, RunningServer, serve, text_response
from devcluster.marathon.health import HealthState, check_port, probe


def test_failures_in_the_grace_period_do_not_count_until_a_success() -> None:
    state = HealthState("i1", started=100.0, grace=10.0)
    assert state.record(False, 105.0, "down") is False and state.results == 0
    assert state.record(True, 106.0) is True and state.alive
    assert state.record(False, 107.0, "down") is True  # after a first success, failures count
    assert state.consecutive_failures == 1 and not state.should_kill(2)
    state.record(False, 108.0, "down")
    assert state.should_kill(2) and not state.should_kill(0)
    assert state.to_json()["lastFailureCause"] == "down" and state.to_json()["instanceId"] == "i1"


def test_failures_after_the_grace_period_count_at_once() -> None:
    state = HealthState("i1", started=100.0, grace=1.0)
    assert state.record(False, 102.0, "down") is True
    assert state.to_json() == {"alive": False, "consecutiveFailures": 1, "instanceId": "i1",
                               "lastFailure": "1970-01-01T00:01:42.000Z", "lastFailureCause": "down"}


@pytest.fixture
def web() -> Iterator[RunningServer]:
    router = Router()
    router.add("GET", "/ok", lambda _: text_response("ok"))
    router.add("GET", "/moved", lambda _: text_response("", 302))
    router.add("GET", "/bad", lambda _: text_response("no", 503))
    server = serve(router)
    yield server
    server.stop()


def test_http_probe_takes_2xx_and_3xx_as_healthy(web: RunningServer) -> None:
    check = {"protocol": "HTTP", "portIndex": 1, "timeoutSeconds": 2}
    ports = (1, web.port)
    assert probe({**check, "path": "/ok"}, "127.0.0.1", ports, {}) is None
    assert probe({**check, "path": "/moved"}, "127.0.0.1", ports, {}) is None
    assert probe({**check, "path": "/bad"}, "127.0.0.1", ports, {}) == "HTTP status 503"


def test_tcp_and_command_probes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert probe({"protocol": "TCP", "port": port, "timeoutSeconds": 1}, "127.0.0.1", (), {}) is None
    failed = probe({"protocol": "TCP", "portIndex": 0, "timeoutSeconds": 1}, "127.0.0.1", (port,), {})
    assert failed is not None and "TCP connection" in failed
    command = {"protocol": "COMMAND", "command": {"value": 'test "$PORT0" = 31000'}, "timeoutSeconds": 5}
    assert probe(command, "h", (), {"PORT0": "31000"}) is None
    assert probe(command, "h", (), {"PORT0": "1"}) == "Command exited with status 1"
    assert check_port({"portIndex": 3}, (1,)) is None


def test_outcome_names_the_events_and_the_kill() -> None:
    from devcluster.marathon.health import health_outcome

    who = {"appId": "/a", "taskId": "t", "instanceId": "i", "version": "v", "host": "h", "slaveId": "s"}
    state = HealthState("i", started=0.0, grace=0.0)
    state.record(False, 1.0, "down")
    events, kill = health_outcome(who, {"maxConsecutiveFailures": 1}, state, "down", True, False, False)
    assert [e for e, _ in events] == ["health_status_changed_event", "failed_health_check_event",
                                      "unhealthy_instance_kill_event"]
    assert kill and events[2][1]["reason"] == "down" and events[2][1]["slaveId"] == "s"
    state.record(True, 2.0)
    events, kill = health_outcome(who, {}, state, None, True, False, True)
    assert [e for e, _ in events] == ["health_status_changed_event", "instance_health_changed_event"]
    assert events[1][1] == {"instanceId": "i", "runSpecId": "/a", "runSpecVersion": "v", "healthy": True}
    assert not kill
