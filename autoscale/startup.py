"""How long an app's new instances take to serve, learned from Marathon. Pure.

A scale-up starts a measurement (when, how many instances asked for); the first cycle that finds
that many healthy tasks (`tasksHealthy`, or `tasksRunning` for an app without health checks) ends
it. The estimate is the mean of the last measurement and the estimate before it, so one slow
start moves it halfway. Cycles see the count only every interval, so a measurement is rounded up
to the cycle that saw it, which errs on the safe side.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Startup:
    """One app's startup delay: `seconds` (None until measured) and the measurement under way."""

    seconds: float | None = None
    pending: tuple[float, int] | None = None  # (asked at, instances asked for)

    def asked(self, now: float, target: int, current: int) -> Startup:
        """After a scale from `current` to `target`: a scale-up starts a measurement."""
        if target > current:
            return Startup(self.seconds, (now, target))
        return Startup(self.seconds, None) if self.pending and target < self.pending[1] else self

    def observe(self, now: float, instances: int, healthy: int | None) -> Startup:
        """This estimate after a cycle found `healthy` of `instances` serving (None: unknown)."""
        if self.pending is None or healthy is None:
            return self
        asked_at, target = self.pending
        if instances < target:  # scaled down meanwhile (by someone else): nothing to measure
            return Startup(self.seconds, None)
        if healthy < target:
            return self
        took = max(now - asked_at, 0.0)
        return Startup(took if self.seconds is None else (self.seconds + took) / 2, None)
