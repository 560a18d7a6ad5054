"""Unit tests of Chronos's ISO 8601 repeating schedules: parsing, formatting, calendar arithmetic
(month ends, leap days, DST), repetition counting, the rewrite after a run, and epsilon."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wharf.contracts import chronos_schedule as sched
from wharf.contracts.chronos_schedule import Period, Schedule, ScheduleError

pytestmark = pytest.mark.unit

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def starts(schedule: Schedule, count: int) -> list[str]:
    """The first `count` occurrences as Chronos would print them."""
    moments = []
    while len(moments) < count:
        step = sched.advance(schedule, schedule.start)
        moments.append(sched.format_datetime(schedule.start))
        assert step is not None
        schedule = step
    return moments


# --- parsing -------------------------------------------------------------------------------------

def test_parse_reads_repetitions_start_and_period() -> None:
    schedule = sched.parse("R10/2012-10-01T05:52:00Z/PT2S")
    assert schedule == Schedule(10, utc(2012, 10, 1, 5, 52), Period(seconds=2))


@pytest.mark.parametrize(("text", "repetitions"), [
    ("R/2016-12-05T22:00:00.000Z/P1D", None),
    ("R0/2016-12-05T22:00:00.000Z/P1D", 0),
    ("R1/2016-12-05T22:00:00.000Z/P1D", 1),
    ("R007/2016-12-05T22:00:00.000Z/P1D", 7),
])
def test_repetitions(text: str, repetitions: int | None) -> None:
    assert sched.parse(text).repetitions == repetitions


@pytest.mark.parametrize(("start", "expected"), [
    ("2014-03-08T20:00:00.000Z", utc(2014, 3, 8, 20)),
    ("2014-03-08T20:00:00Z", utc(2014, 3, 8, 20)),
    ("2014-03-08T20:00Z", utc(2014, 3, 8, 20)),
    ("2014-03-08T20Z", utc(2014, 3, 8, 20)),
    ("2014-03-08", utc(2014, 3, 8)),
    ("2014-03-08T20:00:00", utc(2014, 3, 8, 20)),  # no offset: UTC
    ("2014-03-08T20:00:00.123456Z", utc(2014, 3, 8, 20, 0, 0, 123000)),  # milliseconds, as Joda
    ("1997-07-16T19:20:30.45+01:00", datetime(1997, 7, 16, 19, 20, 30, 450000,
                                               tzinfo=timezone(timedelta(hours=1)))),
    ("2014-03-08T20:00:00-0530", datetime(2014, 3, 8, 20, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))),
    ("2014-03-08T20:00:00+00:00", utc(2014, 3, 8, 20)),
])
def test_start_forms(start: str, expected: datetime) -> None:
    parsed = sched.parse(f"R/{start}/PT1H").start
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(("text", "message"), [
    ("R/2026-13-01T00:00:00Z/PT1H", "schedule 'R/2026-13-01T00:00:00Z/PT1H': bad start '2026-13-01T00:00:00Z'"),
    ("R/2026-02-30T00:00:00Z/PT1H", "bad start"),
    ("R/2026-01-01T24:00:00Z/PT1H", "bad start"),
    ("R/2026-01-01T00:00:00+24:00/PT1H", "bad start"),
    ("R/tomorrow/PT1H", "bad start"),
    ("R/2026-01-01T00:00:00Z/P1Q", "bad duration"),
    ("R/2026-01-01T00:00:00Z/P", "bad duration"),
    ("R/2026-01-01T00:00:00Z/PT", "bad duration"),
    ("R/2026-01-01T00:00:00Z/P1DT", "bad duration"),
    ("R/2026-01-01T00:00:00Z/PT1H2D", "bad duration"),
    ("R/2026-01-01T00:00:00Z/PT1.5S", "bad duration"),
    ("R/2026-01-01T00:00:00Z/P-1D", "bad duration"),
    ("R/2026-01-01T00:00:00Z/PT0S", "the period must be longer than zero"),
    ("R/2026-01-01T00:00:00Z/P0Y0M", "the period must be longer than zero"),
    ("2026-01-01T00:00:00Z/PT1H", "not of the form R[n]/<start>/<period>"),
    ("R-1/2026-01-01T00:00:00Z/PT1H", "bad repeat count 'R-1'"),
    ("Rx/2026-01-01T00:00:00Z/PT1H", "bad repeat count 'Rx'"),
    ("R/2026-01-01T00:00:00Z/1H", "bad duration '1H'"),
    ("R/2026-01-01T00:00:00Z", "not of the form"),
    (" R/2026-01-01T00:00:00Z/PT1H", "not of the form"),
    ("", "not of the form"),
])
def test_parse_errors_name_the_schedule_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        sched.parse(text)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"schedule '{text}': ")
    assert "\n" not in str(caught.value)


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


def test_empty_start_means_now_from_the_injected_clock() -> None:
    now = datetime(2026, 5, 1, 14, 0, 0, 123999, tzinfo=NEW_YORK)
    schedule = sched.parse("R1//PT24H", now=now)
    assert schedule.start == utc(2026, 5, 1, 18, 0, 0, 123000)
    assert sched.format(schedule) == "R1/2026-05-01T18:00:00.123Z/PT24H"


def test_empty_start_without_a_clock_is_an_error() -> None:
    with pytest.raises(ScheduleError, match="an empty start means now"):
        sched.parse("R1//PT24H")


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sched.next_run(sched.parse("R/2026-01-01T00:00:00Z/PT1H"), datetime(2026, 1, 1))


# --- scheduleTimeZone ----------------------------------------------------------------------------

def test_schedule_time_zone_takes_precedence_over_the_offset_keeping_wall_time() -> None:
    # The documented example: the effective zone is Pacific, at 18:32 local.
    schedule = sched.parse("R/2014-10-10T18:32:00Z/PT60M", "PST")
    assert schedule.start.tzinfo == LOS_ANGELES
    assert (schedule.start.hour, schedule.start.minute) == (18, 32)
    assert schedule.start == utc(2014, 10, 11, 1, 32)
    assert sched.format(schedule) == "R/2014-10-10T18:32:00.000-07:00/PT60M"


def test_schedule_time_zone_reads_a_start_without_offset() -> None:
    schedule = sched.parse("R/2026-01-15T09:00:00/P1D", "America/New_York")
    assert schedule.start == utc(2026, 1, 15, 14)


def test_the_formatted_schedule_reads_back_the_same_in_its_zone() -> None:
    schedule = sched.parse("R5/2026-07-01T09:00:00/P1D", "Europe/Berlin")
    assert sched.parse(sched.format(schedule), "Europe/Berlin") == schedule


@pytest.mark.parametrize(("name", "offset_hours"), [
    ("UTC", 0), ("Etc/GMT+5", -5), ("EST", -5), ("GMT+05:30", 5.5), ("GMT-3", -3), ("JST", 9),
])
def test_zone_names_java_accepts(name: str, offset_hours: float) -> None:
    start = sched.parse("R/2026-01-15T12:00:00/PT1H", name).start
    assert start.utcoffset() == timedelta(hours=offset_hours)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "PDT", "GMT+25:00", "../etc/passwd"])
def test_unknown_zone_is_an_error(name: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(f"unknown scheduleTimeZone '{name}'")):
        sched.parse("R/2026-01-15T12:00:00Z/PT1H", name)


# --- formatting ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "canonical"), [
    ("R/2014-03-08T20:00:00.000Z/PT2H", "R/2014-03-08T20:00:00.000Z/PT2H"),
    ("R10/2012-10-01T05:52:00Z/PT2S", "R10/2012-10-01T05:52:00.000Z/PT2S"),
    ("R/2014-10-10T18:32:00+00:00/PT60M", "R/2014-10-10T18:32:00.000Z/PT60M"),
    ("R/2014-10-10T18:32:00.5+05:30/P0Y1M", "R/2014-10-10T18:32:00.500+05:30/P1M"),
    ("R2/2014-10-10/P1Y12M12D", "R2/2014-10-10T00:00:00.000Z/P1Y12M12D"),
    ("R/2014-10-10T18:32:00Z/P1Y2M3DT4H5M6S", "R/2014-10-10T18:32:00.000Z/P1Y2M3DT4H5M6S"),
    ("R/2016-12-05T22:00:00.000Z/P1W", "R/2016-12-05T22:00:00.000Z/P1W"),
])
def test_format_prints_what_chronos_prints(text: str, canonical: str) -> None:
    assert sched.format(sched.parse(text)) == canonical


@pytest.mark.parametrize(("text", "period"), [
    ("PT0S", Period()), ("P1W2D", Period(weeks=1, days=2)), ("PT90M", Period(minutes=90)),
    ("P1Y2M3W4DT5H6M7S", Period(1, 2, 3, 4, 5, 6, 7)),
])
def test_periods_round_trip(text: str, period: Period) -> None:
    assert sched.parse_period(text) == period
    assert sched.format_period(period) == text


# --- calendar arithmetic -------------------------------------------------------------------------

def test_monthly_from_the_31st_clamps_to_each_month_end() -> None:
    schedule = sched.parse("R/2024-01-31T10:00:00Z/P1M")
    occurrences = [sched.add_period(schedule.start, schedule.period, k) for k in range(5)]
    assert [moment.date().isoformat() for moment in occurrences] == [
        "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]


def test_the_rewrite_after_each_run_drifts_as_chronos_does() -> None:
    # Chronos stores start+period after each run, so Jan 31 -> Feb 29 -> Mar 29 (not Mar 31).
    assert starts(sched.parse("R/2024-01-31T10:00:00Z/P1M"), 4) == [
        "2024-01-31T10:00:00.000Z", "2024-02-29T10:00:00.000Z",
        "2024-03-29T10:00:00.000Z", "2024-04-29T10:00:00.000Z"]


def test_years_then_months_then_days_in_joda_order() -> None:
    leap_day = utc(2024, 2, 29, 12)
    assert sched.add_period(leap_day, Period(years=1)) == utc(2025, 2, 28, 12)
    assert sched.add_period(leap_day, Period(years=1, months=1)) == utc(2025, 3, 28, 12)
    assert sched.add_period(utc(2024, 1, 31), Period(months=1, days=1)) == utc(2024, 3, 1)
    assert sched.add_period(utc(2023, 12, 31, 23, 30), Period(months=2, minutes=45)) == utc(2024, 3, 1, 0, 15)


def test_daily_keeps_wall_time_across_spring_forward() -> None:
    schedule = sched.parse("R/2026-03-07T09:00:00/P1D", "America/New_York")
    assert starts(schedule, 3) == [
        "2026-03-07T09:00:00.000-05:00", "2026-03-08T09:00:00.000-04:00", "2026-03-09T09:00:00.000-04:00"]


def test_twenty_four_hours_is_elapsed_time_across_spring_forward() -> None:
    schedule = sched.parse("R/2026-03-07T09:00:00/PT24H", "America/New_York")
    assert starts(schedule, 2) == ["2026-03-07T09:00:00.000-05:00", "2026-03-08T10:00:00.000-04:00"]


def test_a_wall_time_in_the_gap_moves_forward_then_returns() -> None:
    schedule = sched.parse("R/2026-03-07T02:30:00/P1D", "America/New_York")
    assert [sched.format_datetime(sched.add_period(schedule.start, schedule.period, k)) for k in range(3)] == [
        "2026-03-07T02:30:00.000-05:00", "2026-03-08T03:30:00.000-04:00", "2026-03-09T02:30:00.000-04:00"]


def test_daily_across_fall_back_keeps_the_offset_in_the_overlap_then_moves_on() -> None:
    schedule = sched.parse("R/2026-10-31T01:30:00/P1D", "America/New_York")
    assert starts(schedule, 3) == [
        "2026-10-31T01:30:00.000-04:00", "2026-11-01T01:30:00.000-04:00", "2026-11-02T01:30:00.000-05:00"]


def test_half_hourly_across_fall_back_is_evenly_spaced_in_real_time() -> None:
    schedule = sched.parse("R/2026-11-01T00:30:00/PT30M", "America/New_York")
    moments = [sched.add_period(schedule.start, schedule.period, k) for k in range(6)]
    assert [sched.format_datetime(moment)[11:] for moment in moments] == [
        "00:30:00.000-04:00", "01:00:00.000-04:00", "01:30:00.000-04:00",
        "01:00:00.000-05:00", "01:30:00.000-05:00", "02:00:00.000-05:00"]
    instants = [moment.astimezone(UTC) for moment in moments]
    assert all(b - a == timedelta(minutes=30) for a, b in zip(instants, instants[1:], strict=False))
    # next_run compares instants, not wall times, inside the repeated hour.
    assert sched.next_run(schedule, utc(2026, 11, 1, 5, 45)).astimezone(UTC) == utc(2026, 11, 1, 6)


# --- next runs, counting, the rewrite ------------------------------------------------------------

@pytest.mark.parametrize(("now", "expected"), [
    (utc(2026, 1, 1), utc(2026, 1, 1, 10)),                   # before the start: the start
    (utc(2026, 1, 1, 10), utc(2026, 1, 1, 10)),               # at an occurrence: that one
    (utc(2026, 1, 1, 10, 0, 1), utc(2026, 1, 1, 12)),         # just after: the next
    (utc(2026, 1, 1, 13, 59, 59), utc(2026, 1, 1, 14)),
    (utc(2026, 1, 1, 14, 0, 1), None),                        # R3: 10:00, 12:00, 14:00, then none
])
def test_next_run(now: datetime, expected: datetime | None) -> None:
    assert sched.next_run(sched.parse("R3/2026-01-01T10:00:00Z/PT2H"), now) == expected


def test_next_run_far_ahead_is_computed_not_iterated() -> None:
    schedule = sched.parse("R/1970-01-01T00:00:00Z/PT1S")
    assert sched.next_run(schedule, utc(2026, 6, 1, 12, 0, 0, 1)) == utc(2026, 6, 1, 12, 0, 1)


def test_next_run_of_monthly_on_the_31st() -> None:
    schedule = sched.parse("R/2024-01-31T10:00:00Z/P1M")
    assert sched.next_run(schedule, utc(2024, 4, 1)) == utc(2024, 4, 30, 10)
    assert sched.next_run(schedule, utc(2030, 2, 1)) == utc(2030, 2, 28, 10)


def test_r0_never_runs() -> None:
    schedule = sched.parse("R0/2026-01-01T10:00:00Z/PT1H")
    assert sched.next_run(schedule, utc(2025, 1, 1)) is None
    assert not sched.is_due(schedule, utc(2026, 1, 1, 10), timedelta(hours=1))
    assert sched.advance(schedule, utc(2026, 1, 1, 10)) is None


def test_rn_runs_n_times_and_is_left_as_r0() -> None:
    schedule: Schedule | None = sched.parse("R3/2026-01-01T10:00:00Z/PT1H")
    runs = []
    while schedule is not None and schedule.repetitions != 0:
        runs.append(schedule.start)
        schedule = sched.advance(schedule, schedule.start)
    assert runs == [utc(2026, 1, 1, 10), utc(2026, 1, 1, 11), utc(2026, 1, 1, 12)]
    assert schedule is not None and sched.format(schedule) == "R0/2026-01-01T13:00:00.000Z/PT1H"


def test_advance_rewrites_the_string_as_chronos_stores_it() -> None:
    schedule = sched.parse("R10/2012-10-01T05:52:00Z/PT2S")
    after = sched.advance(schedule, utc(2012, 10, 1, 5, 52, 0, 300000))
    assert after is not None and sched.format(after) == "R9/2012-10-01T05:52:02.000Z/PT2S"


def test_advance_skips_missed_runs_and_counts_them() -> None:
    schedule = sched.parse("R5/2026-01-01T00:00:00Z/PT1H")
    after = sched.advance(schedule, utc(2026, 1, 1, 2, 30))  # 00:00, 01:00, 02:00 are gone
    assert after == Schedule(2, utc(2026, 1, 1, 3), Period(hours=1))
    assert sched.advance(schedule, utc(2027, 1, 1)) == Schedule(0, utc(2026, 1, 1, 5), Period(hours=1))


def test_advance_forever_stays_forever() -> None:
    after = sched.advance(sched.parse("R/2026-01-01T00:00:00Z/P1D"), utc(2026, 3, 1, 12))
    assert after is not None and sched.format(after) == "R/2026-03-02T00:00:00.000Z/P1D"


def test_advance_before_the_start_consumes_the_first_run() -> None:
    after = sched.advance(sched.parse("R2/2026-01-01T00:00:00Z/P1D"), utc(2025, 12, 31, 23, 59))
    assert after == Schedule(1, utc(2026, 1, 2), Period(days=1))


def test_near_the_end_of_time_there_is_no_next_run() -> None:
    schedule = sched.parse("R/9999-12-31T00:00:00Z/P1D")
    assert sched.next_run(schedule, utc(9999, 12, 31, 1)) is None
    assert sched.advance(schedule, utc(9999, 12, 31, 1)) is None


# --- epsilon -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("now", "due"), [
    (utc(2026, 1, 1, 9, 59, 59), False),          # not yet
    (utc(2026, 1, 1, 10), True),                  # on time
    (utc(2026, 1, 1, 10, 0, 59), True),           # late, within epsilon
    (utc(2026, 1, 1, 10, 1), True),               # exactly epsilon late: still started
    (utc(2026, 1, 1, 10, 1, 0, 1000), False),     # beyond epsilon: skipped
    (utc(2026, 1, 1, 11, 0, 30), True),           # the 11:00 run, 30 s late
])
def test_is_due_with_the_default_epsilon(now: datetime, due: bool) -> None:
    schedule = sched.parse("R/2026-01-01T10:00:00Z/PT1H")
    assert sched.is_due(schedule, now, sched.parse_period("PT60S")) is due
    assert sched.is_due(schedule, now, timedelta(seconds=60)) is due


def test_is_due_looks_at_the_latest_missed_run() -> None:
    schedule = sched.parse("R/2026-01-01T00:00:00Z/PT1H")  # never advanced since midnight
    assert sched.is_due(schedule, utc(2026, 1, 5, 7, 10), Period(minutes=15))
    assert not sched.is_due(schedule, utc(2026, 1, 5, 7, 20), Period(minutes=15))


def test_is_due_with_a_calendar_epsilon() -> None:
    schedule = sched.parse("R/2026-03-31T00:00:00Z/P1M")
    assert sched.is_due(schedule, utc(2026, 4, 29), Period(months=1))


def test_a_zero_epsilon_runs_only_on_time() -> None:
    schedule = sched.parse("R/2026-01-01T10:00:00Z/PT1H")
    assert sched.is_due(schedule, utc(2026, 1, 1, 10), Period())
    assert not sched.is_due(schedule, utc(2026, 1, 1, 10, 0, 0, 1000), Period())


def test_check_start_refuses_a_start_over_a_year_old() -> None:
    now = utc(2026, 6, 1)
    sched.check_start(sched.parse("R/2025-06-01T00:00:00Z/P1D"), now)
    with pytest.raises(ScheduleError, match="more than 1 year in the past"):
        sched.check_start(sched.parse("R/2025-05-31T23:59:59Z/P1D"), now)


# --- properties ----------------------------------------------------------------------------------

_MOMENTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31))
_OFFSETS = st.one_of(
    st.just("Z"),
    st.tuples(st.sampled_from("+-"), st.integers(0, 14), st.sampled_from([0, 15, 30, 45]))
    .filter(lambda parts: parts[1] or parts[2])
    .map(lambda parts: f"{parts[0]}{parts[1]:02d}:{parts[2]:02d}"),
)
_PERIODS = st.builds(
    Period,
    years=st.integers(0, 2), months=st.integers(0, 14), weeks=st.integers(0, 3), days=st.integers(0, 40),
    hours=st.integers(0, 30), minutes=st.integers(0, 90), seconds=st.integers(0, 100_000),
).filter(lambda period: not period.is_zero)
_REPETITIONS = st.one_of(st.just(""), st.integers(0, 10**6).map(str))
_ZONES = st.sampled_from([None, "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "PST", "UTC"])


@st.composite
def canonical_schedules(draw: st.DrawFn) -> str:
    moment = draw(_MOMENTS)
    return (f"R{draw(_REPETITIONS)}/{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}"
            f"{draw(_OFFSETS)}/{sched.format_period(draw(_PERIODS))}")


@given(canonical_schedules())
def test_format_parse_round_trip(text: str) -> None:
    assert sched.format(sched.parse(text)) == text


@given(canonical_schedules(), _ZONES)
def test_a_formatted_schedule_reads_back_unchanged_in_its_zone(text: str, zone: str | None) -> None:
    schedule = sched.parse(text, zone)
    assert sched.parse(sched.format(schedule), zone) == schedule


@settings(max_examples=300)
@given(canonical_schedules(), _ZONES, _MOMENTS, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=800)))
def test_next_run_is_monotonic_and_not_before_now(text: str, zone: str | None, now: datetime,
                                                  later: timedelta) -> None:
    schedule = sched.parse(text, zone)
    first_now, second_now = now.replace(tzinfo=UTC), now.replace(tzinfo=UTC) + later
    first, second = sched.next_run(schedule, first_now), sched.next_run(schedule, second_now)
    if first is None:
        assert second is None
        return
    assert first.astimezone(UTC) >= first_now
    assert sched.next_run(schedule, first) == first
    assert sched.is_due(schedule, first, timedelta(0))
    if second is not None:
        assert second.astimezone(UTC) >= first.astimezone(UTC)


@given(canonical_schedules(), _ZONES)
def test_each_rewrite_moves_the_start_forward_and_counts_down(text: str, zone: str | None) -> None:
    schedule: Schedule | None = sched.parse(text, zone)
    for _ in range(5):
        assert schedule is not None
        following = sched.advance(schedule, schedule.start)
        if schedule.repetitions == 0:
            assert following is None
            return
        if following is None:  # beyond the year 9999
            return
        assert following.start.astimezone(UTC) > schedule.start.astimezone(UTC)
        if schedule.repetitions is not None:
            assert following.repetitions == schedule.repetitions - 1
        schedule = following
