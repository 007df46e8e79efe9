"""Building blocks for career and discovery tests: the shipped paths in the database, mentors with the
exact ranking inputs a test needs, and a reviewed past session."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marketplace.accounts.models import Role, User
from marketplace.bookings.models import BookingStatus, Review
from marketplace.careers.content import load_career_paths
from marketplace.careers.service import sync_career_paths
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus
from tests.factories import BookingFactory, MentorProfileFactory, UserFactory


def load_paths() -> None:
    sync_career_paths(load_career_paths())
    db.session.commit()


def make_mentor(
    name: str | None = None,
    *,
    chose: tuple[str, ...] = (),
    skills: tuple[str, ...] = ("knitting",),
    languages: tuple[str, ...] = ("en",),
    rating: tuple[float | None, int] = (None, 0),
    price_cents: int = 8000,
    next_free: datetime | None = None,
    status: VettingStatus = VettingStatus.APPROVED,
    **fields: Any,
) -> MentorProfile:
    """A mentor whose every ranking input is given, so tests differ in exactly one of them."""
    user_fields = {"name": name} if name else {}
    return MentorProfileFactory(
        user=UserFactory(roles=(Role.MENTOR,), **user_fields),
        tags={"skills": list(skills), "career_paths": list(chose), "languages": list(languages)},
        rating_avg=rating[0],
        rating_count=rating[1],
        price_cents=price_cents,
        next_available_at=next_free,
        vetting_status=status.value,
        **fields,
    )


def tomorrow() -> datetime:
    return utcnow() + timedelta(hours=20)


def add_review(mentor: MentorProfile, learner: User, rating: int, comment: str) -> Review:
    """A completed session a week ago and its review, written directly: past times cannot be booked."""
    start = (utcnow() - timedelta(days=7)).replace(microsecond=0)
    booking = BookingFactory(
        mentor=mentor, learner=learner, status=BookingStatus.COMPLETED.value, start_at=start
    )
    review = Review(
        booking_id=booking.id, mentor_id=mentor.id, learner_id=learner.id, rating=rating, comment=comment
    )
    db.session.add(review)
    db.session.flush()
    return review
