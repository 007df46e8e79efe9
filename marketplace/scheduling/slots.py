"""Free bookable slots of a mentor, computed from availability rules and busy ranges.

Pure (stdlib only) so it can be property-tested without Flask or a database. The same core answers
both "which slots can I show?" (:func:`free_slots`) and "can this start be booked?"
(:func:`check_slot`), so anything that is listed can be booked and vice versa.

Wall-clock semantics, in the mentor's IANA zone:

* Rules are expanded per *local* date, so "Mondays 09:00-12:00" stays 09:00 local across DST.
* Candidate starts are the wall times ``interval.start + k * step`` before ``interval.end``. A wall time
  that does not exist (spring-forward gap) is skipped; an ambiguous one (fall-back fold) is taken
  once, at its first occurrence (``fold=0``).
* An interval ends at the *first instant at which the local clock reads its end wall time or later*.
  For an ordinary end that is simply the end wall time. For an ambiguous end (it occurs twice) it is
  the first occurrence, so the repeated hour is not silently added. For a nonexistent end (inside a
  gap) it is the transition instant, where the clock jumps past it.
* Sessions last real elapsed minutes and must end no later than that instant; a session must fit in
  a single interval (touching or overlapping intervals are not merged).

Busy ranges are UTC half-open ``[start, end)`` ranges already widened by the buffer that applied when
they were booked; a candidate occupies ``[start, end + buffer)`` and conflicts iff the two overlap, the
same test as the PostgreSQL exclusion constraint over ``tstzrange(start, end + buffer)``.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MIDNIGHT = time(0, 0)
_ONE_DAY = timedelta(days=1)
_UTC_MIDNIGHT = time(0, 0, tzinfo=UTC)
_TICK = timedelta(microseconds=1)  # datetime resolution: ``t <= x`` is ``t < x + _TICK``


def _check_wall_range(start: time, end: time) -> None:
    """Reject intervals that are empty or carry a zone: rules are in the mentor's zone by definition."""
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("interval times are mentor-local wall times and must be naive")
    if end != _MIDNIGHT and not start < end:
        raise ValueError(f"interval start {start} must be before end {end} (end 00:00 means midnight)")


@dataclass(frozen=True)
class LocalInterval:
    """A wall-clock range on one local date; ``end == time(0, 0)`` means the following midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        _check_wall_range(self.start, self.end)


@dataclass(frozen=True)
class WeeklyInterval:
    """A recurring wall-clock range; ``weekday`` follows :meth:`date.weekday` (0 = Monday)."""

    weekday: int
    start: time
    end: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0..6, got {self.weekday}")
        _check_wall_range(self.start, self.end)


@dataclass(frozen=True)
class AvailabilityRules:
    """Everything about a mentor's calendar that decides which starts are offered."""

    timezone: str
    weekly: tuple[WeeklyInterval, ...]
    # Replaces the weekly rules for that local date; an empty tuple is a day off.
    overrides: Mapping[date, tuple[LocalInterval, ...]] = field(default_factory=dict)
    buffer_minutes: int = 0
    min_notice_minutes: int = 0
    horizon_days: int = 60
    session_minutes: tuple[int, ...] = (60,)
    step_minutes: int = 30

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        if min(self.buffer_minutes, self.min_notice_minutes, self.horizon_days) < 0:
            raise ValueError("buffer, notice and horizon must not be negative")
        if self.step_minutes <= 0:
            raise ValueError("step_minutes must be positive")
        if not self.session_minutes or min(self.session_minutes) <= 0:
            raise ValueError("session_minutes must hold at least one positive length")


@dataclass(frozen=True)
class Slot:
    """A bookable session as a UTC half-open range ``[start, end)`` (the buffer is not included)."""

    start: datetime
    end: datetime


