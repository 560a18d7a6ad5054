"""The decision: (readings, current instances, policy, clock, history) → target and reason. Pure.

Rates come from HAProxy's counters (`req_tot`, else `stot`) between two readings of the same
HAProxy; a counter that went down means that HAProxy reloaded (a new worker starts from zero), and
that interval is estimated from what the new worker counted and its current rate instead.

Each cycle adds the interval's rate to the samples the history keeps, and `forecast` reads their
level, trend and noise (and a jump the interval only partly caught, from the rate HAProxy sees
now). The count recommended is the fewest instances that hold, at or under the band's top (target
× (1 + tolerance)), the highest load projected from now until instances asked for at the next
decision could serve (one interval plus the app's startup delay, learned from Marathon), plus one
noise unit, and never less than the highest rate of the current level. The cost of each direction:

- Up: instances are asked for to cover the load at the time they will serve, not the load already
  seen; a +1 is never held back.
- Down: the app shrinks as soon as the lower count holds the projected load, a falling load being
  seen as falling from the last intervals rather than an average. Removing too much costs a
  startup to undo and overload meanwhile, so a shrink holds one more noise unit, needs two
  decisions in a row that call for it, and waits until three intervals have shown the noise.

The stabilization windows stay bounds the user sets: the app grows to the smallest recommendation
of the up window and shrinks to the largest of the down window (Kubernetes' HPA answer to
flapping). Right after a scale-down, growing again within the down window needs the projected load
over twice the tolerance, so noise does not turn the count around more than once per window. With
`--threshold-percent` (`down_tolerance`) the app shrinks only under the band's bottom, as
marathon-lb-autoscale does, unless the drop reaches `--threshold-instances`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from autoscale.forecast import SAMPLES, Forecast, forecast
from autoscale.policy import Policy

#: noise units of headroom over the projected load, and more before a shrink
NOISE_MARGIN = 1.0
SHRINK_MARGIN = 1.0
#: rates needed before a shrink (the noise is unknown before)
KNOWN_NOISE = 3


@dataclass(frozen=True)
class Reading:
    """One backend's counters as one HAProxy reported them at time `t` (seconds).

    source: which HAProxy (and backend) the counters belong to; counters of different sources are
        never subtracted from one another.
    total: cumulative requests (`req_tot`, else `stot`); None if HAProxy gave neither.
    rate: requests in the last second (`req_rate`, else `rate`); None if HAProxy gave neither.
    """

    t: float
    source: str
    total: int | None
    rate: float | None


@dataclass(frozen=True)
class History:
    """What the decision remembers between cycles: recent recommendations, the last change, and
    the rates of the last decisions (`(time, rps)`, oldest first)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    last_change: tuple[float, int] | None = None  # (when, +1 for up or -1 for down)
    samples: tuple[tuple[float, float], ...] = ()

    @property
    def last_rps(self) -> float | None:
        """The rate the last decision observed."""
        return self.samples[-1][1] if self.samples else None

    def remember(self, now: float, recommendation: int, keep: float, rps: float | None = None) -> History:
        """This history with `recommendation` (and the rate it came from) added and entries older
        than `keep` seconds dropped, but for the previous recommendation."""
        kept = tuple((t, n) for t, n in self.recommendations[:-1] if t > now - keep) + self.recommendations[-1:]
        samples = self.samples if rps is None else (*self.samples, (now, rps))[-SAMPLES:]
        return History((*kept, (now, recommendation)), self.last_change, samples)


@dataclass(frozen=True)
class Decision:
    """A target instance count and why; `history` is what the next cycle should be given.

    projected: the load the recommendation holds (the projected peak plus the noise margin).
    """

    target: int
    reason: str
    current: int
    rps: float | None = None
    recommendation: int | None = None
    history: History = field(default_factory=History)
    projected: float | None = None

    @property
    def per_instance(self) -> float | None:
        """Observed rps per current instance (None without a rate or with no instance)."""
        return None if self.rps is None or self.current <= 0 else self.rps / self.current


def _requests_between(before: Reading, after: Reading) -> float:
    """Requests counted from `before` to `after` by one HAProxy, across a reload if there was one."""
    dt = max(after.t - before.t, 0.0)
    if before.total is not None and after.total is not None:
        if after.total >= before.total:
            return float(after.total - before.total)
        # the counter restarted (a reload): the new worker's count is a lower bound for the
        # interval; its current rate over the whole interval is the other estimate
        return max(float(after.total), (after.rate or 0.0) * dt)
    return (after.rate or 0.0) * dt


