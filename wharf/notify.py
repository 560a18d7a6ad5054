"""Notifications of deploy, rollback, build and sync outcomes: one `Event`, sent to every sink.

    notices = wharf.sinks.Notices(settings)   # before the command changes anything: bad settings exit 2
    ...
    notices.tell([Event("deploy", "/web", "ok", versions=(old, new), commits=(sha, None))])

`Notifier` is the delivery; the sinks (a webhook, mail), their settings and `Notices` are `wharf.sinks`.

`send` only enqueues. Each sink has its own bounded queue (full: the oldest is dropped, and counted)
and its own daemon thread delivering with retries and backoff, so a slow or dead sink blocks neither
the caller nor the other sinks. A sink that starts failing is logged once (the address tried and
what to check), and once more when it delivers again. Sinks log only what is safe (`address`): a
webhook's scheme://host[:port], never its path (Slack's and Mattermost's carry a token there), and
never the SMTP password.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import Counter

from wharf.errors import Failure, RetryFailed, WharfError, describe
from wharf.log import fields
from wharf.retry import Retry

log = logging.getLogger(__name__)

#: the kinds of outcome wharf reports (any other word is sent as it is)
KINDS = ("deploy", "rollback", "build", "sync")

SENT = Counter("wharf_notify_sent_total", "Notifications delivered (ok) or given up (failed), by sink",
               ["sink", "outcome"])
DROPPED = Counter("wharf_notify_dropped_total", "Notifications dropped: the sink's queue was full, or "
                  "still held when the notifier closed", ["sink"])

#: how each event is retried: about 1, 2, 4, 8, 16, 30, 30 ... s apart, for two minutes
DELIVERY_RETRY = Retry(delay=1.0, backoff=2.0, max_delay=30.0, jitter=0.2, deadline=120.0)


@dataclass(frozen=True)
class Event:
    """One outcome: `kind` (deploy, rollback, build, sync), the `app` (or job), its `result` (ok,
    failed, rolled back ...), `versions` (from, to: Marathon versions or image tags), `commits`
    (config commit, code commit), a one-line `message` and when it happened (`at`, UTC)."""

    kind: str
    app: str
    result: str
    versions: tuple[str | None, str | None] = (None, None)
    commits: tuple[str | None, str | None] = (None, None)
    message: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", " ".join(str(self.message).split()))

    def to_json(self) -> dict[str, Any]:
        """The event as a stable dict: always the same keys, None where unknown."""
        return {"kind": self.kind, "app": self.app, "result": self.result,
                "versions": {"from": self.versions[0], "to": self.versions[1]},
                "commits": {"config": self.commits[0], "code": self.commits[1]},
                "message": self.message,
                "at": self.at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}

    def line(self) -> str:
        """One human line: `deploy /web ok: 2026-… → 2026-… (config abc1234) — deployed in 2.8s`."""
        text = f"{self.kind} {self.app} {self.result}"
        if any(self.versions):
            text += f": {self.versions[0] or 'none'} → {self.versions[1] or 'none'}"
        commits = [f"{name} {sha[:7]}" for name, sha in zip(("config", "code"), self.commits, strict=True) if sha]
        if commits:
            text += f" ({', '.join(commits)})"
        return f"{text} — {self.message}" if self.message else text


class DeliveryFailed(Failure):
    """A sink could not deliver an event and trying again will not help (refused, bad credentials)."""


class DeliveryDeferred(DeliveryFailed):
    """A sink could not deliver an event for now (unreachable, busy): it is tried again later."""


class _Stopped(WharfError):
    """The notifier closed while an event was still being retried."""


class Sink(Protocol):
    """Where notifications go: `name` (the metrics' `sink` label), `address` (safe to log), `check`
    (what a person should look at when it fails) and `deliver`, which raises `DeliveryFailed`."""

    name: str
    address: str
    check: str

    def deliver(self, event: Event) -> None:
        """Deliver one event, or raise `DeliveryFailed` (`DeliveryDeferred` to be tried again)."""


@dataclass(eq=False)
class _Lane:
    """One sink's queue and state, guarded by the notifier's condition."""

    sink: Sink
    items: deque[Event] = field(default_factory=deque)
    busy: bool = False
    failing: bool = False
    failed: int = 0  # events given up since it started failing
    dropping: bool = False


class Notifier:
    """Delivers events to `sinks` in the background. `send` never blocks nor raises; `close` flushes.

    capacity: events held per sink before the oldest is dropped. retry: the timing of each event's
    tries (its `retry_on` is the notifier's own)."""

    def __init__(self, sinks: Sequence[Sink], capacity: int = 100, retry: Retry = DELIVERY_RETRY) -> None:
        self.capacity = max(1, capacity)
        self._stop = threading.Event()
        self.retry = replace(retry, retry_on=(DeliveryDeferred,), sleep_func=self._nap)
        self._cond = threading.Condition()
        self._lanes = [_Lane(sink) for sink in sinks]
        for lane in self._lanes:
            threading.Thread(target=self._run, args=(lane,), name=f"notify {lane.sink.name}", daemon=True).start()

    @property
    def sinks(self) -> list[Sink]:
        """The sinks, in the order given."""
        return [lane.sink for lane in self._lanes]

    def _nap(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a retry's wait ends at once when the notifier closes

    def send(self, event: Event) -> None:
        """Queue `event` for every sink and return at once."""
        warn: list[_Lane] = []
        with self._cond:
            closed = self._stop.is_set()
            for lane in self._lanes:
                if closed or len(lane.items) >= self.capacity:
                    DROPPED.labels(lane.sink.name).inc()
                    if closed:
                        continue
                    lane.items.popleft()
                    if not lane.dropping:
                        lane.dropping = True
                        warn.append(lane)
                lane.items.append(event)
            self._cond.notify_all()
        if closed:
            log.debug("notifier closed: event dropped", extra=fields(event=event.line()))
        for lane in warn:
            log.warning("notification queue full, dropping the oldest", extra=fields(
                sink=lane.sink.name, address=lane.sink.address, capacity=self.capacity,
                metric="wharf_notify_dropped_total"))

    def _run(self, lane: _Lane) -> None:
        while True:
            with self._cond:
                while not lane.items and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
                event = lane.items.popleft()
                lane.busy = True
            try:
                self._deliver(lane, event)
            finally:
                with self._cond:
                    lane.busy = False
                    self._cond.notify_all()

    def _attempt(self, lane: _Lane, event: Event) -> None:
        if self._stop.is_set():
            raise _Stopped("closed")
        try:
            lane.sink.deliver(event)
        except Exception as exc:
            failure = exc if isinstance(exc, DeliveryFailed) else DeliveryFailed(describe(exc))
            if not lane.failing:
                with self._cond:  # `close` waits no more for a sink that fails
                    lane.failing = True
                    self._cond.notify_all()
                log.warning("cannot deliver notifications", extra=fields(
                    sink=lane.sink.name, address=lane.sink.address, error=failure.message, check=lane.sink.check))
            raise failure from None

    def _deliver(self, lane: _Lane, event: Event) -> None:
        try:
            self.retry(self._attempt, lane, event)
        except _Stopped:
            DROPPED.labels(lane.sink.name).inc()
            return
        except (RetryFailed, DeliveryFailed) as exc:
            SENT.labels(lane.sink.name, "failed").inc()
            lane.failed += 1
            log.debug("notification given up", extra=fields(sink=lane.sink.name, event=event.line(),
                                                            error=describe(exc)))
            return
        SENT.labels(lane.sink.name, "ok").inc()
        lane.dropping = False
        if lane.failing:
            log.info("notifications delivered again", extra=fields(
                sink=lane.sink.name, address=lane.sink.address, given_up=lane.failed))
            lane.failing, lane.failed = False, 0

    def pending(self) -> int:
        """Events queued or being delivered, over every sink."""
        with self._cond:
            return sum(len(lane.items) + lane.busy for lane in self._lanes)

    def close(self, timeout: float = 5.0, wait_failing: bool = True) -> bool:
        """Deliver what can be delivered within `timeout` seconds, then stop; True if nothing was
        left. Without `wait_failing`, a sink that is failing is not waited for (so that a dead
        webhook never holds up a command). What is left is dropped (and counted), said in one log line."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any((lane.items or lane.busy) and (wait_failing or not lane.failing) for lane in self._lanes) \
                    and time.monotonic() < deadline:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            left = {lane.sink.address: len(lane.items) + lane.busy for lane in self._lanes
                    if lane.items or lane.busy}
            for lane in self._lanes:  # one being delivered is counted where its delivery ends
                DROPPED.labels(lane.sink.name).inc(len(lane.items))
                lane.items.clear()
            self._stop.set()
            self._cond.notify_all()
        if left:
            log.warning("notifications not delivered, giving up", extra=fields(
                timeout=timeout, left=sum(left.values()), sinks=", ".join(left)))
        return not left
