"""Admin tools for bookings: the filtered list, refunds by hand (at the Stripe stand-in, once per request id),
and Stripe disputes flagging and clearing a booking."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments.gateway import StripeGateway
from marketplace.payments.models import EarningEntry, StripeEvent
from marketplace.payments.service import NOT_OURS
from tests.factories import UserFactory
from tests.fixtures.bookable import THURSDAY_10, confirmed_booking, refunds_at_stripe
from tests.helpers import ApiUser, assert_error_shape
from tests.payments.test_no_shows import _ledger
from tests.payments.test_webhooks import _booking, _held, deliver
from tests.support.servers import free_port
from tests.support.stripe_client import StripeTestClient


def _admin(client: FlaskClient) -> ApiUser:
    return ApiUser(client, UserFactory(roles=("admin",)))


def test_the_admin_list_filters_by_status_mentor_learner_and_dispute(
    client: FlaskClient,
    mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    paid = confirmed_booking(client, learner, mentor, stripe_client, THURSDAY_10)
    held = _held(other_learner, mentor, "2027-01-07T14:00:00+01:00")
    dispute = {"id": "dp_list", "object": "dispute", "payment_intent": paid["payment"]["payment_intent_id"]}
    deliver(client, "charge.dispute.created", dispute)
    admin = _admin(client)

    def ids(query: str) -> list[int]:
        response = admin.get(f"/api/v1/admin/bookings{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return [row["id"] for row in response.get_json()]

    assert ids("") == [held["id"], paid["id"]]
    assert ids("?status=confirmed") == [paid["id"]]
    assert ids("?status=pending_payment") == [held["id"]]
    assert ids(f"?learner_id={other_learner.user.id}") == [held["id"]]
    assert ids(f"?mentor_id={mentor.id}&learner_id={learner.user.id}") == [paid["id"]]
    assert ids(f"?mentor_id={mentor.id + 1000}") == []
    assert ids("?disputed=true") == [paid["id"]]
    assert ids("?disputed=false") == [held["id"]]
    assert ids("?page_size=1") == [held["id"]]
    assert_error_shape(admin.get("/api/v1/admin/bookings?status=lost"), 422)
    assert_error_shape(learner.get("/api/v1/admin/bookings"), 403)


def test_admin_refunds_up_to_what_was_paid_once_per_request(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, THURSDAY_10)
    intent_id = body["payment"]["payment_intent_id"]
    path = f"/api/v1/admin/bookings/{body['id']}/refund"
    admin = _admin(client)

    first = admin.post(
        path, json={"amount_cents": 2000, "reason": "Audio broke"}, headers={"Idempotency-Key": "r-1"}
    )
    replay = admin.post(
        path, json={"amount_cents": 2000, "reason": "Audio broke"}, headers={"Idempotency-Key": "r-1"}
    )

    assert first.status_code == 200, first.get_data(as_text=True)
    assert replay.get_json() == first.get_json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert refunds_at_stripe(stripe_client, intent_id) == [2000]
    (made,) = first.get_json()["admin_refunds"]
    assert (made["amount_cents"], made["reason"], made["status"]) == (2000, "Audio broke", "succeeded")
    assert first.get_json()["refundable_cents"] == 4000

    over = admin.post(path, json={"amount_cents": 4001, "reason": "More"}, headers={"Idempotency-Key": "r-2"})
    assert assert_error_shape(over, 422)["errors"] == {"amount_cents": ["Must be at most 4000."]}
    assert_error_shape(admin.post(path, json={"amount_cents": 100, "reason": "No key"}), 422)
    rest = admin.post(path, json={"amount_cents": 4000, "reason": "Rest"}, headers={"Idempotency-Key": "r-3"})

    assert rest.status_code == 200, rest.get_data(as_text=True)
    assert sorted(refunds_at_stripe(stripe_client, intent_id)) == [2000, 4000]
    assert rest.get_json()["refundable_cents"] == 0
    assert_error_shape(
        admin.post(path, json={"amount_cents": 1, "reason": "x"}, headers={"Idempotency-Key": "r-4"}), 422
    )
    detail = admin.get(f"/api/v1/admin/bookings/{body['id']}").get_json()
    assert [(r["amount_cents"], r["reason"]) for r in detail["admin_refunds"]] == [
        (2000, "Audio broke"),
        (4000, "Rest"),
    ]
    refunds = detail["admin_refunds"]
    assert {r["admin_id"] for r in refunds} == {admin.user.id}
    assert [(kind.split(":")[0], amount) for kind, amount in _ledger(body["id"])] == [
        ("session", 4800),
        ("admin_refund", -1600),
        ("admin_refund", -3200),
    ]
    # Stripe's own report of the refunds is not counted a second time.
    charge = {"id": "ch_adm", "object": "charge", "payment_intent": intent_id, "amount_refunded": 6000}
    deliver(client, "charge.refunded", charge)
    assert _booking(body["id"]).refund_status == "none"
    assert len(_ledger(body["id"])) == 3


def test_an_unpaid_or_missing_booking_cannot_be_refunded_or_resolved(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser
) -> None:
    held = _held(learner, mentor)
    admin = _admin(client)
    missing = held["id"] + 1000
    refund = {"amount_cents": 100, "reason": "x"}
    keyed = {"Idempotency-Key": "missing"}
    assert_error_shape(
        admin.post(f"/api/v1/admin/bookings/{missing}/refund", json=refund, headers=keyed), 404
    )
    assert_error_shape(
        admin.post(f"/api/v1/admin/bookings/{missing}/resolve", json={"absent": "mentor"}), 404
    )
    assert_error_shape(
        admin.post(f"/api/v1/admin/bookings/{held['id']}/resolve", json={"absent": "mentor"}), 409
    )
    closed = {"id": "dp_other", "object": "dispute", "payment_intent": "pi_someone_else", "status": "lost"}
    deliver(client, "charge.dispute.closed", closed, event_id="evt_not_ours")
    assert db.session.get(StripeEvent, "evt_not_ours").outcome == NOT_OURS
    response = admin.post(
        f"/api/v1/admin/bookings/{held['id']}/refund",
        json={"amount_cents": 100, "reason": "x"},
        headers={"Idempotency-Key": "unpaid"},
    )
    assert_error_shape(response, 409)


def test_a_stripe_dispute_flags_the_booking_and_a_lost_one_takes_the_mentors_share(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, THURSDAY_10)
    dispute = {"id": "dp_9", "object": "dispute", "payment_intent": body["payment"]["payment_intent_id"]}

    deliver(client, "charge.dispute.created", {**dispute, "status": "needs_response"})

    admin = _admin(client)
    flagged = admin.get(f"/api/v1/admin/bookings/{body['id']}").get_json()
    assert flagged["disputed"] is True
    assert flagged["disputed_at"] is not None
    assert _ledger(body["id"]) == [("session", 4800)]

    deliver(client, "charge.dispute.closed", {**dispute, "status": "lost"}, event_id="evt_dp_closed")

    cleared = admin.get(f"/api/v1/admin/bookings/{body['id']}").get_json()
    assert (cleared["disputed"], cleared["dispute_outcome"]) == (False, "lost")
    assert _ledger(body["id"]) == [("session", 4800), ("dispute_reversal", -4800)]
    assert db.session.scalar(select(EarningEntry.id).where(EarningEntry.kind == "refund_reversal")) is None


def test_an_admin_refund_stripe_could_not_take_is_retried_with_the_same_key_and_made_once(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, THURSDAY_10)
    path = f"/api/v1/admin/bookings/{body['id']}/refund"
    request = {"amount_cents": 6000, "reason": "Mentor left early"}
    admin = _admin(client)
    app = client.application
    working = app.extensions["stripe_request_gateway"]
    app.extensions["stripe_request_gateway"] = StripeGateway(
        "sk_test_x", f"http://127.0.0.1:{free_port()}", timeout=2, max_network_retries=0
    )
    try:
        down = admin.post(path, json=request, headers={"Idempotency-Key": "retry-me"})
    finally:
        app.extensions["stripe_request_gateway"] = working

    assert_error_shape(down, 503)
    assert admin.get(f"/api/v1/admin/bookings/{body['id']}").get_json()["refundable_cents"] == 6000
    again = admin.post(path, json=request, headers={"Idempotency-Key": "retry-me"})

    assert again.status_code == 200, again.get_data(as_text=True)
    assert [r["status"] for r in again.get_json()["admin_refunds"]] == ["succeeded"]
    assert refunds_at_stripe(stripe_client, body["payment"]["payment_intent_id"]) == [6000]
