"""Mentor payouts with Stripe Connect, through the API, eager tasks and the Stripe stand-in's Connect part:
onboarding (the stand-in's own signed `account.updated`), one transfer per settled session, its reversal after
a refund, transfers that wait for onboarding, and who sees what."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.accounts.models import Role
from marketplace.bookings.models import Booking, RefundStatus
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments import service, tasks
from marketplace.payments.models import EarningEntry, PayoutAccount, StripeEvent
from tests.factories import MentorProfileFactory, UserFactory
from tests.fixtures.bookable import (
    LINK_BODY,
    SESSION_END,
    complete_onboarding,
    deliver,
    enabled_mentor_with_paid_booking,
    paid_session,
    payout_account_id,
    settle,
    start_onboarding,
    transfers_to,
)
from tests.helpers import ApiUser, assert_error_shape
from tests.support.servers import HOST, LocalStripe, free_port
from tests.support.stripe_client import StripeTestClient
from tests.support.workers import wait_until


class _Captured(http.server.BaseHTTPRequestHandler):
    """Keeps each webhook delivery the stand-in makes (body and signature), answers 200."""

    deliveries: list[tuple[bytes, str]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.deliveries.append((body, self.headers["Stripe-Signature"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def account_updates(stripe_stand_in: LocalStripe) -> Iterator[list[tuple[bytes, str]]]:
    """The `account.updated` deliveries the stand-in sends while the test runs."""
    handler = type("Handler", (_Captured,), {"deliveries": []})
    port = free_port()
    server = http.server.HTTPServer((HOST, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stripe_stand_in.register_webhook(
        f"connect-{port}", f"http://{HOST}:{port}/", "whsec_test_marketplace", ["account.updated"]
    )
    try:
        yield handler.deliveries
    finally:
        server.shutdown()
        server.server_close()


def _onboard_at_stand_in(
    client: FlaskClient,
    mentor_api: ApiUser,
    clock: time_machine.Coordinates,
    deliveries: list[tuple[bytes, str]],
) -> None:
    """Ask for a link, finish the stand-in's onboarding page, and hand its signed `account.updated` to the
    webhook, at the instant the stand-in signed it (its clock is the real one; ours is frozen)."""
    link = mentor_api.post("/api/v1/me/payouts/onboarding", json=LINK_BODY)
    assert link.status_code == 201, link.get_data(as_text=True)
    finished = requests.post(link.get_json()["url"], allow_redirects=False, timeout=10)
    assert (finished.status_code, finished.headers["Location"]) == (302, LINK_BODY["return_url"])
    used_again = requests.get(link.get_json()["url"], allow_redirects=False, timeout=10)
    assert used_again.headers["Location"] == LINK_BODY["refresh_url"]  # single use
    payload, signature = wait_until(
        lambda: deliveries and deliveries[-1], 10, "account.updated from the stand-in"
    )
    signed_at = int(signature.split(",")[0].removeprefix("t="))
    now = datetime.now(UTC)
    clock.move_to(datetime.fromtimestamp(signed_at, UTC))
    response = client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": signature})
    clock.move_to(now)
    assert response.status_code == 200, response.get_data(as_text=True)


def test_an_onboarded_mentor_is_paid_once_per_settled_session_and_a_refund_reverses_it(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    account_updates: list[tuple[bytes, str]],
) -> None:
    before = mentor_api.get("/api/v1/me/payouts").get_json()
    assert before["account_status"] == "none"

    link = mentor_api.post("/api/v1/me/payouts/onboarding", json=LINK_BODY).get_json()
    assert link["url"].startswith(stripe_client.api_base)
    assert link["expires_at"]
    onboarding = mentor_api.get("/api/v1/me/payouts").get_json()
    assert onboarding["account_status"] == "onboarding"
    assert onboarding["payouts_enabled"] is False
    assert "external_account" in onboarding["requirements_due"]

    _onboard_at_stand_in(client, mentor_api, clock, account_updates)
    enabled = mentor_api.get("/api/v1/me/payouts").get_json()
    assert (enabled["account_status"], enabled["charges_enabled"], enabled["payouts_enabled"]) == (
        "enabled",
        True,
        True,
    )
    assert enabled["requirements_due"] == []
    account_id = payout_account_id(mentor)

    booking_id = paid_session(client, learner, mentor, stripe_client)
    settle(clock, hours_after_end=23)  # completed, but the report window is still open
    assert transfers_to(stripe_client, account_id) == []

    settle(clock, hours_after_end=25)
    tasks.transfer_settled()  # a second sweep makes no second transfer
    booking = db.session.get_one(Booking, booking_id)
    intent = stripe_client.intent(str(booking.payment_intent_id))
    charge = (
        intent["latest_charge"]["id"]
        if isinstance(intent["latest_charge"], dict)
        else intent["latest_charge"]
    )
    [transfer] = transfers_to(stripe_client, account_id)
    assert (transfer["amount"], transfer["currency"]) == (4800, "usd")  # 6000 less the 20 % fee
    assert (transfer["source_transaction"], transfer["transfer_group"]) == (charge, f"booking-{booking_id}")
    entries = db.session.scalars(
        select(EarningEntry.payout_reference).where(EarningEntry.booking_id == booking_id)
    )
    assert set(entries) == {transfer["id"]}
    paid = mentor_api.get("/api/v1/me/payouts").get_json()
    assert (paid["balance_cents"], paid["pending_cents"]) == (4800, 0)
    assert [(t["id"], t["amount_cents"]) for t in paid["transfers"]] == [(transfer["id"], 4800)]

    # Half the price refunded after the transfer (the refund path admins' refunds use): half the share back.
    booking.refund_amount_cents = 3000
    booking.refund_status = RefundStatus.PENDING.value
    db.session.commit()
    tasks.execute_refund(booking_id)
    [reversed_transfer] = transfers_to(stripe_client, account_id)
    assert reversed_transfer["amount_reversed"] == 2400
    tasks.reverse_transfer(booking_id)  # again: nothing more to take back
    assert transfers_to(stripe_client, account_id)[0]["amount_reversed"] == 2400
    after = mentor_api.get("/api/v1/me/payouts").get_json()
    assert after["balance_cents"] == 2400
    assert after["transfers"][0]["amount_reversed_cents"] == 2400


def test_a_mentor_not_onboarded_keeps_earning_and_is_paid_once_enabled(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    booking_id = paid_session(client, learner, mentor, stripe_client)
    settle(clock, hours_after_end=30)
    waiting = mentor_api.get("/api/v1/me/payouts").get_json()
    assert (waiting["account_status"], waiting["pending_cents"], waiting["transfers"]) == ("none", 4800, [])

    account_id = start_onboarding(mentor, mentor_api)
    tasks.transfer_settled()
    assert transfers_to(stripe_client, account_id) == []  # onboarding not finished: still waiting

    complete_onboarding(client, stripe_client, account_id)
    tasks.transfer_settled()
    [transfer] = transfers_to(stripe_client, account_id)
    assert transfer["amount"] == 4800
    assert transfer["transfer_group"] == f"booking-{booking_id}"
    assert mentor_api.get("/api/v1/me/payouts").get_json()["pending_cents"] == 0


def test_a_disputed_session_is_not_transferred(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    account_id = start_onboarding(mentor, mentor_api)
    deliver(
        client, "account.updated", stripe_client._post(f"/_config/connect/accounts/{account_id}/complete")
    )
    booking_id = paid_session(client, learner, mentor, stripe_client)
    intent_id = db.session.get_one(Booking, booking_id).payment_intent_id
    deliver(
        client, "charge.dispute.created", {"id": "dp_1", "object": "dispute", "payment_intent": intent_id}
    )
    settle(clock, hours_after_end=48)
    assert transfers_to(stripe_client, account_id) == []


def test_a_dispute_lost_after_the_transfer_takes_the_mentors_share_back(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    booking_id, account_id = enabled_mentor_with_paid_booking(
        client, mentor, mentor_api, learner, stripe_client
    )
    settle(clock, hours_after_end=25)
    assert [t["amount"] for t in transfers_to(stripe_client, account_id)] == [4800]

    intent_id = db.session.get_one(Booking, booking_id).payment_intent_id
    deliver(
        client, "charge.dispute.created", {"id": "dp_2", "object": "dispute", "payment_intent": intent_id}
    )
    [open_dispute] = transfers_to(stripe_client, account_id)
    deliver(
        client,
        "charge.dispute.closed",
        {"id": "dp_2", "object": "dispute", "payment_intent": intent_id, "status": "lost"},
    )
    [transfer] = transfers_to(stripe_client, account_id)
    assert open_dispute["amount_reversed"] == 0  # an open dispute holds the money; only a lost one takes it
    assert (transfer["amount_reversed"], transfer["reversed"]) == (4800, True)
    assert mentor_api.get("/api/v1/me/payouts").get_json()["balance_cents"] == 0


def test_payout_events_of_our_accounts_are_recorded_and_others_ignored(
    client: FlaskClient, mentor: MentorProfile, mentor_api: ApiUser, stripe_client: StripeTestClient
) -> None:
    account_id = start_onboarding(mentor, mentor_api)
    payout = {"id": "po_1", "object": "payout", "amount": 1500, "currency": "usd", "status": "failed",
              "failure_message": "The bank account has been closed."}  # fmt: skip
    deliver(client, "payout.failed", payout, event_id="evt_po_failed", account=account_id)
    deliver(
        client,
        "payout.paid",
        {**payout, "id": "po_2", "status": "paid"},
        event_id="evt_po_paid",
        account=account_id,
    )
    deliver(
        client, "payout.paid", {**payout, "id": "po_3"}, event_id="evt_po_other", account="acct_someone_else"
    )
    deliver(
        client, "account.updated", {"id": "acct_someone_else", "object": "account"}, event_id="evt_acct_other"
    )

    seen = mentor_api.get("/api/v1/me/payouts").get_json()
    assert sorted((p["id"], p["status"]) for p in seen["payouts"]) == [("po_1", "failed"), ("po_2", "paid")]
    assert seen["balance_cents"] == -1500  # paid out from the account, nothing transferred in this test
    outcomes = {
        row.id: row.outcome for row in db.session.execute(select(StripeEvent.id, StripeEvent.outcome))
    }
    assert outcomes["evt_po_other"] == outcomes["evt_acct_other"] == service.NOT_OURS


def test_only_the_mentor_sees_and_asks_for_their_payouts(
    client: FlaskClient, mentor: MentorProfile, mentor_api: ApiUser, learner: ApiUser
) -> None:
    assert_error_shape(learner.get("/api/v1/me/payouts"), 403)
    assert_error_shape(learner.post("/api/v1/me/payouts/onboarding", json=LINK_BODY), 403)
    assert_error_shape(client.get("/api/v1/me/payouts"), 401)
    assert_error_shape(mentor_api.post("/api/v1/me/payouts/onboarding", json={"return_url": "ftp://x"}), 422)

    mentor_api.post("/api/v1/me/payouts/onboarding", json=LINK_BODY)
    other = ApiUser(client, MentorProfileFactory(user=UserFactory(roles=(Role.MENTOR,))).user)
    assert other.get("/api/v1/me/payouts").get_json()["account_status"] == "none"
    again = other.post("/api/v1/me/payouts/onboarding", json=LINK_BODY)
    assert again.status_code == 201
    assert (
        payout_account_id(mentor)
        != db.session.scalars(
            select(PayoutAccount.stripe_account_id).where(PayoutAccount.mentor_id != mentor.id)
        ).one()
    )

    refresh = mentor_api.get(
        "/api/v1/me/payouts/onboarding/refresh?return_url=https://marketplace.test/payouts"
    )
    assert refresh.status_code == 302
    assert "/_config/connect/onboarding/" in refresh.headers["Location"]
    assert_error_shape(learner.get("/api/v1/me/payouts/onboarding/refresh?return_url=https://x.test/"), 403)


def test_the_first_onboarding_call_makes_one_account_and_later_calls_reuse_it(
    mentor: MentorProfile, mentor_api: ApiUser
) -> None:
    first = mentor_api.post("/api/v1/me/payouts/onboarding", json=LINK_BODY).get_json()
    account_id = payout_account_id(mentor)
    second = mentor_api.post("/api/v1/me/payouts/onboarding", json=LINK_BODY).get_json()
    assert payout_account_id(mentor) == account_id
    assert first["url"] != second["url"]


def test_a_learner_no_show_is_paid_and_reports_against_each_other_hold_the_transfer(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    booking_id, account_id = enabled_mentor_with_paid_booking(
        client, mentor, mentor_api, learner, stripe_client
    )
    clock.move_to(SESSION_END + timedelta(minutes=30))
    report = f"/api/v1/bookings/{booking_id}/no-show"
    assert mentor_api.post(report, json={"who": "learner", "note": "Never joined"}).status_code == 200

    assert learner.post(report, json={"who": "mentor", "note": "I was there"}).status_code == 200
    settle(clock, hours_after_end=48)
    held = transfers_to(stripe_client, account_id)
    admin = ApiUser(client, UserFactory(roles=("admin",)))
    resolved = admin.post(f"/api/v1/admin/bookings/{booking_id}/resolve", json={"absent": "learner"})
    assert resolved.status_code == 200, resolved.get_data(as_text=True)
    tasks.transfer_settled()

    assert held == []  # the parties' reports against each other hold the money
    assert [t["amount"] for t in transfers_to(stripe_client, account_id)] == [
        4800
    ]  # the learner's no-show pays
