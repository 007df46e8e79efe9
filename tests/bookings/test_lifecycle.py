from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy.exc import IntegrityError

from marketplace.bookings import state_changes
from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from tests.factories import BookingFactory
from tests.fixtures.bookable import book
from tests.helpers import ApiUser, assert_error_shape

THURSDAY_10 = "2027-01-07T10:00:00+01:00"  # 75 hours after the frozen now
MONDAY_11 = "2027-01-04T11:00:00+01:00"  # 4 hours after the frozen now


def _confirmed(learner: ApiUser, mentor: MentorProfile, start: str = THURSDAY_10) -> int:
    booking_id = book(learner, mentor, start).get_json()["id"]
    assert state_changes.confirm_paid_booking(booking_id)
    db.session.commit()
    return booking_id


def _cancel(api: ApiUser, booking_id: int, reason: str = "Conflict") -> dict:
    response = api.post(f"/api/v1/bookings/{booking_id}/cancel", json={"reason": reason})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_learner_cancelling_in_time_gets_a_full_refund(mentor: MentorProfile, learner: ApiUser) -> None:
    body = _cancel(learner, _confirmed(learner, mentor))

    assert body["status"] == "cancelled"
    assert body["refund"] == {"amount_cents": 6000, "status": "pending"}
    assert body["cancel_reason"] == "Conflict"


def test_learner_cancelling_late_gets_nothing_but_a_mentor_cancelling_late_refunds_in_full(
    mentor: MentorProfile, mentor_api: ApiUser, learner: ApiUser
) -> None:
    late_by_learner = _confirmed(learner, mentor, MONDAY_11)
    late_by_mentor = _confirmed(learner, mentor, "2027-01-04T13:00:00+01:00")

    assert _cancel(learner, late_by_learner)["refund"] == {"amount_cents": 0, "status": "none"}
    assert _cancel(mentor_api, late_by_mentor)["refund"] == {"amount_cents": 6000, "status": "pending"}


