"""The busy mentor both benchmarks measure, written to a real database through the app's own code.

One approved mentor in Europe/Berlin offering 30 and 60 minute sessions, with a 60-day horizon, 5 weekly
intervals (Monday to Friday 07:00-22:00), 10 date overrides in the horizon (days off, split days, extra
weekend days), a 15 minute buffer, 2 hours notice, and 300 confirmed bookings spread over the horizon
(placed on the mentor's own free slots by a seeded shuffle, so they never overlap and every run is alike).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from flask_migrate import upgrade

from marketplace.accounts.models import Role
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.scheduling.models import DateOverride, OverrideInterval
from marketplace.scheduling.service import rules_for, save_availability
from marketplace.scheduling.slots import free_slots
from tests.factories import MentorProfileFactory, UserFactory

TIMEZONE = "Europe/Berlin"
HORIZON_DAYS = 60
WEEKLY = [{"weekday": day, "start": "07:00", "end": "22:00"} for day in range(5)]
BUFFER_MINUTES = 15
NOTICE_MINUTES = 120
SESSION_MINUTES = [30, 60]
BOOKINGS = 300
LEARNERS = 20
SEED = 20240601

# Ten override dates, as days after the mentor's today, each with its intervals (empty: a day off).
OVERRIDES: dict[int, list[tuple[str, str]]] = {
    2: [],
    6: [("09:00", "12:00"), ("14:00", "18:00")],
    11: [("10:00", "16:00")],
    15: [],
    20: [("07:00", "11:00"), ("13:00", "22:00")],
    27: [("10:00", "16:00")],
    33: [],
    40: [("09:00", "12:00"), ("14:00", "18:00")],
    47: [("12:00", "24:00")],
    55: [("10:00", "16:00")],
}


@dataclass(frozen=True)
class Seeded:
    mentor_id: int
    bookings: int
    first: date  # the mentor's today: the window asked for is [first, last] of the Berlin calendar
    last: date


def slot_window(today: date) -> tuple[date, date]:
    """The whole horizon, as the dates a client asks for (`from`, `to` inclusive)."""
    return today, today + timedelta(days=HORIZON_DAYS - 1)


def window_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """The instants `list_free_slots` turns [first, last] into (Berlin midnights)."""
    zone = ZoneInfo(TIMEZONE)
    return datetime.combine(first, time(0), zone), datetime.combine(last + timedelta(days=1), time(0), zone)


def seed(app: Flask) -> Seeded:
    """Migrate the (empty) database of `app` and write the scenario; committed."""
    with app.app_context():
        upgrade()
        now = datetime.now(UTC)
        today = now.astimezone(ZoneInfo(TIMEZONE)).date()
        mentor = MentorProfileFactory(
            user=UserFactory(roles=(Role.MENTOR,), timezone=TIMEZONE),
            timezone=TIMEZONE,
            price_cents=8000,
            currency="USD",
            session_minutes=SESSION_MINUTES,
        )
        schedule = save_availability(
            mentor.user,
            {
                "timezone": TIMEZONE,
                "weekly": WEEKLY,
                "buffer_minutes": BUFFER_MINUTES,
                "min_notice_minutes": NOTICE_MINUTES,
                "horizon_days": HORIZON_DAYS,
            },
        )
        for offset, intervals in OVERRIDES.items():
            schedule.overrides.append(
                DateOverride(
                    day=today + timedelta(days=offset),
                    intervals=[OverrideInterval(start=start, end=end) for start, end in intervals],
                )
            )
        db.session.flush()
        learners = [UserFactory(roles=(Role.LEARNER,), timezone=TIMEZONE) for _ in range(LEARNERS)]
        placed = _place_bookings(mentor, now)
        for index, (start, minutes) in enumerate(placed):
            end = start + timedelta(minutes=minutes)
            db.session.add(
                Booking(
                    mentor=mentor,
                    learner=learners[index % LEARNERS],
                    status=BookingStatus.CONFIRMED.value,
                    start_at=start,
                    end_at=end,
                    blocked_until=end + timedelta(minutes=BUFFER_MINUTES),
                    duration_minutes=minutes,
                    topic="Benchmark session",
                    price_cents=8000 * minutes // 60,
                    currency="USD",
                    hold_expires_at=now,
                    confirmed_at=now,
                )
            )
        db.session.commit()
        first, last = slot_window(today)
        return Seeded(mentor_id=mentor.id, bookings=len(placed), first=first, last=last)


def _place_bookings(mentor: MentorProfile, now: datetime) -> list[tuple[datetime, int]]:
    """Pick BOOKINGS non-overlapping (start, minutes) among the mentor's free 60-minute slots."""
    rules = rules_for(mentor)
    assert rules is not None
    candidates = [slot.start for slot in free_slots(rules, [], now, now, now + timedelta(days=61), 60)]
    rng = random.Random(SEED)
    rng.shuffle(candidates)
    buffer = timedelta(minutes=BUFFER_MINUTES)
    taken: list[tuple[datetime, datetime]] = []
    for start in candidates:
        minutes = 60 if rng.random() < 0.7 else 30
        blocked_until = start + timedelta(minutes=minutes) + buffer
        if all(blocked_until <= other_start or other_end <= start for other_start, other_end in taken):
            taken.append((start, blocked_until))
            if len(taken) == BOOKINGS:
                break
    if len(taken) < BOOKINGS:
        raise RuntimeError(f"the schedule only fits {len(taken)} bookings, not {BOOKINGS}")
    return sorted((start, int((end - start - buffer).total_seconds() // 60)) for start, end in taken)
