"""`wharf dev up --nodes N`: a Consul client agent (and a registrator) per Mesos agent, each node on its
own loopback address, joined to the dev server; `dev env --node K`; `kill-node` and `restart-node`."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wharf
from tests.integration.test_devcluster import dev_env, up
from tests.polling import wait_for

pytestmark = pytest.mark.integration

ADDRESSES = {"node1": "127.0.0.2", "node2": "127.0.0.3", "node3": "127.0.0.4"}


def dev(state_dir: Path, *args: str) -> Any:
    return wharf("dev", *args, env={"WHARF_STATE_DIR": str(state_dir)})


def status(state_dir: Path) -> dict[str, Any]:
    return dict(json.loads(dev(state_dir, "status", "--json").stdout))


def get(addr: str, path: str) -> Any:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as response:
        return json.load(response)


def serf_health(server: str, node: str) -> str | None:
    """The server's view of `node`: its serfHealth check's status (None while it has none)."""
    return next((c["Status"] for c in get(server, f"/v1/health/node/{node}") if c["CheckID"] == "serfHealth"), None)


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("three")
    up(state_dir, "--nodes", "3", "--registrator")
    yield state_dir
    dev(state_dir, "down", "--purge")


def test_each_nodes_agent_is_in_the_catalog_as_its_own_node_at_its_address(three: Path) -> None:
    shown = status(three)
    assert shown["running"] is True
    assert {n["node"]: n["address"] for n in shown["nodes"]} == ADDRESSES and all(n["alive"] for n in shown["nodes"])
    server = dev_env(three)["CONSUL_HTTP_ADDR"]
    catalog = {n["Node"]: n["Address"] for n in get(server, "/v1/catalog/nodes")}
    assert catalog == {**ADDRESSES, "wharf-dev": "127.0.0.1"}
    for node in shown["nodes"]:
        services = shown["services"]
        agent, registrator = services[f"{node['node']}-consul"], services[f"{node['node']}-registrator"]
        assert agent["healthy"] and registrator["healthy"] and agent["pid"] and registrator["pid"]
        assert agent["http"] == f"http://{node['consul']}" and node["consul"].startswith(node["address"] + ":")
        me = get(node["consul"], "/v1/agent/self")
        assert me["Config"]["NodeName"] == node["node"] and me["Config"]["Server"] is False
        assert me["Member"]["Addr"] == node["address"]
    mesos = get(shown["services"]["mesos"]["http"].removeprefix("http://"), "/master/state")
    assert sorted(s["hostname"] for s in mesos["slaves"]) == sorted(ADDRESSES.values())
    table = dev(three, "status").stdout.splitlines()
    assert any(line.split()[:3] == ["node2", "127.0.0.3", "consul"] for line in table), table


def test_dev_env_for_a_node_points_consul_at_that_nodes_agent(three: Path) -> None:
    everywhere = dev_env(three)
    done = dev(three, "env", "--node", "2")
    assert done.returncode == 0, done.stderr
    node2 = dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines())
    assert node2["CONSUL_HTTP_ADDR"].startswith("127.0.0.3:")
    assert get(node2["CONSUL_HTTP_ADDR"], "/v1/agent/self")["Config"]["NodeName"] == "node2"
    assert {k: v for k, v in node2.items() if k != "CONSUL_HTTP_ADDR"} == {
        k: v for k, v in everywhere.items() if k != "CONSUL_HTTP_ADDR"}
    missing = dev(three, "env", "--node", "4")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "Error: --node: 4: no such node (the dev cluster has nodes 1-3)"


@pytest.mark.parametrize("command", ["kill-node", "restart-node"])
def test_an_unknown_node_is_bad_input(three: Path, command: str) -> None:
    done = dev(three, command, "7")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "Error: NODE: 7: no such node (the dev cluster has nodes 1-3)"]


def test_a_killed_node_fails_in_consul_and_a_restarted_one_rejoins_on_the_same_ports(three: Path) -> None:
    server = dev_env(three)["CONSUL_HTTP_ADDR"]
    before = status(three)
    assert serf_health(server, "node2") == "passing"
    killed = time.monotonic()
    done = dev(three, "kill-node", "2")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: serf_health(server, "node2") == "critical", 30, "node2's serfHealth to turn critical")
    detected = time.monotonic() - killed
    print(f"\nnode2 killed: serfHealth critical on the server after {detected:.1f}s")
    after = dev(three, "status", "--json")
    assert after.returncode == 1
    shown = json.loads(after.stdout)
    assert [n["alive"] for n in shown["nodes"]] == [True, False, True]
    for name in ("node2-consul", "node2-registrator"):
        assert shown["services"][name]["running"] is False and shown["services"][name]["error"] == "not running"
    assert serf_health(server, "node1") == serf_health(server, "node3") == "passing"
    with pytest.raises(urllib.error.URLError):
        get(before["nodes"][1]["consul"], "/v1/agent/self")

    done = dev(three, "restart-node", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {**before["nodes"][1], "alive": True, "healthy": True}
    assert serf_health(server, "node2") == "passing"
    again = status(three)
    assert again["running"] is True and again["nodes"] == before["nodes"]
    for name in ("node2-consul", "node2-registrator"):
        assert again["services"][name]["pid"] != before["services"][name]["pid"]
        assert again["services"][name]["healthy"]


def test_up_with_five_nodes_and_their_registrators(tmp_path: Path) -> None:
    started = time.monotonic()
    try:
        shown = up(tmp_path, "--nodes", "5", "--registrator")
        took = time.monotonic() - started
        print(f"\n`wharf dev up --nodes 5 --registrator` took {took:.1f}s")
        assert shown["running"] is True and [n["address"] for n in shown["nodes"]] == [
            f"127.0.0.{k}" for k in range(2, 7)]
        assert took < 30
    finally:
        stopping = time.monotonic()
        done = dev(tmp_path, "down", "--purge")
        print(f"`wharf dev down --purge` took {time.monotonic() - stopping:.1f}s")
    assert done.returncode == 0 and "node5-registrator" in done.stdout and "node5-consul" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
