"""`wharf dev up --nodes N`: each node's services (names, ports, needs, command lines, environment) and
the options' validation, without starting anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devcluster.cluster import SERVICE_TYPES, Cluster, claim_service_ports, service_types
from devcluster.consul import Consul
from devcluster.nodes import (
    NodeConsul,
    NodeRegistrator,
    check_node,
    node_address,
    node_consul_type,
    node_dirs,
    node_options,
    node_registrator_type,
    node_rows,
    node_service_names,
    node_types,
    stop_batches,
)
from devcluster.standins import MesosStandIn
from wharf.errors import BadInput

pytestmark = pytest.mark.unit

THREE = {"consul_acl": False, "nodes": 3, "registrator": True}
PORTS = {"--consul-port": 8500, "--consul-serf-lan-port": 8301, "--marathon-port": 8080,
         **{f"--node{k}-consul-port": 9000 + k for k in (1, 2, 3)},
         **{f"--node{k}-consul-serf-lan-port": 9100 + k for k in (1, 2, 3)},
         **{f"--node{k}-registrator-metrics-port": 9200 + k for k in (1, 2, 3)}}


def services(state_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    return {s.name: s for s in Cluster(state_dir).services(PORTS, options)}


def after(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_without_nodes_the_cluster_is_the_one_of_old() -> None:
    assert service_types({"consul_acl": True}) == service_types(None) == SERVICE_TYPES
    assert node_options(None, False) == {}
    mesos = MesosStandIn(Path("/x/mesos"), {"--zk-port": 1, "--docker-port": 2}, {"consul_acl": False})
    assert "--agents" not in mesos.options()


def test_three_nodes_add_an_agent_each_then_a_registrator_each_in_start_order() -> None:
    added = [t.name for t in service_types(THREE)[len(SERVICE_TYPES):]]
    assert added == ["node1-consul", "node2-consul", "node3-consul",
                     "node1-registrator", "node2-registrator", "node3-registrator"]
    assert [t.name for t in node_types({**THREE, "registrator": False})] == added[:3]
    assert node_service_names(THREE, 2) == ["node2-consul", "node2-registrator"]
    assert node_consul_type(2) is node_consul_type(2) and issubclass(node_consul_type(2), NodeConsul)
    assert node_consul_type(2).__name__ == "Node2Consul" and node_registrator_type(3).__name__ == "Node3Registrator"
    mesos = MesosStandIn(Path("/x/mesos"), {"--zk-port": 1, "--docker-port": 2}, THREE)
    assert after(mesos.options(), "--agents") == "3"


def test_node_ports_needs_and_addresses() -> None:
    assert [node_address(k) for k in (1, 2, 3)] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    agent = node_consul_type(2)
    assert agent.port_flags == ("--node2-consul-port", "--node2-consul-serf-lan-port")
    assert agent.port_host == "127.0.0.3" and agent.needs == ("consul",)
    registrator = node_registrator_type(2)
    assert registrator.port_flags == ("--node2-registrator-metrics-port",) and registrator.port_host == "127.0.0.1"
    assert registrator.needs == ("node2-consul", "marathon", "docker")


def test_every_port_is_claimed_free_on_its_services_own_address() -> None:
    chosen = claim_service_ports(service_types(THREE), {"--consul-port": None})
    wanted = {f for t in service_types(THREE) for f in t.port_flags}
    assert set(chosen) == wanted and all(0 < p < 65536 for p in chosen.values())
    on_loopback_one = [p for f, p in chosen.items() if not f.startswith(("--node1-consul", "--node2-consul",
                                                                          "--node3-consul"))]
    assert len(set(on_loopback_one)) == len(on_loopback_one)


def test_a_nodes_agent_is_a_client_on_its_address_joined_to_the_server(tmp_path: Path) -> None:
    agent = services(tmp_path, THREE)["node2-consul"]
    argv = agent.argv()
    assert "-server" not in argv and "-dev" not in argv and argv[1] == "agent"
    assert after(argv, "-node") == "node2"
    assert after(argv, "-bind") == after(argv, "-client") == after(argv, "-advertise") == "127.0.0.3"
    assert after(argv, "-http-port") == "9002" and after(argv, "-serf-lan-port") == "9102"
    assert after(argv, "-dns-port") == after(argv, "-grpc-port") == "-1"
    assert after(argv, "-retry-join") == "127.0.0.1:8301"
    assert after(argv, "-data-dir") == str(tmp_path / "node2-consul" / "data")
    assert "-config-file" not in argv
    assert after(argv, "-node-id") == after(services(tmp_path, THREE)["node2-consul"].argv(), "-node-id")
    assert after(argv, "-node-id") != after(services(tmp_path, THREE)["node1-consul"].argv(), "-node-id")
    assert agent.endpoints() == {"node": "node2", "address": "127.0.0.3", "http": "http://127.0.0.3:9002"}
    assert agent.env() == {} and agent.client_env() == {"CONSUL_HTTP_ADDR": "127.0.0.3:9002"}


def test_with_acls_the_agent_gets_acls_on_default_deny_and_the_agent_token_from_a_file(tmp_path: Path) -> None:
    options = {**THREE, "consul_acl": True}
    Consul(tmp_path / "consul", PORTS, options).prepare()  # writes the server's tokens, starts nothing
    found = services(tmp_path, options)
    agent = found["node2-consul"]
    agent.prepare()
    token = found["consul"].token
    acl = json.loads((tmp_path / "node2-consul" / "acl.json").read_text())["acl"]
    assert acl == {"enabled": True, "default_policy": "deny", "down_policy": "extend-cache",
                   "tokens": {"agent": token}}
    assert (tmp_path / "node2-consul" / "acl.json").stat().st_mode & 0o777 == 0o600
    argv = agent.argv()
    assert after(argv, "-config-file") == str(tmp_path / "node2-consul" / "acl.json")
    assert token and token not in " ".join(argv)
    assert agent.client_env() == {"CONSUL_HTTP_ADDR": "127.0.0.3:9002", "CONSUL_HTTP_TOKEN": token}
    registrator = found["node2-registrator"]
    assert registrator.child_env()["CONSUL_HTTP_TOKEN"] == token and token not in " ".join(registrator.argv())


def test_a_nodes_registrator_handles_its_node_on_its_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "the-callers")
    registrator = services(tmp_path, THREE)["node2-registrator"]
    argv = registrator.argv()
    assert argv[:5] == [sys.executable, "-m", "wharf", "registrator", "run"]
    assert after(argv, "--node-address") == "127.0.0.3" and after(argv, "--hostname") == "node2"
    assert after(argv, "--owner") == "wharf-registrator@node2" and after(argv, "--resync") == "30"
    assert after(argv, "--metrics-port") == "9202"
    env = registrator.child_env()
    assert env["CONSUL_HTTP_ADDR"] == "127.0.0.3:9002" and "CONSUL_HTTP_TOKEN" not in env
    assert env["MARATHON_URL"] == "http://127.0.0.1:8080"
    assert env["DOCKER_HOST"] == f"unix://{tmp_path}/docker/docker.sock"
    assert registrator.endpoints()["consul"] == "127.0.0.3:9002"


@pytest.mark.parametrize(("nodes", "registrator", "flag"), [
    (None, True, "--registrator"), (0, False, "--nodes"), (-1, True, "--nodes"), (65, False, "--nodes"),
])
def test_bad_node_options_name_their_flag(nodes: int | None, registrator: bool, flag: str) -> None:
    with pytest.raises(BadInput, match=f"^{flag}: "):
        node_options(nodes, registrator)


def test_good_node_options_are_kept() -> None:
    assert node_options(1, False) == {"nodes": 1, "registrator": False}
    assert node_options(5, True) == {"nodes": 5, "registrator": True}


@pytest.mark.parametrize("index", [0, 4, -2])
def test_a_node_the_cluster_does_not_have_is_bad_input(index: int) -> None:
    with pytest.raises(BadInput, match=rf"^NODE: {index}: no such node \(the dev cluster has nodes 1-3\)$"):
        check_node(THREE, index, "NODE")
    assert check_node(THREE, 3, "NODE") == 3
    with pytest.raises(BadInput, match="no nodes"):
        check_node({"consul_acl": False}, 1, "--node")


def test_node_rows_summarise_each_nodes_services() -> None:
    row = {"running": True, "healthy": True, "pid": 1}
    rows = {"node1-consul": {**row, "http": "http://127.0.0.2:9001"}, "node1-registrator": row,
            "node2-consul": {**row, "http": "http://127.0.0.3:9002"},
            "node2-registrator": {**row, "running": False, "healthy": False}}
    assert node_rows({"nodes": 2, "registrator": True}, rows) == [
        {"node": "node1", "address": "127.0.0.2", "consul": "127.0.0.2:9001", "alive": True, "healthy": True},
        {"node": "node2", "address": "127.0.0.3", "consul": "127.0.0.3:9002", "alive": False, "healthy": False}]


def test_registrators_then_agents_stop_together_and_the_rest_one_by_one(tmp_path: Path) -> None:
    order = list(reversed(list(services(tmp_path, THREE).values())))
    batches = [[s.name for s in batch] for batch in stop_batches(order)]
    assert batches[:3] == [["node3-registrator", "node2-registrator", "node1-registrator"],
                         ["node3-consul", "node2-consul", "node1-consul"], ["prometheus"]]
    assert all(len(w) == 1 for w in batches[2:])
    assert all(isinstance(s, NodeRegistrator) for s in stop_batches(order)[0])


def test_purge_finds_the_node_directories(tmp_path: Path) -> None:
    for name in ("node1-consul", "node12-registrator", "nodes", "node-consul", "consul"):
        (tmp_path / name).mkdir()
    (tmp_path / "node2-consul").write_text("a file")
    assert sorted(p.name for p in node_dirs(tmp_path)) == ["node1-consul", "node12-registrator"]


@pytest.mark.parametrize(("args", "line"), [
    (["up", "--registrator"], "Error: --registrator: only with --nodes N (it runs one registrator per node)"),
    (["up", "--nodes", "0"], "Error: --nodes: 0 is not between 1 and 64"),
])
def test_dev_up_refuses_bad_node_options_with_one_line_and_starts_nothing(tmp_path: Path, args: list[str],
                                                                          line: str) -> None:
    env = {"WHARF_STATE_DIR": str(tmp_path / "s"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "wharf", "dev", *args], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == line
    assert not (tmp_path / "s").exists()
