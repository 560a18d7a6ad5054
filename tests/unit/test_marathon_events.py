"""The Marathon stand-in's event bus and SSE framing."""

from __future__ import annotations

import json

from devcluster.marathon.events import EventBus, sse


def test_sse_framing() -> None:
    raw = sse({"eventType": "x", "timestamp": "t", "a": 1})
    event, data, end = raw.decode().split("\n", 2)
    assert event == "event: x" and json.loads(data[len("data: "):]) == {"eventType": "x", "timestamp": "t", "a": 1}
    assert end == "\n"


def test_streams_get_attached_first_then_their_types_until_closed() -> None:
    bus = EventBus()
    everything = bus.stream("1.2.3.4")
    some = bus.stream("1.2.3.4", ["b"])
    bus.publish("a", n=1)
    bus.publish("b", n=2)
    bus.close()
    kinds = [json.loads(chunk.decode().split("\n")[1][6:]) for chunk in everything]
    assert [k["eventType"] for k in kinds] == ["event_stream_attached", "a", "b"]
    assert kinds[0]["remoteAddress"] == "1.2.3.4" and kinds[1]["n"] == 1
    assert [json.loads(c.decode().split("\n")[1][6:])["eventType"] for c in some] == ["b"]
    assert list(bus.stream("x")) == []
