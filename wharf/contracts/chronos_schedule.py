"""Chronos's ISO 8601 repeating schedules, `R[n]/<start>/<period>`: parse, format, step and decide.

What Chronos does, and so what this module does:
- `R` repeats forever, `Rn` means n more runs, `R0` never runs. The occurrences are
  `start + period * k` for k = 0 .. n-1 (Joda's `start.plus(period.multipliedBy(k))`).
- The start is an ISO 8601 date-time; an empty start means "now" (Chronos reads the clock while
  parsing; here the clock is the `now` argument). A start without an offset is read as UTC (Chronos
  uses the JVM's default zone, UTC in its packaged images).
- `scheduleTimeZone` takes precedence over any offset in the start: the wall-clock fields are kept
  and re-read in that zone (Joda's `withZoneRetainFields`), so `R/2014-10-10T18:32:00Z/PT60M` with
  `PST` starts at 18:32 in Los Angeles. Java's legacy three-letter ids (`PST`, `CST`, `IST`, ...)
  are accepted as Java maps them; an unknown zone is an error (Java silently falls back to GMT).
- Periods add field by field as Joda does: years, months (clamped to the month's last day), weeks and
  days as wall-clock calendar arithmetic in the start's zone, then hours, minutes and seconds as
  elapsed time. A wall time that falls into a DST gap moves forward by the gap.
- After a run Chronos rewrites the stored schedule as `R(n-1)/<next start>/<period>`, skipping
  forward past any runs it missed (`JobUtils.skipForward`); `advance` is that rewrite.
- Epsilon (Chronos 2.x): a run that was missed is still started if it is at most `epsilon` late,
  otherwise it is skipped. Missed runs are collapsed: at most one run starts per `advance`.
- `format` prints what Chronos prints: `ISODateTimeFormat.dateTime` (milliseconds, `Z` for a zero
  offset) and the canonical period (`ISOPeriodFormat.standard`, zero fields left out).

Deliberate limits: whole-number period fields only (no `PT1.5S`), extended-format calendar dates only
(no week or ordinal dates, no fractional hours), offsets of whole minutes.

Pure functions over frozen values; every "now" is an argument and must be timezone-aware. Used by
`chronos_jobs` (specs, plans, status) and by the Chronos stand-in alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wharf.errors import BadInput

__all__ = [
    "Period", "Schedule", "ScheduleError", "add_period", "advance", "check_start", "format",
    "format_datetime", "format_period", "is_due", "next_run", "occurrence_index", "parse", "parse_datetime",
    "parse_period", "resolve_zone",
]


class ScheduleError(BadInput, ValueError):
    """A schedule, period, date-time or time zone that cannot be read."""


@dataclass(frozen=True)
class Period:
    """An ISO 8601 period, field by field as written (`PT60M` stays sixty minutes)."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @property
    def is_zero(self) -> bool:
        return not any((self.years, self.months, self.weeks, self.days,
                        self.hours, self.minutes, self.seconds))


@dataclass(frozen=True)
class Schedule:
    """A parsed repeating schedule: `repetitions` is None for `R` (forever)."""

    repetitions: int | None
    start: datetime
    period: Period


# --- periods -------------------------------------------------------------------------------------

_PERIOD = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)
_DATE_UNITS = (("years", "Y"), ("months", "M"), ("weeks", "W"), ("days", "D"))
_TIME_UNITS = (("hours", "H"), ("minutes", "M"), ("seconds", "S"))


def parse_period(text: str) -> Period:
    """Read `P[nY][nM][nW][nD][T[nH][nM][nS]]`; a zero period is valid here (an epsilon may be zero)."""
    match = _PERIOD.fullmatch(text) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise ScheduleError(f"period '{text}' is not an ISO 8601 period P[nY][nM][nW][nD][T[nH][nM][nS]]")
    return Period(**{unit: int(value) for unit, value in match.groupdict().items() if value})