class SlotProblem(enum.Enum):
    """Why a requested start cannot be booked; only ``BUSY`` means the slot exists but is taken."""

    NOT_OFFERED_LENGTH = "not_offered_length"
    IN_THE_PAST = "in_the_past"
    TOO_SOON = "too_soon"
    BEYOND_HORIZON = "beyond_horizon"
    OUTSIDE_AVAILABILITY = "outside_availability"
    BUSY = "busy"

    @property
    def is_conflict(self) -> bool:
        """True when the request was valid but lost to another booking (HTTP 409 rather than 422)."""
        return self is SlotProblem.BUSY


def free_slots(
    rules: AvailabilityRules,
    busy: Iterable[tuple[datetime, datetime]],
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    duration_minutes: int,
) -> list[Slot]:
    """List the free slots whose start lies in ``[window_start, window_end)``, sorted, in UTC."""
    window_start, window_end = _to_utc(window_start), _to_utc(window_end)
    timing = _Timing(rules, _to_utc(now))
    taken = _BusyIndex(busy)
    if duration_minutes not in rules.session_minutes:
        return []
    # Clip to notice and horizon first, so only starts that can be listed are ever generated.
    lower, upper = timing.clip(window_start, window_end)
    if lower >= upper:
        return []
    zone = ZoneInfo(rules.timezone)
    first_day = lower.astimezone(zone).date() - _ONE_DAY
    last_day = upper.astimezone(zone).date() + _ONE_DAY
    duration = timedelta(minutes=duration_minutes)
    occupied = duration + timedelta(minutes=rules.buffer_minutes)
    starts = _candidate_starts(rules, zone, first_day, last_day, duration, lower, upper)
    return [Slot(start, start + duration) for start in taken.free_of(starts, occupied)]


def check_slot(
    rules: AvailabilityRules,
    busy: Iterable[tuple[datetime, datetime]],
    now: datetime,
    start: datetime,
    duration_minutes: int,
) -> SlotProblem | None:
    """Say why ``start`` cannot be booked, or None exactly when :func:`free_slots` would list it.

    Problems are checked in the order length, timing, availability, busy, so ``BUSY`` (HTTP 409) is
    only reported for a start that the rules really offer.
    """
    start = _to_utc(start)
    timing = _Timing(rules, _to_utc(now))
    taken = _BusyIndex(busy)
    if duration_minutes not in rules.session_minutes:
        return SlotProblem.NOT_OFFERED_LENGTH
    problem = timing.problem(start)
    if problem is not None:
        return problem
    zone = ZoneInfo(rules.timezone)
    day = start.astimezone(zone).date()
    duration = timedelta(minutes=duration_minutes)
    # Generating only the starts in [start, start + 1 µs) asks exactly "is `start` a candidate?".
    offered = _candidate_starts(rules, zone, day - _ONE_DAY, day + _ONE_DAY, duration, start, start + _TICK)
    if next(offered, None) is None:
        return SlotProblem.OUTSIDE_AVAILABILITY
    occupied = timedelta(minutes=duration_minutes + rules.buffer_minutes)
    return SlotProblem.BUSY if taken.overlaps(start, occupied) else None


def _to_utc(value: datetime) -> datetime:
    """Refuse naive datetimes: guessing a zone for a booking time is how double bookings happen."""
    if value.tzinfo is UTC:  # what the database gives back: the common case, checked first
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: an explicit offset is required")
    return value.astimezone(UTC)


class _Timing:
    """The checks relative to ``now``, shared verbatim by listing and booking."""

    def __init__(self, rules: AvailabilityRules, now: datetime) -> None:
        self.now = now
        self.earliest = now + timedelta(minutes=rules.min_notice_minutes)
        self.latest = now + timedelta(days=rules.horizon_days)

    def problem(self, start: datetime) -> SlotProblem | None:
        if start < self.now:
            return SlotProblem.IN_THE_PAST
        if start < self.earliest:
            return SlotProblem.TOO_SOON
        if start > self.latest:
            return SlotProblem.BEYOND_HORIZON
        return None

    def clip(self, window_start: datetime, window_end: datetime) -> tuple[datetime, datetime]:
        """The half-open range of starts in the window that :meth:`problem` accepts (notice >= 0, so
        ``earliest`` is never before ``now``)."""
        return max(window_start, self.earliest), min(window_end, self.latest + _TICK)


