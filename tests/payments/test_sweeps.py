"""The beat sweeps that close the money's gaps, asserted at the Stripe stand-in: an accepted request whose
capture never happened is captured (or, its authorization gone, expired with the slot freed and the learner
told); Connect accounts whose `account.updated` was lost are read again and the transfers that waited run;
transfers Stripe refuses are parked for the admins, retried with backoff, and never made twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.bookings import signals, state_changes
from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments import intents, tasks
from marketplace.payments.models import EarningEntry, PayoutAccount
from tests.factories import UserFactory
from tests.fixtures.bookable import (
    NOW,
    SESSION_END,
    book,
    enabled_mentor_with_paid_booking,
    paid_session,
    settle,
    start_onboarding,
    transfers_to,
)
from tests.helpers import ApiUser, assert_error_shape
from tests.support.stripe_client import StripeTestClient

from .test_approval import THURSDAY_10, captured_cents, request_and_authorize


def _booking(booking_id: int) -> Booking:
    db.session.expire_all()
    return db.session.get_one(Booking, booking_id)


def _accepted_then_crashed(booking_id: int) -> None:
    """What an accept commits before it calls Stripe; the process dies before the capture."""
    assert state_changes.claim_acceptance(booking_id, NOW)
    db.session.commit()


# --- accepted requests whose capture did not happen ----------------------------------------------------------


def test_an_accept_that_died_before_its_capture_is_captured_once_by_the_sweep(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    confirming_mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    intent_id = body["payment"]["payment_intent_id"]
    _accepted_then_crashed(body["id"])

    too_soon = tasks.finish_accepted_captures()  # an accept in flight gets its grace
    clock.move_to(NOW + timedelta(minutes=6))
    finished = tasks.finish_accepted_captures()
    again = tasks.finish_accepted_captures()

    assert too_soon == {}
    assert finished == {"confirmed": 1}
    assert again == {}
    assert _booking(body["id"]).status == "confirmed"
    assert captured_cents(stripe_client, intent_id) == 6000
    assert len(stripe_client.intent(intent_id)["charges"]["data"]) == 1
    entries = db.session.scalars(
        select(EarningEntry.amount_cents).where(EarningEntry.booking_id == body["id"])
    )
    assert list(entries) == [4800]


@pytest.fixture
def expired_bookings() -> Iterator[list[int]]:
    """The ids `booking_expired` is sent for (the learner is told by its receivers)."""
    sent: list[int] = []

    def _record(booking_id: int, **_: Any) -> None:
        sent.append(booking_id)

    with signals.booking_expired.connected_to(_record):
        yield sent


def test_an_accept_whose_authorization_is_gone_expires_frees_the_slot_and_tells_the_learner(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    confirming_mentor: MentorProfile,
    learner: ApiUser,
    other_learner: ApiUser,
    stripe_client: StripeTestClient,
    expired_bookings: list[int],
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    intent_id = body["payment"]["payment_intent_id"]
    _accepted_then_crashed(body["id"])
    assert book(other_learner, confirming_mentor, THURSDAY_10).status_code == 409  # held meanwhile
    lapsed = stripe_client._post(f"/v1/payment_intents/{intent_id}/cancel")  # the authorization lapsed
    assert lapsed["status"] == "canceled"

    clock.move_to(NOW + timedelta(minutes=6))
    assert tasks.finish_accepted_captures() == {"expired": 1}

    assert _booking(body["id"]).status == "expired"
    assert expired_bookings == [body["id"]]
    assert captured_cents(stripe_client, intent_id) == 0
    assert book(other_learner, confirming_mentor, THURSDAY_10).status_code == 201
    assert tasks.finish_accepted_captures() == {}


# --- Connect accounts whose webhook was lost -------------------------------------------------------------------


def test_a_lost_account_update_is_read_again_and_the_waiting_transfer_runs(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    account_id = start_onboarding(mentor, mentor_api)
    booking_id = paid_session(client, learner, mentor, stripe_client)
    settle(clock, hours_after_end=25)
    completed = stripe_client._post(f"/_config/connect/accounts/{account_id}/complete")
    assert completed["charges_enabled"] is True  # its `account.updated` never reaches us
    tasks.transfer_settled()
    assert transfers_to(stripe_client, account_id) == []

    refreshed = tasks.refresh_payout_accounts()

    assert refreshed == {"refreshed": 1, "enabled": 1, "transferred": 1}
    assert mentor_api.get("/api/v1/me/payouts").get_json()["account_status"] == "enabled"
    [transfer] = transfers_to(stripe_client, account_id)
    assert (transfer["amount"], transfer["transfer_group"]) == (4800, f"booking-{booking_id}")
    assert tasks.refresh_payout_accounts() == {}  # just read: not stale
    tasks.transfer_settled()
    assert len(transfers_to(stripe_client, account_id)) == 1


def test_an_account_disabled_without_a_webhook_is_noticed_and_its_refused_transfer_parked(
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
    stripe_client._post(
        f"/_config/connect/accounts/{account_id}/disable", {"reason": "rejected.fraud", "notify": "0"}
    )

    settle(clock, hours_after_end=25)  # we still think the account is enabled: Stripe refuses

    admin = ApiUser(client, UserFactory(roles=("admin",)))
    [parked] = admin.get("/api/v1/admin/transfers/refused").get_json()
    assert (parked["booking_id"], parked["mentor_id"], parked["attempts"]) == (booking_id, mentor.id, 1)
    assert "transfers capability" in parked["reason"]
    assert transfers_to(stripe_client, account_id) == []

    clock.move_to(SESSION_END + timedelta(days=2, hours=1))
    tasks.refresh_payout_accounts()
    account = db.session.scalars(select(PayoutAccount).where(PayoutAccount.mentor_id == mentor.id)).one()
    db.session.refresh(account)
    assert (account.transfers_enabled, account.disabled_reason) == (False, "rejected.fraud")
    tasks.transfer_settled()  # no longer tried while the account cannot receive transfers
    assert admin.get("/api/v1/admin/transfers/refused").get_json()[0]["attempts"] == 1


# --- transfers Stripe refuses ------------------------------------------------------------------------------------


@pytest.fixture
def short_platform_balance(stripe_client: StripeTestClient) -> Iterator[None]:
    """The stand-in refuses transfers with `balance_insufficient` until the test ends."""
    stripe_client._post("/_config/connect/balance", {"insufficient": "1"})
    try:
        yield
    finally:
        stripe_client._post("/_config/connect/balance", {"insufficient": "0"})


def test_a_refused_transfer_is_parked_retried_with_backoff_and_made_once(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    short_platform_balance: None,
) -> None:
    booking_id, account_id = enabled_mentor_with_paid_booking(
        client, mentor, mentor_api, learner, stripe_client
    )
    admin = ApiUser(client, UserFactory(roles=("admin",)))
    refused_at = SESSION_END + timedelta(hours=25)

    settle(clock, hours_after_end=25)
    [first] = admin.get("/api/v1/admin/transfers/refused").get_json()
    assert first["booking_id"] == booking_id
    assert "insufficient available funds" in first["reason"]
    assert (first["attempts"], first["next_attempt_at"]) == (
        1,
        (refused_at + timedelta(minutes=15)).isoformat(),
    )
    assert tasks.transfer_settled() == {"transferred": 0, "failed": 0, "refused": 0}  # not due yet

    clock.move_to(refused_at + timedelta(minutes=16))
    assert tasks.transfer_settled()["refused"] == 1
    [second] = admin.get("/api/v1/admin/transfers/refused").get_json()
    assert second["attempts"] == 2
    assert second["next_attempt_at"] == (refused_at + timedelta(minutes=16 + 30)).isoformat()

    stripe_client._post("/_config/connect/balance", {"insufficient": "0"})
    clock.move_to(refused_at + timedelta(minutes=47))
    assert tasks.transfer_settled()["transferred"] == 1
    tasks.transfer_settled()

    [transfer] = transfers_to(stripe_client, account_id)
    assert transfer["amount"] == 4800
    assert admin.get("/api/v1/admin/transfers/refused").get_json() == []
    assert_error_shape(learner.get("/api/v1/admin/transfers/refused"), 403)


def test_a_retry_after_a_refusal_finds_a_transfer_already_made_and_makes_no_second(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    short_platform_balance: None,
) -> None:
    booking_id, account_id = enabled_mentor_with_paid_booking(
        client, mentor, mentor_api, learner, stripe_client
    )
    settle(clock, hours_after_end=25)  # refused, parked
    stripe_client._post("/_config/connect/balance", {"insufficient": "0"})
    # An earlier attempt did go through, but its answer was lost on the way back.
    intent = stripe_client.intent(str(_booking(booking_id).payment_intent_id))
    made = stripe_client._post(
        "/v1/transfers",
        {"amount": 4800, "currency": "usd", "destination": account_id, "source_transaction": intent["latest_charge"]
         if isinstance(intent["latest_charge"], str) else intent["latest_charge"]["id"],
         "transfer_group": intents.transfer_group(booking_id)},
    )  # fmt: skip

    clock.move_to(SESSION_END + timedelta(hours=26))
    assert tasks.transfer_settled()["transferred"] == 1

    assert [t["id"] for t in transfers_to(stripe_client, account_id)] == [made["id"]]
    payouts = mentor_api.get("/api/v1/me/payouts").get_json()
    assert [t["id"] for t in payouts["transfers"]] == [made["id"]]
