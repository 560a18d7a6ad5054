"""The autoscaler's decision: pure, driven through load sequences the way the daemon drives it."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscale.decide import History, Reading, decide, needed, observed_rps, recommend
from autoscale.policy import Policy

pytestmark = pytest.mark.unit
TICK = 60.0


def run(rates: Sequence[float], policy: Policy, start: int, tick: float = TICK) -> list[int]:
    """Feed one rate per tick as HAProxy counters would show it; apply every decision at once.
    Returns the instance count after each tick."""
    count, history, total, t = start, History(), 0, 0.0
    previous = Reading(t, "h1#web_10000", total, rates[0])
    counts = []
    for rps in rates:
        t += tick
        total += int(round(rps * tick))
        reading = Reading(t, "h1#web_10000", total, rps)
        decision = decide([previous, reading], count, policy, t, history)
        assert decision.reason, "every decision has a reason"
        history, count, previous = decision.history, decision.target, reading
        counts.append(count)
    return counts


def direction_changes(counts: Sequence[int], tick: float = TICK) -> list[float]:
    """Times at which the count turned around (up after down, or down after up)."""
    changes, last_direction = [], 0
    for i in range(1, len(counts)):
        step = counts[i] - counts[i - 1]
        if step:
            direction = 1 if step > 0 else -1
            if last_direction and direction != last_direction:
                changes.append(i * tick)
            last_direction = direction
    return changes


def test_ramp_up_follows_the_load_without_overload_after_each_decision() -> None:
    policy = Policy(target_rps=100)
    rates = [100 + 50 * i for i in range(40)]  # 100 → 2050 rps
    counts = run(rates, policy, start=1)
    assert counts == sorted(counts), "a rising load never shrinks the app"
    for rps, count in zip(rates, counts, strict=True):
        assert rps / count <= policy.upper_band, f"{count} instances left {rps} rps overloaded"
    assert policy.lower_band <= rates[-1] / counts[-1] <= policy.upper_band


def test_ramp_down_waits_for_the_down_window_then_follows() -> None:
    policy = Policy(target_rps=100, scale_down_stabilization=300)
    rates = [2000.0] * 5 + [2000 - 100 * i for i in range(1, 19)] + [200.0] * 10
    counts = run(rates, policy, start=20)
    assert counts == sorted(counts, reverse=True), "a falling load never grows the app"
    first_down = next(i for i, c in enumerate(counts) if c < 20)
    assert first_down * TICK >= 300 - TICK, "shrank before the down window had passed"
    assert counts[-1] == 2, "ends at what the final load needs"


def test_a_short_spike_scales_up_at_once_and_down_only_after_the_down_window() -> None:
    policy = Policy(target_rps=100, scale_down_stabilization=300)
    rates = [400.0] * 3 + [2000.0] * 2 + [400.0] * 10
    counts = run(rates, policy, start=4)
    assert counts[3] == 19, "the first spike reading scales straight to what holds it inside the band"
    after_spike = counts[5:]
    assert after_spike[:4] == [19] * 4, "stays up through the down window"
    assert after_spike[-1] == 4


def test_a_spike_shorter_than_the_up_window_is_ignored() -> None:
    policy = Policy(target_rps=100, scale_up_stabilization=180)
    counts = run([400.0] * 3 + [2000.0] * 2 + [400.0] * 5, policy, start=4)
    assert set(counts) == {4}


def test_tolerance_band_never_blocks_a_needed_plus_one() -> None:
    policy = Policy(target_rps=100, tolerance=0.1)
    assert run([560.0], policy, start=5) == [6]  # 112 per instance: one more
    assert run([540.0], policy, start=5) == [5]  # 108: inside the band


@pytest.mark.parametrize("window", [120.0, 180.0, 300.0])
@pytest.mark.parametrize("count", [2, 5, 12])
def test_noisy_flat_load_turns_around_at_most_once_per_stabilization_window(count: int, window: float) -> None:
    """±8% noise around a load just past a band edge, where a rule without memory flaps."""
    policy = Policy(target_rps=100, scale_down_stabilization=window)
    for seed in range(8):
        rng = random.Random(seed)
        rates = [105 * count * (1 + rng.uniform(-0.08, 0.08)) for _ in range(240)]
        counts = run(rates, policy, start=count)
        changes = direction_changes(counts)
        for a, b in zip(changes, changes[1:], strict=False):
            assert b - a >= window, f"seed {seed}: turned at {a:g}s and again at {b:g}s, within {window:g}s"
        low, high = min(rates), max(rates)
        assert all(math.floor(low / policy.upper_band) <= c <= math.ceil(high / 100) for c in counts)


def test_zero_instances_with_traffic_get_one_even_when_min_is_zero() -> None:
    policy = Policy(target_rps=100, min_instances=0)
    readings = [Reading(0, "h", 0, 0.0), Reading(60, "h", 60 * 30, 30.0)]
    decision = decide(readings, 0, policy, 60)
    assert decision.target == 1 and decision.per_instance is None
    lots = [Reading(0, "h", 0, 0.0), Reading(60, "h", 60 * 450, 450.0)]
    assert decide(lots, 0, policy, 60).target == 5


def test_no_traffic_with_min_zero_scales_to_zero_after_the_down_window() -> None:
    counts = run([0.0] * 6, Policy(target_rps=100, min_instances=0, scale_down_stabilization=120), start=3)
    assert counts[-1] == 0


def test_counter_reset_after_a_reload_is_not_a_drop_in_load() -> None:
    """A reload gives HAProxy a new worker whose counters start at zero."""
    policy = Policy(target_rps=100)
    before = Reading(0, "h1#web_10000", 1_000_000, 500.0)
    after = Reading(60, "h1#web_10000", 2_000, 500.0)  # reloaded 4 s ago: 2,000 since, 500/s now
    assert observed_rps([before, after]) == pytest.approx(500.0)
    decision = decide([before, after], 5, policy, 60)
    assert decision.target == 5, decision.reason
    # the new worker has run most of the interval: its own count is the better estimate
    late = Reading(60, "h1#web_10000", 29_000, 300.0)
    assert observed_rps([before, late]) == pytest.approx(29_000 / 60)


def test_rates_are_summed_over_every_haproxy_and_backend() -> None:
    readings = [Reading(0, "h1#web_10000", 100, 0.0), Reading(10, "h1#web_10000", 1100, 90.0),
                Reading(0, "h2#web_10000", 50, 0.0), Reading(10, "h2#web_10000", 550, 40.0),
                Reading(10, "h2#web_10001", 7, 20.0)]  # a single reading: its current rate
    assert observed_rps(readings) == pytest.approx(100 + 50 + 20)
    assert observed_rps([]) is None


@settings(max_examples=200, deadline=None)
@given(rates=st.lists(st.integers(0, 10_000).map(float), min_size=1, max_size=30), start=st.integers(0, 60),
       low=st.integers(0, 10), span=st.integers(0, 30), max_step=st.none() | st.integers(1, 5),
       up=st.sampled_from([0.0, 120.0]), down=st.sampled_from([0.0, 60.0, 300.0]))
def test_bounds_always_hold(rates: list[float], start: int, low: int, span: int, max_step: int | None,
                            up: float, down: float) -> None:
    policy = Policy(target_rps=100, min_instances=low, max_instances=max(low, 1) + span, max_step=max_step,
                    scale_up_stabilization=up, scale_down_stabilization=down)
    for rps, count in zip(rates, run(rates, policy, start), strict=True):
        assert policy.min_instances <= count <= (policy.max_instances or count)
        if rps > 0:
            assert count >= 1


def test_bounds_pull_an_app_outside_them_back_in() -> None:
    policy = Policy(target_rps=100, min_instances=2, max_instances=10)
    readings = [Reading(0, "h", 0, 0.0), Reading(60, "h", 60 * 5000, 5000.0)]
    decision = decide(readings, 4, policy, 60)
    assert decision.target == 10 and "bounds" in decision.reason
    assert decide(readings, 30, policy, 60).target == 10


def test_max_step_limits_each_decision() -> None:
    counts = run([2000.0] * 4, Policy(target_rps=100, max_step=4), start=2)
    assert counts == [6, 10, 14, 18]


def test_no_decision_while_a_deployment_runs() -> None:
    readings = [Reading(0, "h", 0, 0.0), Reading(60, "h", 60 * 2000, 2000.0)]
    history = History(((30.0, 3),), None)
    decision = decide(readings, 3, Policy(target_rps=100), 60, history, deploying=True)
    assert decision.target == 3 and "deployment" in decision.reason
    assert decision.history == history, "a skipped cycle leaves nothing behind"
    assert decide(readings, 3, Policy(target_rps=100), 60, history).target == 19


def test_no_stats_means_no_decision() -> None:
    decision = decide([], 3, Policy(target_rps=100), 60)
    assert decision.target == 3 and decision.rps is None and "no stats" in decision.reason


def test_cooldown_holds_a_scale_down_after_a_change() -> None:
    policy = Policy(target_rps=100, scale_down_stabilization=0, cooldown=300)
    counts = run([1000.0] + [200.0] * 8, policy, start=5)
    assert counts[0] == 10
    assert counts[1:5] == [10] * 4 and counts[-1] == 2


def test_right_after_a_scale_down_noise_just_over_the_band_does_not_turn_the_count_around() -> None:
    policy = Policy(target_rps=100, scale_down_stabilization=300)
    history = History(((0.0, 6), (60.0, 5)), (60.0, -1))
    noisy = [Reading(60, "h", 0, 0.0), Reading(120, "h", 60 * 575, 575.0)]  # 115 per instance
    decision = decide(noisy, 5, policy, 120, history)
    assert decision.target == 5 and "growing again needs over 120" in decision.reason
    surge = [Reading(60, "h", 0, 0.0), Reading(120, "h", 60 * 650, 650.0)]  # 130: a real rise
    assert decide(surge, 5, policy, 120, history).target == 6
    assert decide(noisy, 5, policy, 400, history).target == 6, "after the window the band is the usual one"


def test_a_load_drifting_up_grows_only_as_far_as_the_band_needs() -> None:
    """Landing at the target on every small step pays for instances the band does not need."""
    policy = Policy(target_rps=100)
    rates = [10_000.0] * 3 + [10_000 + 100 * i for i in range(1, 16)] + [11_500.0] * 10
    counts = run(rates, policy, start=91)
    rising = counts[:18]
    assert rising == sorted(rising), "a rising load never shrinks the app"
    assert counts[18:] == sorted(counts[18:], reverse=True), "once it stops rising, what the trend asked for goes"
    for rps, count in zip(rates, counts, strict=True):
        assert rps / count <= policy.upper_band, f"{count} instances left {rps} rps over the band"
        assert count <= math.ceil(rps / policy.target_rps), "never more than the target alone would need"
    assert counts[-1] < 115, "at 11,500 rps it runs inside the band, not at the target's 115"


def test_a_surge_or_an_unknown_trend_lands_where_the_band_holds_it() -> None:
    policy = Policy(target_rps=100)
    assert run([400.0, 400.0, 2000.0], policy, start=4)[-1] == 19, "a surge: straight to 105 per instance"
    fresh = [Reading(0, "h", 0, 0.0), Reading(60, "h", 60 * 1150, 1150.0)]
    assert decide(fresh, 10, policy, 60).target == 11, "no previous rate (a restart): what the band holds"


def test_after_a_spike_it_shrinks_to_the_fewest_instances_the_band_holds() -> None:
    policy = Policy(target_rps=100, scale_down_stabilization=300)
    counts = run([400.0] * 3 + [2000.0] * 2 + [408.0] * 10, policy, start=4)
    assert counts[3] == 19 and counts[-1] == 4, "408 rps: 4 at 102 each, not 5 at 82 (under the band)"
    samples = ((-120.0, 2000.0), (-60.0, 2000.0), (0.0, 2000.0))
    history = History(((-60.0, 19), (0.0, 4)), None, samples)  # the previous decision saw the drop too
    readings = [Reading(0, "h", 0, 2000.0), Reading(60, "h", 60 * 408, 408.0)]
    decision = decide(readings, 19, Policy(target_rps=100, scale_down_stabilization=0), 60, history)
    assert decision.target == 4 and "scale down to 4" in decision.reason, decision.reason


@settings(max_examples=300, deadline=None)
@given(load=st.floats(0.5, 100_000), tolerance=st.sampled_from([0.0, 0.05, 0.1, 0.2]))
def test_the_recommendation_is_the_fewest_instances_the_band_holds(load: float, tolerance: float) -> None:
    policy = Policy(target_rps=100, tolerance=tolerance)
    count = recommend(load, policy)
    assert load / count <= policy.upper_band + 1e-9, "the load stays inside the band"
    assert count == 1 or load / (count - 1) > policy.upper_band - 1e-9, "one fewer would not hold it"
    assert count <= max(needed(load, policy), 1), "never more than landing at the target"
