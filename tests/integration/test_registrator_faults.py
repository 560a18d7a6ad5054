"""No ghost and no gap after the Docker daemon or the Consul agent restarts under the registrator."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster.consul import Consul
from devcluster.docker_engine import DockerEngine
from devcluster.process import claim_ports
from tests.conftest import ConsulUnderTest
from tests.integration.registrator_kit import Restartable, consistent, owned, registrator, remove_all, web
from tests.polling import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Restartable]:
    """A Docker engine of this test's own, restarted as `wharf dev restart docker` does."""
    own = Restartable(DockerEngine(tmp_path / "docker", {}))
    own.start()
    try:
        yield own
    finally:
        try:
            client = own.service.client()
            for c in client.api.containers(all=True):
                client.api.remove_container(c["Id"], force=True)
            client.close()
        finally:
            own.stop()


def test_no_ghost_and_no_gap_after_the_docker_daemon_restarts(consul: Any, engine: Restartable,
                                                               tmp_path: Path) -> None:
    c, tag = consul.client(), uuid.uuid4().hex[:8]
    docker = engine.service.client()
    try:
        with registrator(consul, engine.service.host, tmp_path, "--resync", "0") as reg:
            back = [web(docker, tag, restart=True, stops_on_term=True)[0] for _ in range(2)]
            gone = web(docker, tag, stops_on_term=True)[0]
            wait_for(lambda: len(owned(c, reg.owner)) == 3, 30, "three registered")
            engine.restart()
            docker.close()
            docker = engine.service.client()
            wait_for(lambda: consistent(c, docker, reg, tag), 30, "no ghost and no gap after the restart")
            ids = {s["Meta"]["container_id"] for s in owned(c, reg.owner).values()}
            assert ids == set(back) and gone not in ids
            new = web(docker, tag, stops_on_term=True)[0]
            wait_for(lambda: new in {s["Meta"]["container_id"] for s in owned(c, reg.owner).values()}, 20,
                     "a container started after the restart registered")
            assert reg.alive(), reg.output()[-2000:]
            assert reg.metric('wharf_registrator_reconnects_total{to="docker"}') >= 1
    finally:
        remove_all(docker, tag)
        docker.close()


def test_no_ghost_and_no_gap_after_consul_restarts_empty(consul_factory: Any, docker_engine: Any,
                                                         tmp_path: Path) -> None:
    agent = consul_factory()
    tag = uuid.uuid4().hex[:8]
    docker = docker_engine.client()
    try:
        with registrator(agent, docker_engine.host, tmp_path, "--resync", "0") as reg:
            ids = [web(docker, tag, www=False)[0] for _ in range(5)]
            wait_for(lambda: len(owned(agent.client(), reg.owner)) == 5, 30, "five registered")
            agent.client().agent.service.register("foreign", service_id="foreign-1", port=1)

            agent.restart()  # empty again, on the same ports
            wait_for(lambda: len(owned(agent.client(), reg.owner)) == 5, 10, "all five back")
            assert "foreign-1" not in agent.client().agent.services()  # not ours to bring back

            agent.stop()  # and while it is down, containers come and go
            docker.api.remove_container(ids.pop(), force=True)
            ids.append(web(docker, tag, www=False)[0])
            agent.start()
            c = agent.client()
            wait_for(lambda: consistent(c, docker, reg, tag) and len(owned(c, reg.owner)) == 5, 10,
                     "no ghost and no gap after an outage")
            assert {s["Meta"]["container_id"] for s in owned(c, reg.owner).values()} == set(ids)
            assert reg.alive()
    finally:
        remove_all(docker, tag)
        docker.close()


def test_a_frozen_consul_loses_no_event(docker_engine: Any, tmp_path: Path) -> None:
    """Consul stops answering (SIGSTOP) while containers start and go: the events are still read
    (counted as they arrive), and once it answers again Consul holds exactly the running ones."""
    service = Consul(tmp_path / "consul", claim_ports({flag: None for flag in Consul.port_flags}))
    agent = Restartable(service)
    agent.start()
    consul = ConsulUnderTest(service.addr, service.token, service)
    c, tag = consul.client(), uuid.uuid4().hex[:8]
    docker = docker_engine.client()
    assert agent.proc is not None
    try:
        with registrator(consul, docker_engine.host, tmp_path, "--resync", "0") as reg:
            old = [web(docker, tag, www=False)[0] for _ in range(3)]
            wait_for(lambda: len(owned(c, reg.owner)) == 3, 30, "three registered")
            starts = reg.metric('wharf_registrator_docker_events_total{action="start"}')
            os.kill(agent.proc.pid, signal.SIGSTOP)
            try:
                new = [web(docker, tag, www=False)[0] for _ in range(4)]
                for cid in old[:2]:
                    docker.api.remove_container(cid, force=True)
                wait_for(lambda: reg.metric('wharf_registrator_docker_events_total{action="start"}') >= starts + 4,
                         20, "the events read while Consul is frozen")
            finally:
                os.kill(agent.proc.pid, signal.SIGCONT)
            wait_for(lambda: {s["Meta"]["container_id"] for s in owned(c, reg.owner).values()} == {old[2], *new},
                     40, "Consul to hold exactly the running containers")
            assert consistent(c, docker, reg, tag) and reg.alive()
    finally:
        remove_all(docker, tag)
        docker.close()
        agent.stop()
