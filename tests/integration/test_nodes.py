"""Three nodes of a dev cluster (`wharf dev up --nodes 3 --registrator`), each a Consul client agent
on its own loopback address with a registrator of its own: an app of 6 instances spread over them is
registered instance by instance on its own node's agent, by that node's registrator only, and routed
by one renderer on the server's catalog. A node killed under load leaves rotation through Consul's
own failure detection; started again, its containers are registered once more, with no duplicates
and no ghosts."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.lab import serving, spread_app
from devcluster.load import Load
from devcluster.process import free_port, spawn, stop
from tests.conftest import wharf
from tests.integration.test_devcluster import dev_env, up
from tests.polling import wait_for
from wharf.consul_http import client
from wharf.contracts.marathon_lb import app_name

pytestmark = pytest.mark.integration

APP, VHOST, SERVICE = "/spread/web", "spread.test", "spread-web"


def dev(state_dir: Path, *args: str) -> Any:
    done = wharf("dev", *args, env={"WHARF_STATE_DIR": str(state_dir)})
    assert done.returncode == 0, done.stderr
    return done


def instances(consul: Any) -> list[dict[str, Any]]:
    """The app's registrations in the server's catalog, each with its node and health."""
    _, entries = consul.health.service(SERVICE)
    return [{"node": e["Node"]["Node"], "node_address": e["Node"]["Address"], "address": e["Service"]["Address"],
             "port": e["Service"]["Port"], "owner": e["Service"]["Meta"].get("wharf_owner"), "id": e["Service"]["ID"],
             "passing": all(c["Status"] == "passing" for c in e["Checks"])} for e in entries]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    state_dir = tmp_path_factory.mktemp("nodes")
    up(state_dir, "--nodes", "3", "--registrator")
    env = dev_env(state_dir)
    renderer = spawn([sys.executable, "-m", "wharf", "render", "run", "--template", "haproxy", "--dest",
                      env["WHARF_HAPROXY_CONFIG"], "--stats-port", str(free_port()), "--wait", "0"],
                     state_dir / "render.log", env={**os.environ, **env})
    try:
        yield state_dir, env
    finally:
        stop(renderer)
        wharf("dev", "down", "--purge", env={"WHARF_STATE_DIR": str(state_dir)})


def test_six_instances_on_three_nodes_each_on_its_own_agent_by_its_own_registrator_and_all_routed(
        nodes: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = nodes
    listed = json.loads(dev(state_dir, "status", "--json").stdout)["nodes"]
    addresses = {n["node"]: n["address"] for n in listed}
    assert addresses == {"node1": "127.0.0.2", "node2": "127.0.0.3", "node3": "127.0.0.4"}
    marathon = env["MARATHON_URL"].split(",")[0]
    assert requests.post(f"{marathon}/v2/apps", json=spread_app(APP, VHOST, 6, 3), timeout=10).status_code == 201
    consul = client(env["CONSUL_HTTP_ADDR"], env.get("CONSUL_HTTP_TOKEN"))
    found = wait_for(lambda: (r := instances(consul)) and len(r) == 6 and all(i["passing"] for i in r) and r, 60,
                     "6 passing instances in the catalog")
    assert Counter(i["node"] for i in found) == {"node1": 2, "node2": 2, "node3": 2}
    for instance in found:
        assert instance["address"] == instance["node_address"] == addresses[instance["node"]], instance
        assert instance["owner"] == f"wharf-registrator@{instance['node']}", instance
    for name, address in addresses.items():  # each agent holds its own node's two, nothing else
        agent = client(f"{address}:{next(n['consul'] for n in listed if n['node'] == name).rsplit(':', 1)[1]}",
                       env.get("CONSUL_HTTP_TOKEN"))
        held = [s for s in agent.agent.services().values() if s["Service"] == SERVICE]
        assert len(held) == 2 and {s["Address"] for s in held} == {address}
    backend = app_name(APP) + "_"
    wait_for(lambda: serving(env["WHARF_HAPROXY_SOCKET"], backend) == 6, 30, "HAProxy routing all 6")


def test_a_node_killed_under_load_leaves_rotation_and_comes_back_without_duplicates(
        nodes: tuple[Path, dict[str, str]]) -> None:
    state_dir, env = nodes
    consul = client(env["CONSUL_HTTP_ADDR"], env.get("CONSUL_HTTP_TOKEN"))
    backend = app_name(APP) + "_"
    wait_for(lambda: serving(env["WHARF_HAPROXY_SOCKET"], backend) == 6, 60, "HAProxy routing all 6")
    port = int(env["WHARF_HAPROXY_HTTP"].rsplit(":", 1)[1])
    with Load(port, VHOST, rate=100, connections=4) as load:
        killed = time.monotonic()
        dev(state_dir, "kill-node", "2")
        wait_for(lambda: serving(env["WHARF_HAPROXY_SOCKET"], backend) == 4, 60, "node2's two out of rotation")
        out_of_rotation = time.monotonic() - killed
        critical = [i for i in instances(consul) if i["node"] == "node2"]
        assert len(critical) == 2 and not any(i["passing"] for i in critical)
        converged = load.total
        wait_for(lambda: load.total >= converged + 200, 30, "200 requests after convergence")  # all must succeed
    assert load.failed() == 0, load.summary()
    print(f"\nnode2 killed: out of HAProxy's rotation after {out_of_rotation:.1f}s; {load.summary()}")

    dev(state_dir, "restart-node", "2")
    found = wait_for(lambda: (r := instances(consul)) and len(r) == 6 and all(i["passing"] for i in r) and r, 60,
                     "node2's instances registered again")
    assert Counter(i["node"] for i in found) == {"node1": 2, "node2": 2, "node3": 2}
    assert len({i["id"] for i in found}) == 6  # no duplicates
    running = requests.get(f"{env['MARATHON_URL'].split(',')[0]}/v2/apps{APP}/tasks", timeout=10).json()["tasks"]
    assert sorted((t["host"], t["ports"][0]) for t in running) == sorted(
        (i["address"], i["port"]) for i in found)  # no ghosts: each is a running task
    wait_for(lambda: serving(env["WHARF_HAPROXY_SOCKET"], backend) == 6, 30, "all 6 in rotation again")
