"""The Consul stand-in held to Consul's contract: py-consul against it, and response shapes
compared with the samples from Consul's API docs in ../shared/upstream/consul/.

With CONSUL_HTTP_ADDR set (and CONSUL_HTTP_TOKEN if ACLs are on) the same tests run
against that real Consul; tests of stand-in-only features are then skipped.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import consul
import pytest
import requests

from devcluster.consul import ConsulStandin
from tests.upstream import upstream

pytestmark = pytest.mark.contract

REPO = Path(__file__).resolve().parents[2]
REAL_ADDR = os.environ.get("CONSUL_HTTP_ADDR")
TOKEN = os.environ.get("CONSUL_HTTP_TOKEN") if REAL_ADDR else None


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin_server() -> Iterator[ConsulStandin | None]:
    """The stand-in this module started, or None when testing a real Consul."""
    if REAL_ADDR:
        yield None
        return
    with ConsulStandin() as server:
        yield server


@pytest.fixture(scope="module")
def consul_standin(standin_server: ConsulStandin | None) -> str:
    """Base URL of the Consul under test (CONSUL_HTTP_ADDR if set, else the stand-in)."""
    if standin_server is None:
        assert REAL_ADDR
        return REAL_ADDR if "://" in REAL_ADDR else f"http://{REAL_ADDR}"
    return standin_server.url


@pytest.fixture
def client(consul_standin: str) -> consul.Consul:
    parts = urlsplit(consul_standin)
    return consul.Consul(host=parts.hostname, port=parts.port, scheme=parts.scheme, token=TOKEN)


@pytest.fixture
def api(consul_standin: str) -> Callable[..., requests.Response]:
    session = requests.Session()
    if TOKEN:
        session.headers["X-Consul-Token"] = TOKEN

    def call(method: str, path: str, **kwargs: Any) -> requests.Response:
        return session.request(method, consul_standin + path, timeout=30, **kwargs)

    return call


@pytest.fixture
def name() -> str:
    """A service/key name no other test (or other user of a real Consul) uses."""
    return f"wharf-test-{uuid.uuid4().hex[:8]}"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    """A tiny HTTP server on a free loopback port; set ``.status`` to change its answer."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def wait_for(
    c: consul.Consul, service: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
) -> list:
    """Follow /v1/health/service with blocking queries until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    index = None
    while True:
        index, nodes = c.health.service(service, index=index, wait="1s")
        if predicate(nodes):
            return nodes
        assert time.monotonic() < deadline, f"{service} never reached the expected state: {nodes}"


def statuses(nodes: list[dict[str, Any]]) -> dict[str, str]:
    return {c["CheckID"]: c["Status"] for n in nodes for c in n["Checks"] if c["ServiceID"]}


# -- shape comparison -----------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def shape_diff(
    sample: Any,
    actual: Any,
    *,
    maps: tuple[str, ...] = (),
    ignore: tuple[str, ...] = (),
    casefold: tuple[str, ...] = (),
    path: str = "$",
) -> list[str]:
    """Differences in key sets and JSON types between a docs sample and a response.

    ``maps`` are paths of free-form maps (compare values, not keys); ``ignore`` are paths
    the response may lack; ``casefold`` are paths whose keys compare case-insensitively.
    A null in the sample is Go's zero value and accepts anything; so does an empty list
    in the response; extra keys in the response are fine (newer Consul adds fields).
    """
    opts = {"maps": maps, "ignore": ignore, "casefold": casefold}
    matches = lambda patterns, p: any(fnmatch.fnmatchcase(p, pat) for pat in patterns)  # noqa: E731
    if sample is None:
        return []
    if _kind(sample) != _kind(actual):
        return [f"{path}: sample is {_kind(sample)}, response is {_kind(actual)}"]
    if isinstance(sample, list):
        if not sample:
            return []
        return [d for item in actual for d in shape_diff(sample[0], item, path=f"{path}[]", **opts)]
    if not isinstance(sample, dict):
        return []
    if matches(maps, path):
        if not sample:
            return []
        richest = max(sample.values(), key=lambda v: len(json.dumps(v)))
        return [d for k, v in actual.items() for d in shape_diff(sample.get(k, richest), v, path=f"{path}.*", **opts)]
    diffs = []
    folded = {k.lower(): k for k in actual}
    for key, value in sample.items():
        child = f"{path}.{key}"
        found = key if key in actual else folded.get(key.lower()) if matches(casefold, child) else None
        if found is None:
            if not matches(ignore, child):
                diffs.append(f"{child}: missing from response")
            continue
        diffs.extend(shape_diff(value, actual[found], path=child, **opts))
    return diffs


def sample(name: str) -> Any:
    return json.loads(upstream("consul", "docs-samples", name).read_text())


# Namespace is Consul Enterprise only (OSS omits it). Connect proxy fields became
# omitempty in Consul 1.6, after these samples were written. Service TaggedAddresses use
# lower-case address/port in these docs but Address/Port in real agents (upstream README).
ENTERPRISE = ("*.Namespace",)
CONNECT = ("$[].ServiceProxy.*", "$[].ServiceConnect.*")


def test_shape_diff_reports_missing_keys_and_type_changes() -> None:
    assert shape_diff({"A": 1, "B": "x"}, {"A": 2, "B": "y", "C": 3}) == []
    assert shape_diff({"A": 1, "B": "x"}, {"A": "1"}) == [
        "$.A: sample is number, response is str",
        "$.B: missing from response",
    ]
    assert shape_diff([{"M": {"k": "v"}}], [{"M": {"other": 1}}], maps=("$[].M",)) == [
        "$[].M.*: sample is str, response is number"
    ]
    assert (
        shape_diff({"T": {"a": {"address": "x"}}}, {"T": {"b": {"Address": "y"}}}, maps=("$.T",), casefold=("$.T.*.*",))
        == []
    )


# -- py-consul, unmodified ------------------------------------------------------------------------


def test_py_consul_registers_service_with_http_and_ttl_checks(
    client: consul.Consul, name: str, health_server: ThreadingHTTPServer
) -> None:
    url = f"http://127.0.0.1:{health_server.server_address[1]}/health"
    assert client.agent.service.register(
        name,
        service_id=f"{name}-1",
        address="127.0.0.1",
        port=8080,
        tags=["v1"],
        check=consul.Check.http(url, "1s", timeout="1s"),
        extra_checks=[consul.Check.ttl("30s")],
    )
    try:
        services = client.agent.services()
        assert services[f"{name}-1"]["Service"] == name
        checks = client.agent.checks()
        assert checks[f"service:{name}-1:1"]["Type"] == "http"
        assert checks[f"service:{name}-1:2"]["Type"] == "ttl"
        assert checks[f"service:{name}-1:2"]["Status"] == "critical"  # Consul's initial status
        client.agent.check.ttl_pass(f"service:{name}-1:2", "all good")
        nodes = wait_for(client, name, lambda ns: set(statuses(ns).values()) == {"passing"})
        assert nodes[0]["Service"]["Port"] == 8080
        assert {c["CheckID"]: c["Output"] for c in nodes[0]["Checks"]}[f"service:{name}-1:2"] == "all good"
    finally:
        client.agent.service.deregister(f"{name}-1")
    assert f"{name}-1" not in client.agent.services()


def test_http_check_passes_only_while_the_server_answers_200(
    client: consul.Consul, name: str, health_server: ThreadingHTTPServer
) -> None:
    url = f"http://127.0.0.1:{health_server.server_address[1]}/"
    health_server.status = 503  # type: ignore[attr-defined]
    client.agent.service.register(name, check=consul.Check.http(url, "1s", timeout="1s"))
    try:
        nodes = wait_for(client, name, lambda ns: "503" in ns[0]["Checks"][-1]["Output"])
        assert statuses(nodes) == {f"service:{name}": "critical"}
        health_server.status = 429  # type: ignore[attr-defined]
        wait_for(client, name, lambda ns: statuses(ns) == {f"service:{name}": "warning"})
        health_server.status = 200  # type: ignore[attr-defined]
        nodes = wait_for(client, name, lambda ns: statuses(ns) == {f"service:{name}": "passing"})
        assert nodes[0]["Checks"][-1]["Output"].startswith(f"HTTP GET {url}: 200")
        _, passing = client.health.service(name, passing=True)
        assert len(passing) == 1
        health_server.shutdown()
        health_server.server_close()
        wait_for(client, name, lambda ns: statuses(ns) == {f"service:{name}": "critical"})
        _, passing = client.health.service(name, passing=True)
        assert passing == []
    finally:
        client.agent.service.deregister(name)


def test_tcp_check_connects(client: consul.Consul, name: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client.agent.service.register(name, port=port, check=consul.Check.tcp("127.0.0.1", port, "1s"))
        try:
            nodes = wait_for(client, name, lambda ns: statuses(ns) == {f"service:{name}": "passing"})
            assert "Success" in nodes[0]["Checks"][-1]["Output"]
        finally:
            client.agent.service.deregister(name)


def test_blocking_health_query_returns_after_a_change_and_reflects_it(client: consul.Consul, name: str) -> None:
    client.agent.service.register(name, check=consul.Check.ttl("30s"))
    try:
        index, nodes = client.health.service(name, passing=True)
        assert nodes == []
        changed_at: list[float] = []

        def change() -> None:
            changed_at.append(time.monotonic())
            client.agent.check.ttl_pass(f"service:{name}")

        # Whether the change lands before or during the query, the query must come back
        # after it with a higher index and the passing instance in it.
        timer = threading.Timer(0.2, change)
        timer.start()
        new_index, nodes = client.health.service(name, passing=True, index=index, wait="10s")
        returned_at = time.monotonic()
        timer.join()
        assert int(new_index) > int(index)
        assert returned_at >= changed_at[0]
        assert [n["Service"]["Service"] for n in nodes] == [name]
    finally:
        client.agent.service.deregister(name)


def test_blocking_query_without_change_waits_then_keeps_the_index(client: consul.Consul, name: str) -> None:
    index, _ = client.kv.get(f"{name}/nothing")
    started = time.monotonic()
    new_index, value = client.kv.get(f"{name}/nothing", index=index, wait="300ms")
    assert time.monotonic() - started >= 0.3
    assert value is None and int(new_index) >= int(index)


def test_blocking_kv_prefix_wakes_on_delete(client: consul.Consul, name: str) -> None:
    client.kv.put(f"{name}/a", "1")
    index, entries = client.kv.get(f"{name}/", recurse=True)
    assert [e["Key"] for e in entries] == [f"{name}/a"]
    timer = threading.Timer(0.1, lambda: client.kv.delete(f"{name}/a"))
    timer.start()
    new_index, entries = client.kv.get(f"{name}/", recurse=True, index=index, wait="10s")
    timer.join()
    assert entries is None and int(new_index) > int(index)


def test_kv_put_get_recurse_keys_delete(
    client: consul.Consul, api: Callable[..., requests.Response], name: str
) -> None:
    assert client.kv.put(f"{name}/web/foo", "1", flags=42)
    assert client.kv.put(f"{name}/web/bar", b"\x00\xff")
    assert client.kv.put(f"{name}/web/subdir/x", None)
    _, entry = client.kv.get(f"{name}/web/foo")
    assert entry["Value"] == b"1" and entry["Flags"] == 42 and entry["CreateIndex"] == entry["ModifyIndex"]
    _, entries = client.kv.get(f"{name}/web/", recurse=True)
    assert [e["Key"] for e in entries] == [f"{name}/web/bar", f"{name}/web/foo", f"{name}/web/subdir/x"]
    assert entries[2]["Value"] is None
    _, keys = client.kv.get(f"{name}/web/", keys=True, separator="/")
    assert keys == [f"{name}/web/bar", f"{name}/web/foo", f"{name}/web/subdir/"]
    raw = api("GET", f"/v1/kv/{name}/web/bar?raw")
    assert raw.status_code == 200 and raw.content == b"\x00\xff"
    assert client.kv.delete(f"{name}/web/foo")
    assert client.kv.get(f"{name}/web/foo")[1] is None
    assert api("GET", f"/v1/kv/{name}/web/foo").status_code == 404
    assert client.kv.delete(f"{name}/", recurse=True)
    assert client.kv.get(f"{name}/", recurse=True)[1] is None
    assert api("GET", f"/v1/kv/{name}/?keys").status_code == 404


def test_kv_cas(client: consul.Consul, api: Callable[..., requests.Response], name: str) -> None:
    key = f"{name}/cas"
    assert client.kv.put(key, "v1", cas=0)
    assert client.kv.put(key, "v2", cas=0) is False
    _, entry = client.kv.get(key)
    assert client.kv.put(key, "v2", cas=entry["ModifyIndex"] + 1000) is False
    assert client.kv.put(key, "v2", cas=entry["ModifyIndex"])
    assert client.kv.get(key)[1]["Value"] == b"v2"
    response = api("PUT", f"/v1/kv/{key}?cas=1", data="v3")
    assert response.status_code == 200 and response.json() is False
    assert client.kv.delete(key, cas=1) is False
    _, entry = client.kv.get(key)
    assert client.kv.delete(key, cas=entry["ModifyIndex"])
    assert client.kv.get(key)[1] is None


def test_sessions_acquire_and_release(client: consul.Consul, name: str) -> None:
    key = f"{name}/leader"
    first, second = client.session.create(name="a", ttl=30), client.session.create(name="b", lock_delay=0)
    try:
        assert client.kv.put(key, "first", acquire=first)
        assert client.kv.put(key, "second", acquire=second) is False
        _, entry = client.kv.get(key)
        assert entry["Session"] == first and entry["LockIndex"] == 1 and entry["Value"] == b"first"
        assert client.kv.put(key, "x", release=second) is False
        assert client.kv.put(key, "released", release=first)
        _, entry = client.kv.get(key)
        assert "Session" not in entry and entry["LockIndex"] == 1
        assert client.kv.put(key, "second", acquire=second)
        assert client.kv.get(key)[1]["LockIndex"] == 2
        _, info = client.session.info(first)
        assert info["Name"] == "a" and info["TTL"] == "30s" and info["Behavior"] == "release"
        assert {s["ID"] for s in client.session.list()[1]} >= {first, second}
        assert client.session.renew(first)["ID"] == first
        client.session.destroy(second)
        _, entry = client.kv.get(key)
        assert "Session" not in entry  # released on destroy (Behavior=release)
        assert client.session.info(second)[1] is None
    finally:
        client.session.destroy(first)
        client.kv.delete(f"{name}/", recurse=True)


def test_session_with_delete_behavior_removes_its_keys(client: consul.Consul, name: str) -> None:
    session = client.session.create(behavior="delete", lock_delay=0)
    assert client.kv.put(f"{name}/ephemeral", "x", acquire=session)
    client.session.destroy(session)
    assert client.kv.get(f"{name}/ephemeral")[1] is None


def test_txn(client: consul.Consul, api: Callable[..., requests.Response], name: str) -> None:
    def txn(ops: list[dict[str, Any]]) -> Any:
        if not TOKEN:
            return client.txn.put(ops)
        # py-consul 1.8 sends no ACL token with /v1/txn (nor /v1/agent/self): go direct.
        response = api("PUT", "/v1/txn", json=ops)
        if response.status_code != 200:
            raise consul.ConsulException(f"{response.status_code} {response.text}")
        return response.json()

    def b64(text: str) -> str:
        import base64

        return base64.b64encode(text.encode()).decode()

    result = txn(
        [
            {"KV": {"Verb": "set", "Key": f"{name}/a", "Value": b64("1")}},
            {"KV": {"Verb": "set", "Key": f"{name}/b", "Value": b64("2"), "Flags": 7}},
            {"KV": {"Verb": "get", "Key": f"{name}/a"}},
        ]
    )
    assert result["Errors"] is None
    assert [r["KV"]["Key"] for r in result["Results"]] == [f"{name}/a", f"{name}/b", f"{name}/a"]
    assert result["Results"][0]["KV"]["Value"] is None and result["Results"][2]["KV"]["Value"] == b64("1")
    index = result["Results"][0]["KV"]["ModifyIndex"]
    ok = txn(
        [
            {"KV": {"Verb": "check-index", "Key": f"{name}/a", "Index": index}},
            {"KV": {"Verb": "delete", "Key": f"{name}/b"}},
        ]
    )
    assert ok["Errors"] is None
    with pytest.raises(consul.ConsulException) as failure:
        txn(
            [
                {"KV": {"Verb": "set", "Key": f"{name}/c", "Value": b64("3")}},
                {"KV": {"Verb": "cas", "Key": f"{name}/a", "Value": b64("x"), "Index": index + 1000}},
            ]
        )
    assert "409" in str(failure.value)
    body = json.loads(str(failure.value).split(" ", 1)[1])
    assert (
        body["Results"] is None and body["Errors"][0]["OpIndex"] == 1 and "index is stale" in body["Errors"][0]["What"]
    )
    assert client.kv.get(f"{name}/c")[1] is None  # rolled back
    client.kv.delete(f"{name}/", recurse=True)


def test_catalog_and_health_endpoints(client: consul.Consul, api: Callable[..., requests.Response], name: str) -> None:
    client.agent.service.register(
        name, service_id=f"{name}-a", tags=["blue", "v1"], port=1, check=consul.Check.ttl("30s")
    )
    client.agent.service.register(name, service_id=f"{name}-b", tags=["green", "v1"], port=2)
    try:
        node = api("GET", "/v1/agent/self").json()["Config"]["NodeName"]
        _, services = client.catalog.services()
        assert sorted(services[name]) == ["blue", "green", "v1"] and "consul" in services
        _, instances = client.catalog.service(name, tag="blue")
        assert [i["ServiceID"] for i in instances] == [f"{name}-a"]
        _, both = client.health.service(name, tag=["v1"])
        assert [n["Service"]["ID"] for n in both] == [f"{name}-a", f"{name}-b"]
        _, tagged = client.health.service(name, tag=["v1", "green"])
        assert [n["Service"]["ID"] for n in tagged] == [f"{name}-b"]
        _, passing = client.health.service(name, passing=True)
        assert [n["Service"]["ID"] for n in passing] == [f"{name}-b"]  # a's TTL check is critical
        _, critical = client.health.state("critical")
        assert f"service:{name}-a" in {c["CheckID"] for c in critical}
        _, checks = client.health.checks(name)
        assert [c["CheckID"] for c in checks] == [f"service:{name}-a"]
        _, nodes = client.catalog.nodes()
        assert node in {n["Node"] for n in nodes}
        _, info = client.catalog.node(node)
        assert {f"{name}-a", f"{name}-b"} <= set(info["Services"])
    finally:
        client.agent.service.deregister(f"{name}-a")
        client.agent.service.deregister(f"{name}-b")


def test_check_register_deregister_and_maintenance(client: consul.Consul, name: str) -> None:
    client.agent.service.register(name, service_id=name, check=consul.Check.ttl("30s"))
    try:
        client.agent.check.ttl_pass(f"service:{name}")
        assert client.agent.check.register("extra", consul.Check.ttl("30s"), check_id=f"{name}-extra", service_id=name)
        assert client.agent.checks()[f"{name}-extra"]["ServiceID"] == name
        assert client.health.service(name, passing=True)[1] == []  # the new check starts critical
        client.agent.check.ttl_pass(f"{name}-extra")
        assert len(client.health.service(name, passing=True)[1]) == 1
        assert client.agent.service.maintenance(name, True, "draining")
        checks = {c["CheckID"]: c for c in client.health.checks(name)[1]}
        assert checks[f"_service_maintenance:{name}"]["Status"] == "critical"
        assert checks[f"_service_maintenance:{name}"]["Notes"] == "draining"
        assert client.health.service(name, passing=True)[1] == []
        assert client.agent.service.maintenance(name, False)
        assert client.agent.check.deregister(f"{name}-extra")
        assert set(client.agent.checks()) >= {f"service:{name}"} and f"{name}-extra" not in client.agent.checks()
        assert len(client.health.service(name, passing=True)[1]) == 1
    finally:
        client.agent.service.deregister(name)


def test_query_headers(api: Callable[..., requests.Response]) -> None:
    response = api("GET", "/v1/catalog/services")
    assert int(response.headers["X-Consul-Index"]) >= 1
    assert response.headers["X-Consul-KnownLeader"] == "true"
    assert response.headers["X-Consul-LastContact"].isdigit()
    assert response.headers["Content-Type"].startswith("application/json")


# -- shapes against the upstream docs samples -----------------------------------------------------


def test_response_shapes_match_upstream_samples(
    client: consul.Consul, api: Callable[..., requests.Response], name: str
) -> None:
    payload = sample("agent_service_register_payload.json")
    payload.update(ID=f"{name}-1", Name=name)
    payload["Check"] = {"TTL": "30s", "DeregisterCriticalServiceAfter": "90m", "Status": "passing"}
    assert api("PUT", "/v1/agent/service/register", json=payload).status_code == 200
    session_payload = sample("session_create_payload.json")
    node = api("GET", "/v1/agent/self").json()["Config"]["NodeName"]
    session_payload.update(Node=node, Checks=["serfHealth"])
    created = api("PUT", "/v1/session/create", json=session_payload)
    session_id = created.json()["ID"]
    try:
        assert api("PUT", f"/v1/kv/{name}/web/foo?acquire={session_id}", data="test").json() is True
        api("PUT", f"/v1/kv/{name}/web/bar", data="x")
        api("PUT", f"/v1/kv/{name}/web/subdir/baz", data="x")
        service_maps = ("$", "$.*.TaggedAddresses", "$.*.Meta")
        cases: list[tuple[str, Any, dict[str, tuple[str, ...]]]] = [
            ("catalog_services.json", api("GET", "/v1/catalog/services").json(), {"maps": ("$",)}),
            (
                "catalog_service_my-service.json",
                api("GET", f"/v1/catalog/service/{name}").json(),
                {
                    "maps": ("$[].TaggedAddresses", "$[].NodeMeta", "$[].ServiceMeta", "$[].ServiceTaggedAddresses"),
                    "casefold": ("$[].ServiceTaggedAddresses.*.*",),
                    "ignore": ENTERPRISE + CONNECT,
                },
            ),
            (
                "catalog_node_my-node.json",
                api("GET", f"/v1/catalog/node/{node}").json(),
                {
                    "maps": (
                        "$.Node.TaggedAddresses",
                        "$.Node.Meta",
                        "$.Services",
                        "$.Services.*.Meta",
                        "$.Services.*.TaggedAddresses",
                    ),
                    "casefold": ("$.Services.*.TaggedAddresses.*.*",),
                    "ignore": ENTERPRISE,
                },
            ),
            (
                "health_service_my-service.json",
                api("GET", f"/v1/health/service/{name}").json(),
                {
                    "maps": (
                        "$[].Node.TaggedAddresses",
                        "$[].Node.Meta",
                        "$[].Service.TaggedAddresses",
                        "$[].Service.Meta",
                    ),
                    "casefold": ("$[].Service.TaggedAddresses.*.*",),
                    "ignore": ENTERPRISE,
                },
            ),
            ("health_state_passing.json", api("GET", "/v1/health/state/passing").json(), {"ignore": ENTERPRISE}),
            ("kv_get_my-key.json", api("GET", f"/v1/kv/{name}/web/foo").json(), {}),
            ("kv_keys_web_separator.json", api("GET", f"/v1/kv/{name}/web/?keys&separator=/").json(), {}),
            ("kv_put_response.json", api("PUT", f"/v1/kv/{name}/other", data="x").json(), {}),
            (
                "agent_services.json",
                api("GET", "/v1/agent/services").json(),
                {"maps": service_maps, "casefold": ("$.*.TaggedAddresses.*.*",)},
            ),
            ("session_create_response.json", created.json(), {}),
            # Consul >= 1.7 lists NodeChecks/ServiceChecks; the deprecated Checks may be absent.
            ("session_info.json", api("GET", f"/v1/session/info/{session_id}").json(), {"ignore": ("$[].Checks",)}),
            ("status_leader.json", api("GET", "/v1/status/leader").json(), {}),
            ("status_peers.json", api("GET", "/v1/status/peers").json(), {}),
        ]
        for sample_name, actual, options in cases:
            assert shape_diff(sample(sample_name), actual, **options) == [], sample_name
        registered = api("GET", "/v1/agent/services").json()[f"{name}-1"]
        assert registered["Weights"] == {"Passing": 10, "Warning": 1}
        assert registered["Meta"] == {"redis_version": "4.0"} and registered["Tags"] == ["primary", "v1"]
    finally:
        api("PUT", f"/v1/session/destroy/{session_id}")
        api("PUT", f"/v1/agent/service/deregister/{name}-1")
        api("DELETE", f"/v1/kv/{name}/?recurse")


# -- errors ---------------------------------------------------------------------------------------


def test_errors(api: Callable[..., requests.Response], client: consul.Consul, name: str) -> None:
    assert api("GET", "/v1/no/such/endpoint").status_code == 404
    assert api("POST", f"/v1/kv/{name}").status_code == 405
    bad = api("PUT", "/v1/agent/service/register", data="{not json")
    assert bad.status_code == 400 and bad.text.startswith("Request decode failed")
    assert api("PUT", "/v1/agent/service/register", json={"Port": 1}).status_code == 400  # no Name
    assert api("PUT", "/v1/txn", data="[{").status_code == 400
    assert api("PUT", "/v1/session/create", data="{nope").status_code == 400
    assert api("GET", f"/v1/kv/{name}/missing").status_code == 404
    assert api("GET", "/v1/catalog/services?index=abc").status_code == 400
    assert api("PUT", f"/v1/agent/service/deregister/{name}").status_code == 404
    assert api("PUT", f"/v1/agent/check/pass/{name}").status_code == 404
    client.kv.put(f"{name}/k", "1")
    assert client.kv.put(f"{name}/k", "2", cas=0) is False
    client.kv.delete(f"{name}/k")


def test_acl_token_required(
    consul_standin: str,
    standin_server: ConsulStandin | None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    if standin_server is None:
        if not TOKEN:
            pytest.skip("real Consul without CONSUL_HTTP_TOKEN: ACLs presumably off")
        url, secret = consul_standin, TOKEN
        guarded: ConsulStandin | None = None
    else:
        guarded = ConsulStandin(acl_token=secret).start()
        url = guarded.url
    try:
        caplog.set_level(logging.DEBUG, logger="wharf.devcluster.consul")
        no_token = requests.get(f"{url}/v1/kv/x", timeout=10)
        assert no_token.status_code == 403 and no_token.text.startswith("Permission denied")
        wrong = requests.get(f"{url}/v1/agent/services", headers={"X-Consul-Token": "wrong"}, timeout=10)
        assert wrong.status_code == 403 and (
            wrong.text == "ACL not found" or wrong.text.startswith("Permission denied")
        )
        assert (
            requests.get(f"{url}/v1/agent/services", headers={"X-Consul-Token": secret}, timeout=10).status_code == 200
        )
        assert requests.get(f"{url}/v1/agent/services", params={"token": secret}, timeout=10).status_code == 200
        parts = urlsplit(url)
        monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)  # py-consul prefers it to token=
        with pytest.raises(consul.ACLPermissionDenied):
            consul.Consul(host=parts.hostname, port=parts.port, token="wrong").kv.put("x", "y")
        assert secret not in caplog.text
    finally:
        if guarded is not None:
            guarded.stop()


# -- stand-in only: restart simulation ------------------------------------------------------------


def test_reset_drops_state_and_keeps_the_index_rising(
    client: consul.Consul, standin_server: ConsulStandin | None, name: str
) -> None:
    if standin_server is None:
        pytest.skip("reset() is a stand-in feature")
    client.agent.service.register(name, check=consul.Check.ttl("30s"))
    client.kv.put(f"{name}/k", "v")
    index, _ = client.health.service(name)
    timer = threading.Timer(0.1, standin_server.reset)
    timer.start()
    new_index, nodes = client.health.service(name, index=index, wait="10s")
    timer.join()
    assert nodes == [] and int(new_index) > int(index)
    assert client.kv.get(f"{name}/k")[1] is None
    assert name not in client.agent.services()
    assert "consul" in client.catalog.services()[1]


def test_python_m_runs_until_sigterm_and_sighup_drops_state(tmp_path: Path) -> None:
    if REAL_ADDR:
        pytest.skip("runs the stand-in itself")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devcluster.consul", "--port", "0", "--node", "n1", "--log-level", "WARNING"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.put(f"{url}/v1/kv/a", data="1", timeout=10).json() is True
        index = int(requests.get(f"{url}/v1/kv/a", timeout=10).headers["X-Consul-Index"])
        proc.send_signal(signal.SIGHUP)
        response = requests.get(f"{url}/v1/kv/a", params={"index": index, "wait": "10s"}, timeout=30)
        assert response.status_code == 404 and int(response.headers["X-Consul-Index"]) > index
        assert requests.get(f"{url}/v1/catalog/node/n1", timeout=10).json()["Node"]["Node"] == "n1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
