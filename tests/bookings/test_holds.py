"""Holds cannot be squatted: made at a bounded rate per learner, not renewed by letting go and holding the
same time again, and a released hold's PaymentIntent can no longer be paid. The client secret that pays
a hold is the learner's alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from flask.testing import FlaskClient

from marketplace.bookings import tasks
from marketplace.mentors.models import MentorProfile
from tests.factories import UserFactory
from tests.fixtures.bookable import book, hold
from tests.helpers import ApiUser, assert_error_shape
from tests.support.stripe_client import StripeTestClient

THURSDAY_10 = "2027-01-07T10:00:00+01:00"
THURSDAY_10_30 = "2027-01-07T10:30:00+01:00"
THURSDAY_14 = "2027-01-07T14:00:00+01:00"


def _cancel(learner: ApiUser, booking_id: int) -> None:
    response = learner.post(f"/api/v1/bookings/{booking_id}/cancel", json={"reason": "Changed my mind"})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_a_cancelled_hold_cannot_be_taken_again_by_its_learner_until_the_cooldown_passes(
    mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    clock: time_machine.Coordinates,
) -> None:
    _cancel(learner, hold(learner, mentor, THURSDAY_10)["id"])

    again = assert_error_shape(book(learner, mentor, THURSDAY_10), 409)
    assert "recently" in again["message"]
    assert again["errors"] == {"start": ["Released by you recently."]}
    assert_error_shape(book(learner, mentor, THURSDAY_10_30, duration=30), 409)  # overlapping counts too
    assert book(learner, mentor, THURSDAY_14).status_code == 201  # other times are free to hold

    clock.shift(timedelta(minutes=9))
    assert_error_shape(book(learner, mentor, THURSDAY_10), 409)
    clock.shift(timedelta(minutes=2))
    assert book(learner, mentor, THURSDAY_10).status_code == 201


def test_the_cooldown_binds_only_the_learner_who_let_go(
    mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    _cancel(learner, hold(learner, mentor, THURSDAY_10)["id"])

    assert book(other_learner, mentor, THURSDAY_10).status_code == 201


def test_a_lapsed_hold_cannot_be_taken_again_at_once_either(
    mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    hold(learner, mentor, THURSDAY_10)
    clock.shift(timedelta(minutes=16))  # the hold lapsed a minute ago

    assert_error_shape(book(learner, mentor, THURSDAY_10), 409)
    clock.shift(timedelta(minutes=10))
    assert book(learner, mentor, THURSDAY_10).status_code == 201


def test_a_hold_cancelled_by_the_mentor_does_not_bind_the_learner(
    mentor: MentorProfile, mentor_api: ApiUser, learner: ApiUser
) -> None:
    _cancel(mentor_api, hold(learner, mentor, THURSDAY_10)["id"])

    assert book(learner, mentor, THURSDAY_10).status_code == 201


def test_cooldown_length_is_a_setting(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(client.application.config, "HOLD_REHOLD_COOLDOWN_MINUTES", 0)
    _cancel(learner, hold(learner, mentor, THURSDAY_10)["id"])

    assert book(learner, mentor, THURSDAY_10).status_code == 201


def test_holds_are_rate_limited_per_learner_counting_only_holds_made(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(client.application.config, "HOLD_RATE_LIMIT", "2 per hour")
    replay = {"Idempotency-Key": "one-hold"}
    assert book(learner, mentor, THURSDAY_10, headers=replay).status_code == 201
    assert book(learner, mentor, THURSDAY_10, headers=replay).status_code == 201  # a replay: not counted
    assert_error_shape(book(learner, mentor, "2027-01-07T10:30:00+01:00", 30), 409)  # refused: not counted
    assert book(learner, mentor, "2027-01-07T12:00:00+01:00").status_code == 201

    limited = book(learner, mentor, THURSDAY_14)

    assert_error_shape(limited, 429)
    assert int(limited.headers["Retry-After"]) > 0
    assert book(other_learner, mentor, THURSDAY_14).status_code == 201


def test_a_cancelled_holds_payment_intent_is_cancelled_at_stripe(
    mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    held = hold(learner, mentor, THURSDAY_10)
    intent_id = held["payment"]["payment_intent_id"]
    assert stripe_client.intent(intent_id)["status"] == "requires_payment_method"

    _cancel(learner, held["id"])

    assert stripe_client.intent(intent_id)["status"] == "canceled"


def test_a_lapsed_holds_payment_intent_is_cancelled_at_stripe(
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    held = hold(learner, mentor, THURSDAY_10)
    kept = hold(learner, mentor, THURSDAY_14)
    clock.shift(timedelta(minutes=16))

    assert tasks.expire_lapsed_holds.apply().get() == 2

    for booking in (held, kept):
        assert stripe_client.intent(booking["payment"]["payment_intent_id"])["status"] == "canceled"


def test_only_the_learner_sees_the_client_secret(
    client: FlaskClient, mentor: MentorProfile, mentor_api: ApiUser, learner: ApiUser
) -> None:
    held = hold(learner, mentor, THURSDAY_10)
    secret = held["payment"]["client_secret"]
    admin = ApiUser(client, UserFactory(roles=("admin",)))
    path = f"/api/v1/bookings/{held['id']}"

    assert secret
    assert learner.get(path).get_json()["payment"]["client_secret"] == secret
    assert [b["payment"]["client_secret"] for b in learner.get("/api/v1/bookings").get_json()] == [secret]
    for viewer in (mentor_api, admin):
        payment = viewer.get(path).get_json()["payment"]
        assert payment["client_secret"] is None
        assert payment["payment_intent_id"] == held["payment"]["payment_intent_id"]
    assert [
        b["payment"]["client_secret"] for b in mentor_api.get("/api/v1/bookings?role=mentor").get_json()
    ] == [None]
