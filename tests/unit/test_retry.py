"""The retry helper: capped exponential backoff with jitter, a deadline, and no shared state."""

from __future__ import annotations

import itertools

import pytest

from wharf.retry import Retry, RetryFailed

pytestmark = pytest.mark.unit


class Flaky:
    def __init__(self, failures: int, exc: type[Exception] = ConnectionError) -> None:
        self.failures, self.exc, self.calls = failures, exc, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"failure {self.calls}")
        return "ok"


def test_delays_grow_and_cap_without_jitter() -> None:
    retry = Retry(delay=0.5, backoff=2, max_delay=3, jitter=0)
    assert list(itertools.islice(retry.delays(), 5)) == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_stretches_by_at_most_the_fraction() -> None:
    retry = Retry(delay=1, backoff=1, jitter=0.5, rng=iter([0.0, 0.5, 0.999]).__next__)
    assert list(itertools.islice(retry.delays(), 3)) == pytest.approx([1.0, 1.25, 1.4995])


def test_retries_until_success_sleeping_between_tries() -> None:
    slept: list[float] = []
    retry = Retry(delay=0.1, jitter=0, sleep_func=slept.append)
    flaky = Flaky(failures=3)
    assert retry(flaky) == "ok"
    assert flaky.calls == 4
    assert slept == pytest.approx([0.1, 0.2, 0.4])


def test_max_tries_gives_up_with_the_last_error() -> None:
    retry = Retry(max_tries=3, sleep_func=lambda _: None)
    flaky = Flaky(failures=10)
    with pytest.raises(RetryFailed) as err:
        retry(flaky)
    assert flaky.calls == 3
    assert isinstance(err.value.last, ConnectionError) and "failure 3" in str(err.value)


def test_deadline_stops_before_a_wait_would_pass_it() -> None:
    now = [0.0]
    retry = Retry(delay=1, backoff=2, jitter=0, deadline=5, clock=lambda: now[0],
                  sleep_func=lambda s: now.__setitem__(0, now[0] + s))
    flaky = Flaky(failures=10)
    with pytest.raises(RetryFailed, match="gave up after 5s"):
        retry(flaky)
    # waits 1 and 2 fit in 5 s; the next (4) would end at 7
    assert flaky.calls == 3 and now[0] == 3


def test_other_exceptions_propagate_at_once() -> None:
    retry = Retry(retry_on=(ConnectionError,), sleep_func=lambda _: None)
    flaky = Flaky(failures=1, exc=ValueError)
    with pytest.raises(ValueError):
        retry(flaky)
    assert flaky.calls == 1


def test_one_policy_serves_many_calls() -> None:
    slept: list[float] = []
    retry = Retry(delay=0.1, jitter=0, sleep_func=slept.append)
    retry(Flaky(failures=2))
    retry(Flaky(failures=2))
    assert slept == pytest.approx([0.1, 0.2, 0.1, 0.2])
