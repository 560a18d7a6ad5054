"""A bare v1 scheduler API client (stdlib only), for tests and benchmarks of the stand-in.

It keeps the protocol visible: one connection holds the SUBSCRIBE stream, read as RecordIO
records by a thread into a queue; calls go on a second connection with ``Mesos-Stream-Id``.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
import urllib.parse
from typing import Any


class SchedulerClient:
    """``subscribe()``, then ``call()`` and ``next_event()``; ``close()`` drops the stream."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5050
        self.timeout = timeout
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []  # every event read, in order
        self._backlog: list[dict[str, Any]] = []
        self.stream_id: str | None = None
        self.framework_id: str | None = None
        self._stream: http.client.HTTPConnection | None = None
        self._calls: http.client.HTTPConnection | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def subscribe(self, framework_info: dict[str, Any], framework_id: str | None = None) -> dict[str, Any]:
        """Open the stream and return the SUBSCRIBED event (raises on any other answer)."""
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": dict(framework_info)}}
        if framework_id:
            body["framework_id"] = {"value": framework_id}
            body["subscribe"]["framework_info"]["id"] = {"value": framework_id}
        self._stream = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._stream.request("POST", "/api/v1/scheduler", json.dumps(body),
                             {"Content-Type": "application/json", "Accept": "application/json"})
        response = self._stream.getresponse()
        if response.status != 200:
            raise RuntimeError(f"SUBSCRIBE answered {response.status}: {response.read().decode()}")
        self.stream_id = response.getheader("Mesos-Stream-Id")
        self._reader = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._reader.start()
        subscribed = self.next_event(None, timeout=self.timeout)
        if subscribed["type"] != "SUBSCRIBED":
            raise RuntimeError(f"SUBSCRIBE answered with {subscribed}")
        self.framework_id = subscribed["subscribed"]["framework_id"]["value"]
        return subscribed

    def _read(self, response: http.client.HTTPResponse) -> None:
        try:
            while True:
                line = response.readline()
                if not line:
                    break
                item = json.loads(response.read(int(line)))
                self.seen.append(item)
                self.events.put(item)
        except (OSError, ValueError, http.client.HTTPException):
            pass
        finally:
            self.events.put(None)

    def next_event(self, kind: str | None = None, timeout: float = 10.0,
                   skip: tuple[str, ...] = ("HEARTBEAT",)) -> dict[str, Any]:
        """The next event (of ``kind``, if given), dropping ``skip`` types; raises on timeout or end.

        Events of other kinds are kept, in order, for later calls.
        """
        for n, kept in enumerate(self._backlog):
            if kind is None or kept["type"] == kind:
                return self._backlog.pop(n)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind or 'event'} within {timeout}s")
            try:
                item = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if item is None:
                self.events.put(None)  # keep reporting the end
                raise EOFError("the event stream ended")
            if item["type"] in skip and item["type"] != kind:
                continue
            if kind is None or item["type"] == kind:
                return item
            self._backlog.append(item)

    def post(self, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
        """POST anything to the scheduler endpoint; returns (status, body text)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"}
        if self.stream_id:
            sent["Mesos-Stream-Id"] = self.stream_id
        sent.update(headers or {})
        with self._lock:
            if self._calls is None:
                self._calls = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._calls.request("POST", "/api/v1/scheduler", data, sent)
                response = self._calls.getresponse()
                return response.status, response.read().decode()
            except (OSError, http.client.HTTPException):
                self._calls.close()
                self._calls = None
                raise

    def call(self, kind: str, body: dict[str, Any] | None = None) -> None:
        """Send a call of ``kind`` for this framework; raises unless answered 202."""
        message: dict[str, Any] = {"type": kind, "framework_id": {"value": self.framework_id}}
        if body is not None:
            message[kind.lower()] = body
        status, text = self.post(message)
        if status != 202:
            raise RuntimeError(f"{kind} answered {status}: {text}")

    def close(self) -> None:
        """Drop both connections (the master sees the stream go: a disconnection, not a teardown)."""
        conns = [c for c in (self._stream, self._calls) if c is not None]
        for conn in conns:
            if conn.sock is not None:
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._reader is not None:
            self._reader.join(timeout=5)
        for conn in conns:
            conn.close()
        self._stream = self._calls = None
