"""Watching outside systems, one way for every room: a Consul blocking query and a reconnecting stream.

`ConsulWatch` repeats one blocking query with consul-template's rules (`watch/view.go`): an equal
index is a timeout, an index that goes backwards starts again from 0, an index below 1 counts as 1;
at least `rate_limit` (plus 0-20 ms) between two queries; backoff with jitter on errors; `down` and
`up` when Consul fails and answers again, with one log line each way. It blocks on an index
(`X-Consul-Index`) or on a content hash (`/v1/agent/services` has no index, only `?hash=`).

`Stream` reads an endless stream (Docker's events, Marathon's server-sent events): connect, hand on
every item, and when it ends or fails back off and connect again, with a hook on every (re)connect.

Both follow the daemon skeleton's conventions: a stop event, `wharf.retry.Retry` for the backoff,
structured log lines. Each runs on its own thread; a daemon whose cycle *is* one query calls
`ConsulWatch.step()` from `run_cycle` instead (the skeleton then does the backoff).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from wharf.errors import RetryFailed, WharfError, cannot_reach
from wharf.log import fields
from wharf.retry import Retry

T = TypeVar("T")
log = logging.getLogger("wharf.watch")

RATE_LIMIT = 0.1  # at least this long between two queries of one watch...
RATE_JITTER = 0.02  # ...plus up to this much, as consul-template's rate limiter
BACKOFF = Retry(delay=0.05, backoff=2.0, max_delay=0.5, jitter=0.2)  # capped low: recovery is seen quickly

#: (index or hash to block on) -> (the index or hash Consul answered with, the answer's data)
Fetch = Callable[[Any], tuple[Any, Any]]


def next_index(last: int, returned: int) -> tuple[int, bool]:
    """The index for the next query and whether the answer may hold news.

    Equal: a timeout, nothing new. Backwards (Consul restarted, or a snapshot restore): start again
    from 0, which answers at once. Below 1: treat as 1, so the next query still blocks.
    """
    returned = max(returned, 1)
    if returned < last:
        return 0, True
    return returned, returned != last


def next_hash(last: str | None, returned: str | None) -> tuple[str | None, bool]:
    """The content hash for the next query and whether the answer may hold news: any other hash is
    news (a hash has no order, so it never goes backwards); no hash starts again with a query that
    answers at once."""
    returned = returned or None
    return returned, returned != last


def unreachable(system: str, address: str, error: BaseException) -> str:
    """The line to log when `system` fails a watch: `cannot_reach`'s, or the message of a wharf error
    that already says it (a client that raises `Unreachable` itself)."""
    if isinstance(error, WharfError) and not isinstance(error, RetryFailed):
        return error.message
    return cannot_reach(system, address, error)


def _as_index(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class ConsulWatch(threading.Thread):
    """One Consul blocking query, repeated until `stop()`.

    Every answer goes to `answered(kind, data)`, kind `change`, `same` (a timeout), `reset` (the index
    went backwards) or `up` (Consul answers again after failing); a failure goes to it once per outage
    as `down`, with no data. By default `answered` calls `notify(name, kind)` for every kind but
    `same`; a subclass may override it to see every answer.
    """

    def __init__(self, name: str, fetch: Fetch, notify: Callable[[str, str], None] | None = None, *,
                 by_hash: bool = False, backoff: Retry = BACKOFF, rate_limit: float = RATE_LIMIT,
                 jitter: float = RATE_JITTER, address: str = "", logger: logging.Logger | None = None,
                 gauge: Any = None) -> None:
        super().__init__(name=f"watch-{name}", daemon=True)
        self.key, self.fetch, self.notify = name, fetch, notify
        self.by_hash = by_hash
        self.backoff, self.rate_limit, self.jitter = backoff, rate_limit, jitter
        self.address = address or "its address"  # Consul's, for the log
        self.log = logger or log
        self.gauge = gauge  # a Gauge of the blocking queries held open, if the room counts them
        self.index: Any = None if by_hash else 0
        self.healthy = True
        self.resets = 0
        self.stopping = threading.Event()
        self._next_at = 0.0

    def stop(self) -> None:
        self.stopping.set()

    def answered(self, kind: str, data: Any) -> None:
        """What to do with an answer; by default tell `notify` of news (every kind but `same`)."""
        if kind != "same" and self.notify is not None:
            self.notify(self.key, kind)

    def due_in(self) -> float:
        """Seconds until the rate limit allows the next query (0 before the first)."""
        return max(0.0, self._next_at - time.monotonic())

    def step(self) -> tuple[str, Any]:
        """One query, now: its kind and data. A failure is reported (`down`) and then raised."""
        self._next_at = time.monotonic() + self.rate_limit + random.uniform(0, self.jitter)
        if self.gauge is not None:
            self.gauge.inc()
        try:
            returned, data = self.fetch(self.index)
        except Exception as exc:
            self._failed(exc)
            raise
        finally:
            if self.gauge is not None:
                self.gauge.dec()
        kind = self._advance(returned)
        self.answered(kind, data)
        return kind, data

    def run(self) -> None:
        delays: Iterator[float] | None = None
        while not self.stopping.wait(self.due_in()):
            try:
                self.step()
            except Exception as exc:  # Consul away or erroring: keep trying, forever
                if self.healthy:  # not Consul's failure but the hook's
                    self.log.warning("watch hook failed", extra=fields(watch=self.key, error=str(exc)))
                delays = delays or self.backoff.delays()
                if self.stopping.wait(next(delays)):
                    return
            else:
                delays = None

    def _failed(self, error: BaseException) -> None:
        # start over with a query that answers at once, so Consul's return is seen within one
        # backoff step (an old index could hold the query open on a restarted agent)
        self.index = None if self.by_hash else 0
        if self.healthy:
            self.healthy = False
            self.log.warning("consul unreachable",
                             extra=fields(watch=self.key, error=unreachable("Consul", self.address, error)))
            self.answered("down", None)

    def _advance(self, returned: Any) -> str:
        """Apply the index (or hash) rules to an answer; its kind."""
        went_back = False
        if self.by_hash:
            self.index, news = next_hash(self.index, returned)
        else:
            returned = _as_index(returned)
            went_back = max(returned, 1) < self.index
            self.index, news = next_index(self.index, returned)
        if not self.healthy:
            self.healthy = True
            self.log.info("consul reachable again", extra=fields(watch=self.key))
            return "up"
        if went_back:
            self.resets += 1
            return "reset"
        return "change" if news else "same"


class Stream(threading.Thread, Generic[T]):
    """An endless stream read on its own thread, reconnecting until `stop()`.

    `connect()` returns the stream, already connected; `on_connect(again)` runs next (`again`: not
    the first connection), then every item goes to `handle(item)`. When the stream ends or fails:
    `on_lost(error)`, one log line, a backoff wait, and `connect()` again. `stop()` closes the
    current stream (if it has `close()`) so a blocked read ends."""

    def __init__(self, name: str, connect: Callable[[], Iterable[T]], handle: Callable[[T], None], *,
                 on_connect: Callable[[bool], None] | None = None,
                 on_lost: Callable[[BaseException], None] | None = None, backoff: Retry = BACKOFF,
                 system: str = "", address: str = "its address", logger: logging.Logger | None = None,
                 level: int = logging.WARNING) -> None:
        super().__init__(name=name, daemon=True)
        self.connect, self.handle = connect, handle
        self.on_connect, self.on_lost = on_connect, on_lost
        self.backoff = backoff
        self.system, self.address = system, address  # for the log
        self.log, self.level = logger or log, level
        self.stopping = threading.Event()
        self._current: Any = None

    def run(self) -> None:
        delays = self.backoff.delays()
        again = False
        while not self.stopping.is_set():
            try:
                self._current = self.connect()
                if again:
                    self.log.log(min(self.level, logging.INFO), f"{self.name} reconnected")
                if self.on_connect is not None:
                    self.on_connect(again)
                again, delays = True, self.backoff.delays()
                for item in self._current:
                    self.handle(item)
                    if self.stopping.is_set():
                        break
                if not self.stopping.is_set():
                    raise ConnectionError("event stream ended")
            except Exception as exc:
                if self.on_lost is not None:
                    self.on_lost(exc)
                if self.stopping.is_set():
                    break
                delay = next(delays)
                self.log.log(self.level, f"{self.name} lost; reconnecting",
                             extra=fields(error=unreachable(self.system, self.address, exc), retry_in=round(delay, 2)))
                self.stopping.wait(delay)
            finally:
                current, self._current = self._current, None
                _close(current)

    def stop(self) -> None:
        self.stopping.set()
        _close(self._current)


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - closing a broken stream, or a generator still running
            pass
