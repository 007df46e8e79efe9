"""Per-mentor notice periods for cancelling and moving, and the cancellation preview: what it shows is what
cancelling then does, down to the refund Stripe makes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient

from marketplace.mentors.models import MentorProfile
from tests.fixtures.bookable import book
from tests.helpers import ApiUser, assert_error_shape
from tests.payments.test_approval import THURSDAY_10, deliver
from tests.support.stripe_client import StripeTestClient

FRIDAY_10 = "2027-01-08T10:00:00+01:00"


def confirmed(
    client: FlaskClient, learner: ApiUser, mentor: MentorProfile, stripe_client: StripeTestClient
) -> dict[str, Any]:
    held = book(learner, mentor, THURSDAY_10)
    assert held.status_code == 201, held.get_data(as_text=True)
    intent_id = held.get_json()["payment"]["payment_intent_id"]
    assert stripe_client.pay(intent_id)["status"] == "succeeded"
    deliver(client, "payment_intent.succeeded", stripe_client.intent(intent_id))
    body = learner.get(f"/api/v1/bookings/{held.get_json()['id']}").get_json()
    assert body["status"] == "confirmed"
    return body


def refunded_at_stripe(stripe_client: StripeTestClient, intent_id: str) -> list[int]:
    refunds = stripe_client.session.get(
        f"{stripe_client.api_base}/v1/refunds", params={"payment_intent": intent_id}, timeout=10
    ).json()["data"]
    return [refund["amount"] for refund in refunds]


def set_notice(mentor_api: ApiUser, **hours: int) -> None:
    response = mentor_api.put("/api/v1/me/mentor-profile", json=hours)
    assert response.status_code == 200, response.get_data(as_text=True)
    for name, value in hours.items():
        assert response.get_json()[name] == value


@pytest.mark.parametrize(("hours_later", "refund"), [(0, 6000), (52, 0)])
def test_the_preview_shows_the_refund_cancelling_then_makes(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
    hours_later: int,
    refund: int,
) -> None:
    body = confirmed(client, learner, mentor, stripe_client)
    clock.shift(timedelta(hours=hours_later))  # 75 hours ahead, or 23 (inside the 24-hour refund window)

    preview = learner.get(f"/api/v1/bookings/{body['id']}/cancellation")
    cancelled = learner.post(f"/api/v1/bookings/{body['id']}/cancel", json={})

    assert preview.status_code == 200
    assert preview.get_json()["allowed"] is True
    assert preview.get_json()["refund_cents"] == refund
    assert preview.get_json()["currency"] == "USD"
    assert "24 hours" in preview.get_json()["reason"]
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert cancelled.get_json()["refund"]["amount_cents"] == refund
    assert refunded_at_stripe(stripe_client, body["payment"]["payment_intent_id"]) == (
        [refund] if refund else []
    )


def test_a_learner_cannot_cancel_inside_the_mentors_notice(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    set_notice(mentor_api, cancel_notice_hours=72)
    body = confirmed(client, learner, mentor, stripe_client)
    path = f"/api/v1/bookings/{body['id']}"
    assert learner.get(f"{path}/cancellation").get_json()["allowed"] is True
    clock.shift(timedelta(hours=4))  # 71 hours ahead

    preview = learner.get(f"{path}/cancellation").get_json()
    refused = learner.post(f"{path}/cancel", json={})
    by_mentor = mentor_api.post(f"{path}/cancel", json={"reason": "Ill"})

    assert preview == {"allowed": False, "refund_cents": 0, "currency": "USD", "reason": preview["reason"]}
    assert "72 hours' notice" in preview["reason"]
    assert "72 hours' notice" in assert_error_shape(refused, 409)["message"]
    assert by_mentor.status_code == 200
    assert by_mentor.get_json()["refund"]["amount_cents"] == 6000
    assert refunded_at_stripe(stripe_client, body["payment"]["payment_intent_id"]) == [6000]


def test_nobody_moves_a_session_inside_the_mentors_notice(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = confirmed(client, learner, mentor, stripe_client)
    path = f"/api/v1/bookings/{body['id']}/reschedule"
    set_notice(mentor_api, reschedule_notice_hours=80)  # the session is 75 hours away

    by_learner = learner.post(path, json={"start": FRIDAY_10})
    by_mentor = mentor_api.post(path, json={"start": FRIDAY_10})
    set_notice(mentor_api, reschedule_notice_hours=48)
    moved = learner.post(path, json={"start": FRIDAY_10})

    assert "80 hours" in assert_error_shape(by_learner, 409)["message"]
    assert_error_shape(by_mentor, 409)
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["start"] == "2027-01-08T09:00:00+00:00"


def test_notice_settings_are_bounded(mentor_api: ApiUser) -> None:
    response = mentor_api.put("/api/v1/me/mentor-profile", json={"cancel_notice_hours": -1})

    assert "cancel_notice_hours" in assert_error_shape(response, 422)["errors"]["json"]


def test_a_preview_of_a_booking_not_yours_is_404(
    mentor: MentorProfile, learner: ApiUser, other_learner: ApiUser
) -> None:
    held = book(learner, mentor, THURSDAY_10).get_json()

    assert_error_shape(other_learner.get(f"/api/v1/bookings/{held['id']}/cancellation"), 404)
    unpaid = learner.get(f"/api/v1/bookings/{held['id']}/cancellation").get_json()
    assert unpaid["allowed"] is True
    assert unpaid["refund_cents"] == 0
