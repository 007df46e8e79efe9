from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.bookings import state_changes
from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus
from tests.factories import UserFactory
from tests.fixtures.bookable import NOW, book
from tests.helpers import ApiUser, assert_error_shape

MONDAY_9_BERLIN = "2027-01-04T09:00:00+01:00"


def _slot_starts(client: FlaskClient, mentor: MentorProfile, query: str) -> list[str]:
    response = client.get(f"/api/v1/mentors/{mentor.id}/slots{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [slot["start"] for slot in response.get_json()]


def test_slots_are_listed_in_the_requested_time_zone(client: FlaskClient, mentor: MentorProfile) -> None:
    berlin = _slot_starts(client, mentor, "?from=2027-01-04&to=2027-01-04&duration=60&tz=Europe/Berlin")
    new_york = _slot_starts(client, mentor, "?from=2027-01-04&to=2027-01-04&duration=60&tz=America/New_York")

    assert berlin[0] == MONDAY_9_BERLIN
    assert berlin[-1] == "2027-01-04T16:00:00+01:00"
    assert new_york[0] == "2027-01-04T03:00:00-05:00"


def test_a_listed_slot_can_be_booked_and_holds_it(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser
) -> None:
    response = book(learner, mentor, MONDAY_9_BERLIN)

    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == "pending_payment"
    assert body["start"] == "2027-01-04T08:00:00+00:00"
    assert body["end"] == "2027-01-04T09:00:00+00:00"
    assert body["price_cents"] == 6000
    assert body["currency"] == "USD"
    assert body["hold_expires_at"] == (NOW + timedelta(minutes=15)).isoformat()
    assert body["payment"]["provider"] == "stripe"
    starts = _slot_starts(client, mentor, "?from=2027-01-04&to=2027-01-04&tz=Europe/Berlin")
    assert MONDAY_9_BERLIN not in starts
    # The 15-minute buffer keeps 10:00 free of a session starting right at the end of this one.
    assert "2027-01-04T10:00:00+01:00" not in starts
    assert "2027-01-04T10:30:00+01:00" in starts


def test_a_taken_slot_is_409_for_the_next_learner(
    mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    assert book(learner, mentor, MONDAY_9_BERLIN).status_code == 201

    assert_error_shape(book(other_learner, mentor, MONDAY_9_BERLIN), 409)
    assert_error_shape(book(other_learner, mentor, "2027-01-04T09:30:00+01:00", duration=30), 409)
    assert_error_shape(book(other_learner, mentor, "2027-01-04T10:00:00+01:00"), 409)


@pytest.mark.parametrize(
    ("start", "duration", "reason"),
    [
        ("2027-01-04T09:10:00+01:00", 60, "outside_availability"),
        ("2027-01-09T10:00:00+01:00", 60, "outside_availability"),
        ("2027-01-04T16:30:00+01:00", 60, "outside_availability"),
        ("2027-01-04T07:30:00+01:00", 30, "too_soon"),
        ("2027-01-03T10:00:00+01:00", 60, "in_the_past"),
        ("2027-04-05T10:00:00+02:00", 60, "beyond_horizon"),
    ],
)
def test_a_time_that_is_not_a_slot_is_422(
    mentor: MentorProfile, learner: ApiUser, start: str, duration: int, reason: str
) -> None:
    body = assert_error_shape(book(learner, mentor, start, duration), 422)

    assert body["errors"]["start"] == [reason]


def test_a_length_the_mentor_does_not_offer_is_422(mentor: MentorProfile, learner: ApiUser) -> None:
    assert_error_shape(book(learner, mentor, MONDAY_9_BERLIN, duration=45), 422)


def test_a_start_without_an_offset_is_422(mentor: MentorProfile, learner: ApiUser) -> None:
    body = assert_error_shape(book(learner, mentor, "2027-01-04T09:00:00"), 422)

    assert "start" in body["errors"]["json"]


def test_booking_yourself_or_an_unapproved_mentor_is_422(
    client: FlaskClient, mentor: MentorProfile, mentor_api: ApiUser, learner: ApiUser
) -> None:
    assert_error_shape(book(mentor_api, mentor, MONDAY_9_BERLIN), 422)
    mentor.vetting_status = VettingStatus.SUSPENDED.value
    db.session.commit()
    assert_error_shape(book(learner, mentor, MONDAY_9_BERLIN), 422)
    assert_error_shape(client.get(f"/api/v1/mentors/{mentor.id}/slots"), 404)


def test_an_unknown_mentor_is_404(learner: ApiUser, mentor: MentorProfile) -> None:
    response = learner.post(
        "/api/v1/bookings",
        json={"mentor_id": 999999, "start": MONDAY_9_BERLIN, "duration_minutes": 60, "topic": "x"},
    )
    assert_error_shape(response, 404)


def test_unpaid_holds_are_capped(mentor: MentorProfile, learner: ApiUser) -> None:
    for hour in ("09", "11", "13"):
        assert book(learner, mentor, f"2027-01-04T{hour}:00:00+01:00").status_code == 201

    assert_error_shape(book(learner, mentor, "2027-01-04T15:00:00+01:00"), 429)


def test_a_lapsed_hold_frees_its_slot(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    clock: time_machine.Coordinates,
) -> None:
    first = book(learner, mentor, MONDAY_9_BERLIN.replace("09:00", "11:00")).get_json()
    clock.shift(timedelta(minutes=16))

    assert "2027-01-04T11:00:00+01:00" in _slot_starts(
        client, mentor, "?from=2027-01-04&to=2027-01-04&tz=Europe/Berlin"
    )
    second = book(other_learner, mentor, "2027-01-04T11:00:00+01:00")
    assert second.status_code == 201
    assert db.session.get(Booking, first["id"]).status == "expired"


def test_expiry_sweep_and_confirmation_are_compare_and_swap(
    mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    paid = book(learner, mentor, MONDAY_9_BERLIN).get_json()["id"]
    unpaid = book(learner, mentor, "2027-01-04T11:00:00+01:00").get_json()["id"]

    assert state_changes.confirm_paid_booking(paid) is True
    assert state_changes.confirm_paid_booking(paid) is False
    clock.shift(timedelta(minutes=20))
    assert state_changes.expire_lapsed_holds() == [unpaid]
    assert state_changes.expire_lapsed_holds() == []
    assert state_changes.confirm_paid_booking(unpaid) is False
    assert db.session.get(Booking, paid).status == "confirmed"
    assert db.session.get(Booking, unpaid).status == "expired"


def test_idempotency_key_returns_the_first_result(mentor: MentorProfile, learner: ApiUser) -> None:
    headers = {"Idempotency-Key": "booking-attempt-1"}

    first = book(learner, mentor, MONDAY_9_BERLIN, headers=headers)
    again = book(learner, mentor, MONDAY_9_BERLIN, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(db.session.scalars(select(Booking)).all()) == 1
    assert_error_shape(book(learner, mentor, "2027-01-04T11:00:00+01:00", headers=headers), 422)


def test_the_same_key_from_another_user_is_independent(
    mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    assert book(learner, mentor, MONDAY_9_BERLIN, headers=headers).status_code == 201

    assert_error_shape(book(other_learner, mentor, MONDAY_9_BERLIN, headers=headers), 409)


def test_bookings_are_visible_to_their_people_only(
    client: FlaskClient, mentor: MentorProfile, mentor_api: ApiUser, learner: ApiUser, other_learner: ApiUser
) -> None:
    booking_id = book(learner, mentor, MONDAY_9_BERLIN).get_json()["id"]
    admin = ApiUser(client, UserFactory(roles=("admin",)))

    assert learner.get(f"/api/v1/bookings/{booking_id}").status_code == 200
    assert mentor_api.get(f"/api/v1/bookings/{booking_id}").status_code == 200
    assert admin.get(f"/api/v1/bookings/{booking_id}").status_code == 200
    assert_error_shape(other_learner.get(f"/api/v1/bookings/{booking_id}"), 404)
    assert [b["id"] for b in learner.get("/api/v1/bookings?role=learner").get_json()] == [booking_id]
    assert [b["id"] for b in mentor_api.get("/api/v1/bookings?role=mentor").get_json()] == [booking_id]
    assert learner.get("/api/v1/bookings?role=mentor").get_json() == []
    assert other_learner.get("/api/v1/bookings").get_json() == []
    assert_error_shape(learner.get("/api/v1/bookings?status=bogus"), 422)


def test_slot_queries_are_validated(client: FlaskClient, mentor: MentorProfile) -> None:
    for query in (
        "?tz=Mars/Base",
        "?from=2027-02-01&to=2027-01-01",
        "?from=2027-01-01&to=2027-06-01",
        "?from=bad",
    ):
        assert_error_shape(client.get(f"/api/v1/mentors/{mentor.id}/slots{query}"), 422)
    assert_error_shape(client.get(f"/api/v1/mentors/{mentor.id}/slots?duration=45"), 422)
