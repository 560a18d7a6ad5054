"""The decision: (readings, current instances, policy, clock, history) → target and reason. Pure.

Rates come from HAProxy's counters (`req_tot`, else `stot`) between two readings of the same
HAProxy; a counter that went down means that HAProxy reloaded (a new worker starts from zero), and
that interval is estimated from what the new worker counted and its current rate instead.

Each cycle recommends a count from the observed rate alone. The band, target × (1 ± tolerance), is
what the operator accepts, and wharf uses it rather than steering every change back to the target:

- Over the band, the app grows to what brings the load to the target, or to fewer if the band's
  top still holds the load should it keep rising as fast as it did since the last decision for two
  more cycles (one for the new instances to start, one until the next decision's can). A surge
  gets the target's full headroom; a load drifting over the band's edge gets one or two instances
  and runs in the band's upper half instead of jumping back to the target. Without a previous
  rate (a restart) the trend is unknown and the app grows to the target. A +1 is never held back.
- Under the band, it shrinks to the count that puts the load inside the band nearest the target,
  which may be a little over it (the load is falling): 408 rps is 4 instances at 102, not 5 at 82,
  under the band again.

The stabilization windows then pick the smallest recommendation of the up window to grow to and
the largest of the down window to shrink to (Kubernetes' HPA answer to flapping), so a shrink
holds the highest load of the down window inside the band. Right after a scale-down, growing again
within the down window needs the load to be beyond the band by twice the tolerance, so noise
inside the band does not make the count turn around more than once per window.

On the bundled 4-hour traces (`bench/autoscale.py`: a decision a minute, new instances serving a
minute later, overload above 120 rps per instance for a target of 100) this takes wharf from 160,680
to 155,880 instance-seconds on the ramp (marathon-lb-autoscale 157,680), from 107,880 to 104,100 on
the diurnal load (107,880), and from 88,500 to 84,480 on the spike (76,800), with 60, 340 and 240
overload-seconds (marathon-lb-autoscale 3,480, 3,670, 1,440).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from autoscale.policy import Policy


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
    """What the decision remembers between cycles: recent recommendations and the last change."""

    recommendations: tuple[tuple[float, int], ...] = ()
    last_change: tuple[float, int] | None = None  # (when, +1 for up or -1 for down)
    last_rps: float | None = None  # the rate the last decision observed

    def remember(self, now: float, recommendation: int, keep: float, rps: float | None = None) -> History:
        """This history with `recommendation` (and the rate it came from) added and entries older
        than `keep` seconds dropped."""
        kept = tuple((t, n) for t, n in self.recommendations if t > now - keep)
        return History((*kept, (now, recommendation)), self.last_change, self.last_rps if rps is None else rps)


@dataclass(frozen=True)
class Decision:
    """A target instance count and why; `history` is what the next cycle should be given."""

    target: int
    reason: str
    current: int
    rps: float | None = None
    recommendation: int | None = None
    history: History = field(default_factory=History)

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


def needed(rps: float, policy: Policy) -> int:
    """The fewest instances that keep rps per instance at or under the target (1 with any traffic)."""
    count = math.ceil(rps / policy.target_rps - 1e-9)
    return max(count, 1) if rps > 0 else 0


def within_band(rps: float, policy: Policy) -> int:
    """The fewest instances that keep rps per instance inside the band (at most its top)."""
    count = math.ceil(rps / policy.upper_band - 1e-9)
    return max(count, 1) if rps > 0 else 0


def shrink_count(rps: float, policy: Policy) -> int:
    """The count that puts rps per instance inside the band and nearest the target, perhaps a
    little over it (`needed` if no count lies inside the band)."""
    need = needed(rps, policy)
    inside = [n for n in (need - 1, need) if n >= 1 and policy.lower_band <= rps / n <= policy.upper_band]
    return min(inside, key=lambda n: (abs(rps / n - policy.target_rps), -n)) if inside else need


#: Growing while the load drifts up, wharf assumes it keeps rising as fast as it did since the last
#: decision for this many more cycles: the one new instances take to start serving, and the one
#: until those of the next decision can.
RISE_CYCLES = 2


def grow_count(rps: float, current: int, policy: Policy, rise: float | None) -> int:
    """The count to grow to when rps per instance is over the band: what brings it to the target,
    or fewer when the band's top still holds the load risen `rise` more for `RISE_CYCLES` cycles;
    never less than one more (`rise` None: unknown, so the target)."""
    need = needed(rps, policy)
    if rise is not None:
        need = min(need, within_band(rps + RISE_CYCLES * max(rise, 0.0), policy))
    return max(need, current + 1)


def recommend(rps: float, current: int, policy: Policy, upper: float | None = None,
              rise: float | None = None) -> int:
    """The count this rate alone calls for, before stabilization and bounds (at least 1 with traffic).

    upper: rps per instance over which to grow (default the band's top).
    rise: how much the rate grew since the previous decision (None: unknown).
    """
    upper = policy.upper_band if upper is None else upper
    if current <= 0:
        count = needed(rps, policy)
    elif rps / current > upper:
        count = grow_count(rps, current, policy, rise)
    elif rps / current < policy.lower_band or (policy.down_threshold_instances is not None and
                                               current - needed(rps, policy) >= policy.down_threshold_instances):
        count = min(shrink_count(rps, policy), current)
    else:
        count = current
    return max(count, 1) if rps > 0 else count


def _describe(rps: float, current: int, policy: Policy) -> str:
    if current <= 0:
        return f"{rps:.1f} rps with no instance"
    return (f"{rps:.1f} rps over {current} = {rps / current:.1f} per instance "
            f"(band {policy.lower_band:.0f}-{policy.upper_band:.0f})")


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


def decide(readings: Sequence[Reading], current: int, policy: Policy, now: float,
           history: History = History(), deploying: bool = False) -> Decision:
    """The instance count an app should have now, with the reason, and the history to keep."""
    if deploying:
        return Decision(current, "deployment in progress: no decision", current, history=history)
    rps = observed_rps(readings)
    if rps is None:
        return Decision(current, "no stats for the app's backends: no decision", current, history=history)

    if not history.recommendations:
        # nothing remembered (a fresh start): act as if the current count had been recommended,
        # so a restarted autoscaler does not shrink an app before a window has passed
        history = History(((now, current),), history.last_change, history.last_rps)
    recent_down = (history.last_change is not None and history.last_change[1] < 0
                   and now - history.last_change[0] < policy.scale_down_stabilization)
    upper = policy.target_rps * (1 + 2 * policy.tolerance) if recent_down else None
    rise = None if history.last_rps is None else rps - history.last_rps
    rec = recommend(rps, current, policy, upper, rise)
    keep = max(policy.scale_up_stabilization, policy.scale_down_stabilization)
    remembered = history.remember(now, rec, keep, rps)
    ups = [n for t, n in remembered.recommendations if t > now - policy.scale_up_stabilization] or [rec]
    downs = [n for t, n in remembered.recommendations if t > now - policy.scale_down_stabilization] or [rec]
    grow_to, shrink_to = min(ups), max(downs)
    what = _describe(rps, current, policy)

    if grow_to > current:
        target, why = grow_to, f"{what}: scale up to {grow_to}"
        if grow_to < rec:
            why += f" (lowest of the last {policy.scale_up_stabilization:g}s; {rec} now)"
        elif rise is not None and grow_to < needed(rps, policy):
            why += (f" (rose {rise:.0f} since the last decision: {grow_to} holds it inside the band "
                    f"for {RISE_CYCLES} more cycles of that)")
    elif shrink_to < current:
        cooling = history.last_change is not None and now - history.last_change[0] < policy.cooldown
        if cooling:
            target, why = current, f"{what}: {shrink_to} would do, but cooling down after the last change"
        else:
            target, why = shrink_to, f"{what}: scale down to {shrink_to}"
            if shrink_to > rec:
                why += f" (highest of the last {policy.scale_down_stabilization:g}s; {rec} now)"
            elif shrink_to > 0 and rps / shrink_to > policy.target_rps:
                why += f" ({rps / shrink_to:.1f} per instance: inside the band, nearest the target)"
    elif rec != current:
        window = policy.scale_up_stabilization if rec > current else policy.scale_down_stabilization
        target, why = current, f"{what}: {rec} now, held by the {window:g}s stabilization window"
    else:
        target, why = current, f"{what}: keep {current}"
        if history.last_change is not None and upper is not None and current > 0 \
                and rps / current > policy.upper_band:
            why += f" (scaled down {now - history.last_change[0]:g}s ago: growing again needs over {upper:.0f})"

    target, why = _limited(target, why, current, rps, policy)
    if target != current:
        remembered = History(remembered.recommendations, (now, 1 if target > current else -1), remembered.last_rps)
    return Decision(target, why, current, rps, rec, remembered)
