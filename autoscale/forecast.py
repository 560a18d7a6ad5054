"""What the counters tell about the load ahead: level, trend and noise of the sampled rates. Pure.

Each decision adds one sample, the rate over the interval just ended (HAProxy's request counter,
differenced). From the last `SAMPLES` of them:

- the noise: how far one interval's rate strays from the one before, taken robustly (the median
  absolute deviation of the differences), so a step or two does not count as noise; a load that
  wanders strays further than its steps show, so at a steady level its spread counts too;
- the trend: the load is rising or falling only when the last `TREND_RUN` differences agree in
  sign and each is clear of the noise, and then by the smallest of them; a step (which moves the
  averaged rate over at most two intervals) is a new level, never a trend to extrapolate;
- the level now: with a trend, the last rate carried half an interval forward (a rate is the
  average over its interval, so it stands for the interval's middle); without one, the mean of the
  recent rates at the last one's level, whose highest also bounds the load to hold, so noise does
  not move the count; and when HAProxy's current rate is far over the interval's, that jump.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: samples kept; the noise is read over all of them, the level over the last `LEVEL_SAMPLES`
SAMPLES = 30
#: marathon-lb-autoscale's default `--samples`
LEVEL_SAMPLES = 10
#: consecutive differences of one sign, each over `TREND_NOISE` noise units, make a trend
TREND_RUN = 3
TREND_NOISE = 1.5
#: a rate within this many noise units of the last one belongs to the same level
SAME_LEVEL = 5.0
#: rates at one level from which their spread is read
SPREAD_SAMPLES = 5


@dataclass(frozen=True)
class Forecast:
    """The load as the samples show it: `level` rps now, `slope` rps per second (0 without a
    trend), `noise` rps (the typical deviation of one interval's rate)."""

    level: float
    slope: float = 0.0
    noise: float = 0.0
    high: float | None = None  # the highest rate seen at this level (None: `level`)

    def at(self, seconds: float) -> float:
        """The load `seconds` from now if the trend holds (never below zero)."""
        return max(self.level + self.slope * seconds, 0.0)

    def peak(self, horizon: float) -> float:
        """The highest load from now to `horizon` seconds ahead if the trend holds."""
        return max(self.at(0.0), self.at(horizon))


def noise_of(rates: Sequence[float]) -> float:
    """One rate's typical deviation from the next, robust to a few steps (0 under three rates)."""
    diffs = [b - a for a, b in zip(rates, rates[1:], strict=False)]
    if len(diffs) < 2:
        return 0.0
    middle = statistics.median(diffs)
    # 1.4826 × MAD estimates a standard deviation; a difference of two rates has √2 of one rate's
    return 1.4826 * statistics.median(abs(d - middle) for d in diffs) / 2 ** 0.5


def trend_of(samples: Sequence[tuple[float, float]], noise: float = 0.0) -> float:
    """rps per second when the last `TREND_RUN` differences agree in sign and each is over
    `TREND_NOISE` noise units (the smallest of them), else 0."""
    if len(samples) <= TREND_RUN:
        return 0.0
    recent = samples[-TREND_RUN - 1:]
    steps = [(b - a, tb - ta) for (ta, a), (tb, b) in zip(recent, recent[1:], strict=False) if tb > ta]
    if len(steps) < TREND_RUN or not all(abs(d) > TREND_NOISE * noise for d, _ in steps):
        return 0.0
    if not (all(d > 0 for d, _ in steps) or all(d < 0 for d, _ in steps)):
        return 0.0
    return min((d / dt for d, dt in steps), key=abs)


def spread_of(rates: Sequence[float]) -> float:
    """The rates' standard deviation, estimated robustly (1.4826 × their median absolute deviation)."""
    middle = statistics.median(rates)
    return 1.4826 * statistics.median(abs(r - middle) for r in rates)


def forecast(samples: Sequence[tuple[float, float]], latest: float | None = None) -> Forecast | None:
    """The forecast from `(time, rps)` samples, oldest first, each the rate over the interval
    ending at its time, and the `latest` rate HAProxy reported (`req_rate`, else `rate`: the last
    second, if known); None without a sample."""
    if not samples:
        return None
    samples = list(samples)[-SAMPLES:]
    noise = noise_of([r for _, r in samples])
    samples = samples[-LEVEL_SAMPLES:]
    rates = [r for _, r in samples]
    before = _same_level(rates[:-1], noise)
    if len(before) >= SPREAD_SAMPLES:  # a load that wanders strays further than its steps show
        noise = max(noise, spread_of(before))
    slope = trend_of(samples, noise)
    last = rates[-1]
    if slope:
        half = (samples[-1][0] - samples[-2][0]) / 2
        return Forecast(max(last + slope * half, 0.0), slope, noise)
    if latest is not None and latest - last > SAME_LEVEL * noise:
        # a jump the interval's average caught only part of: the load is what HAProxy sees now
        return Forecast(latest, 0.0, noise, latest)
    same = _same_level(rates, noise)
    return Forecast(sum(same) / len(same), 0.0, noise, max(same))


def _same_level(rates: Sequence[float], noise: float) -> list[float]:
    """The last rates, newest first, back to the first that differs from the newest by more than
    `SAME_LEVEL` noise units."""
    same: list[float] = []
    for rate in reversed(rates):
        if abs(rate - rates[-1]) > SAME_LEVEL * noise:
            break
        same.append(rate)
    return same
