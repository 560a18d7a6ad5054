"""The one py-consul client constructor: addresses as CONSUL_HTTP_ADDR takes them, and no proxy for loopback."""

from __future__ import annotations

import pytest

from wharf.consul_http import client, is_loopback

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("addr", "scheme", "host", "port"), [
    ("127.0.0.1:8600", "http", "127.0.0.1", 8600),
    ("http://consul.internal", "http", "consul.internal", 8500),
    ("https://consul.internal", "https", "consul.internal", 443),
    ("https://[::1]:8501", "https", "::1", 8501),
])
def test_addresses_are_read_as_consul_reads_them(addr: str, scheme: str, host: str, port: int) -> None:
    c = client(addr, token="secret")
    assert (c.http.scheme, c.http.host, c.http.port) == (scheme, host, port)
    assert c.token == "secret"


def test_a_loopback_agent_is_never_reached_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    assert client("127.0.0.1:8500").http.session.trust_env is False
    assert client("localhost:8500").http.session.trust_env is False
    assert client("consul.internal:8500").http.session.trust_env is True  # a remote agent: as requests does


def test_loopback_is_any_loopback_address_or_localhost() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("consul.internal")


def test_an_address_without_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="names no host"):
        client("http://:8500")
