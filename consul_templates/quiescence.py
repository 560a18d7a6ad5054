"""Quiescence (`--wait min:max`), as consul-template's: wait for the catalog to settle, within bounds.

The first change arms a timer for `min` and a deadline at `max`; each further change pushes the
timer back to `min` from now, but never past the deadline. `tick(now)` says whether it has fired.
Pure: the caller passes the clock.
"""

from __future__ import annotations

from dataclasses import dataclass


def parse_wait(text: str) -> tuple[float, float]:
    """`min:max` or `min` (then max = 4 * min, as consul-template); seconds, or with ms/s/m suffixes."""
    def seconds(part: str) -> float:
        part = part.strip()
        for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
            if part.endswith(suffix):
                return float(part[: -len(suffix)]) * scale
        return float(part)

    low_text, sep, high_text = text.partition(":")
    try:
        low = seconds(low_text)
        high = seconds(high_text) if sep else 4 * low
    except ValueError:
        raise ValueError(f"{text!r} is not min:max (seconds, or with ms/s/m)") from None
    if low < 0 or high < low:
        raise ValueError(f"{text!r}: need 0 <= min <= max")
    return low, high


@dataclass
class Quiescence:
    """The timer between a change and its render."""

    min: float
    max: float
    fire_at: float | None = None
    deadline: float | None = None

    def change(self, now: float) -> None:
        """Note a change at `now`."""
        if self.fire_at is None or self.deadline is None:
            self.fire_at, self.deadline = now + self.min, now + self.max
        else:
            self.fire_at = min(now + self.min, self.deadline)

    def tick(self, now: float) -> bool:
        """True once (and the timer disarms) when a pending change should be rendered."""
        if self.fire_at is not None and now >= self.fire_at:
            self.fire_at = self.deadline = None
            return True
        return False

    @property
    def pending(self) -> bool:
        return self.fire_at is not None

    def remaining(self, now: float) -> float | None:
        """Seconds until it fires, or None when nothing is pending."""
        return None if self.fire_at is None else max(0.0, self.fire_at - now)
