"""The per-service fixtures other tests build on really run the services."""

from __future__ import annotations

import urllib.request

import pytest

from devcluster.docker_engine import BASE_IMAGE
from devcluster.haproxy import runtime_command
from devcluster.zookeeper import four_letter

pytestmark = pytest.mark.integration


def test_zookeeper_fixture(zookeeper) -> None:
    assert four_letter("127.0.0.1", zookeeper.port, "ruok") == "imok"


def test_haproxy_fixture_serves_stats_and_503_without_backends(haproxy) -> None:
    assert "Name: HAProxy" in runtime_command(haproxy.admin_socket, "show info")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://{haproxy.endpoints()['http']}/", timeout=5)
    assert err.value.code == 503
    with urllib.request.urlopen(haproxy.endpoints()["stats"] + ";csv", timeout=5) as resp:
        assert resp.read().decode().startswith("# pxname,svname,")


def test_nginx_fixture(nginx) -> None:
    with urllib.request.urlopen(nginx.url, timeout=5) as resp:
        assert resp.status == 200


def test_docker_fixture_has_the_base_image(docker_engine) -> None:
    client = docker_engine.client()
    try:
        assert BASE_IMAGE in client.images.get(BASE_IMAGE).tags
        assert client.containers.run(BASE_IMAGE, ["busybox", "true"], remove=True) == b""
    finally:
        client.close()