def test_cancelling_an_unpaid_hold_frees_the_slot_without_a_refund(
    mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    booking_id = book(learner, mentor, THURSDAY_10).get_json()["id"]

    body = _cancel(learner, booking_id)

    assert body["refund"] == {"amount_cents": 0, "status": "none"}
    assert book(other_learner, mentor, THURSDAY_10).status_code == 201


def test_cancel_twice_is_409_and_strangers_get_404(
    mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)

    assert_error_shape(other_learner.post(f"/api/v1/bookings/{booking_id}/cancel", json={}), 404)
    _cancel(learner, booking_id)
    assert_error_shape(learner.post(f"/api/v1/bookings/{booking_id}/cancel", json={}), 409)


def test_reschedule_moves_the_same_booking_and_frees_the_old_time(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)

    response = learner.post(
        f"/api/v1/bookings/{booking_id}/reschedule", json={"start": "2027-01-08T14:00:00+01:00"}
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["id"] == booking_id
    assert body["start"] == "2027-01-08T13:00:00+00:00"
    assert body["status"] == "confirmed"
    assert body["sequence"] == 1
    assert book(other_learner, mentor, THURSDAY_10).status_code == 201
    assert_error_shape(book(other_learner, mentor, "2027-01-08T14:00:00+01:00"), 409)
    assert len(learner.get("/api/v1/bookings").get_json()) == 1


def test_reschedule_onto_a_taken_or_invalid_time_changes_nothing(
    mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)
    book(other_learner, mentor, "2027-01-08T14:00:00+01:00")

    taken = learner.post(
        f"/api/v1/bookings/{booking_id}/reschedule", json={"start": "2027-01-08T14:00:00+01:00"}
    )
    invalid = learner.post(
        f"/api/v1/bookings/{booking_id}/reschedule", json={"start": "2027-01-09T14:00:00+01:00"}
    )

    assert_error_shape(taken, 409)
    assert_error_shape(invalid, 422)
    booking = db.session.get(Booking, booking_id)
    assert booking.start_at == datetime(2027, 1, 7, 9, 0, tzinfo=UTC)
    assert booking.sequence == 0


def test_reschedule_is_closed_inside_the_deadline(mentor: MentorProfile, learner: ApiUser) -> None:
    booking_id = _confirmed(learner, mentor, MONDAY_11)

    assert_error_shape(
        learner.post(f"/api/v1/bookings/{booking_id}/reschedule", json={"start": THURSDAY_10}), 409
    )


def test_reschedule_within_its_own_buffer_is_allowed(mentor: MentorProfile, learner: ApiUser) -> None:
    booking_id = _confirmed(learner, mentor)

    response = learner.post(
        f"/api/v1/bookings/{booking_id}/reschedule", json={"start": "2027-01-07T10:30:00+01:00"}
    )

    assert response.status_code == 200, response.get_data(as_text=True)


def test_completion_no_show_and_reviews(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    other_learner: ApiUser,
    clock: time_machine.Coordinates,
) -> None:
    attended = _confirmed(learner, mentor)
    skipped = _confirmed(learner, mentor, "2027-01-07T13:00:00+01:00")
    assert_error_shape(learner.post(f"/api/v1/bookings/{attended}/review", json={"rating": 5}), 409)
    learner_absent = {"who": "learner", "note": "Never joined"}
    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{skipped}/no-show", json=learner_absent), 409)

    clock.move_to(datetime(2027, 1, 7, 12, 30, tzinfo=UTC))
    assert_error_shape(learner.post(f"/api/v1/bookings/{skipped}/no-show", json=learner_absent), 403)
    reported = mentor_api.post(f"/api/v1/bookings/{skipped}/no-show", json=learner_absent).get_json()
    assert (reported["status"], reported["no_show_party"]) == ("no_show", "learner")
    assert state_changes.complete_finished() == []  # the report window is still open
    clock.move_to(datetime(2027, 1, 8, 10, 1, tzinfo=UTC))  # a day after the end
    assert state_changes.complete_finished() == [attended]
    assert state_changes.complete_finished() == []
    db.session.commit()

    assert_error_shape(learner.post(f"/api/v1/bookings/{attended}/review", json={"rating": 6}), 422)
    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{attended}/review", json={"rating": 5}), 403)
    assert_error_shape(other_learner.post(f"/api/v1/bookings/{attended}/review", json={"rating": 5}), 404)
    created = learner.post(f"/api/v1/bookings/{attended}/review", json={"rating": 4, "comment": "Helpful"})
    assert created.status_code == 201
    assert created.get_json()["rating"] == 4
    assert_error_shape(learner.post(f"/api/v1/bookings/{attended}/review", json={"rating": 5}), 409)
    assert_error_shape(learner.post(f"/api/v1/bookings/{skipped}/review", json={"rating": 1}), 409)
    public = client.get(f"/api/v1/mentors/{mentor.id}").get_json()
    assert public["rating_count"] == 1
    assert public["rating_avg"] == pytest.approx(4.0)


def test_ratings_average_over_reviews(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    clock: time_machine.Coordinates,
) -> None:
    first = _confirmed(learner, mentor)
    second = _confirmed(other_learner, mentor, "2027-01-07T13:00:00+01:00")
    clock.move_to(datetime(2027, 1, 9, tzinfo=UTC))
    state_changes.complete_finished()
    db.session.commit()

    learner.post(f"/api/v1/bookings/{first}/review", json={"rating": 5})
    other_learner.post(f"/api/v1/bookings/{second}/review", json={"rating": 2})

    public = client.get(f"/api/v1/mentors/{mentor.id}").get_json()
    assert public["rating_count"] == 2
    assert public["rating_avg"] == pytest.approx(3.5)


def _event(payload: bytes):
    calendar = Calendar.from_ical(payload)
    events = calendar.walk("VEVENT")
    assert len(events) == 1
    return events[0]


def test_ics_keeps_its_uid_bumps_sequence_and_shows_cancellation(
    mentor: MentorProfile, learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)
    url = f"/api/v1/bookings/{booking_id}/calendar.ics"

    first = learner.get(url)
    assert first.status_code == 200
    assert first.mimetype == "text/calendar"
    event = _event(first.data)
    assert event.decoded("dtstart") == datetime(2027, 1, 7, 9, 0, tzinfo=UTC)
    assert event.decoded("dtend") == datetime(2027, 1, 7, 10, 0, tzinfo=UTC)
    assert b"DTSTART:20270107T090000Z" in first.data
    assert str(event["status"]) == "CONFIRMED"

    learner.post(f"/api/v1/bookings/{booking_id}/reschedule", json={"start": "2027-01-08T14:00:00+01:00"})
    moved = _event(learner.get(url).data)
    _cancel(learner, booking_id)
    cancelled = _event(learner.get(url).data)

    assert str(moved["uid"]) == str(event["uid"]) == str(cancelled["uid"])
    assert int(moved["sequence"]) == 1
    assert moved.decoded("dtstart") == datetime(2027, 1, 8, 13, 0, tzinfo=UTC)
    assert int(cancelled["sequence"]) == 2
    assert str(cancelled["status"]) == "CANCELLED"


def test_private_calendar_feed_lists_live_bookings_and_rotates(
    client: FlaskClient, mentor: MentorProfile, mentor_api: ApiUser, learner: ApiUser, other_learner: ApiUser
) -> None:
    confirmed = _confirmed(learner, mentor)
    cancelled = _confirmed(other_learner, mentor, "2027-01-07T13:00:00+01:00")
    _cancel(other_learner, cancelled)

    url = mentor_api.post("/api/v1/me/calendar-feed").get_json()["url"]
    path = url.split("://", 1)[1].split("/", 1)[1]
    feed = client.get(f"/{path}")

    assert feed.status_code == 200
    uids = [str(e["uid"]) for e in Calendar.from_ical(feed.data).walk("VEVENT")]
    assert uids == [f"booking-{confirmed}@mentor-marketplace"]
    mentor_api.post("/api/v1/me/calendar-feed")
    assert_error_shape(client.get(f"/{path}"), 404)
    assert_error_shape(learner.post("/api/v1/me/calendar-feed"), 403)


def test_the_database_refuses_overlapping_live_bookings(mentor: MentorProfile, learner: ApiUser) -> None:
    """The invariant does not depend on the service's checks: a raw insert past them still fails."""
    existing = db.session.get(Booking, book(learner, mentor, THURSDAY_10).get_json()["id"])
    start = existing.start_at + timedelta(minutes=30)
    with pytest.raises(IntegrityError):
        BookingFactory(mentor=mentor, start_at=start, topic="sneaky")
    db.session.rollback()


def test_the_database_allows_overlap_with_dead_bookings(mentor: MentorProfile, learner: ApiUser) -> None:
    existing = db.session.get(Booking, book(learner, mentor, THURSDAY_10).get_json()["id"])
    _cancel(learner, existing.id)
    clash = BookingFactory(
        mentor=mentor, start_at=existing.start_at, blocked_until=existing.blocked_until, topic="fine"
    )

    assert clash.id is not None
