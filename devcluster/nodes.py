"""The dev cluster's nodes (`wharf dev up --nodes N`): node K is the Mesos stand-in's agent K, on
127.0.0.(K+1), with a Consul client agent of its own and, with `--registrator`, a registrator.

Each node's services are classes made for that node (`node_types`), so the cluster starts, checks,
restarts and stops them like any other service. A node's agent binds its node's address and claims
its ports there (`port_host`); the registrator's metrics endpoint is on 127.0.0.1, as every wharf
daemon's is. Killing a node (`wharf dev kill-node`) SIGKILLs both, as a host dropping off the network:
its containers keep running and the server notices through Consul's own failure detection.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import shutil
import sys
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

from devcluster.consul import Consul, consul_binary
from devcluster.docker_engine import DockerEngine
from devcluster.service import DevService
from devcluster.standins import MarathonStandIn
from wharf.atomic import write_atomic
from wharf.errors import BadInput

#: 127.0.0.2 .. 127.0.0.(MAX_NODES+1); the Mesos stand-in claims a port range per agent
MAX_NODES = 64
#: the directories node services keep under the state dir (removed by `down --purge`)
NODE_DIR = re.compile(r"node[0-9]+-(consul|registrator)")
#: how often a registrator reconciles everything, besides on events
RESYNC_SECONDS = 30


def node_name(index: int) -> str:
    """Node K's name: in Consul's catalog, in service IDs and in the registrator's owner marker."""
    return f"node{index}"


def node_address(index: int) -> str:
    """Node K's loopback address, that of the Mesos stand-in's agent K (its tasks' `HOST`)."""
    return str(ipaddress.IPv4Address(0x7F000001 + index))


def node_options(nodes: int | None, registrator: bool) -> dict[str, Any]:
    """What `--nodes N` and `--registrator` add to the cluster's options; nothing without `--nodes`."""
    if nodes is None:
        if registrator:
            raise BadInput("--registrator: only with --nodes N (it runs one registrator per node)")
        return {}
    if not 1 <= nodes <= MAX_NODES:
        raise BadInput(f"--nodes: {nodes} is not between 1 and {MAX_NODES}")
    return {"nodes": nodes, "registrator": registrator}


def node_count(options: Mapping[str, Any] | None) -> int:
    """How many nodes a cluster with these options has (0: the single-agent cluster of old)."""
    return int((options or {}).get("nodes") or 0)


def check_node(options: Mapping[str, Any] | None, index: int, what: str) -> int:
    """`index` if the cluster has that node, else bad input naming `what` (a flag or argument)."""
    count = node_count(options)
    if not 1 <= index <= count:
        has = f"nodes 1-{count}" if count else "no nodes (start it with `wharf dev up --nodes N`)"
        raise BadInput(f"{what}: {index}: no such node (the dev cluster has {has})")
    return index


def _get(url: str, token: str | None) -> Any:
    request = urllib.request.Request(url, headers={"X-Consul-Token": token} if token else {})
    with urllib.request.urlopen(request, timeout=1.0) as response:
        return json.load(response)


class NodeService(DevService):
    """A service of one node; the per-node classes set `index`."""

    index: ClassVar[int]
    #: the address its ports are claimed on
    port_host: ClassVar[str] = "127.0.0.1"

    @property
    def node(self) -> str:
        """The node's name (`node<K>`)."""
        return node_name(self.index)

    @property
    def address(self) -> str:
        """The node's loopback address."""
        return node_address(self.index)

    @property
    def server(self) -> Consul:
        """The dev cluster's Consul server."""
        return Consul(self.dir.parent / Consul.name, self.ports, self.choices)

    def env(self) -> dict[str, str]:
        return {}


class NodeConsul(NodeService):
    """`consul agent` as a client (no `-server`), bound to its node's address, joined to the dev server.

    Its data dir goes whenever it stops (a node restarted is a clean agent), its node ID stays (derived
    from the node's name), so a node restarted before the server noticed it gone rejoins as itself.
    In ACL mode it runs with ACLs on, default deny, and the server's agent token, from a config file.
    """

    binaries = (consul_binary(),)
    needs = (Consul.name,)

    @property
    def http_port(self) -> int:
        """The agent's HTTP port, on the node's address."""
        return self.ports[self.port_flags[0]]

    @property
    def addr(self) -> str:
        """The agent's HTTP API as `host:port` (as CONSUL_HTTP_ADDR takes it)."""
        return f"{self.address}:{self.http_port}"

    @property
    def data_dir(self) -> Path:
        """The agent's state, gone whenever it stops."""
        return self.dir / "data"

    @property
    def _acl_file(self) -> Path:
        return self.dir / "acl.json"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        token = self.server.token
        if token:
            acl = {"acl": {"enabled": True, "default_policy": "deny", "down_policy": "extend-cache",
                           "tokens": {"agent": token}}}
            write_atomic(self._acl_file, json.dumps(acl), 0o600)

    def argv(self) -> list[str]:
        a, p = self.address, self.ports
        argv = [
            self.binaries[0], "agent", "-node", self.node,
            "-node-id", str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.node}.wharf-dev")),
            "-bind", a, "-client", a, "-advertise", a,
            "-http-port", str(self.http_port), "-serf-lan-port", str(p[self.port_flags[1]]),
            "-dns-port", "-1", "-grpc-port", "-1",
            "-retry-join", f"127.0.0.1:{p['--consul-serf-lan-port']}", "-retry-interval", "1s",
            "-data-dir", str(self.data_dir), "-log-level", "info",
        ]
        if self.server.acl:
            argv += ["-config-file", str(self._acl_file)]
        return argv

    def clean_up(self) -> None:
        super().clean_up()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def probe(self) -> None:
        """Its own API answers, and the server has it in the catalog with serfHealth passing (joined)."""
        token = self.server.token
        _get(f"http://{self.addr}/v1/agent/self", token)
        checks = _get(f"{self.server.url}/v1/health/node/{self.node}", token)
        if not any(c["CheckID"] == "serfHealth" and c["Status"] == "passing" for c in checks):
            raise RuntimeError(f"{self.node} has not joined the server (serfHealth is not passing)")

    def endpoints(self) -> dict[str, Any]:
        return {"node": self.node, "address": self.address, "http": f"http://{self.addr}"}

    def client_env(self) -> dict[str, str]:
        """`wharf dev env` pointed at this node's agent instead of the server."""
        return {**self.server.env(), "CONSUL_HTTP_ADDR": self.addr}


