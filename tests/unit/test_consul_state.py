"""The Consul stand-in's pure state: index rules, KV, sessions, checks and timers, on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devcluster.consul import decode
from devcluster.consul.kv import TxnOp
from devcluster.consul.model import CRITICAL, PASSING, WARNING, Limits, Service, format_duration, parse_duration
from devcluster.consul.state import ConsulState, NotFound, StateError

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> ConsulState:
    return ConsulState("node1", clock=clock)


def register(state: ConsulState, body: dict) -> None:
    service, checks = decode.service_definition(body)
    state.register_service(service, checks)


def check_status(state: ConsulState, check_id: str) -> str:
    return state.catalog.checks[check_id].status


# -- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "printed"),
    [
        ("10s", 10, "10s"),
        ("1m30s", 90, "1m30s"),
        ("90m", 5400, "1h30m0s"),
        ("250ms", 0.25, "250ms"),
        ("1.5s", 1.5, "1.5s"),
        ("0", 0, "0s"),
        ("1h", 3600, "1h0m0s"),
    ],
)
def test_go_durations(text: str, seconds: float, printed: str) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert format_duration(seconds) == printed


@pytest.mark.parametrize("bad", ["", "10", "s", "1x", "1.s5"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**15))
def test_duration_round_trip(ns: int) -> None:
    assert round(parse_duration(format_duration(ns / 1e9)) * 1e9) == pytest.approx(ns, abs=1)


# -- index rules --------------------------------------------------------------------------------


def test_boot_state_is_a_node_with_serf_health_and_the_consul_service(state: ConsulState) -> None:
    assert state.ix.current == 1
    assert state.catalog.catalog_services() == (1, {"consul": []})
    assert [c["CheckID"] for c in state.catalog.health_state("passing")[1]] == ["serfHealth"]
    assert state.catalog.agent_services() == {} and state.catalog.agent_checks() == {}


def test_kv_indexes_follow_consul(state: ConsulState) -> None:
    state.kv_put("a/x", b"1")
    x_index = state.ix.current
    state.kv_put("b", b"2")
    assert state.kv.get("a/x")[0] == x_index  # a present key answers with its ModifyIndex
    assert state.kv.get("missing")[0] == state.ix.current  # a missing key with the table index
    assert state.kv.list_prefix("a/")[0] == x_index
    state.kv_put("b", b"2")  # same content: no write, no index move
    assert state.kv.get("b")[0] == state.ix.current == x_index + 1
    state.kv_delete("a/x")
    deleted_at = state.ix.current
    assert state.kv.list_prefix("a/") == (deleted_at, [])  # the tombstone moves the prefix index


def test_service_index_and_extinction(state: ConsulState) -> None:
    register(state, {"Name": "web", "Check": {"TTL": "10s"}})
    web_index = state.catalog.health_service("web")[0]
    register(state, {"Name": "db"})
    assert state.catalog.health_service("web")[0] == web_index  # other services do not move it
    state.update_ttl("service:web", PASSING, "")
    assert state.catalog.health_service("web")[0] > web_index
    services_index = state.catalog.catalog_services()[0]
    state.update_ttl("service:web", CRITICAL, "")
    assert state.catalog.catalog_services()[0] == services_index  # a check is not a service change
    state.deregister_service("web")
    gone = state.ix.current
    assert state.catalog.health_service("web") == (gone, [])
    assert state.catalog.health_service("never-was")[0] == gone


def test_node_check_moves_every_service_index(state: ConsulState) -> None:
    register(state, {"Name": "web"})
    before = state.catalog.health_service("web")[0]
    state.set_maintenance(True, "")
    assert state.catalog.health_service("web")[0] > before
    assert state.catalog.health_service("web", passing=True)[1] == []
    notes = state.catalog.checks["_node_maintenance"].notes
    assert notes.startswith("Maintenance mode is enabled for this node")
    state.set_maintenance(False, "")
    assert len(state.catalog.health_service("web", passing=True)[1]) == 1


def test_reset_keeps_the_index_rising_and_restores_the_boot_state(state: ConsulState) -> None:
    register(state, {"Name": "web", "Check": {"TTL": "10s"}})
    state.kv_put("k", b"v")
    state.create_session(decode.SessionRequest())
    before = state.ix.current
    state.reset()
    assert state.ix.current == before + 1
    assert state.kv.get("k") == (before + 1, None)
    assert state.catalog.health_service("web") == (before + 1, [])
    assert state.session_list() == (before + 1, [])
    assert state.catalog.catalog_services()[1] == {"consul": []}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "cas", "delete", "tree"]),
            st.sampled_from(["a", "a/b", "a/c", "b"]),
            st.integers(0, 8),
        ),
        max_size=30,
    )
)
def test_kv_index_never_goes_back_and_entries_are_consistent(ops: list[tuple[str, str, int]]) -> None:
    state = ConsulState()
    seen = state.ix.current
    for verb, key, number in ops:
        if verb == "put":
            state.kv_put(key, str(number).encode())
        elif verb == "cas":
            state.kv_put(key, b"c", cas=number)
        elif verb == "delete":
            state.kv_delete(key)
        else:
            state.kv_delete(key, recurse=True)
        assert state.ix.current >= seen
        seen = state.ix.current
        for entry in state.kv.entries.values():
            assert 0 < entry.create_index <= entry.modify_index <= state.ix.current
        assert state.kv.list_prefix("")[0] <= state.ix.current


# -- KV -----------------------------------------------------------------------------------------


def test_cas_rules(state: ConsulState) -> None:
    assert state.kv_put("k", b"1", cas=0)
    assert not state.kv_put("k", b"2", cas=0)
    index = state.kv.get("k")[1].modify_index  # type: ignore[union-attr]
    assert not state.kv_put("k", b"2", cas=index + 1)
    assert state.kv_put("k", b"2", cas=index)
    assert not state.kv_put("absent", b"x", cas=5)
    assert not state.kv_delete("k", cas=index)
    assert state.kv_delete("absent", cas=3)  # Consul: nothing to delete counts as success


def test_keys_with_separator(state: ConsulState) -> None:
    for key in ("web/bar", "web/foo", "web/subdir/a", "web/subdir/b", "webx"):
        state.kv_put(key, b"")
    assert state.kv.keys("web/", "/")[1] == ["web/bar", "web/foo", "web/subdir/"]
    assert state.kv.keys("", "/")[1] == ["web/", "webx"]
    assert state.kv.keys("web")[1] == ["web/bar", "web/foo", "web/subdir/a", "web/subdir/b", "webx"]


def test_locks_and_lock_delay(state: ConsulState, clock: Clock) -> None:
    first = state.create_session(decode.SessionRequest(lock_delay=5))
    second = state.create_session(decode.SessionRequest(lock_delay=0))
    assert state.kv_put("lock", b"1", acquire=first)
    assert state.kv_put("lock", b"1b", acquire=first)  # re-acquire by the holder
    assert state.kv.get("lock")[1].lock_index == 1  # type: ignore[union-attr]
    assert not state.kv_put("lock", b"2", acquire=second)
    assert state.kv_put("lock", b"plain")  # a plain PUT keeps the lock
    assert state.kv.get("lock")[1].session == first  # type: ignore[union-attr]
    state.destroy_session(first)
    assert state.kv.get("lock")[1].session == ""  # type: ignore[union-attr]
    assert not state.kv_put("lock", b"2", acquire=second)  # lock-delay after invalidation
    clock.advance(5.01)
    assert state.kv_put("lock", b"2", acquire=second)
    assert state.kv.get("lock")[1].lock_index == 2  # type: ignore[union-attr]
    with pytest.raises(StateError, match="invalid session"):
        state.kv_put("lock", b"x", acquire="no-such-session")


def test_txn_is_atomic(state: ConsulState) -> None:
    state.kv_put("a", b"1")
    results, errors = state.txn([TxnOp("set", "b", b"2"), TxnOp("check-index", "a", index=999), TxnOp("delete", "a")])
    assert results == [] and errors == [
        {"OpIndex": 1, "What": 'failed index check for key "a", current modify index 2 != 999'}
    ]
    assert state.kv.get("b")[1] is None and state.kv.get("a")[1] is not None
    results, errors = state.txn([TxnOp("set", "b", b"2"), TxnOp("get-tree", ""), TxnOp("check-not-exists", "c")])
    assert errors == [] and [r["KV"]["Key"] for r in results] == ["b", "a", "b"]
    _, errors = state.txn([TxnOp("frob", "a")])
    assert errors[0]["What"] == 'unknown KV verb "frob"'


# -- sessions -----------------------------------------------------------------------------------


def test_ttl_session_expires_after_twice_its_ttl_and_releases_or_deletes(state: ConsulState, clock: Clock) -> None:
    keeps = state.create_session(decode.SessionRequest(ttl="10s", lock_delay=0))
    drops = state.create_session(decode.SessionRequest(ttl="10s", behavior="delete", lock_delay=0))
    state.kv_put("kept", b"v", acquire=keeps)
    state.kv_put("dropped", b"v", acquire=drops)
    assert state.tick() == pytest.approx(clock.now + 20)
    clock.advance(15)
    assert state.renew_session(drops) is not None  # renewed: 20 s from now
    clock.advance(5)
    state.tick()
    assert keeps not in state.sessions and drops in state.sessions
    assert state.kv.get("kept")[1].session == ""  # type: ignore[union-attr]
    clock.advance(15)
    state.tick()
    assert drops not in state.sessions and state.kv.get("dropped")[1] is None


def test_session_validation(state: ConsulState) -> None:
    with pytest.raises(StateError, match="Invalid Session TTL"):
        state.create_session(decode.SessionRequest(ttl="5s"))
    with pytest.raises(StateError, match="Missing check 'nope' registration"):
        state.create_session(decode.SessionRequest(node_checks=("nope",)))
    register(state, {"Name": "web", "Check": {"TTL": "10s"}})
    with pytest.raises(StateError, match="critical state"):
        state.create_session(decode.SessionRequest(service_checks=("service:web",)))
    with pytest.raises(StateError, match="Invalid Behavior"):
        state.create_session(decode.SessionRequest(behavior="explode"))


def test_session_dies_when_its_check_goes_critical(state: ConsulState) -> None:
    register(state, {"Name": "web", "Check": {"TTL": "10s", "Status": "passing"}})
    session = state.create_session(decode.SessionRequest(service_checks=("service:web",), lock_delay=0))
    state.kv_put("leader", b"me", acquire=session)
    state.update_ttl("service:web", CRITICAL, "down")
    assert session not in state.sessions
    assert state.kv.get("leader")[1].session == ""  # type: ignore[union-attr]


def test_session_request_decoding() -> None:
    req = decode.session_request(b'{"lockdelay": "15s", "ttl": "30s", "behavior": "delete", "Checks": ["a"]}')
    assert (req.lock_delay, req.ttl, req.behavior, req.node_checks, req.legacy_checks) == (
        15,
        "30s",
        "delete",
        ("a",),
        ("a",),
    )
    assert decode.session_request(b'{"LockDelay": 5}').lock_delay == 5  # small numbers are seconds
    assert decode.session_request(b'{"LockDelay": 2000000000}').lock_delay == 2  # large ones nanoseconds
    assert decode.session_request(b"").node_checks is None


# -- services and checks ------------------------------------------------------------------------


def test_check_ids_and_names_follow_consul(state: ConsulState) -> None:
    register(
        state,
        {
            "name": "web",
            "id": "web-1",
            "checks": [{"ttl": "10s"}, {"http": "http://127.0.0.1:1/", "interval": "100ms"}],
        },
    )
    checks = state.catalog.agent_checks()
    assert set(checks) == {"service:web-1:1", "service:web-1:2"}
    assert checks["service:web-1:1"]["Name"] == "Service 'web' check"
    assert checks["service:web-1:2"]["Interval"] == "1s"  # raised to Consul's minimum
    assert checks["service:web-1:2"]["Timeout"] == "10s"
    register(state, {"Name": "db", "Check": {"CheckID": "db-ttl", "Name": "db alive", "TTL": "5s"}})
    assert state.catalog.checks["db-ttl"].name == "db alive"
    assert set(state.probes()) == {"service:web-1:2"}


def test_snake_case_and_lower_case_fields_are_accepted() -> None:
    service, checks = decode.service_definition(
        {
            "name": "web",
            "enable_tag_override": True,
            "tags": ["a"],
            "check": {"http": "http://x/", "interval": "10s", "deregister_critical_service_after": "90m"},
        }
    )
    assert service.enable_tag_override and service.id == "web" and service.tags == ("a",)
    assert checks[0].spec.deregister_after == 5400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Port": 80}, "Missing service name"),
        ({"Name": "x", "Port": "80"}, "cannot unmarshal string"),
        ({"Name": "x", "Check": {"HTTP": "http://x/"}}, "Interval must be > 0"),
        ({"Name": "x", "Check": {"Interval": "10s"}}, "TTL must be > 0"),
        ({"Name": "x", "Check": {"Args": ["/bin/true"], "Interval": "10s"}}, "only HTTP, TCP and TTL"),
        ({"Name": "x", "Check": {"TTL": "1s", "Status": "bogus"}}, "Status for checks"),
    ],
)
def test_bad_service_definitions(body: dict, message: str) -> None:
    with pytest.raises(decode.DecodeError, match=message):
        decode.service_definition(body)


def test_ttl_check_expires_to_critical(state: ConsulState, clock: Clock) -> None:
    register(state, {"Name": "web", "Check": {"TTL": "10s"}})
    state.update_ttl("service:web", PASSING, "fine")
    index = state.ix.current
    state.update_ttl("service:web", PASSING, "still fine")  # same status: output only, no index move
    assert state.ix.current == index
    assert state.catalog.checks["service:web"].output == "still fine"
    clock.advance(9.9)
    state.tick()
    assert check_status(state, "service:web") == PASSING
    clock.advance(0.2)
    assert state.tick() is None
    check = state.catalog.checks["service:web"]
    assert check.status == CRITICAL and check.output == "TTL expired (last output before timeout follows): still fine"
    assert state.ix.current == index + 1


def test_reregistering_keeps_check_status(state: ConsulState) -> None:
    register(state, {"Name": "web", "Check": {"TTL": "10s"}})
    state.update_ttl("service:web", WARNING, "meh")
    register(state, {"Name": "web", "Tags": ["new"], "Check": {"TTL": "10s"}})
    assert check_status(state, "service:web") == WARNING
    assert state.catalog.services["web"].tags == ("new",)


def test_replace_existing_checks(state: ConsulState) -> None:
    register(state, {"Name": "web", "Checks": [{"TTL": "10s"}, {"TTL": "20s"}]})
    service, checks = decode.service_definition({"Name": "web", "Check": {"CheckID": "service:web:1", "TTL": "10s"}})
    state.register_service(service, checks, replace_existing_checks=True)
    assert set(state.catalog.agent_checks()) == {"service:web:1"}


def test_probe_results_apply_to_the_current_definition_only(state: ConsulState) -> None:
    register(state, {"Name": "web", "Check": {"HTTP": "http://127.0.0.1:1/", "Interval": "10s"}})
    old_definition, _ = state.probes()["service:web"]
    register(state, {"Name": "web", "Check": {"HTTP": "http://127.0.0.1:2/", "Interval": "10s"}})
    state.record_probe("service:web", old_definition, PASSING, "stale")
    assert check_status(state, "service:web") == CRITICAL
    state.record_probe("service:web", state.probes()["service:web"][0], PASSING, "HTTP GET ...: 200 OK")
    assert check_status(state, "service:web") == PASSING


def test_critical_service_is_reaped_after_deregister_timeout_with_a_one_minute_floor(
    state: ConsulState, clock: Clock
) -> None:
    register(state, {"Name": "web", "Check": {"TTL": "5s", "DeregisterCriticalServiceAfter": "10s"}})
    assert state.tick() == pytest.approx(clock.now + 5)  # the TTL comes first
    clock.advance(59)
    state.tick()
    assert "web" in state.catalog.services  # 10s asked for, but Consul waits at least a minute
    clock.advance(1.5)
    state.tick()
    assert "web" not in state.catalog.services and "service:web" not in state.catalog.checks


def test_relaxed_limits_for_fast_tests(clock: Clock) -> None:
    state = ConsulState(limits=Limits(min_deregister_after=0), clock=clock)
    register(state, {"Name": "web", "Check": {"TTL": "5s", "DeregisterCriticalServiceAfter": "1s"}})
    clock.advance(1)
    state.tick()
    assert "web" not in state.catalog.services


def test_agent_errors(state: ConsulState) -> None:
    with pytest.raises(NotFound, match='Unknown service ID "nope"'):
        state.deregister_service("nope")
    with pytest.raises(NotFound, match="Unknown check ID"):
        state.update_ttl("nope", PASSING, "")
    with pytest.raises(NotFound):
        state.deregister_service("consul")  # the server's own service is not the agent's
    register(state, {"Name": "web", "Check": {"TCP": "127.0.0.1:1", "Interval": "10s"}})
    with pytest.raises(StateError, match="does not have associated TTL"):
        state.update_ttl("service:web", PASSING, "")
    with pytest.raises(StateError, match="does not exist"):
        state.register_check(decode.check_definition({"Name": "c", "TTL": "5s", "ServiceID": "nope"}))


def test_default_tagged_addresses(state: ConsulState) -> None:
    state.register_service(Service("a", "a", address="10.0.0.1", port=80), [])
    state.register_service(Service("b", "b", address="example.com", port=80), [])
    services = state.catalog.agent_services()
    assert services["a"]["TaggedAddresses"]["lan_ipv4"] == {"Address": "10.0.0.1", "Port": 80}
    assert "TaggedAddresses" not in services["b"]
