"""Tests for the pure slot engine: fixed DST cases in real zones, plain rules, and property tests.

The property tests compare against a deliberately naive reference (stdlib round trips, a brute-force
scan for interval ends, a linear busy check) so the fast engine is checked by a different method.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, _zoneinfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.scheduling.slots import (
    AvailabilityRules,
    LocalInterval,
    Slot,
    SlotProblem,
    WeeklyInterval,
    check_slot,
    free_slots,
)

ZONES = ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham", "UTC")
EVERY_DAY = range(7)

# 2026 offset changes, looked up with zoneinfo (and re-checked by test_transition_table_is_real):
# zone -> [(UTC instant, offset just before, offset from then on)].
TRANSITIONS_2026 = {
    "Europe/Berlin": [
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), timedelta(hours=1), timedelta(hours=2)),
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), timedelta(hours=2), timedelta(hours=1)),
    ],
    "America/New_York": [
        (datetime(2026, 3, 8, 7, 0, tzinfo=UTC), timedelta(hours=-5), timedelta(hours=-4)),
        (datetime(2026, 11, 1, 6, 0, tzinfo=UTC), timedelta(hours=-4), timedelta(hours=-5)),
    ],
    "Australia/Lord_Howe": [
        (datetime(2026, 4, 4, 15, 0, tzinfo=UTC), timedelta(hours=11), timedelta(hours=10, minutes=30)),
        (datetime(2026, 10, 3, 15, 30, tzinfo=UTC), timedelta(hours=10, minutes=30), timedelta(hours=11)),
    ],
    "Pacific/Chatham": [
        (
            datetime(2026, 4, 4, 14, 0, tzinfo=UTC),
            timedelta(hours=13, minutes=45),
            timedelta(hours=12, minutes=45),
        ),
        (
            datetime(2026, 9, 26, 14, 0, tzinfo=UTC),
            timedelta(hours=12, minutes=45),
            timedelta(hours=13, minutes=45),
        ),
    ],
}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# "now" for the fixed cases: every 2026 date is within the 400-day horizon of rules_for.
NEW_YEAR = utc(2026, 1, 1)


def daily(start: time, end: time, days: range = EVERY_DAY) -> tuple[WeeklyInterval, ...]:
    return tuple(WeeklyInterval(day, start, end) for day in days)


def rules_for(
    zone: str,
    weekly: tuple[WeeklyInterval, ...] = (),
    overrides: dict[date, tuple[LocalInterval, ...]] | None = None,
    **options: Any,
) -> AvailabilityRules:
    """Rules with a wide horizon and no notice, so fixed-date cases only test what they name."""
    return AvailabilityRules(zone, weekly, overrides or {}, **{"horizon_days": 400, **options})


def starts(
    rules: AvailabilityRules,
    window_start: datetime,
    window_end: datetime,
    duration: int = 60,
    busy: tuple[tuple[datetime, datetime], ...] = (),
    now: datetime = NEW_YEAR,
) -> list[datetime]:
    return [slot.start for slot in free_slots(rules, busy, now, window_start, window_end, duration)]


def local_walls(slot_starts: list[datetime], zone: str) -> list[tuple[date, time, int]]:
    """Slots as the mentor sees them: local date, wall time and fold."""
    local = [start.astimezone(ZoneInfo(zone)) for start in slot_starts]
    return [(value.date(), value.time(), value.fold) for value in local]


# --- the transition table the DST cases rely on -------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "instant", "before", "after"),
    [
        (zone, instant, before, after)
        for zone, rows in TRANSITIONS_2026.items()
        for instant, before, after in rows
    ],
)
def test_transition_table_is_real(zone: str, instant: datetime, before: timedelta, after: timedelta) -> None:
    tz = ZoneInfo(zone)
    assert (instant - timedelta(seconds=1)).astimezone(tz).utcoffset() == before
    assert instant.astimezone(tz).utcoffset() == after


def test_no_zone_changes_its_offset_twice_within_two_days() -> None:
    """`free_slots` looks a date's offset up once when both its midnights agree, which is exact only if no
    zone changes its offset and back within one date. Checked against the tz database itself, through
    the pure-Python zoneinfo reader (the only one that exposes the transitions)."""
    closest = timedelta.max
    for key in available_timezones():
        zone = _zoneinfo.ZoneInfo.no_cache(key)
        offset, changes = zone._tti_before.utcoff if zone._tti_before else None, []
        for instant, info in zip(zone._trans_utc, zone._ttinfos, strict=True):
            if info.utcoff != offset:
                changes.append(instant)
            offset = info.utcoff
        closest = min([closest, *(timedelta(seconds=b - a) for a, b in itertools.pairwise(changes))])
    assert closest >= timedelta(days=2)


# --- fixed DST cases ----------------------------------------------------------------------------


def test_berlin_nine_o_clock_stays_nine_across_both_changes() -> None:
    rules = rules_for("Europe/Berlin", weekly=daily(time(9), time(10)))
    spring = starts(rules, utc(2026, 3, 28), utc(2026, 3, 31))
    autumn = starts(rules, utc(2026, 10, 24), utc(2026, 10, 27))
    assert spring == [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]
    assert autumn == [utc(2026, 10, 24, 7), utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)]
    assert {wall for _, wall, _ in local_walls(spring + autumn, "Europe/Berlin")} == {time(9)}


def test_berlin_spring_forward_skips_nonexistent_starts() -> None:
    day = date(2026, 3, 29)
    rules = rules_for(
        "Europe/Berlin", overrides={day: (LocalInterval(time(2), time(3, 30)),)}, session_minutes=(30, 60)
    )
    listed = starts(rules, utc(2026, 3, 28), utc(2026, 3, 30), duration=30)
    # 02:00 and 02:30 do not exist that night; 03:00 CEST is the only start.
    assert listed == [utc(2026, 3, 29, 1)]
    assert local_walls(listed, "Europe/Berlin") == [(day, time(3), 0)]
    # 03:00 + 60 min overruns 03:30, and the skipped wall times are not bookable either.
    assert starts(rules, utc(2026, 3, 28), utc(2026, 3, 30), duration=60) == []
    assert check_slot(rules, [], NEW_YEAR, utc(2026, 3, 29, 0, 30), 30) is SlotProblem.OUTSIDE_AVAILABILITY
    # On a 45-minute grid the missing 02:15 must not be read as 03:15 CEST, an instant off the grid.
    off_grid = rules_for(
        "Europe/Berlin",
        overrides={day: (LocalInterval(time(1, 30), time(4)),)},
        session_minutes=(30,),
        step_minutes=45,
    )
    assert starts(off_grid, utc(2026, 3, 28), utc(2026, 3, 30), duration=30) == [
        utc(2026, 3, 29, 0, 30),
        utc(2026, 3, 29, 1),
    ]


def test_berlin_fall_back_takes_repeated_hour_once_with_fold_zero() -> None:
    day = date(2026, 10, 25)
    rules = rules_for("Europe/Berlin", overrides={day: (LocalInterval(time(2), time(3)),)})
    listed = starts(rules, utc(2026, 10, 24), utc(2026, 10, 26))
    # 03:00 comes two real hours after the first 02:00, so both hour-long sessions fit.
    assert listed == [utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30)]
    assert local_walls(listed, "Europe/Berlin") == [(day, time(2), 0), (day, time(2, 30), 0)]
    repeated_two_o_clock = datetime(2026, 10, 25, 2, tzinfo=ZoneInfo("Europe/Berlin"), fold=1)
    assert check_slot(rules, [], NEW_YEAR, repeated_two_o_clock, 60) is SlotProblem.OUTSIDE_AVAILABILITY


def test_berlin_interval_ending_in_the_gap_ends_at_the_transition() -> None:
    # 01:00-02:30 on the spring-forward day: 02:30 never shows, the clock jumps at 01:00 UTC.
    rules = rules_for(
        "Europe/Berlin",
        overrides={date(2026, 3, 29): (LocalInterval(time(1), time(2, 30)),)},
        session_minutes=(30, 60),
    )
    assert starts(rules, utc(2026, 3, 28), utc(2026, 3, 30), duration=60) == [utc(2026, 3, 29, 0)]
    assert starts(rules, utc(2026, 3, 28), utc(2026, 3, 30), duration=30) == [
        utc(2026, 3, 29, 0),
        utc(2026, 3, 29, 0, 30),
    ]


def test_berlin_interval_ending_at_an_ambiguous_time_ends_at_its_first_occurrence() -> None:
    # 01:00-02:30 on the fall-back day ends at 02:30 CEST (00:30 UTC), not at 02:30 CET.
    rules = rules_for("Europe/Berlin", overrides={date(2026, 10, 25): (LocalInterval(time(1), time(2, 30)),)})
    assert starts(rules, utc(2026, 10, 24), utc(2026, 10, 26)) == [
        utc(2026, 10, 24, 23),
        utc(2026, 10, 24, 23, 30),
    ]


def test_new_york_keeps_local_time_and_measures_real_minutes() -> None:
    rules = rules_for("America/New_York", weekly=daily(time(9), time(10)))
    assert starts(rules, utc(2026, 3, 7), utc(2026, 3, 9)) == [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13)]
    assert starts(rules, utc(2026, 10, 31), utc(2026, 11, 2)) == [utc(2026, 10, 31, 13), utc(2026, 11, 1, 14)]
    # 00:30-02:00 on the fall-back night lasts 2.5 real hours: three hour-long sessions, fold=0 only.
    fall = rules_for(
        "America/New_York", overrides={date(2026, 11, 1): (LocalInterval(time(0, 30), time(2)),)}
    )
    listed = starts(fall, utc(2026, 10, 31), utc(2026, 11, 2))
    assert listed == [utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 30)]
    assert [fold for _, _, fold in local_walls(listed, "America/New_York")] == [0, 0, 0]
    # 01:00-03:30 on the spring-forward night is 1.5 real hours; 02:00 and 02:30 do not exist.
    spring = rules_for(
        "America/New_York", overrides={date(2026, 3, 8): (LocalInterval(time(1), time(3, 30)),)}
    )
    assert starts(spring, utc(2026, 3, 7), utc(2026, 3, 9)) == [utc(2026, 3, 8, 6), utc(2026, 3, 8, 6, 30)]


def test_lord_howe_half_hour_shift() -> None:
    rules = rules_for("Australia/Lord_Howe", weekly=daily(time(9), time(10)))
    # 09:00 at +11 then at +10:30.
    assert starts(rules, utc(2026, 4, 3, 12), utc(2026, 4, 5, 12)) == [
        utc(2026, 4, 3, 22),
        utc(2026, 4, 4, 22, 30),
    ]
    spring = rules_for(
        "Australia/Lord_Howe",
        overrides={date(2026, 10, 4): (LocalInterval(time(1, 30), time(3)),)},
        session_minutes=(30,),
        step_minutes=15,
    )
    # 02:00 and 02:15 are skipped; 01:45 + 30 real minutes ends at 02:45 local.
    assert starts(spring, utc(2026, 10, 3), utc(2026, 10, 5), duration=30) == [
        utc(2026, 10, 3, 15),
        utc(2026, 10, 3, 15, 15),
        utc(2026, 10, 3, 15, 30),
    ]
    fall = rules_for(
        "Australia/Lord_Howe",
        overrides={date(2026, 4, 5): (LocalInterval(time(1), time(2, 30)),)},
        session_minutes=(30,),
    )
    listed = starts(fall, utc(2026, 4, 4), utc(2026, 4, 6), duration=30)
    # 01:30 occurs at 14:30 and 15:00 UTC; only the first is offered.
    assert listed == [utc(2026, 4, 4, 14), utc(2026, 4, 4, 14, 30), utc(2026, 4, 4, 15, 30)]
    assert local_walls(listed, "Australia/Lord_Howe") == [
        (date(2026, 4, 5), time(1), 0),
        (date(2026, 4, 5), time(1, 30), 0),
        (date(2026, 4, 5), time(2), 0),
    ]


def test_kolkata_has_a_fixed_half_hour_offset() -> None:
    rules = rules_for("Asia/Kolkata", weekly=(WeeklyInterval(0, time(9), time(11)),))
    expected_per_monday = [timedelta(hours=3, minutes=30), timedelta(hours=4), timedelta(hours=4, minutes=30)]
    for monday in (date(2026, 3, 9), date(2026, 11, 2)):
        midnight = datetime.combine(monday, time(0), tzinfo=UTC)
        assert starts(rules, midnight - timedelta(days=1), midnight + timedelta(days=1)) == [
            midnight + offset for offset in expected_per_monday
        ]


def test_chatham_quarter_hour_offsets() -> None:
    rules = rules_for("Pacific/Chatham", weekly=daily(time(9), time(10)))
    # 09:00 at +13:45 then at +12:45.
    assert starts(rules, utc(2026, 4, 3), utc(2026, 4, 5)) == [
        utc(2026, 4, 3, 19, 15),
        utc(2026, 4, 4, 20, 15),
    ]
    spring_day = date(2026, 9, 27)
    spring = rules_for(
        "Pacific/Chatham",
        overrides={spring_day: (LocalInterval(time(2, 15), time(4, 15)),)},
        session_minutes=(30,),
    )
    # 02:45 and 03:15 fall in the gap (02:45 -> 03:45).
    assert starts(spring, utc(2026, 9, 26), utc(2026, 9, 28), duration=30) == [
        utc(2026, 9, 26, 13, 30),
        utc(2026, 9, 26, 14),
    ]
    # 02:00-03:00 ends in the gap, so at the 14:00 UTC transition: 02:30 + 30 min would overrun it.
    ends_in_gap = rules_for(
        "Pacific/Chatham",
        overrides={spring_day: (LocalInterval(time(2), time(3)),)},
        session_minutes=(30,),
        step_minutes=15,
    )
    assert starts(ends_in_gap, utc(2026, 9, 26), utc(2026, 9, 28), duration=30) == [
        utc(2026, 9, 26, 13, 15),
        utc(2026, 9, 26, 13, 30),
    ]


# --- plain rules --------------------------------------------------------------------------------


def test_buffer_separates_sessions() -> None:
    rules = rules_for("UTC", weekly=daily(time(8), time(13)), buffer_minutes=15, step_minutes=15)
    booked = ((utc(2026, 6, 1, 10), utc(2026, 6, 1, 11, 15)),)  # 10:00-11:00 plus its 15-minute buffer
    listed = starts(rules, utc(2026, 6, 1), utc(2026, 6, 2), busy=booked)
    before = [utc(2026, 6, 1, 8, minute) for minute in (0, 15, 30, 45)]
    after = [utc(2026, 6, 1, 11, 15) + timedelta(minutes=15 * k) for k in range(4)]
    assert listed == before + after
    # 09:00 ends at 10:00 but its own buffer runs into the booking.
    problem = check_slot(rules, booked, NEW_YEAR, utc(2026, 6, 1, 9), 60)
    assert problem is SlotProblem.BUSY
    assert problem.is_conflict
    assert check_slot(rules, booked, NEW_YEAR, utc(2026, 6, 1, 8, 45), 60) is None


def test_busy_ranges_touching_a_slot_do_not_block_it_and_empty_ones_block_nothing() -> None:
    rules = rules_for("UTC", weekly=daily(time(9), time(12)))
    busy = (
        (utc(2026, 6, 1, 8), utc(2026, 6, 1, 9)),
        (utc(2026, 6, 1, 10), utc(2026, 6, 1, 10, 30)),
        (utc(2026, 6, 1, 11), utc(2026, 6, 1, 11)),
    )
    assert starts(rules, utc(2026, 6, 1), utc(2026, 6, 2), busy=busy) == [
        utc(2026, 6, 1, 9),
        utc(2026, 6, 1, 10, 30),
        utc(2026, 6, 1, 11),
    ]


def test_minimum_notice_and_past() -> None:
    rules = rules_for("UTC", weekly=daily(time(8), time(18)), min_notice_minutes=120, step_minutes=15)
    now = utc(2026, 6, 1, 8, 10)
    assert starts(rules, utc(2026, 6, 1), utc(2026, 6, 1, 11), now=now) == [
        utc(2026, 6, 1, 10, 15),
        utc(2026, 6, 1, 10, 30),
        utc(2026, 6, 1, 10, 45),
    ]
    assert check_slot(rules, [], now, utc(2026, 6, 1, 10), 60) is SlotProblem.TOO_SOON
    assert check_slot(rules, [], now, utc(2026, 6, 1, 8), 60) is SlotProblem.IN_THE_PAST
    assert not SlotProblem.TOO_SOON.is_conflict


def test_horizon_is_inclusive() -> None:
    rules = rules_for("UTC", weekly=daily(time(0), time(0)), horizon_days=2)
    now = utc(2026, 6, 1, 9)
    listed = starts(rules, now, now + timedelta(days=5), now=now)
    assert listed[0] == now
    assert listed[-1] == now + timedelta(days=2)
    assert check_slot(rules, [], now, now + timedelta(days=2), 60) is None
    assert check_slot(rules, [], now, now + timedelta(days=2, minutes=30), 60) is SlotProblem.BEYOND_HORIZON


def test_window_includes_its_start_and_excludes_its_end() -> None:
    rules = rules_for("UTC", weekly=daily(time(9), time(12)))
    assert starts(rules, utc(2026, 6, 1, 9, 30), utc(2026, 6, 1, 10, 30)) == [
        utc(2026, 6, 1, 9, 30),
        utc(2026, 6, 1, 10),
    ]


def test_override_replaces_weekly_rules_for_its_date_only() -> None:
    mondays = (WeeklyInterval(0, time(9), time(12)),)
    rules = rules_for(
        "Europe/Berlin", weekly=mondays, overrides={date(2026, 6, 1): (LocalInterval(time(14), time(15)),)}
    )
    listed = starts(rules, utc(2026, 5, 31), utc(2026, 6, 9))
    assert local_walls(listed, "Europe/Berlin") == [
        (date(2026, 6, 1), time(14), 0),
        (date(2026, 6, 8), time(9), 0),
        (date(2026, 6, 8), time(9, 30), 0),
        (date(2026, 6, 8), time(10), 0),
        (date(2026, 6, 8), time(10, 30), 0),
        (date(2026, 6, 8), time(11), 0),
    ]


def test_empty_override_is_a_day_off() -> None:
    rules = rules_for("Asia/Kolkata", weekly=daily(time(9), time(11)), overrides={date(2026, 6, 2): ()})
    listed = starts(rules, utc(2026, 6, 1), utc(2026, 6, 4))
    days = {local_date for local_date, _, _ in local_walls(listed, "Asia/Kolkata")}
    assert days == {date(2026, 6, 1), date(2026, 6, 3)}
    off_day_slot = datetime(2026, 6, 2, 9, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert check_slot(rules, [], NEW_YEAR, off_day_slot, 60) is SlotProblem.OUTSIDE_AVAILABILITY


def test_midnight_end_means_end_of_day() -> None:
    rules = rules_for("America/New_York", weekly=(WeeklyInterval(4, time(22), time(0)),))  # Fridays
    listed = starts(rules, utc(2026, 6, 5), utc(2026, 6, 7))
    assert local_walls(listed, "America/New_York") == [
        (date(2026, 6, 5), time(22), 0),
        (date(2026, 6, 5), time(22, 30), 0),
        (date(2026, 6, 5), time(23), 0),
    ]
    whole_day = rules_for("UTC", weekly=daily(time(0), time(0)), step_minutes=60)
    assert len(starts(whole_day, utc(2026, 6, 1), utc(2026, 6, 2))) == 24


def test_unsupported_length_is_not_offered() -> None:
    rules = rules_for("UTC", weekly=daily(time(9), time(12)), session_minutes=(30, 60))
    assert starts(rules, utc(2026, 6, 1), utc(2026, 6, 2), duration=30)
    assert starts(rules, utc(2026, 6, 1), utc(2026, 6, 2), duration=45) == []
    assert check_slot(rules, [], NEW_YEAR, utc(2026, 6, 1, 9), 45) is SlotProblem.NOT_OFFERED_LENGTH


def test_naive_datetimes_are_rejected() -> None:
    rules = rules_for("UTC", weekly=daily(time(9), time(12)))
    aware, naive = utc(2026, 6, 1), datetime(2026, 6, 1)
    with pytest.raises(ValueError, match="naive"):
        free_slots(rules, [], naive, aware, aware + timedelta(days=1), 60)
    with pytest.raises(ValueError, match="naive"):
        free_slots(rules, [], aware, aware, naive + timedelta(days=1), 60)
    with pytest.raises(ValueError, match="naive"):
        free_slots(rules, [(naive, aware)], aware, aware, aware + timedelta(days=1), 60)
    with pytest.raises(ValueError, match="naive"):
        check_slot(rules, [], aware, naive, 60)


def test_invalid_rules_are_rejected() -> None:
    with pytest.raises(ValueError, match="before end"):
        LocalInterval(time(10), time(9))
    with pytest.raises(ValueError, match="weekday"):
        WeeklyInterval(7, time(9), time(10))
    with pytest.raises(ValueError, match="unknown time zone"):
        AvailabilityRules(timezone="Mars/Olympus_Mons", weekly=())
    with pytest.raises(ValueError, match="step"):
        AvailabilityRules(timezone="UTC", weekly=(), step_minutes=0)


# --- property tests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    rules: AvailabilityRules
    busy: tuple[tuple[datetime, datetime], ...]
    now: datetime
    window_start: datetime
    window_end: datetime
    duration: int

    def listed(self) -> list[Slot]:
        return free_slots(self.rules, self.busy, self.now, self.window_start, self.window_end, self.duration)


QUARTERS_PER_DAY = 96


def quarter(index: int) -> time:
    return time(0) if index == QUARTERS_PER_DAY else time(index // 4, index % 4 * 15)


@st.composite
def wall_ranges(draw: st.DrawFn) -> tuple[time, time]:
    # Half of the ranges start in the small hours, where clocks change.
    start = draw(st.integers(0, QUARTERS_PER_DAY - 2) | st.integers(0, 16))
    end = draw(st.integers(start + 2, min(start + 48, QUARTERS_PER_DAY)))
    return quarter(start), quarter(end)


def quarter_hours(min_days: int, max_days: int) -> st.SearchStrategy[timedelta]:
    return st.integers(min_days * QUARTERS_PER_DAY, max_days * QUARTERS_PER_DAY).map(
        lambda k: k * timedelta(minutes=15)
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    zone = draw(st.sampled_from(ZONES))
    # Aim the window at one of the zone's own 2026 transitions (or a quiet day) so DST is exercised.
    anchors = [instant for instant, _, _ in TRANSITIONS_2026.get(zone, [])] or [utc(2026, 7, 15)]
    window_start = draw(st.sampled_from(anchors)) - draw(quarter_hours(0, 2))
    window_end = window_start + draw(quarter_hours(1, 5))
    now = window_start - draw(quarter_hours(-1, 3)) + timedelta(minutes=draw(st.integers(0, 14)))
    # A few wall ranges, each repeated on several weekdays, as mentors tend to set them up.
    weekly = tuple(
        WeeklyInterval(weekday, start, end)
        for start, end in draw(st.lists(wall_ranges(), min_size=1, max_size=4))
        for weekday in draw(st.sets(st.integers(0, 6), min_size=3))
    )
    first_local_day = window_start.astimezone(ZoneInfo(zone)).date() - timedelta(days=1)
    overrides = {
        first_local_day + timedelta(days=k): tuple(
            LocalInterval(*r) for r in draw(st.lists(wall_ranges(), max_size=3))
        )
        for k in draw(st.sets(st.integers(0, 7), max_size=4))
    }
    session_minutes = tuple(draw(st.sets(st.sampled_from([15, 30, 45, 60, 90, 120]), min_size=1, max_size=3)))
    rules = AvailabilityRules(
        timezone=zone,
        weekly=weekly,
        overrides=overrides,
        buffer_minutes=draw(st.sampled_from([0, 5, 10, 15, 30])),
        min_notice_minutes=draw(st.sampled_from([0, 30, 90, 600])),
        horizon_days=draw(st.integers(1, 12)),
        session_minutes=session_minutes,
        step_minutes=draw(st.sampled_from([10, 15, 20, 30, 45, 60])),
    )
    busy = []
    for _ in range(draw(st.integers(0, 12))):
        start = window_start + timedelta(minutes=5 * draw(st.integers(-288, 8 * 288)))
        end = start + timedelta(minutes=5 * draw(st.integers(0, 60)))
        in_mentor_zone = draw(st.booleans())
        busy.append((start.astimezone(ZoneInfo(zone)), end) if in_mentor_zone else (start, end))
    duration = draw(st.sampled_from(session_minutes))
    return Scenario(rules, tuple(busy), now, window_start, window_end, duration)


PROPERTY_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def intervals_on(rules: AvailabilityRules, day: date) -> list[tuple[time, time]]:
    if day in rules.overrides:
        return [(interval.start, interval.end) for interval in rules.overrides[day]]
    return [(rule.start, rule.end) for rule in rules.weekly if rule.weekday == day.weekday()]


def end_wall(day: date, end: time) -> datetime:
    return datetime.combine(day + timedelta(days=1) if end == time(0) else day, end)


@functools.cache
def reference_end_instant(zone: str, wall: datetime) -> datetime:
    """Brute force: the first quarter-hour instant whose local clock reads ``wall`` or later.

    Every zone here has quarter-hour offsets and transitions, so quarter hours are exact.
    """
    tz = ZoneInfo(zone)
    instant = wall.replace(tzinfo=UTC) - timedelta(hours=15)
    while instant.astimezone(tz).replace(tzinfo=None) < wall:
        instant += timedelta(minutes=15)
    return instant


def reference_slots(scenario: Scenario) -> list[datetime]:
    """Slow, obviously-correct listing: stdlib round trips and a linear busy scan."""
    rules, tz = scenario.rules, ZoneInfo(scenario.rules.timezone)
    duration = timedelta(minutes=scenario.duration)
    occupied = duration + timedelta(minutes=rules.buffer_minutes)
    found = set()
    day = scenario.window_start.astimezone(tz).date() - timedelta(days=1)
    while day <= scenario.window_end.astimezone(tz).date() + timedelta(days=1):
        for start, end in intervals_on(rules, day):
            wall, stop = datetime.combine(day, start), end_wall(day, end)
            while wall < stop:
                instant = wall.replace(tzinfo=tz).astimezone(UTC)
                exists = instant.astimezone(tz).replace(tzinfo=None) == wall
                if exists and instant + duration <= reference_end_instant(rules.timezone, stop):
                    found.add(instant)
                wall += timedelta(minutes=rules.step_minutes)
        day += timedelta(days=1)
    return sorted(
        start
        for start in found
        if scenario.window_start <= start < scenario.window_end
        and scenario.now + timedelta(minutes=rules.min_notice_minutes) <= start
        and start <= scenario.now + timedelta(days=rules.horizon_days)
        and not any(
            b_start < b_end and b_start < start + occupied and start < b_end
            for b_start, b_end in scenario.busy
        )
    )


@PROPERTY_SETTINGS
@given(scenarios())
def test_listing_matches_the_brute_force_reference(scenario: Scenario) -> None:
    assert [slot.start for slot in scenario.listed()] == reference_slots(scenario)


@PROPERTY_SETTINGS
@given(scenarios())
def test_slots_are_free_timely_sorted_and_of_the_requested_length(scenario: Scenario) -> None:
    listed = scenario.listed()
    rules = scenario.rules
    buffer = timedelta(minutes=rules.buffer_minutes)
    assert [slot.start for slot in listed] == sorted({slot.start for slot in listed})
    for slot in listed:
        assert slot.start.tzinfo is UTC
        assert slot.end - slot.start == timedelta(minutes=scenario.duration)
        assert scenario.window_start <= slot.start < scenario.window_end
        assert slot.start >= scenario.now + timedelta(minutes=rules.min_notice_minutes)
        assert slot.start <= scenario.now + timedelta(days=rules.horizon_days)
        for busy_start, busy_end in scenario.busy:
            assert not (busy_start < busy_end and busy_start < slot.end + buffer and slot.start < busy_end)


@PROPERTY_SETTINGS
@given(scenarios())
def test_slots_lie_inside_the_rules_of_their_local_date(scenario: Scenario) -> None:
    rules, tz = scenario.rules, ZoneInfo(scenario.rules.timezone)
    step = timedelta(minutes=rules.step_minutes)
    for slot in scenario.listed():
        local = slot.start.astimezone(tz)
        assert local.fold == 0  # the first occurrence of a repeated wall time
        wall = local.replace(tzinfo=None)
        assert any(
            datetime.combine(local.date(), start) <= wall < end_wall(local.date(), end)
            and (wall - datetime.combine(local.date(), start)) % step == timedelta(0)
            and slot.end <= reference_end_instant(rules.timezone, end_wall(local.date(), end))
            for start, end in intervals_on(rules, local.date())
        )


@PROPERTY_SETTINGS
@given(scenarios(), st.data())
def test_check_slot_accepts_exactly_what_free_slots_lists(scenario: Scenario, data: st.DataObject) -> None:
    listed = scenario.listed()
    for slot in listed:
        assert check_slot(scenario.rules, scenario.busy, scenario.now, slot.start, scenario.duration) is None
    quarter_hours = st.integers(-4 * 24 * 4, 8 * 24 * 4).map(
        lambda k: scenario.now + timedelta(minutes=15 * k)
    )
    probes = data.draw(st.lists(quarter_hours, max_size=4)) + [slot.start for slot in listed[:2]]
    day = timedelta(days=1)
    for probe in probes:
        around = Scenario(
            scenario.rules, scenario.busy, scenario.now, probe - day, probe + day, scenario.duration
        )
        unbooked = Scenario(scenario.rules, (), scenario.now, probe - day, probe + day, scenario.duration)
        problem = check_slot(scenario.rules, scenario.busy, scenario.now, probe, scenario.duration)
        assert (problem is None) == (probe in [slot.start for slot in around.listed()])
        # BUSY (409) exactly when the slot exists but a booking takes it.
        assert (problem in (None, SlotProblem.BUSY)) == (probe in [slot.start for slot in unbooked.listed()])


@PROPERTY_SETTINGS
@given(scenarios())
def test_lengths_not_offered_list_nothing(scenario: Scenario) -> None:
    missing = next(length for length in range(1, 200) if length not in scenario.rules.session_minutes)
    args = (scenario.rules, scenario.busy, scenario.now)
    assert free_slots(*args, scenario.window_start, scenario.window_end, missing) == []
    assert check_slot(*args, scenario.window_start, missing) is SlotProblem.NOT_OFFERED_LENGTH
