"""A small HTTP toolkit shared by the dev-cluster stand-ins (stdlib only).

A stand-in is a plain function ``app(Request) -> Response``, usually a :class:`Router`.
:func:`serve` runs it on a daemon-threaded server bound to 127.0.0.1 in a background
thread and returns a :class:`RunningServer` whose ``stop()`` closes every connection.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HTTPError(Exception):
    """Raised by handlers to answer with a plain-text error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    """One parsed request; ``params`` holds the route's named groups."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Message
    body: bytes
    params: Mapping[str, str] = field(default_factory=dict)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name`` (``""`` for a bare ``?name``)."""
        values = self.query.get(name)
        return values[0] if values else default

    def has(self, name: str) -> bool:
        return name in self.query


@dataclass(frozen=True)
class Response:
    """An answer; with ``stream`` set, its chunks are sent as they come (chunked encoding) instead of ``body``."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    stream: Iterable[bytes] | None = None


App = Callable[[Request], Response]


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, body, "application/json", tuple((headers or {}).items()))


def text_response(text: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8", tuple((headers or {}).items()))


class Router:
    """Regex route table: (method, full-match path pattern) -> handler; 404 and 405 built in."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], App]] = []

    def add(self, method: str, pattern: str, handler: App) -> None:
        self._routes.append((method, re.compile(pattern), handler))

    def resolve(self, method: str, path: str) -> tuple[App, dict[str, str]] | None:
        """The handler and path parameters for a request; raises HTTPError(405) on a bad method."""
        allowed = []
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match:
                if route_method == method:
                    return handler, match.groupdict()
                allowed.append(route_method)
        if allowed:
            raise HTTPError(405, f"method {method} not allowed")
        return None

    def __call__(self, request: Request) -> Response:
        found = self.resolve(request.method, request.path)
        if found is None:
            return text_response("404 page not found\n", 404)
        handler, params = found
        return handler(Request(request.method, request.path, request.query, request.headers, request.body, params))


def _redacted(target: str, secret_params: frozenset[str]) -> str:
    path, _, query = target.partition("?")
    if not query:
        return path
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    shown = [(k, "<redacted>" if k in secret_params else v) for k, v in pairs]
    return f"{path}?{urllib.parse.urlencode(shown)}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        logging.getLogger("wharf.devcluster.http").debug("connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 for every stand-in: a request body in, a response (whole or chunked) out."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise HTTPError(411, "chunked request bodies are not supported; send Content-Length")
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, response: Response) -> None:
        """Send the status line, the headers and the body (or the stream, chunk by chunk)."""
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if response.stream is None:
            self.send_header("Content-Length", str(len(response.body)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if response.stream is not None:
            self._send_stream(response.stream)
        elif self.command != "HEAD":
            self.wfile.write(response.body)

    def _send_stream(self, chunks: Iterable[bytes]) -> None:
        """Send each chunk as it is produced; ends when the iterator does or the client leaves."""
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client went away
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # _serve logs one redacted line per request instead


def _handler_class(app: App, logger: logging.Logger, secret_params: frozenset[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        def _serve(self) -> None:
            started = time.monotonic()
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            try:
                request = Request(self.command, urllib.parse.unquote(url.path), query, self.headers, self._read_body())
                response = app(request)
            except HTTPError as err:
                response = text_response(err.message, err.status)
            except Exception:  # noqa: BLE001 - a handler bug must not kill the connection silently
                logger.exception("%s %s failed", self.command, _redacted(self.path, secret_params))
                response = text_response("internal error in the dev-cluster stand-in", 500)
            self._send(response)
            elapsed = (time.monotonic() - started) * 1000
            logger.debug("%s %s %d %.1fms", self.command, _redacted(self.path, secret_params), response.status, elapsed)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _serve

    return Handler


@dataclass
class RunningServer:
    """A server started by :func:`serve`; ``stop()`` is idempotent."""

    server: _Server
    thread: threading.Thread
    host: str

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        self.thread.join(timeout=5)


def serve(
    app: App,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    logger: logging.Logger | None = None,
    secret_params: frozenset[str] = frozenset({"token"}),
) -> RunningServer:
    """Bind ``host:port`` (0 = any free port) and serve ``app`` from a daemon thread."""
    handler = _handler_class(app, logger or logging.getLogger("wharf.devcluster.http"), secret_params)
    server = _Server((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return RunningServer(server, thread, host)