def format_period(period: Period) -> str:
    """The canonical form Joda prints: non-zero fields only, `PT0S` for a zero period."""
    date = "".join(f"{getattr(period, unit)}{letter}" for unit, letter in _DATE_UNITS if getattr(period, unit))
    time = "".join(f"{getattr(period, unit)}{letter}" for unit, letter in _TIME_UNITS if getattr(period, unit))
    if not date and not time:
        return "PT0S"
    return "P" + date + ("T" + time if time else "")


def _add_months(local: datetime, months: int) -> datetime:
    year, month0 = divmod(local.month - 1 + months, 12)
    year += local.year
    day = min(local.day, _days_in_month(year, month0 + 1))
    return local.replace(year=year, month=month0 + 1, day=day)


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (datetime(year, month + 1, 1) - datetime(year, month, 1)).days


def _localize(local: datetime, zone: tzinfo | None, prefer: timedelta | None) -> datetime:
    """Attach `zone` to a wall time: gaps move forward, overlaps keep the `prefer`red offset if they can."""
    early = local.replace(tzinfo=zone, fold=0)
    late = local.replace(tzinfo=zone, fold=1)
    chosen = late if late.utcoffset() != early.utcoffset() and late.utcoffset() == prefer else early
    return chosen.astimezone(UTC).astimezone(zone)


def add_period(moment: datetime, period: Period, times: int = 1) -> datetime:
    """`moment + period * times` the way Joda adds a period to a zoned date-time.

    Raises OverflowError past the year 9999.
    """
    zone = moment.tzinfo
    local = moment.replace(tzinfo=None)
    try:
        shifted = local
        if period.years:
            shifted = _add_months(shifted, 12 * period.years * times)
        if period.months:
            shifted = _add_months(shifted, period.months * times)
        days = (7 * period.weeks + period.days) * times
        if days:
            shifted = shifted + timedelta(days=days)
        if shifted != local:
            moment = _localize(shifted, zone, moment.utcoffset())
        seconds = (3600 * period.hours + 60 * period.minutes + period.seconds) * times
        if seconds:
            moment = (moment.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(zone)
    except ValueError as error:  # a year out of datetime's range
        raise OverflowError(str(error)) from error
    return moment


# --- date-times and zones ------------------------------------------------------------------------

_DATETIME = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?)?"
    r"(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)?)?"
)

# Java's legacy three-letter ids, resolved as java.util.TimeZone resolves them (JDK ZoneId.SHORT_IDS).
_JAVA_SHORT_IDS = {
    "ACT": "Australia/Darwin", "AET": "Australia/Sydney", "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo", "AST": "America/Anchorage", "BET": "America/Sao_Paulo",
    "BST": "Asia/Dhaka", "CAT": "Africa/Harare", "CNT": "America/St_Johns", "CST": "America/Chicago",
    "CTT": "Asia/Shanghai", "EAT": "Africa/Addis_Ababa", "ECT": "Europe/Paris",
    "IET": "America/Indiana/Indianapolis", "IST": "Asia/Kolkata", "JST": "Asia/Tokyo",
    "MIT": "Pacific/Apia", "NET": "Asia/Yerevan", "NST": "Pacific/Auckland", "PLT": "Asia/Karachi",
    "PNT": "America/Phoenix", "PRT": "America/Puerto_Rico", "PST": "America/Los_Angeles",
    "SST": "Pacific/Guadalcanal", "VST": "Asia/Ho_Chi_Minh",
}
_JAVA_FIXED_IDS = {"EST": -5, "MST": -7, "HST": -10}
_JAVA_CUSTOM_ID = re.compile(r"GMT(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?")


