"""wharf.http.HttpClient against small HTTP servers on loopback: failover between base URLs,
credentials sent and never shown, refusals kept with their status and body, server-sent events."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from wharf.errors import HttpError, Unreachable
from wharf.http import Base, HttpClient
from wharf.marathon import MarathonClient, MarathonError
from wharf.retry import Retry

pytestmark = pytest.mark.unit

QUICK = Retry(delay=0.01, max_delay=0.01, deadline=0.05, retry_on=(requests.ConnectionError, requests.Timeout))


class Handler(BaseHTTPRequestHandler):
    """Answers by path: `/json`, `/text`, `/401`, `/409`, `/events`; records each call."""

    def do_GET(self) -> None:
        server: Server = self.server  # type: ignore[assignment]
        server.calls.append((self.path, self.headers.get("Authorization")))
        if self.path == "/events":
            self._send(200, b"event: a\ndata: {\"n\": 1}\n\n: comment\ndata: not json\n\ndata: {\"n\": 2}\n\n",
                       "text/event-stream")
        elif self.path == "/text":
            self._send(200, b"node,a,fresh,idle\n", "text/csv")
        elif self.path in ("/401", "/409"):
            self._send(int(self.path[1:]), json.dumps({"message": "no", "details": []}).encode())
        else:
            self._send(200, json.dumps({"port": server.server_port}).encode())

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Server(ThreadingHTTPServer):
    calls: list[tuple[str, str | None]]


def serve(port: int = 0) -> Server:
    server = Server(("127.0.0.1", port), Handler)
    server.calls = []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


def stop(server: Server) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def two() -> Iterator[tuple[Server, Server]]:
    servers = serve(), serve()
    yield servers
    for server in servers:
        stop(server)


def url(server: Server, userinfo: str = "") -> str:
    return f"http://{userinfo}127.0.0.1:{server.server_port}"


def test_each_call_starts_with_the_base_url_that_answered_last(two: tuple[Server, Server]) -> None:
    first, second = two
    port = first.server_port
    client = HttpClient([url(first), url(second)], system="Chronos", retry=QUICK)
    stop(first)
    assert client.request("GET", "/json") == {"port": second.server_port}
    first = serve(port)  # the first is back, but the second answered last: it is asked first
    try:
        assert client.request("GET", "/json") == {"port": second.server_port}
        assert first.calls == [] and len(second.calls) == 2
    finally:
        stop(first)


def test_credentials_are_sent_as_basic_auth_and_never_shown(two: tuple[Server, Server]) -> None:
    first, _ = two
    client = HttpClient([url(first, "ops:p%40ss@")], system="Chronos", retry=QUICK)
    client.request("GET", "/json")
    assert first.calls == [("/json", "Basic " + base64.b64encode(b"ops:p@ss").decode())]
    assert client.shown == url(first) and client.auth == ("ops", "p@ss")
    assert "p@ss" not in repr(Base.parse(url(first, "ops:p%40ss@")))
    port = first.server_port
    stop(first)
    with pytest.raises(Unreachable) as caught:
        client.request("GET", "/json")
    assert caught.value.message.startswith(f"cannot reach Chronos at http://127.0.0.1:{port} (connection refused; "
                                           "tried for 0.05 s): ")
    assert "p@ss" not in caught.value.message and "p%40ss" not in caught.value.message


def test_refusals_keep_their_status_and_body(two: tuple[Server, Server]) -> None:
    client = HttpClient(url(two[0]), system="Chronos")
    with pytest.raises(HttpError) as refused:
        client.request("GET", "/409")
    assert (refused.value.status, refused.value.body, refused.value.reason) == (409, {"message": "no", "details": []},
                                                                                "Conflict")
    assert refused.value.message.startswith("GET /409: Chronos answered 409: ")
    with pytest.raises(HttpError, match=r"^GET /401: Chronos refused the credentials \(401\)$"):
        client.request("GET", "/401")
    assert client.request("GET", "/409", ok=(409,)) == {"message": "no", "details": []}
    assert client.request("GET", "/text") == "node,a,fresh,idle\n"


def test_marathon_refusals_are_marathon_errors_in_marathons_words(two: tuple[Server, Server]) -> None:
    from marathon_apps.client import Marathon
    from marathon_apps.client import MarathonError as RoomError

    assert Marathon is MarathonClient and RoomError is MarathonError
    with pytest.raises(MarathonError, match=r"^GET /409: Marathon answered 409: no$") as refused:
        MarathonClient([url(two[0])]).request("GET", "/409")
    assert refused.value.exit_code == 1


def test_server_sent_events_are_decoded_one_by_one(two: tuple[Server, Server]) -> None:
    client = HttpClient(url(two[0]), system="Marathon")
    assert list(client.stream("/events")) == [{"n": 1}, {"n": 2}]  # an undecodable one is skipped
    with pytest.raises(HttpError, match=r"^GET /401: Marathon answered 401$"):
        list(client.stream("/401"))
