"""`wharf.consul_http.Reader`: Consul's answers as bytes, decoded as py-consul decodes them, through
one connection per thread; what a blocking query's fetch makes of them."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import consul
import pytest

from consul_templates.watch import blocking
from devcluster.process import free_port
from devcluster.webhook import serving_on_loopback
from wharf.consul_http import Reader


class _Agent(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append((self.path, self.headers.get("X-Consul-Token")))
        status, body = {"/v1/catalog/nodes": (200, b'[{"Node": "n1"}]'), "/v1/kv/none": (404, b""),
                        "/v1/boom": (500, b"rpc error")}.get(self.path.split("?")[0], (200, b"[]"))
        if "index=7" in self.path:
            body = b'[{"Node": "n2"}]'
        self.send_response(status)
        self.send_header("X-Consul-Index", "8" if "index=7" in self.path else "7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def agent() -> Iterator[str]:
    _Agent.seen = []
    with serving_on_loopback(_Agent) as server:
        yield f"127.0.0.1:{server.server_address[1]}"


def test_answers_are_decoded_as_py_consul_decodes_them(agent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    reader = Reader(agent, token="s3cret")
    assert reader.direct and reader.get("/v1/catalog/nodes") == [{"Node": "n1"}]
    assert reader.get("/v1/kv/none") is None
    with pytest.raises(consul.ConsulException, match="rpc error"):
        reader.get("/v1/boom")
    assert {token for _, token in _Agent.seen} == {"s3cret"}


def test_a_blocking_fetch_sends_the_index_and_wait_and_reads_a_404_as_empty(agent: str) -> None:
    reader = Reader(agent)
    nodes = blocking(reader, "/v1/catalog/nodes")
    assert nodes(0) == ("7", b'[{"Node": "n1"}]')  # the first query answers at once: no index
    assert nodes("7") == ("8", b'[{"Node": "n2"}]')
    assert "index=7" in _Agent.seen[-1][0] and "wait=30s" in _Agent.seen[-1][0]
    assert blocking(reader, "/v1/kv/none", ("recurse", ""))(0) == ("7", b"[]")
    with pytest.raises(consul.ConsulException):
        blocking(reader, "/v1/boom")(0)


def test_a_dropped_connection_is_made_again_and_an_agent_gone_is_an_os_error(agent: str) -> None:
    reader = Reader(agent)
    assert reader.get("/v1/catalog/nodes") == [{"Node": "n1"}]
    reader._local.connection.sock.close()  # the kept connection was dropped
    assert reader.get("/v1/catalog/nodes") == [{"Node": "n1"}]
    gone = Reader(f"127.0.0.1:{free_port()}")
    with pytest.raises(OSError):
        gone.get("/v1/catalog/nodes")