def observed_rps(readings: Iterable[Reading]) -> float | None:
    """Requests per second summed over every source, from each source's last two readings.

    A source with a single reading contributes its instantaneous rate. None if there is no reading.
    """
    by_source: dict[str, list[Reading]] = {}
    for reading in readings:
        by_source.setdefault(reading.source, []).append(reading)
    if not by_source:
        return None
    total = 0.0
    for series in by_source.values():
        series.sort(key=lambda r: r.t)
        if len(series) == 1 or series[-1].t <= series[-2].t:
            total += series[-1].rate or 0.0
        else:
            before, after = series[-2], series[-1]
            total += _requests_between(before, after) / (after.t - before.t)
    return total


def latest_rps(readings: Iterable[Reading]) -> float | None:
    """The rate every source reported last (`req_rate`, else `rate`), summed; None if one has none."""
    last: dict[str, Reading] = {}
    for reading in readings:
        if reading.source not in last or reading.t >= last[reading.source].t:
            last[reading.source] = reading
    rates = [r.rate for r in last.values()]
    return None if not rates or any(r is None for r in rates) else float(sum(r or 0.0 for r in rates))


def sized(load: float, per_instance: float) -> int:
    """The fewest instances that keep `load` per instance at or under `per_instance` (1 with any load)."""
    return max(math.ceil(load / per_instance - 1e-9), 1) if load > 0 else 0


def needed(rps: float, policy: Policy) -> int:
    """The fewest instances that keep rps per instance at or under the target (1 with any traffic)."""
    return sized(rps, policy.target_rps)


def projected_load(outlook: Forecast, horizon: float) -> float:
    """The load to hold: the highest the forecast projects within `horizon` seconds plus a noise
    unit, and never less than the highest rate seen at the current level."""
    return max(outlook.peak(horizon) + NOISE_MARGIN * outlook.noise, outlook.high or 0.0)


def recommend(load: float, policy: Policy) -> int:
    """The fewest instances that hold `load` inside the band (before stabilization and bounds)."""
    return sized(load, policy.upper_band)


def _describe(rps: float, current: int, policy: Policy, outlook: Forecast, load: float, horizon: float) -> str:
    seen = (f"{rps:.1f} rps with no instance" if current <= 0 else
            f"{rps:.1f} rps over {current} = {rps / current:.1f} per instance (band {policy.lower_band:.0f}-"
            f"{policy.upper_band:.0f})")
    trend = "steady" if not outlook.slope else f"{'rising' if outlook.slope > 0 else 'falling'} " \
                                               f"{abs(outlook.slope) * 60:.1f} rps/min"
    ahead = f" within {horizon:g}s" if horizon > 0 else ""
    return f"{seen}, {trend}, noise {outlook.noise:.1f}: projected {load:.1f} rps{ahead}"


def _limited(target: int, why: str, current: int, rps: float, policy: Policy) -> tuple[int, str]:
    """The target held to `max_step` and to the policy's bounds (at least 1 with traffic), and why."""
    if policy.max_step is not None and abs(target - current) > policy.max_step:
        target = current + policy.max_step * (1 if target > current else -1)
        why += f", limited to {target} by max_step {policy.max_step}"
    bounded = policy.bounded(target)
    if rps > 0:
        bounded = max(bounded, 1)
    if bounded != target:
        target = bounded
        why += f", held to {target} by bounds [{policy.min_instances}, {policy.max_instances or 'none'}]"
    return target, why


def _may_shrink(rps: float, current: int, recommendation: int, policy: Policy) -> bool:
    """Without `--threshold-percent` a safe lower count is always taken; with it, only under the
    band's bottom or by `--threshold-instances` or more (marathon-lb-autoscale's thresholds)."""
    if policy.down_tolerance is None or current <= 0:
        return True
    if rps / current < policy.lower_band:
        return True
    return policy.down_threshold_instances is not None and current - recommendation >= policy.down_threshold_instances


