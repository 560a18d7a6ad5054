"""Waiting in tests without sleeps that hide races: poll a condition until a deadline (`wharf.wait`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from wharf.errors import TimedOut
from wharf.wait import wait_until

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.05) -> T:
    """Call `predicate` until it returns something truthy, and return that; fail after `timeout`."""
    try:
        return wait_until(predicate, timeout, interval, what)
    except TimedOut as exc:
        raise AssertionError(exc.message) from None
