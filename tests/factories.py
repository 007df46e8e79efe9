"""factory-boy factories writing through the test's session (flushed, rolled back after each test)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from factory.alchemy import SQLAlchemyModelFactory

from marketplace.accounts.models import Role, User
from marketplace.accounts.passwords import hash_password
from marketplace.bookings.models import Booking, BookingStatus
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile, TagKind
from marketplace.mentors.vetting import VettingStatus
from marketplace.scheduling.models import AvailabilitySchedule, RecurringInterval

PASSWORD = "correct-horse-battery"


class BaseFactory(SQLAlchemyModelFactory):
    class Meta:
        abstract = True
        sqlalchemy_session_factory = lambda: db.session  # noqa: E731
        sqlalchemy_session_persistence = "flush"


class UserFactory(BaseFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    name = factory.Sequence(lambda n: f"User {n}")
    timezone = "Europe/Berlin"
    password_hash = factory.LazyFunction(lambda: hash_password(PASSWORD))

    @factory.post_generation
    def roles(self, create: bool, extracted: Any, **_: Any) -> None:
        for role in extracted or (Role.LEARNER,):
            self.add_role(Role(role))


class MentorProfileFactory(BaseFactory):
    """A complete profile; `status` sets the vetting state directly (tests of the machine go through it)."""

    class Meta:
        model = MentorProfile

    user = factory.SubFactory(UserFactory, roles=(Role.MENTOR,))
    headline = "Senior backend engineer"
    bio = "I help engineers grow."
    years_experience = 8
    price_cents = 8000
    currency = "USD"
    session_minutes = factory.LazyFunction(lambda: [30, 60])
    timezone = "Europe/Berlin"
    vetting_status = VettingStatus.APPROVED.value

    @factory.post_generation
    def tags(self, create: bool, extracted: Any, **_: Any) -> None:
        extracted = extracted or {}
        self.set_tags(TagKind.SKILL, extracted.get("skills", ["python", "sql"]))
        self.set_tags(TagKind.LANGUAGE, extracted.get("languages", ["en"]))
        self.set_tags(TagKind.CAREER_PATH, extracted.get("career_paths", ["backend-developer"]))


class AvailabilityScheduleFactory(BaseFactory):
    """Weekdays 09:00-17:00 in Berlin, with no notice or buffer so tests choose their own times freely."""

    class Meta:
        model = AvailabilitySchedule

    class Params:
        profile = factory.SubFactory(MentorProfileFactory)

    profile_id = factory.SelfAttribute("profile.id")
    timezone = "Europe/Berlin"
    buffer_minutes = 0
    min_notice_minutes = 0
    horizon_days = 60
    weekly = factory.LazyFunction(
        lambda: [RecurringInterval(weekday=day, start="09:00", end="17:00") for day in range(5)]
    )


class BookingFactory(BaseFactory):
    """A booking written straight to the table, past the service's checks: for states and times the API
    cannot reach (a session in the past, a raw insert against the database's overlap invariant). An hour,
    a week from now on the hour, a confirmed session at the mentor's price."""

    class Meta:
        model = Booking

    mentor = factory.SubFactory(MentorProfileFactory)
    learner = factory.SubFactory(UserFactory)
    status = BookingStatus.CONFIRMED.value
    start_at = factory.LazyFunction(
        lambda: (utcnow() + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    )
    duration_minutes = 60
    end_at = factory.LazyAttribute(lambda b: b.start_at + timedelta(minutes=b.duration_minutes))
    blocked_until = factory.SelfAttribute("end_at")
    topic = "Career advice"
    price_cents = factory.LazyAttribute(lambda b: b.mentor.price_cents or 0)
    currency = factory.LazyAttribute(lambda b: b.mentor.currency or "USD")
    hold_expires_at = factory.LazyAttribute(lambda b: b.start_at - timedelta(days=1))
