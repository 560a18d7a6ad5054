"""Generated load traces, seeded: ramps, spikes, diurnal days, noise and flash crowds. Pure.

Every trace is one rate per second, drawn as a row every 10 s (as the bundled traces are) with a
little noise on each row (2 % of the rate, Gaussian), over a base load drawn for the seed. The
shapes and what varies within each family:

- ramp: a flat hour, a rise at one slope (per family member) to a plateau, the same fall back;
- spikes: two surges of one width and height over the base, at random times;
- diurnal: one day (24 hours), trough at night, a peak in the afternoon, minute-to-minute wander;
- noise: a flat load whose rate wanders from minute to minute, by 3 % or 6 % (standard deviation;
  a flat load is where an autoscaler flaps);
- flash: a jump within 10 s to several times the base, decaying back with one half-life.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

ROW = 10  # seconds per row
HOUR = 3600


@dataclass(frozen=True)
class Member:
    """One generated trace of a family: its shape, name, and how to draw it from a seed."""

    shape: str
    name: str
    draw: Callable[[random.Random], list[float]]

    def load(self, seed: int) -> list[float]:
        """The trace for `seed` (the same seed, the same trace)."""
        return self.draw(random.Random(f"{self.name}/{seed}"))


def _rows(rng: random.Random, seconds: int, level: Callable[[float], float], noise: float = 0.02) -> list[float]:
    """One rate per second: `level(t)` sampled every `ROW` seconds, times Gaussian noise."""
    out: list[float] = []
    for start in range(0, seconds, ROW):
        value = max(level(start) * (1 + rng.gauss(0, noise)), 0.0)
        out.extend([round(value, 1)] * min(ROW, seconds - start))
    return out


def _wander(rng: random.Random, seconds: int, spread: float) -> Callable[[float], float]:
    """A factor around 1 that changes every minute, each minute keeping 60 % of the last one's
    deviation, with a standard deviation of `spread` overall."""
    factors: list[float] = []
    value = 1.0
    for _ in range(seconds // 60 + 1):
        value = 1 + 0.6 * (value - 1) + rng.gauss(0, 0.8 * spread)
        factors.append(value)
    return lambda t: factors[int(t) // 60]


def ramp(slope: float) -> Callable[[random.Random], list[float]]:
    """Rise by `slope` rps per minute to a plateau ten to twenty times higher, then back."""
    def draw(rng: random.Random) -> list[float]:
        base = rng.uniform(150, 400)
        top = base * rng.uniform(8, 15)
        rise = (top - base) / slope * 60
        plateau = rng.uniform(0.5, 1) * HOUR
        total = int(HOUR + 2 * rise + plateau + HOUR)

        def level(t: float) -> float:
            t -= HOUR
            if t < 0:
                return base
            if t < rise:
                return base + slope * t / 60
            if t < rise + plateau:
                return top
            return max(top - slope * (t - rise - plateau) / 60, base)
        return _rows(rng, total, level)
    return draw


def spikes(width: float, height: float) -> Callable[[random.Random], list[float]]:
    """Two surges of `width` minutes to `height` times the base, over four hours."""
    def draw(rng: random.Random) -> list[float]:
        base = rng.uniform(200, 600)
        starts = [rng.uniform(0.5, 1.5) * HOUR, rng.uniform(2.2, 3.2) * HOUR]
        ends = [s + width * 60 for s in starts]

        def level(t: float) -> float:
            return base * (height if any(s <= t < e for s, e in zip(starts, ends, strict=True)) else 1)
        return _rows(rng, 4 * HOUR, level)
    return draw


def diurnal(peak: float) -> Callable[[random.Random], list[float]]:
    """A day: about `peak` rps in the afternoon, 10-20 % of it before dawn, wandering 3 % a minute."""
    def draw(rng: random.Random) -> list[float]:
        low = rng.uniform(0.1, 0.2)
        top = peak * rng.uniform(0.8, 1.2)
        wander = _wander(rng, 24 * HOUR, 0.03)

        def level(t: float) -> float:
            day = (1 - math.cos(2 * math.pi * (t / HOUR - 4) / 24)) / 2  # 0 at 4:00, 1 at 16:00
            return top * (low + (1 - low) * math.pow(day, 1.5)) * wander(t)
        return _rows(rng, 24 * HOUR, level)
    return draw


def noise(spread: float) -> Callable[[random.Random], list[float]]:
    """Four hours of a flat load whose minute rate wanders with a standard deviation of `spread`."""
    def draw(rng: random.Random) -> list[float]:
        base = rng.uniform(300, 2000)
        wander = _wander(rng, 4 * HOUR, spread)
        return _rows(rng, 4 * HOUR, lambda t: base * wander(t))
    return draw


def flash(height: float, half_life: float) -> Callable[[random.Random], list[float]]:
    """A jump to `height` times the base, decaying back with a half-life of `half_life` minutes."""
    def draw(rng: random.Random) -> list[float]:
        base = rng.uniform(200, 600)
        start = rng.uniform(0.5, 1.5) * HOUR

        def level(t: float) -> float:
            if t < start:
                return base
            return base * (1 + (height - 1) * math.pow(0.5, (t - start) / 60 / half_life))
        return _rows(rng, 4 * HOUR, level)
    return draw


FAMILY: tuple[Member, ...] = (
    *(Member("ramp", f"ramp-{s}", ramp(s)) for s in (10, 25, 50, 100)),
    *(Member("spikes", f"spikes-{w}m-x{h}", spikes(w, h)) for w in (6, 12, 24) for h in (2, 4)),
    *(Member("diurnal", f"diurnal-{p}", diurnal(p)) for p in (1000, 4000)),
    *(Member("noise", f"noise-{int(s * 100)}pct", noise(s)) for s in (0.03, 0.06)),
    *(Member("flash", f"flash-x{h}-{hl}m", flash(h, hl)) for h in (3, 6) for hl in (10, 30)),
)
SHAPES = ("ramp", "spikes", "diurnal", "noise", "flash")