def resolve_zone(name: str) -> tzinfo:
    """An IANA zone name, one of Java's legacy ids (`PST`), or a Java custom id (`GMT+05:30`)."""
    if name in _JAVA_FIXED_IDS:
        return timezone(timedelta(hours=_JAVA_FIXED_IDS[name]), name)
    custom = _JAVA_CUSTOM_ID.fullmatch(name)
    if custom:
        hours, minutes = int(custom["hours"]), int(custom["minutes"] or 0)
        if hours > 23 or minutes > 59:
            raise ScheduleError(f"unknown time zone '{name}'")
        sign = -1 if custom["sign"] == "-" else 1
        return timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return ZoneInfo(_JAVA_SHORT_IDS.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone '{name}'") from None


def _offset(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("offset out of range")
    delta = timedelta(hours=hours, minutes=minutes) * (-1 if text[0] == "-" else 1)
    return UTC if not delta else timezone(delta)


def parse_datetime(text: str, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 date or date-time, to the millisecond; `zone` replaces any offset, keeping wall time."""
    match = _DATETIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ScheduleError(f"'{text}' is not an ISO 8601 date-time")
    fraction = (match["fraction"] or "")[:3].ljust(3, "0")
    try:
        local = datetime(int(match["year"]), int(match["month"]), int(match["day"]),
                         int(match["hour"] or 0), int(match["minute"] or 0), int(match["second"] or 0),
                         int(fraction) * 1000)
        if zone is not None:
            return _localize(local, zone, None)
        return local.replace(tzinfo=_offset(match["offset"]) if match["offset"] else UTC)
    except ValueError:
        raise ScheduleError(f"'{text}' is not a valid date-time") from None


def format_datetime(moment: datetime) -> str:
    """`yyyy-MM-ddTHH:mm:ss.SSS` plus `Z` or `±HH:MM`, in the moment's own zone (Joda's dateTime)."""
    offset = moment.utcoffset() or timedelta(0)
    if offset:
        minutes = int(abs(offset).total_seconds()) // 60
        suffix = f"{'-' if offset < timedelta(0) else '+'}{minutes // 60:02d}:{minutes % 60:02d}"
    else:
        suffix = "Z"
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}"
            f":{moment.second:02d}.{moment.microsecond // 1000:03d}{suffix}")


# --- schedules -----------------------------------------------------------------------------------

_SCHEDULE = re.compile(r"R(?P<repetitions>[^/]*)/(?P<start>[^/]*)/(?P<period>[^/]*)")


def _utc(moment: datetime, what: str = "now") -> datetime:
    """The instant in UTC. Comparing in UTC matters: Python compares two datetimes that share a
    tzinfo by wall time, which is wrong inside a DST overlap."""
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


def parse(text: str, tz: str | None = None, *, now: datetime | None = None) -> Schedule:
    """Read `R[n]/<start>/<period>`; `tz` is the job's `scheduleTimeZone`, `now` fills an empty start."""
    def fail(problem: str) -> ScheduleError:
        return ScheduleError(f"schedule '{text}': {problem}")

    match = _SCHEDULE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise fail("not of the form R[n]/<start>/<period>")
    if not re.fullmatch(r"\d*", match["repetitions"], re.ASCII):
        raise fail(f"bad repeat count 'R{match['repetitions']}': R repeats forever, R<n> n times (n a whole number)")
    repetitions = int(match["repetitions"]) if match["repetitions"] else None
    zone = None
    if tz:
        try:
            zone = resolve_zone(tz)
        except ScheduleError:
            raise fail(f"unknown scheduleTimeZone '{tz}'") from None
    if match["start"]:
        try:
            start = parse_datetime(match["start"], zone)
        except ScheduleError:
            raise fail(f"bad start '{match['start']}': not a valid ISO 8601 date-time") from None
    elif now is None:
        raise fail("an empty start means now, and no current time was given")
    else:
        start = _utc(now)
        start = start.replace(microsecond=start.microsecond // 1000 * 1000)
    try:
        period = parse_period(match["period"])
    except ScheduleError:
        raise fail(f"bad duration '{match['period']}': not an ISO 8601 period "
                   "P[nY][nM][nW][nD][T[nH][nM][nS]]") from None
    if period.is_zero:
        raise fail("the period must be longer than zero")
    return Schedule(repetitions, start, period)


def format(schedule: Schedule) -> str:
    """The schedule string Chronos stores and returns."""
    repetitions = "" if schedule.repetitions is None else str(schedule.repetitions)
    return f"R{repetitions}/{format_datetime(schedule.start)}/{format_period(schedule.period)}"


def _at(schedule: Schedule, index: int) -> datetime | None:
    """Occurrence `index` (from 0) in the start's zone, or None when it lies beyond the year 9999."""
    try:
        return add_period(schedule.start, schedule.period, index)
    except OverflowError:
        return None


def _at_utc(schedule: Schedule, index: int) -> datetime | None:
    moment = _at(schedule, index)
    return None if moment is None else moment.astimezone(UTC)


def _seconds_estimate(period: Period) -> float:
    return (period.years * 31_556_952 + period.months * 2_629_746 + period.weeks * 604_800
            + period.days * 86_400 + period.hours * 3600 + period.minutes * 60 + period.seconds)


def _count_through(schedule: Schedule, now: datetime) -> int:
    """How many occurrences fall at or before `now` (a UTC instant)."""
    start = _utc(schedule.start, "start")
    if schedule.period.is_zero:
        raise ValueError("a schedule's period must be longer than zero")
    if schedule.repetitions == 0 or start > now:
        return 0

    def not_after(index: int) -> bool:
        moment = _at_utc(schedule, index)
        return moment is not None and moment <= now

    last = int((now - start).total_seconds() // _seconds_estimate(schedule.period))
    while last > 0 and not not_after(last):
        last -= 1
    while not_after(last + 1):
        last += 1
    count = last + 1
    return count if schedule.repetitions is None else min(count, schedule.repetitions)


def next_run(schedule: Schedule, now: datetime) -> datetime | None:
    """The first occurrence at or after `now`, or None when the schedule has run out."""
    now = _utc(now)
    count = _count_through(schedule, now)
    if count:
        last = _at(schedule, count - 1)
        if last is not None and last.astimezone(UTC) == now:
            return last
    if schedule.repetitions is not None and count >= schedule.repetitions:
        return None
    return _at(schedule, count)


def occurrence_index(schedule: Schedule, moment: datetime) -> int | None:
    """k such that `moment` is `start + period * k`, ignoring the repetition count; None if it is none."""
    moment = _utc(moment, "moment")
    forever = Schedule(None, schedule.start, schedule.period)
    count = _count_through(forever, moment)
    if count and _at_utc(forever, count - 1) == moment:
        return count - 1
    return None


def is_due(schedule: Schedule, now: datetime, epsilon: Period | timedelta) -> bool:
    """Whether a run should start now: the latest occurrence at or before `now` is at most `epsilon` late."""
    now = _utc(now)
    count = _count_through(schedule, now)
    if not count:
        return False
    scheduled = _at_utc(schedule, count - 1)
    if scheduled is None:
        return False
    if isinstance(epsilon, Period):
        try:
            earliest = add_period(now, epsilon, -1)
        except OverflowError:
            return True
    else:
        earliest = now - epsilon
    return earliest <= scheduled


def advance(schedule: Schedule, now: datetime) -> Schedule | None:
    """The schedule Chronos stores after a run at `now`: `R(n-k)/<first start after now>/<period>`.

    k counts the occurrence just run and any missed ones (at least one). The result may be `R0/...`,
    which Chronos keeps and disables; None means there was nothing left to run (or it lies past 9999).
    """
    now = _utc(now)
    if schedule.repetitions == 0:
        return None
    consumed = max(1, _count_through(schedule, now))
    if schedule.repetitions is not None:
        consumed = min(consumed, schedule.repetitions)
    start = _at(schedule, consumed)
    if start is None:
        return None
    remaining = None if schedule.repetitions is None else schedule.repetitions - consumed
    return Schedule(remaining, start, schedule.period)


def check_start(schedule: Schedule, now: datetime) -> None:
    """Refuse a new job whose start is more than a year in the past, as Chronos 3's `/iso8601` does."""
    now = _utc(now)
    if _utc(schedule.start, "start") < add_period(now, Period(years=1), -1):
        raise ScheduleError(f"schedule '{format(schedule)}': scheduled start date "
                            f"'{format_datetime(schedule.start)}' is more than 1 year in the past")
