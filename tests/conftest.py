"""Fixtures that give tests real ZooKeeper, HAProxy, nginx, Docker and Consul, built on the dev
cluster's code, and the Mesos master, Marathon and Chronos under test.

They follow the standard variables (see DESIGN.md, "Where each outside system comes from"): with
`CONSUL_HTTP_ADDR` (and `CONSUL_HTTP_TOKEN`), `MESOS_MASTER`, `MARATHON_URL` or `CHRONOS_URL` set,
the tests run against those real endpoints and start nothing; otherwise the fixtures start a local
Consul agent and the stand-ins. Tests of what only a stand-in on this machine can show are marked
`@stand_in_only(...)`: skipped, saying why, against a real endpoint.
"""

from __future__ import annotations

import collections
import collections.abc
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

from devcluster.chronos.server import ChronosStandin
from devcluster.cluster import running
from devcluster.consul import Consul
from devcluster.docker_engine import DockerEngine
from devcluster.haproxy import HAProxy
from devcluster.marathon.standin import MarathonStandin
from devcluster.mesos import MesosStandin
from devcluster.mesos.zk import NODE_PREFIX, ZkUrl
from devcluster.nginx import Nginx
from devcluster.process import claim_ports
from devcluster.zookeeper import ZooKeeper

# The `marathon` package (a test dependency: it holds the Marathon stand-in to the real client)
# serialises nested models with `collections.Iterable`, removed in Python 3.10; this one alias
# lets the unmodified client run.
collections.Iterable = collections.abc.Iterable  # type: ignore[attr-defined]

TIERS = ("unit", "integration", "contract")  # tests/<tier>/...: every test there carries that marker


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the tier of its directory, so no file needs a marker of its own."""
    root = Path(__file__).parent
    for item in items:
        try:
            tier = item.path.relative_to(root).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(tier)


def _run(service_type: type, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    directory = tmp_path_factory.mktemp(service_type.name)
    ports = claim_ports({flag: None for flag in service_type.port_flags})
    with running(service_type(directory, ports)) as service:
        yield service


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeper]:
    """A real standalone ZooKeeper on a free loopback port."""
    yield from _run(ZooKeeper, tmp_path_factory)


@pytest.fixture(scope="session")
def haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HAProxy]:
    """A real HAProxy in master-worker mode with admin and master sockets."""
    yield from _run(HAProxy, tmp_path_factory)


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    """A real nginx with its own prefix."""
    yield from _run(Nginx, tmp_path_factory)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    """A real Docker engine with its own roots and socket, with the local base image built."""
    yield from _run(DockerEngine, tmp_path_factory)


@dataclass
class ConsulUnderTest:
    """A Consul agent for a test: the shared one, a real endpoint, or a local one a test may break."""

    addr: str
    token: str | None = field(default=None, repr=False)
    service: Consul | None = None  # None for a real endpoint

    @property
    def local(self) -> bool:
        return self.service is not None

    @property
    def url(self) -> str:
        return self.addr if "://" in self.addr else f"http://{self.addr}"

    def client(self, **kwargs: Any) -> Any:
        """A py-consul client for this agent, with its token."""
        import consul

        parts = urlsplit(self.url)
        return consul.Consul(host=parts.hostname, port=parts.port or 8500, scheme=parts.scheme,
                             token=self.token, **kwargs)


class LocalConsul(ConsulUnderTest):
    """A fresh `consul agent -dev` of the test's own, which it may stop, start and restart."""

    def __init__(self, directory: Path, acl: bool = False) -> None:
        ports = claim_ports({flag: None for flag in Consul.port_flags})
        service = Consul(directory, ports, {"consul_acl": acl})
        service.prepare()
        super().__init__(service.addr, service.token, service)
        self._running: Any = None

    def start(self) -> LocalConsul:
        """Start it (again, empty, on the same ports) and wait until it has a leader."""
        if self._running is None:
            assert self.service is not None
            self._running = running(self.service)
            self._running.__enter__()
        return self

    def stop(self) -> None:
        if self._running is not None:
            running_, self._running = self._running, None
            running_.__exit__(None, None, None)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulUnderTest]:
    """The Consul under test, shared by the session: `CONSUL_HTTP_ADDR`'s, or a local dev agent.
    Never stop or restart it; use `consul_factory` for that."""
    addr = os.environ.get("CONSUL_HTTP_ADDR", "").strip()
    if addr:
        yield ConsulUnderTest(addr, os.environ.get("CONSUL_HTTP_TOKEN") or None)
        return
    agent = LocalConsul(tmp_path_factory.mktemp("consul")).start()
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture
def consul_factory(tmp_path: Path) -> Iterator[Any]:
    """`consul_factory(acl=False)`: a started local agent of the test's own, stopped at its end."""
    made: list[LocalConsul] = []

    def make(acl: bool = False) -> LocalConsul:
        agent = LocalConsul(tmp_path / f"consul-{len(made)}", acl=acl)
        made.append(agent)
        return agent.start()

    try:
        yield make
    finally:
        for agent in made:
            agent.stop()


def wharf(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
          timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the `wharf` command as a user would, in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "wharf", *args], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# --- the Mesos master, Marathon and Chronos under test: real when the standard variables say so ----

