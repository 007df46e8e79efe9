"""The slots listing's cache: keyed by the mentor's calendar version, so it never outlives a change."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from flask_migrate import upgrade

from marketplace.accounts.models import Role
from marketplace.accounts.service import issue_token
from marketplace.bookings import state_changes
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.scheduling.service import save_availability
from tests.factories import MentorProfileFactory, UserFactory
from tests.fixtures.bookable import NOW, WEEKDAYS_9_TO_17, book
from tests.helpers import ApiUser, recorded_selects, temporary_app
from tests.support.databases import fresh_database

MONDAY = "?from=2027-01-04&to=2027-01-04&duration=60&tz=Europe/Berlin"
MONDAY_9_BERLIN = "2027-01-04T09:00:00+01:00"


def _slots(client: FlaskClient, mentor_id: int, **headers: str) -> Any:
    return client.get(f"/api/v1/mentors/{mentor_id}/slots{MONDAY}", headers=headers)


def _starts(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [slot["start"] for slot in response.get_json()]


def test_a_listing_has_a_weak_etag_and_may_be_kept_for_30_seconds(
    client: FlaskClient, mentor: MentorProfile
) -> None:
    response = _slots(client, mentor.id)

    assert response.status_code == 200
    assert response.headers["ETag"].startswith('W/"')
    assert response.headers["Cache-Control"] == "public, max-age=30"


def test_if_none_match_is_304_until_the_calendar_or_the_minute_changes(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    etag = _slots(client, mentor.id).headers["ETag"]

    unchanged = _slots(client, mentor.id, **{"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.get_data() == b""
    assert unchanged.headers["ETag"] == etag
    assert unchanged.headers["Cache-Control"] == "public, max-age=30"

    assert book(learner, mentor, MONDAY_9_BERLIN).status_code == 201
    after_booking = _slots(client, mentor.id, **{"If-None-Match": etag})
    assert after_booking.status_code == 200
    assert MONDAY_9_BERLIN not in _starts(after_booking)

    clock.shift(timedelta(minutes=1))
    next_minute = _slots(client, mentor.id, **{"If-None-Match": after_booking.headers["ETag"]})
    assert next_minute.status_code == 200


def test_a_cached_listing_is_not_served_once_another_transaction_changed_the_calendar(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser
) -> None:
    booking_id = book(learner, mentor, MONDAY_9_BERLIN).get_json()["id"]
    assert MONDAY_9_BERLIN not in _starts(_slots(client, mentor.id))

    # What the payment worker does in its own process when the payment is abandoned.
    assert state_changes.release_unpaid_hold(booking_id, "The payment was cancelled.")
    db.session.commit()

    assert MONDAY_9_BERLIN in _starts(_slots(client, mentor.id))


def test_a_cache_hit_reads_only_the_version_and_a_miss_four_plain_queries(
    client: FlaskClient, mentor: MentorProfile
) -> None:
    mentor_id = mentor.id  # read once: each request's commit expires the test's objects
    with recorded_selects() as miss:
        first = _slots(client, mentor_id)
    with recorded_selects() as hit:
        second = _slots(client, mentor_id)

    assert second.get_data() == first.get_data()
    assert len(hit) == 1, "\n---\n".join(hit)
    assert "calendar_version" in hit[0]
    # The profile's row, the schedule with its weekly intervals, the overrides, the busy ranges.
    assert len(miss) == 4, miss
    assert not any("users" in statement or "mentor_tags" in statement for statement in miss)


@pytest.mark.postgres_only
def test_on_postgresql_a_listing_reads_without_a_transaction_and_leaves_none_behind(
    database_url: str, tmp_path: Path
) -> None:
    """Outside the test transaction, as a web process runs: the GET skips BEGIN/COMMIT, and the pooled
    connection it used is back to transactions for the next request (a booking here)."""
    with (
        fresh_database(database_url, tmp_path, prefix="slots") as url,
        temporary_app(url) as app,
        time_machine.travel(NOW, tick=False),
    ):
        with app.app_context():
            upgrade()
            mentor = MentorProfileFactory(session_minutes=[60], timezone="Europe/Berlin")
            save_availability(
                mentor.user,
                {
                    "timezone": "Europe/Berlin",
                    "weekly": WEEKDAYS_9_TO_17,
                    "buffer_minutes": 0,
                    "min_notice_minutes": 0,
                    "horizon_days": 30,
                },
            )
            token = issue_token(UserFactory(roles=(Role.LEARNER,)))
            db.session.commit()
            mentor_id = mentor.id
        client = app.test_client()

        assert MONDAY_9_BERLIN in _starts(_slots(client, mentor_id))
        assert MONDAY_9_BERLIN in _starts(_slots(client, mentor_id))
        with app.app_context():
            pooled = db.engine.raw_connection()
            try:
                assert pooled.driver_connection.autocommit is False
            finally:
                pooled.close()
        held = client.post(
            "/api/v1/bookings",
            json={"mentor_id": mentor_id, "start": MONDAY_9_BERLIN, "duration_minutes": 60, "topic": "x"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert held.status_code == 201, held.get_data(as_text=True)
        assert MONDAY_9_BERLIN not in _starts(_slots(client, mentor_id))
        with app.app_context():
            assert db.session.get(MentorProfile, mentor_id).calendar_version == 2  # availability, booking
