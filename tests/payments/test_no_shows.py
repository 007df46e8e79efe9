"""No-show reports through HTTP, with real payments on the Stripe stand-in and the clock moved through the
report window: who pays whom, strikes, disputes between the parties, and completion when nobody reports."""

from __future__ import annotations

from datetime import UTC, datetime

import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.bookings import state_changes
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments.models import EarningEntry
from tests.factories import UserFactory
from tests.fixtures.bookable import (
    DURING,
    LEARNER_ABSENT,
    MENTOR_ABSENT,
    confirmed_booking,
    hold,
    refunds_at_stripe,
)
from tests.helpers import ApiUser, assert_error_shape
from tests.payments.test_webhooks import _booking
from tests.support.stripe_client import StripeTestClient


def _ledger(booking_id: int) -> list[tuple[str, int]]:
    rows = db.session.execute(
        select(EarningEntry.kind, EarningEntry.amount_cents)
        .where(EarningEntry.booking_id == booking_id)
        .order_by(EarningEntry.id)
    )
    return [(row.kind, row.amount_cents) for row in rows]


def test_a_mentor_no_show_refunds_the_learner_in_full_at_stripe_and_counts_a_strike(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, "2027-01-07T10:00:00+01:00")
    clock.move_to(DURING)

    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{body['id']}/no-show", json=MENTOR_ABSENT), 403)
    reported = learner.post(
        f"/api/v1/bookings/{body['id']}/no-show", json=MENTOR_ABSENT, headers={"Idempotency-Key": "ns-1"}
    )
    again = learner.post(
        f"/api/v1/bookings/{body['id']}/no-show", json=MENTOR_ABSENT, headers={"Idempotency-Key": "ns-1"}
    )

    assert reported.status_code == 200, reported.get_data(as_text=True)
    assert again.get_json() == reported.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (reported.get_json()["status"], reported.get_json()["no_show_party"]) == ("no_show", "mentor")
    assert refunds_at_stripe(stripe_client, body["payment"]["payment_intent_id"]) == [6000]
    booking = _booking(body["id"])
    assert (booking.refund_amount_cents, booking.refund_status) == (6000, "succeeded")
    assert _ledger(body["id"]) == [("session", 4800), ("refund_reversal", -4800)]
    assert_error_shape(learner.post(f"/api/v1/bookings/{body['id']}/no-show", json=MENTOR_ABSENT), 409)
    assert _booking(body["id"]).mentor.vetting_status == "approved"  # one strike of three


