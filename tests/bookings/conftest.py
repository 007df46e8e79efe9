"""A bookable world at a fixed instant: Monday 4 January 2027, 07:00 in Berlin (06:00 UTC)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient

from marketplace.accounts.models import Role
from marketplace.bookings.availability.routes import SLOTS_CACHE
from marketplace.mentors.models import MentorProfile
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import ApiUser

NOW = datetime(2027, 1, 4, 6, 0, tzinfo=UTC)
WEEKDAYS_9_TO_17 = [{"weekday": day, "start": "09:00", "end": "17:00"} for day in range(5)]


@pytest.fixture(autouse=True)
def _empty_slots_cache() -> Iterator[None]:
    """Tests roll back, so SQLite hands the next test the same mentor ids and versions, at the same frozen
    minute: a listing cached by an earlier test must not answer for this one."""
    SLOTS_CACHE.clear()
    yield
    SLOTS_CACHE.clear()


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def mentor(client: FlaskClient, clock: time_machine.Coordinates) -> MentorProfile:
    """Berlin mentor, 60 USD an hour, 30 or 60 minutes, weekdays 9-17, 15 min buffer, 2 h notice."""
    profile = MentorProfileFactory(
        price_cents=6000,
        currency="USD",
        session_minutes=[30, 60],
        timezone="Europe/Berlin",
        user=UserFactory(roles=(Role.MENTOR,), timezone="Europe/Berlin"),
    )
    set_availability(ApiUser(client, profile.user))
    return profile


def set_availability(mentor_api: ApiUser, **overrides: Any) -> None:
    body = {
        "timezone": "Europe/Berlin",
        "weekly": WEEKDAYS_9_TO_17,
        "buffer_minutes": 15,
        "min_notice_minutes": 120,
        "horizon_days": 60,
        **overrides,
    }
    response = mentor_api.put("/api/v1/me/availability", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.fixture
def mentor_api(client: FlaskClient, mentor: MentorProfile) -> ApiUser:
    return ApiUser(client, mentor.user)


@pytest.fixture
def learner(client: FlaskClient) -> ApiUser:
    return ApiUser(client, UserFactory(roles=(Role.LEARNER,), timezone="America/New_York"))


@pytest.fixture
def other_learner(client: FlaskClient) -> ApiUser:
    return ApiUser(client, UserFactory(roles=(Role.LEARNER,)))


def book(api: ApiUser, mentor: MentorProfile, start: str, duration: int = 60, **kwargs: Any) -> Any:
    return api.post(
        "/api/v1/bookings",
        json={"mentor_id": mentor.id, "start": start, "duration_minutes": duration, "topic": "Career advice"},
        **kwargs,
    )