# One grid point of an interval: its wall time in the zone with fold=0 and with fold=1, and its
# distance from local midnight.
_GridPoint = tuple[time, time, timedelta]


@dataclass(frozen=True)
class _Grid:
    """The wall times ``start + k * step`` before an interval's end, built once per interval shape and
    reused for every date; ``sinces`` (ascending) lets a day without a clock change clip by bisection."""

    points: list[_GridPoint]
    sinces: list[timedelta]
    stop: timedelta  # the interval's end as a distance from local midnight (a whole day for 24:00)


def _candidate_starts(
    rules: AvailabilityRules,
    zone: ZoneInfo,
    first_day: date,
    last_day: date,
    duration: timedelta,
    lower: datetime,
    upper: datetime,
) -> Iterator[datetime]:
    """Yield, ascending and once each, the UTC starts in ``[lower, upper)`` that the rules offer on
    local dates ``first_day..last_day``."""
    weekly: dict[int, list[tuple[time, time]]] = {}
    for rule in rules.weekly:
        weekly.setdefault(rule.weekday, []).append((rule.start, rule.end))
    grids: dict[tuple[time, time], _Grid] = {}
    step = timedelta(minutes=rules.step_minutes)
    day = first_day
    offsets = _midnight_offsets(zone, day)
    while day <= last_day:
        next_day = day + _ONE_DAY
        next_offsets = _midnight_offsets(zone, next_day)
        override = rules.overrides.get(day)
        ranges = weekly.get(day.weekday(), []) if override is None else [(i.start, i.end) for i in override]
        # No zone changes its offset twice within two days (a test checks the tz database), so when both
        # midnights (either fold) have one offset, every wall time of this date has it: the offset is
        # looked up once for the date instead of twice per candidate.
        steady = offsets[0] == offsets[1] == next_offsets[0] == next_offsets[1]
        found: list[datetime] = []
        for start, end in ranges:
            grid = grids.get((start, end))
            if grid is None:
                grid = grids[start, end] = _wall_grid(zone, start, end, step)
            if steady:
                found.extend(_steady_interval_starts(day, offsets[0], grid, duration, lower, upper))
            else:
                found.extend(
                    instant
                    for instant in _interval_starts(zone, day, end, grid.points, duration)
                    if lower <= instant < upper
                )
        # One interval's starts ascend, and a date's starts all precede the next date's: only several
        # intervals on one date can interleave or repeat.
        yield from sorted(set(found)) if len(ranges) > 1 else found
        day, offsets = next_day, next_offsets


def _midnight_offsets(zone: ZoneInfo, day: date) -> tuple[timedelta, timedelta]:
    # An aware datetime always has an offset (`utcoffset` is None only for naive ones); so below too.
    midnight = datetime.combine(day, _MIDNIGHT, zone)
    return cast(timedelta, midnight.utcoffset()), cast(timedelta, midnight.replace(fold=1).utcoffset())


def _since_midnight(wall: time) -> timedelta:
    return timedelta(hours=wall.hour, minutes=wall.minute, seconds=wall.second, microseconds=wall.microsecond)


def _wall_grid(zone: ZoneInfo, start: time, end: time, step: timedelta) -> _Grid:
    """The wall times ``start + k * step`` before ``end``; all fall on the interval's own date."""
    stop = _ONE_DAY if end == _MIDNIGHT else _since_midnight(end)
    points: list[_GridPoint] = []
    since = _since_midnight(start)
    while since < stop:
        wall = (datetime.min + since).time().replace(tzinfo=zone)
        points.append((wall, wall.replace(fold=1), since))
        since += step
    return _Grid(points, [since for _, _, since in points], stop)