def test_the_third_strike_in_90_days_suspends_the_mentor_with_the_reports_attached(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    starts = ("2027-01-07T10:00:00+01:00", "2027-01-07T12:00:00+01:00", "2027-01-07T14:00:00+01:00")
    paid = [confirmed_booking(client, learner, mentor, stripe_client, start) for start in starts]
    fourth = confirmed_booking(client, learner, mentor, stripe_client, "2027-01-07T16:00:00+01:00")
    pending = hold(learner, mentor, "2027-01-08T10:00:00+01:00")
    clock.move_to(datetime(2027, 1, 7, 16, 30, tzinfo=UTC))
    for number, body in enumerate(paid, start=1):
        response = learner.post(
            f"/api/v1/bookings/{body['id']}/no-show", json={"who": "mentor", "note": f"absent #{number}"}
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        expected = "suspended" if number == 3 else "approved"
        assert _booking(body["id"]).mentor.vetting_status == expected

    admin = ApiUser(client, UserFactory(roles=("admin",)))
    history = admin.get(f"/api/v1/admin/mentors/{mentor.id}/vetting-history").get_json()
    suspension = history[-1]
    assert (suspension["decision"], suspension["to_status"], suspension["admin_id"]) == (
        "suspend",
        "suspended",
        None,
    )
    for number, body in enumerate(paid, start=1):
        assert f"booking {body['id']}" in suspension["note"]
        assert f"absent #{number}" in suspension["note"]
    queue = admin.get("/api/v1/admin/vetting-queue?status=suspended").get_json()
    assert [profile["id"] for profile in queue] == [mentor.id]
    assert _booking(pending["id"]).status == "cancelled"  # as with any suspension: holds are released
    # A strike past the limit refunds as any other; the mentor is suspended once.
    assert learner.post(f"/api/v1/bookings/{fourth['id']}/no-show", json=MENTOR_ABSENT).status_code == 200
    assert len(admin.get(f"/api/v1/admin/mentors/{mentor.id}/vetting-history").get_json()) == len(history)


def test_a_learner_no_show_pays_the_mentor(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, "2027-01-07T10:00:00+01:00")
    clock.move_to(datetime(2027, 1, 8, 9, 59, tzinfo=UTC))  # a minute before the window closes

    assert_error_shape(learner.post(f"/api/v1/bookings/{body['id']}/no-show", json=LEARNER_ABSENT), 403)
    reported = mentor_api.post(f"/api/v1/bookings/{body['id']}/no-show", json=LEARNER_ABSENT)

    assert reported.status_code == 200, reported.get_data(as_text=True)
    assert (reported.get_json()["status"], reported.get_json()["disputed"]) == ("no_show", False)
    assert refunds_at_stripe(stripe_client, body["payment"]["payment_intent_id"]) == []
    assert _ledger(body["id"]) == [("session", 4800)]
    booking = _booking(body["id"])
    assert (booking.refund_status, booking.no_show_party) == ("none", "learner")


def test_conflicting_reports_open_a_dispute_with_no_money_moved_until_an_admin_decides(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, "2027-01-07T10:00:00+01:00")
    intent_id = body["payment"]["payment_intent_id"]
    clock.move_to(DURING)
    assert mentor_api.post(f"/api/v1/bookings/{body['id']}/no-show", json=LEARNER_ABSENT).status_code == 200

    counter = learner.post(f"/api/v1/bookings/{body['id']}/no-show", json=MENTOR_ABSENT)

    assert counter.status_code == 200, counter.get_data(as_text=True)
    assert counter.get_json()["disputed"] is True
    assert refunds_at_stripe(stripe_client, intent_id) == []
    admin = ApiUser(client, UserFactory(roles=("admin",)))
    listed = admin.get("/api/v1/admin/bookings?disputed=true").get_json()
    assert [row["id"] for row in listed] == [body["id"]]
    detail = admin.get(f"/api/v1/admin/bookings/{body['id']}").get_json()
    assert sorted(r["absent_party"] for r in detail["no_show_reports"]) == ["learner", "mentor"]
    assert_error_shape(mentor_api.post(f"/api/v1/bookings/{body['id']}/no-show", json=LEARNER_ABSENT), 409)

    resolved = admin.post(f"/api/v1/admin/bookings/{body['id']}/resolve", json={"absent": "mentor"})

    assert resolved.status_code == 200, resolved.get_data(as_text=True)
    assert (resolved.get_json()["disputed"], resolved.get_json()["no_show_party"]) == (False, "mentor")
    assert refunds_at_stripe(stripe_client, intent_id) == [6000]
    assert admin.get("/api/v1/admin/bookings?disputed=true").get_json() == []
    assert_error_shape(
        admin.post(f"/api/v1/admin/bookings/{body['id']}/resolve", json={"absent": "mentor"}), 409
    )


def test_reports_outside_the_window_are_refused_and_completion_waits_for_its_end(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, "2027-01-07T10:00:00+01:00")
    path = f"/api/v1/bookings/{body['id']}/no-show"
    assert_error_shape(learner.post(path, json=MENTOR_ABSENT), 409)  # not started yet
    assert_error_shape(learner.post(path, json={"who": "nobody"}), 422)

    clock.move_to(datetime(2027, 1, 8, 9, 59, tzinfo=UTC))
    assert state_changes.complete_finished() == []  # 23 h 59 min after the end: still reportable
    db.session.commit()
    clock.move_to(datetime(2027, 1, 8, 10, 1, tzinfo=UTC))
    assert_error_shape(learner.post(path, json=MENTOR_ABSENT), 409)
    assert_error_shape(mentor_api.post(path, json=LEARNER_ABSENT), 409)
    assert state_changes.complete_finished() == [body["id"]]
    db.session.commit()
    assert _booking(body["id"]).status == "completed"
    assert _ledger(body["id"]) == [("session", 4800)]
