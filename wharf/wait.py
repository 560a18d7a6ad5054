"""One way to wait for something: poll a predicate until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from wharf.errors import TimedOut

T = TypeVar("T")


def wait_until(predicate: Callable[[], T | None], timeout: float, interval: float = 0.1,
               what: str | Callable[[], str] = "a condition", *,
               clock: Callable[[], float] | None = None, sleep: Callable[[float], object] | None = None) -> T:
    """Call `predicate` every `interval` seconds until it returns something truthy, and return that.

    It is called at least once, and once more after the last sleep, so a deadline that passed while
    sleeping still gets one look. Past `timeout` seconds, raise `TimedOut` naming `what` (a callable
    is asked then, to name what is still missing). Whatever the predicate raises goes through: catch
    inside it what means "not yet". `clock` and `sleep` default to `time.monotonic` and `time.sleep`,
    looked up at each call; `sleep` may be an `Event.wait` to stop waiting early."""
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    deadline = clock() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if clock() >= deadline:
            raise TimedOut(what() if callable(what) else what, timeout)
        sleep(interval)
