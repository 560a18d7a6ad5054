"""One retry helper for every client call and daemon: backoff with a cap, jitter and a deadline."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from wharf.errors import RetryFailed
from wharf.log import fields

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retry:
    """How to retry a call. The object holds no state, so one instance serves any number of calls.

    delay: first wait; each wait is multiplied by `backoff` and capped at `max_delay`.
    jitter: each wait is stretched by a random fraction in [0, jitter).
    max_tries: give up after this many calls (None: no limit).
    deadline: give up when the next wait would end more than this many seconds after the first call.
    retry_on: exception types that are retried; anything else propagates at once.
    """

    delay: float = 0.1
    backoff: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1
    max_tries: int | None = None
    deadline: float | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    sleep_func: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    rng: Callable[[], float] = field(default=random.random, compare=False)

    def delays(self) -> Iterator[float]:
        """The waits between tries, endless: the pure part of the policy."""
        delay = self.delay
        while True:
            yield min(delay, self.max_delay) * (1 + self.jitter * self.rng())
            delay *= self.backoff

    def __call__(self, func: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Call `func(*args, **kwargs)` until it returns, retrying the exceptions in `retry_on`."""
        start = self.clock()
        tries = 0
        waits = self.delays()
        while True:
            tries += 1
            try:
                return func(*args, **kwargs)
            except self.retry_on as exc:
                name = getattr(func, "__qualname__", repr(func))
                if self.max_tries is not None and tries >= self.max_tries:
                    raise RetryFailed(f"{name}: gave up after {tries} tries: {exc}", exc) from exc
                wait = next(waits)
                if self.deadline is not None and self.clock() + wait - start > self.deadline:
                    raise RetryFailed(f"{name}: gave up after {self.deadline:g}s: {exc}", exc) from exc
                log.debug("retrying", extra=fields(call=name, attempt=tries, wait=round(wait, 3), error=str(exc)))
                self.sleep_func(wait)