@dataclass(frozen=True)
class Endpoint:
    """A system under test: its base URL, and the stand-in serving it (None for a real endpoint)."""

    url: str
    standin: Any = None
    master: str | None = None  # Mesos: what frameworks are given (zk://host:port/path or host:port)
    mesos: Endpoint | None = None  # Marathon, Chronos: the Mesos master they run on, if known
    auth: tuple[str, str] | None = field(default=None, repr=False)  # basic auth; never shown

    @property
    def real(self) -> bool:
        return self.standin is None


def stand_in_only(*variables: str, why: str) -> pytest.MarkDecorator:
    """Mark a test that only a stand-in started here can pass: skipped, saying why, when any of the
    standard `variables` names a real endpoint, before any fixture starts a thing."""
    given = [name for name in variables if os.environ.get(name, "").strip()]
    return pytest.mark.skipif(bool(given), reason=f"{', '.join(given)} set (real endpoint): {why}")


def _leading_master(master: str) -> str:
    """The HTTP URL of the leading Mesos master named by `MESOS_MASTER` (read from ZooKeeper if zk://)."""
    if not master.startswith("zk://"):
        return master.rstrip("/") if "://" in master else f"http://{master}"
    from kazoo.client import KazooClient

    where = ZkUrl.parse(master)
    zk = KazooClient(hosts=where.hosts, timeout=10.0)
    zk.start(timeout=15)
    try:
        contenders = sorted(c for c in zk.get_children(where.path) if c.startswith(NODE_PREFIX))
        if not contenders:
            raise RuntimeError(f"no Mesos master has registered under {master}")
        info = json.loads(zk.get(f"{where.path}/{contenders[0]}")[0])  # the lowest sequence leads
    finally:
        zk.stop()
        zk.close()
    address = info.get("address") or {}
    return f"http://{address.get('ip') or address.get('hostname')}:{address.get('port') or info['port']}"


def real_mesos_master() -> Endpoint | None:
    """The Mesos master `MESOS_MASTER` names (`zk://host:port/mesos` or `host:port`), or None if unset."""
    master = os.environ.get("MESOS_MASTER", "").strip()
    return Endpoint(_leading_master(master), master=master) if master else None


def real_marathon() -> Endpoint | None:
    """The first Marathon of `MARATHON_URL` (comma-separated masters), credentials split off; None if unset."""
    first = os.environ.get("MARATHON_URL", "").split(",")[0].strip()
    if not first:
        return None
    parts = urlsplit(first)
    auth = (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return Endpoint(urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth=auth)


def real_chronos() -> Endpoint | None:
    """The Chronos `CHRONOS_URL` names (its Mesos master from `MESOS_MASTER`, if set), or None if unset."""
    url = os.environ.get("CHRONOS_URL", "").strip()
    return Endpoint(url.rstrip("/"), mesos=real_mesos_master()) if url else None


def start_mesos_standin(request: pytest.FixtureRequest, state_dir: Path, **options: Any) -> MesosStandin:
    """A Mesos stand-in registered in the test ZooKeeper, its agents on the test Docker engine."""
    zookeeper = request.getfixturevalue("zookeeper")
    docker_engine = request.getfixturevalue("docker_engine")
    zk = f"zk://{zookeeper.endpoints()['address']}/mesos-{uuid.uuid4().hex[:8]}"
    return MesosStandin(zk=zk, docker_host=docker_engine.host, state_dir=state_dir, **options).start()


def _mesos_endpoint(standin: MesosStandin) -> Endpoint:
    return Endpoint(standin.url, standin, master=standin.zk_url)


@pytest.fixture(scope="module")
def mesos_master(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """The Mesos master under test: `MESOS_MASTER`'s leader, or a stand-in this module shares."""
    real = real_mesos_master()
    if real is not None:
        yield real
        return
    standin = start_mesos_standin(request, tmp_path_factory.mktemp("mesos"), heartbeat_interval=1.0)
    try:
        yield _mesos_endpoint(standin)
    finally:
        standin.stop()


@pytest.fixture(scope="module")
def marathon(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    """The Marathon under test: `MARATHON_URL`'s first, or a stand-in (module-shared) on `mesos_master`."""
    real = real_marathon()
    if real is not None:
        yield real
        return
    mesos: Endpoint = request.getfixturevalue("mesos_master")
    assert mesos.master
    standin = MarathonStandin(mesos.master).start()
    try:
        yield Endpoint(standin.url, standin, mesos=mesos)
    finally:
        standin.stop()


@pytest.fixture
def chronos(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Endpoint]:
    """The Chronos under test: `CHRONOS_URL`, or a fresh stand-in per test, the framework of a fresh
    two-agent Mesos stand-in (of `MESOS_MASTER`'s master, if that is set) found through ZooKeeper."""
    real = real_chronos()
    if real is not None:
        yield real
        return
    mesos_standin = None
    mesos = real_mesos_master()
    if mesos is None:
        mesos_standin = start_mesos_standin(request, tmp_path / "mesos", agents=2, heartbeat_interval=1.0)
        mesos = _mesos_endpoint(mesos_standin)
    standin = ChronosStandin(master=mesos.master)
    try:
        standin.start()
        assert standin.framework is not None and standin.framework.registered_event.wait(20), "never registered"
        yield Endpoint(standin.url, standin, mesos=mesos)
    finally:
        standin.stop()
        if mesos_standin is not None:
            mesos_standin.stop()
