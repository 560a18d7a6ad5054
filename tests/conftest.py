"""Fixtures that give tests real ZooKeeper, HAProxy, nginx and Docker, built on the dev cluster's code."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devcluster.cluster import running
from devcluster.docker_engine import DockerEngine
from devcluster.haproxy import HAProxy
from devcluster.nginx import Nginx
from devcluster.process import claim_ports
from devcluster.zookeeper import ZooKeeper


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


def wharf(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
          timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the `wharf` command as a user would, in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_"))}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "wharf", *args], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