def _steady_interval_starts(
    day: date, offset: timedelta, grid: _Grid, duration: timedelta, lower: datetime, upper: datetime
) -> list[datetime]:
    """:func:`_interval_starts` for a date with one offset throughout, clipped to ``[lower, upper)``:
    every wall time exists once, and the interval ends at its end wall time."""
    midnight = datetime.combine(day, _UTC_MIDNIGHT) - offset  # the instant of local midnight
    # A start fits when ``since + duration <= stop``, i.e. ``since < stop - duration + 1 µs``.
    first = bisect.bisect_left(grid.sinces, lower - midnight)
    last = bisect.bisect_left(grid.sinces, min(upper - midnight, grid.stop - duration + _TICK))
    return [midnight + since for since in grid.sinces[first:last]]


def _interval_starts(
    zone: ZoneInfo, day: date, end: time, grid: list[_GridPoint], duration: timedelta
) -> Iterator[datetime]:
    """Yield the UTC starts of one interval on ``day`` whose session ends by the interval's end."""
    end_wall = datetime.combine(day + _ONE_DAY if end == _MIDNIGHT else day, end)
    latest_start = _first_instant_at_or_after(zone, end_wall) - duration
    utc_midnight = datetime.combine(day, _UTC_MIDNIGHT)
    for first, second, since in grid:
        offset = cast(timedelta, datetime.combine(day, first).utcoffset())
        # fold=0 and fold=1 disagree in a gap (offset grows: skip) and in a fold (offset shrinks: fold=0).
        if offset < cast(timedelta, datetime.combine(day, second).utcoffset()):
            continue
        instant = utc_midnight + since - offset
        # fold=0 instants grow with the wall time, so no later grid point can fit either.
        if instant > latest_start:
            return
        yield instant


def _first_instant_at_or_after(zone: ZoneInfo, wall: datetime) -> datetime:
    """The first UTC instant at which the local clock reads ``wall`` or later (see module docstring)."""
    before = cast(
        timedelta, wall.replace(tzinfo=zone).utcoffset()
    )  # offset in force before any transition here
    after = cast(timedelta, wall.replace(tzinfo=zone, fold=1).utcoffset())
    if before >= after:  # exists once, or twice (fold): its first occurrence
        return (wall - before).replace(tzinfo=UTC)
    # In a gap: the clock jumps past ``wall`` at the transition, which lies in (wall - after, wall - before].
    low = math.floor((wall - after).replace(tzinfo=UTC).timestamp())
    high = math.ceil((wall - before).replace(tzinfo=UTC).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


class _BusyIndex:
    """Busy ranges merged into disjoint sorted runs, so an overlap test is one bisection and a sorted
    run of tests is one sweep."""

    def __init__(self, busy: Iterable[tuple[datetime, datetime]]) -> None:
        ranges = sorted((_to_utc(start), _to_utc(end)) for start, end in busy)
        self._starts: list[datetime] = []
        self._ends: list[datetime] = []
        for start, end in ranges:
            if start >= end:  # an empty range blocks nothing, as in PostgreSQL
                continue
            if self._ends and start <= self._ends[-1]:
                self._ends[-1] = max(self._ends[-1], end)
            else:
                self._starts.append(start)
                self._ends.append(end)

    def overlaps(self, start: datetime, length: timedelta) -> bool:
        """Whether ``[start, start + length)`` overlaps any busy range."""
        index = bisect.bisect_right(self._ends, start)
        return index < len(self._starts) and self._starts[index] < start + length

    def free_of(self, starts: Iterable[datetime], length: timedelta) -> Iterator[datetime]:
        """The ascending ``starts`` that :meth:`overlaps` clears, found by one forward sweep."""
        ends, busy_starts, count = self._ends, self._starts, len(self._ends)
        index = 0  # the first run not ending by ``start``: bisect_right(ends, start), moving forward only
        for start in starts:
            while index < count and ends[index] <= start:
                index += 1
            if index == count or start + length <= busy_starts[index]:
                yield start
