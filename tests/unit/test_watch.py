"""wharf.watch: the one Consul watch (index or content hash) and the one reconnecting stream."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from wharf.errors import Unreachable
from wharf.retry import Retry
from wharf.watch import ConsulWatch, Stream, next_hash

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("last,returned,expected", [
    (None, "a", ("a", True)), ("a", "a", ("a", False)), ("a", "b", ("b", True)),
    ("a", None, (None, True)), (None, "", (None, False)),
])
def test_content_hash_rules(last: str | None, returned: str | None, expected: tuple[str | None, bool]) -> None:
    assert next_hash(last, returned) == expected


def scripted(answers: list[Any], calls: list[Any]) -> Any:
    script = iter(answers)

    def fetch(at: Any) -> tuple[Any, Any]:
        calls.append(at)
        answer = next(script)
        if isinstance(answer, Exception):
            raise answer
        return answer, f"data@{answer}"
    return fetch


def test_a_hash_watch_blocks_on_the_last_hash_and_starts_over_after_an_outage(caplog: Any) -> None:
    calls: list[Any] = []
    kinds: list[tuple[str, Any]] = []
    down = ConnectionError("refused")

    class Seen(ConsulWatch):
        def answered(self, kind: str, data: Any) -> None:
            kinds.append((kind, data))

    watch = Seen("agent", scripted(["a", "a", "b", down, down, "b", "c"], calls), by_hash=True, rate_limit=0,
                 address="http://127.0.0.1:1", logger=logging.getLogger("wharf.test.watch"))
    with caplog.at_level(logging.INFO, "wharf.test.watch"):
        for _ in range(7):
            try:
                watch.step()
            except ConnectionError:
                pass
    assert calls == [None, "a", "a", "b", None, None, "b"]  # after a failure: a query that answers at once
    assert kinds == [("change", "data@a"), ("same", "data@a"), ("change", "data@b"), ("down", None),
                     ("up", "data@b"), ("change", "data@c")]
    lines = [(r.getMessage(), r.levelname) for r in caplog.records]
    assert lines == [("consul unreachable", "WARNING"), ("consul reachable again", "INFO")]
    assert "cannot reach Consul at http://127.0.0.1:1" in caplog.records[0].wharf_fields["error"]


def test_a_failed_step_is_raised_after_down_and_worded_once(caplog: Any) -> None:
    events: list[tuple[str, str]] = []
    error = Unreachable("Consul", "http://127.0.0.1:1", "connection refused")
    watch = ConsulWatch("kv:x", scripted([error, 5, 5, 3], []), lambda name, kind: events.append((name, kind)),
                        rate_limit=0, logger=logging.getLogger("wharf.test.watch2"))
    with caplog.at_level(logging.INFO, "wharf.test.watch2"), pytest.raises(Unreachable):
        watch.step()
    assert caplog.records[0].wharf_fields["error"] == error.message  # not wrapped a second time
    assert [watch.step()[0] for _ in range(3)] == ["up", "same", "reset"]
    assert events == [("kv:x", "down"), ("kv:x", "up"), ("kv:x", "reset")] and watch.index == 0


def test_the_rate_limit_is_due_after_each_query() -> None:
    watch = ConsulWatch("x", lambda index: (index + 1, None), rate_limit=30.0)
    assert watch.due_in() == 0.0
    watch.step()
    assert 29.0 < watch.due_in() <= 30.02


class Held:
    """A stream that yields its items, then blocks until closed."""

    def __init__(self, items: list[int]) -> None:
        self.items, self.closed = list(items), threading.Event()

    def __iter__(self) -> Iterator[int]:
        yield from self.items
        self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


def test_a_stream_reconnects_with_a_hook_on_every_connect_and_stop_ends_a_blocked_read(caplog: Any) -> None:
    held = Held([3])
    connects: list[Any] = [ConnectionError("refused"), [1, 2], held]
    items: list[int] = []
    hooks: list[bool] = []
    lost: list[str] = []

    def connect() -> Any:
        step = connects.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    stream = Stream("test events", connect, items.append, on_connect=hooks.append,
                    on_lost=lambda exc: lost.append(str(exc)), backoff=Retry(delay=0.01, jitter=0),
                    system="the Docker engine", address="unix:///x.sock", logger=logging.getLogger("wharf.test.s"))
    with caplog.at_level(logging.INFO, "wharf.test.s"):
        stream.start()
        for _ in range(200):
            if items == [1, 2, 3]:
                break
            threading.Event().wait(0.01)
        stream.stop()
        stream.join(5)
    assert not stream.is_alive() and held.closed.is_set()
    assert items == [1, 2, 3] and hooks == [False, True]
    assert lost == ["refused", "event stream ended"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["test events lost; reconnecting", "test events lost; reconnecting", "test events reconnected"]
    assert "cannot reach the Docker engine at unix:///x.sock" in caplog.records[0].wharf_fields["error"]