def _braked(load: float, noise: float, seen: int, rps: float, current: int, policy: Policy, history: History,
            now: float) -> tuple[int, str, float]:
    """The count `load` calls for, with the brakes on each direction: (count, why held, the load
    it is sized for). A shrink holds one more noise unit (a wrong one costs overload and a startup
    to undo), waits for the noise to be known and for `--threshold-percent`; growing right after
    a shrink needs the load past twice the tolerance."""
    rec, note = recommend(load, policy), ""
    if rec < current:
        load += SHRINK_MARGIN * noise
        rec = min(recommend(load, policy), current)
        if rec < current and seen < KNOWN_NOISE:
            rec, note = current, (f" ({rec} would do, but the first window of {KNOWN_NOISE} intervals holds "
                                  f"it: the noise is unknown before)")
        elif rec < current and not _may_shrink(rps, current, rec, policy):
            rec, note = current, f" (over the band's bottom {policy.lower_band:.0f}: --threshold-percent holds it)"
    elif rec > current > 0 and history.last_change is not None and history.last_change[1] < 0 \
            and now - history.last_change[0] < policy.scale_down_stabilization:
        again = policy.target_rps * (1 + 2 * policy.tolerance)
        if sized(load, again) <= current:
            rec, note = current, (f" (scaled down {now - history.last_change[0]:g}s ago: growing again "
                                  f"needs over {again:.0f} per instance)")
    return rec, note, load


def decide(readings: Sequence[Reading], current: int, policy: Policy, now: float,
           history: History = History(), deploying: bool = False, startup: float | None = None) -> Decision:
    """The instance count an app should have now, with the reason, and the history to keep;
    `startup`: seconds from asking Marathon for an instance to its serving (None: one interval)."""
    if deploying:
        return Decision(current, "deployment in progress: no decision", current, history=history)
    rps = observed_rps(readings)
    if rps is None:
        return Decision(current, "no stats for the app's backends: no decision", current, history=history)

    if not history.recommendations:
        # nothing remembered (a fresh start): act as if the current count had been recommended,
        # so a restarted autoscaler does not shrink an app before a window has passed
        history = History(((now, current),), history.last_change, history.samples)
    samples = (*history.samples, (now, rps))
    outlook = forecast(samples, latest_rps(readings)) or Forecast(rps)
    interval = now - history.samples[-1][0] if history.samples and now > history.samples[-1][0] else 0.0
    horizon = interval + (interval if startup is None else startup)
    load = projected_load(outlook, horizon)
    rec, note, load = _braked(load, outlook.noise, len(samples), rps, current, policy, history, now)
    if rps > 0:
        rec = max(rec, 1)
    keep = max(policy.scale_up_stabilization, policy.scale_down_stabilization)
    remembered = history.remember(now, rec, keep, rps)
    ups = [n for t, n in remembered.recommendations if t > now - policy.scale_up_stabilization] or [rec]
    # a shrink needs two decisions in a row that call for it (one low rate is as likely noise,
    # and shrinking on it costs a startup to undo), or all those of the down window
    downs = [n for t, n in remembered.recommendations[-2:]] + [
        n for t, n in remembered.recommendations if t > now - policy.scale_down_stabilization]
    grow_to, shrink_to = min(ups), max(downs)
    what = _describe(rps, current, policy, outlook, load, horizon)

    if grow_to > current:
        target, why = grow_to, f"{what}: scale up to {grow_to}"
        if grow_to < rec:
            why += f" (lowest of the last {policy.scale_up_stabilization:g}s; {rec} now)"
    elif shrink_to < current:
        cooling = history.last_change is not None and now - history.last_change[0] < policy.cooldown
        if cooling:
            target, why = current, f"{what}: {shrink_to} would do, but cooling down after the last change"
        else:
            target, why = shrink_to, f"{what}: scale down to {shrink_to}"
            if shrink_to > rec:
                why += (f" (highest of the last {policy.scale_down_stabilization:g}s and the previous "
                        f"decision; {rec} now)")
    elif rec > current:
        target, why = current, f"{what}: {rec} now, held by the {policy.scale_up_stabilization:g}s up window"
    elif rec < current:
        window = policy.scale_down_stabilization
        target, why = current, f"{what}: {rec} now, held by the {window:g}s down window"
        if max((n for t, n in remembered.recommendations if t > now - window), default=0) < current:
            why = f"{what}: {rec} now, held until a second decision agrees"
    else:
        target, why = current, f"{what}: keep {current}{note}"

    target, why = _limited(target, why, current, rps, policy)
    if target != current:
        remembered = History(remembered.recommendations, (now, 1 if target > current else -1), remembered.samples)
    return Decision(target, why, current, rps, rec, remembered, load)
