"""Marathon's event bus and its Server-Sent Events stream (`GET /v2/events`).

Every event is a JSON object with `eventType` and `timestamp` (Marathon's ISO form) plus its own
fields, sent as ``event: <type>\\ndata: <json>\\n\\n``. A subscriber may name the event types it
wants (`?event_type=`, repeatable); the first event any new stream sees is its own
`event_stream_attached`.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Collection, Iterator
from typing import Any

from devcluster.marathon.plan import format_version

KEEPALIVE = 10.0  # seconds between keep-alive comment lines on an idle stream


def make_event(event_type: str, now: float | None = None, **fields: Any) -> dict[str, Any]:
    """An event as Marathon writes it."""
    return {"eventType": event_type, "timestamp": format_version(time.time() if now is None else now), **fields}


def sse(event: dict[str, Any]) -> bytes:
    """One event in SSE framing."""
    return f"event: {event['eventType']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


class _Subscriber:
    def __init__(self, types: Collection[str]) -> None:
        self.types = frozenset(types)
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def wants(self, event: dict[str, Any]) -> bool:
        return not self.types or event["eventType"] in self.types


class EventBus:
    """Publish events to every attached stream; ``close()`` ends them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[_Subscriber] = []
        self._closed = False

    def publish(self, event_type: str, **fields: Any) -> dict[str, Any]:
        event = make_event(event_type, **fields)
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            if subscriber.wants(event):
                subscriber.queue.put(event)
        return event

    def stream(self, remote_address: str, types: Collection[str] = ()) -> Iterator[bytes]:
        """The SSE byte stream of one subscriber: attached first, then what is published."""
        subscriber = _Subscriber(types)
        with self._lock:
            if self._closed:
                return iter(())
            self._subscribers.append(subscriber)
        attached = make_event("event_stream_attached", remoteAddress=remote_address)
        if subscriber.wants(attached):
            subscriber.queue.put(attached)
        return self._drain(subscriber, remote_address)

    def _drain(self, subscriber: _Subscriber, remote_address: str) -> Iterator[bytes]:
        try:
            while True:
                try:
                    event = subscriber.queue.get(timeout=KEEPALIVE)
                except queue.Empty:
                    yield b":\n\n"  # an SSE comment: keeps proxies open, tells us when the client left
                    continue
                if event is None:
                    return
                yield sse(event)
        finally:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)
                    closed = self._closed
                else:
                    closed = True
            if not closed:
                self.publish("event_stream_detached", remoteAddress=remote_address)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            subscribers, self._subscribers = self._subscribers, []
        for subscriber in subscribers:
            subscriber.queue.put(None)