class NodeRegistrator(NodeService):
    """`wharf registrator run` for one node: on the dev Docker engine, only containers whose task's
    `HOST` is the node's address, registered with the node's agent. Healthy once its metrics answer."""

    @property
    def metrics_port(self) -> int:
        """Its Prometheus metrics port, on 127.0.0.1: answering is its health."""
        return self.ports[self.port_flags[0]]

    @property
    def agent(self) -> NodeConsul:
        """The Consul agent of its node, where it registers."""
        kind = node_consul_type(self.index)
        return kind(self.dir.parent / kind.name, self.ports, self.choices)

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "wharf", "registrator", "run", "--node-address", self.address,
                "--hostname", self.node, "--owner", f"wharf-registrator@{self.node}",
                "--resync", str(RESYNC_SECONDS), "--metrics-port", str(self.metrics_port)]

    def child_env(self) -> dict[str, str]:
        """The caller's environment pointed at the node's agent (its token, in ACL mode, never on a
        command line), the dev Marathon and the dev Docker engine."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "WHARF_", "MARATHON_", "DOCKER_"))}
        marathon = MarathonStandIn(self.dir.parent / MarathonStandIn.name, self.ports, self.choices)
        docker = DockerEngine(self.dir.parent / DockerEngine.name, self.ports, self.choices)
        return {**env, **self.agent.client_env(), **marathon.env(), **docker.env()}

    def probe(self) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=1.0) as response:
            if response.status != 200:
                raise RuntimeError(f"/metrics answered {response.status}")

    def endpoints(self) -> dict[str, Any]:
        return {"node": self.node, "address": self.address, "consul": self.agent.addr,
                "metrics": f"http://127.0.0.1:{self.metrics_port}/metrics"}


@functools.cache
def node_consul_type(index: int) -> type[NodeConsul]:
    """The Consul agent of node `index`, as a service type of its own."""
    name = f"{node_name(index)}-consul"
    attrs = {"name": name, "index": index, "port_host": node_address(index), "__doc__": NodeConsul.__doc__,
             "port_flags": (f"--{name}-port", f"--{name}-serf-lan-port")}
    return cast("type[NodeConsul]", type(f"Node{index}Consul", (NodeConsul,), attrs))


@functools.cache
def node_registrator_type(index: int) -> type[NodeRegistrator]:
    """The registrator of node `index`, as a service type of its own."""
    name = f"{node_name(index)}-registrator"
    attrs = {"name": name, "index": index, "port_flags": (f"--{name}-metrics-port",),
             "__doc__": NodeRegistrator.__doc__,
             "needs": (node_consul_type(index).name, MarathonStandIn.name, DockerEngine.name)}
    return cast("type[NodeRegistrator]", type(f"Node{index}Registrator", (NodeRegistrator,), attrs))


def node_types(options: Mapping[str, Any] | None) -> tuple[type[DevService], ...]:
    """The service types the nodes add, in start order: every node's agent, then the registrators."""
    count = range(1, node_count(options) + 1)
    agents: list[type[DevService]] = [node_consul_type(k) for k in count]
    if (options or {}).get("registrator"):
        agents += [node_registrator_type(k) for k in count]
    return tuple(agents)


def node_service_names(options: Mapping[str, Any] | None, index: int) -> list[str]:
    """The names of node `index`'s services, in start order."""
    return [t.name for t in node_types(options) if issubclass(t, NodeService) and t.index == index]


def node_rows(options: Mapping[str, Any] | None, services: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line of `wharf dev status` per node, from the services' rows: alive while all its processes run."""
    rows = []
    for k in range(1, node_count(options) + 1):
        mine = [services[name] for name in node_service_names(options, k) if name in services]
        agent = services.get(node_consul_type(k).name, {})
        rows.append({"node": node_name(k), "address": node_address(k),
                     "consul": str(agent.get("http", "")).removeprefix("http://"),
                     "alive": bool(mine) and all(r["running"] for r in mine),
                     "healthy": bool(mine) and all(r["healthy"] for r in mine)})
    return rows


def stop_batches(services: list[DevService]) -> list[list[DevService]]:
    """`services` (in stop order) in batches stopped together: all the registrators, then all the nodes'
    agents (each takes seconds to leave); every other service is a batch of its own."""
    batches: list[list[DevService]] = []
    for service in services:
        kind = next((k for k in (NodeRegistrator, NodeConsul) if isinstance(service, k)), None)
        if kind is not None and batches and isinstance(batches[-1][0], kind):
            batches[-1].append(service)
        else:
            batches.append([service])
    return batches


def node_dirs(state_dir: Path) -> list[Path]:
    """The directories node services left under `state_dir`."""
    return [p for p in state_dir.glob("node*-*") if p.is_dir() and NODE_DIR.fullmatch(p.name)]
