"""marathon-lb-autoscale's published decision rule, restated for comparison (`simulate --compare-mlb`).

Each interval it adds `rate + qcur` of the app's HAProxy frontend row (summed over every HAProxy)
to a sliding window of `samples` values and averages them; its target is
`ceil(average / target_rps)` held within [min, max]. It acts only once `samples` intervals have
been read, only when the target differs from Marathon's instance count, and only when either the
rps per instance is at least `threshold_percent` away from the target rps or the counts differ by
at least `threshold_instances`, for `intervals_past_threshold` (3) intervals in a row; after a
change it waits `(cooldown + samples) × interval` seconds before the next one. It does not look at
deployments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

INTERVALS_PAST_THRESHOLD = 3


@dataclass(frozen=True)
class MlbOptions:
    """Its command line, with its defaults."""

    target_rps: float = 1000
    interval: float = 60
    samples: int = 10
    cooldown: int = 5
    threshold_percent: float = 0.5
    threshold_instances: int = 3
    min_instances: int = 1
    max_instances: int | None = None
    intervals_past_threshold: int = INTERVALS_PAST_THRESHOLD


@dataclass(frozen=True)
class MlbState:
    """Its memory for one app."""

    rates: tuple[float, ...] = ()
    samples_seen: int = 0
    past_threshold: int = 0
    last_scaled: float = field(default=-math.inf)


def mlb_step(state: MlbState, rate: float, current: int, now: float,
             options: MlbOptions) -> tuple[int | None, MlbState, str]:
    """One interval of the rule: (new instance count or None, next state, what it did)."""
    rates = (*state.rates, rate)[-options.samples:]
    average = sum(rates) / len(rates)
    target = max(math.ceil(average / options.target_rps), options.min_instances)
    if options.max_instances is not None:
        target = min(target, options.max_instances)
    seen = state.samples_seen
    state = replace(state, rates=rates, samples_seen=seen + 1)
    if seen < options.samples:
        return None, state, f"filling its window ({seen + 1}/{options.samples})"
    if target == current:
        return None, replace(state, past_threshold=0), f"target {target} = current"
    off = math.inf if current == 0 else abs(average / current - options.target_rps) / options.target_rps
    if off < options.threshold_percent and abs(target - current) < options.threshold_instances:
        return None, replace(state, past_threshold=0), f"target {target} within thresholds"
    past = state.past_threshold + 1
    state = replace(state, past_threshold=past)
    if past < options.intervals_past_threshold:
        return None, state, f"target {target} past threshold {past}/{options.intervals_past_threshold}"
    if state.last_scaled + (options.cooldown + options.samples) * options.interval >= now:
        return None, state, f"target {target}: cooling down"
    return target, replace(state, last_scaled=now), f"average {average:.1f} rps: scale {current} to {target}"
