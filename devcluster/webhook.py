"""An incoming webhook on loopback, standing in for a Slack or Mattermost one: each POST's path,
content type and JSON body are kept (and handed to `on_message`), answered 200 `ok` as Slack does.

    with receiving(on_message=print) as (url, received):
        ...  # WHARF_NOTIFY_WEBHOOK=url; received.items fills as messages arrive

For the demo and the tests; it never binds anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "WebhookHandler", "receiving", "serving_on_loopback"]


@dataclass
class Received:
    """What a receiver got, with when each arrived; `on_message` is called with each item too."""

    items: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    on_message: Callable[[Any], None] | None = None

    def add(self, item: Any) -> None:
        self.items.append(item)
        self.times.append(time.perf_counter())
        if self.on_message is not None:
            self.on_message(item)


class WebhookHandler(BaseHTTPRequestHandler):
    """One POST: `(path, content type, JSON body)` added to the server's `received`."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.add((self.path, self.headers["Content-Type"], body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving_on_loopback(handler: type[socketserver.BaseRequestHandler], port: int = 0,
                        server_class: type[socketserver.TCPServer] = ThreadingHTTPServer,
                        **attributes: Any) -> Iterator[Any]:
    """`server_class` with `handler` on 127.0.0.1 (`port` 0: a free one), served on a thread until the
    block ends; `attributes` are set on the server (what its handlers read and fill)."""
    server = server_class(("127.0.0.1", port), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def receiving(path: str = "/hooks/T0/B0/secret", port: int = 0,
              on_message: Callable[[Any], None] | None = None) -> Iterator[tuple[str, Received]]:
    """A receiver on 127.0.0.1 (`port` 0: a free one) until the block ends: (its URL, what it got)."""
    with serving_on_loopback(WebhookHandler, port, received=Received(on_message=on_message)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}", server.received
