"""Money is conserved: over random sequences of bookings, payments, cancellations, requests a mentor accepts or
declines or lets expire, no-show reports and their disputes, Stripe disputes, admin refunds, time passing and
the transfer sweep, every booking's money adds up after every step, and the ledger says what the provider says.

For each booking, with the provider's numbers read from the Stripe stand-in's HTTP API (PaymentIntents and their
charges, Refunds, Transfers with their reversals) and the ledger's from the database:

    charged = refunded + lost to a chargeback + transferred + platform fee + held for the mentor

where nothing is negative, nothing is refunded past what was charged, the mentor's share is the share of what
the platform kept (`PLATFORM_FEE_PERCENT`), at most one transfer exists and it carries exactly that share, and
a settled session of an enabled mentor has been transferred once the sweep ran.

`MONEY_EXAMPLES` raises the number of runs to hunt for more (CI runs a fixed, derandomized set).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from flask import Flask, current_app
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from marketplace.accounts.models import Role
from marketplace.bookings import tasks as booking_tasks
from marketplace.bookings.models import Booking, BookingStatus, NoShowParty, RefundStatus
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.payments import tasks
from marketplace.payments.models import AdminRefund, EarningEntry, IssuedIntent, MentorTransfer, PayoutAccount
from tests.factories import MentorProfileFactory, UserFactory
from tests.fixtures.bookable import (
    LINK_BODY,
    NOW,
    SESSION_END,
    book,
    deliver,
    enabled_mentor_with_paid_booking,
    set_availability,
)
from tests.helpers import ApiUser
from tests.support.stripe_client import StripeTestClient

pytestmark = pytest.mark.postgres_only

# Weekday sessions of the mentors below (Berlin 10:00, 13:00 and 15:00) over the first two weeks after NOW.
SLOTS = [
    f"2027-01-{day:02d}T{hour:02d}:00:00+01:00" for day in (5, 6, 7, 8, 11, 12, 13) for hour in (10, 13, 15)
]
MAX_BOOKINGS = 5
EXAMPLES = int(os.environ.get("MONEY_EXAMPLES", "4"))


@dataclass
class Tracked:
    """What the test knows of a booking beyond the database: its chargeback, as the provider would hold it."""

    id: int
    mentor: int
    dispute: str | None = None  # None, "open", "won", "lost"
    lost_cents: int = 0


class MoneyLifecycle(RuleBasedStateMachine):
    def __init__(
        self, client: FlaskClient, clock: time_machine.Coordinates, stripe: StripeTestClient
    ) -> None:
        super().__init__()
        self.client, self.clock, self.stripe = client, clock, stripe
        clock.move_to(NOW)
        self.now = NOW
        self.admin = ApiUser(client, UserFactory(roles=("admin",)))
        self.mentors = [self._mentor(confirms=False), self._mentor(confirms=True)]
        self.accounts = [self._account(mentor) for mentor in self.mentors]
        self.enabled = [False, False]
        self.learners = [ApiUser(client, UserFactory(roles=(Role.LEARNER,))) for _ in range(2)]
        self.bookings: list[Tracked] = []
        self.swept_at: datetime | None = None

    # --- the world ---------------------------------------------------------------------------------

    def _mentor(self, *, confirms: bool) -> ApiUser:
        profile = MentorProfileFactory(
            price_cents=6000,
            currency="USD",
            session_minutes=[60],
            timezone="Europe/Berlin",
            user=UserFactory(roles=(Role.MENTOR,), timezone="Europe/Berlin"),
        )
        api = ApiUser(self.client, profile.user)
        set_availability(api)
        if confirms:
            answer = api.put("/api/v1/me/mentor-profile", json={"requires_confirmation": True})
            assert answer.status_code == 200, answer.get_data(as_text=True)
        return api

    def _account(self, mentor: ApiUser) -> str:
        link = mentor.post("/api/v1/me/payouts/onboarding", json=LINK_BODY)
        assert link.status_code == 201, link.get_data(as_text=True)
        db.session.expire_all()
        return db.session.scalars(
            select(PayoutAccount.stripe_account_id).where(PayoutAccount.mentor_id == self._profile(mentor).id)
        ).one()

    @staticmethod
    def _profile(mentor: ApiUser) -> MentorProfile:
        return db.session.scalars(select(MentorProfile).where(MentorProfile.user_id == mentor.user.id)).one()

    def _deliver(self, event_type: str, obj: dict[str, Any], account: str | None = None) -> None:
        answer = deliver(self.client, event_type, obj, account=account)
        assert answer.status_code == 200, answer.get_data(as_text=True)

    def _pick(self, index: int) -> tuple[Tracked, Booking]:
        tracked = self.bookings[index % len(self.bookings)]
        db.session.expire_all()
        return tracked, db.session.get_one(Booking, tracked.id)

    def _intent(self, booking: Booking) -> dict[str, Any]:
        return self.stripe.intent(str(booking.payment_intent_id))

    @staticmethod
    def _answered(response: Any) -> None:
        """Any refusal is fine (the sequence is random); a server error never is."""
        assert response.status_code < 500, response.get_data(as_text=True)

    # --- rules -------------------------------------------------------------------------------------

    @initialize(
        plan=st.lists(
            st.tuples(st.integers(0, 1), st.integers(0, 1), st.integers(0, len(SLOTS) - 1)),
            min_size=2,
            max_size=MAX_BOOKINGS - 1,
        )
    )
    def paid_bookings(self, plan: list[tuple[int, int, int]]) -> None:
        """Most sequences start with money in the system: bookings made and paid (authorized, for requests)."""
        for mentor, learner, slot in plan:
            self.book(mentor, learner, slot, pay=True)

    @precondition(lambda self: len(self.bookings) < MAX_BOOKINGS)
    @rule(
        mentor=st.integers(0, 1),
        learner=st.integers(0, 1),
        slot=st.integers(0, len(SLOTS) - 1),
        pay=st.sampled_from([True, True, True, False]),
    )
    def book(self, mentor: int, learner: int, slot: int, pay: bool) -> None:
        response = book(self.learners[learner], self._profile(self.mentors[mentor]), SLOTS[slot])
        self._answered(response)
        if response.status_code == 201:
            self.bookings.append(Tracked(response.get_json()["id"], mentor))
            if pay:
                self.pay(len(self.bookings) - 1)

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50))
    def pay(self, index: int) -> None:
        _tracked, booking = self._pick(index)
        if booking.state is not BookingStatus.PENDING_PAYMENT or not booking.payment_intent_id:
            return
        if self._intent(booking)["status"] != "requires_payment_method":
            return
        paid = self.stripe.pay(str(booking.payment_intent_id))
        if paid["status"] == "requires_capture":
            self._deliver("payment_intent.amount_capturable_updated", self._intent(booking))
        elif paid["status"] == "succeeded":
            self._deliver("payment_intent.succeeded", self._intent(booking))

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50), accept=st.booleans())
    def answer_request(self, index: int, accept: bool) -> None:
        tracked, _booking = self._pick(index)
        mentor = self.mentors[tracked.mentor]
        if accept:
            self._answered(mentor.post(f"/api/v1/bookings/{tracked.id}/accept"))
        else:
            self._answered(mentor.post(f"/api/v1/bookings/{tracked.id}/decline", json={"reason": "No"}))

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50), by_mentor=st.booleans())
    def cancel(self, index: int, by_mentor: bool) -> None:
        tracked, booking = self._pick(index)
        who = self.mentors[tracked.mentor] if by_mentor else self._learner_of(booking)
        self._answered(who.post(f"/api/v1/bookings/{tracked.id}/cancel", json={"reason": "Changed plans"}))

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50), mentor_absent=st.booleans())
    def report_no_show(self, index: int, mentor_absent: bool) -> None:
        tracked, booking = self._pick(index)
        reporter = self._learner_of(booking) if mentor_absent else self.mentors[tracked.mentor]
        who = "mentor" if mentor_absent else "learner"
        self._answered(reporter.post(f"/api/v1/bookings/{tracked.id}/no-show", json={"who": who}))

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50), mentor_absent=st.booleans())
    def resolve_reports(self, index: int, mentor_absent: bool) -> None:
        tracked, _booking = self._pick(index)
        absent = "mentor" if mentor_absent else "learner"
        self._answered(
            self.admin.post(f"/api/v1/admin/bookings/{tracked.id}/resolve", json={"absent": absent})
        )

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50), cents=st.sampled_from([1, 3, 7, 1000, 2999, 3001, 6000]))
    def refund_by_admin(self, index: int, cents: int) -> None:
        tracked, _booking = self._pick(index)
        self._answered(
            self.admin.post(
                f"/api/v1/admin/bookings/{tracked.id}/refund",
                json={"amount_cents": cents, "reason": "Goodwill"},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
        )

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50))
    def open_chargeback(self, index: int) -> None:
        tracked, booking = self._pick(index)
        if tracked.dispute is not None or _payments(self.stripe, tracked.id)[0] == 0:
            return
        tracked.dispute = "open"
        self._deliver("charge.dispute.created", self._dispute(booking, "needs_response"))

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50), lost=st.booleans())
    def close_chargeback(self, index: int, lost: bool) -> None:
        tracked, booking = self._pick(index)
        if tracked.dispute != "open":
            return
        tracked.dispute = "lost" if lost else "won"
        if lost:  # the card network takes back whatever was not refunded yet
            charged, refunded = _payments(self.stripe, tracked.id)
            tracked.lost_cents = charged - refunded
        self._deliver("charge.dispute.closed", self._dispute(booking, tracked.dispute))

    def _dispute(self, booking: Booking, status: str) -> dict[str, Any]:
        intent = self._intent(booking)
        return {"id": f"dp_{booking.id}", "object": "dispute", "payment_intent": intent["id"],
                "amount": intent["amount"], "status": status}  # fmt: skip

    @precondition(lambda self: self.bookings)
    @rule(index=st.integers(0, 50))
    def provider_reports_refunds(self, index: int) -> None:
        """Stripe's `charge.refunded` after refunds, as it sends one for each."""
        _tracked, booking = self._pick(index)
        charge = self._intent(booking).get("latest_charge") if booking.payment_intent_id else None
        if isinstance(charge, str):
            charge = self.stripe.session.get(f"{self.stripe.api_base}/v1/charges/{charge}", timeout=10).json()
        if isinstance(charge, dict) and charge.get("amount_refunded"):
            self._deliver("charge.refunded", charge)

    @rule(mentor=st.integers(0, 1))
    def finish_onboarding(self, mentor: int) -> None:
        if self.enabled[mentor]:
            return
        account = self.stripe._post(f"/_config/connect/accounts/{self.accounts[mentor]}/complete")
        self._deliver("account.updated", {k: v for k, v in account.items() if k != "status_code"})
        self.enabled[mentor] = True

    @rule(hours=st.sampled_from([1, 6, 24, 30, 72]))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        self.clock.move_to(self.now)
        booking_tasks.expire_lapsed_holds()
        booking_tasks.complete_finished()
        tasks.reconcile()
        tasks.transfer_settled()
        self.swept_at = self.now

    def teardown(self) -> None:
        """What the sequence reached (`--hypothesis-show-statistics` lists it)."""
        db.session.expire_all()
        for tracked in self.bookings:
            booking = db.session.get_one(Booking, tracked.id)
            event(f"{booking.status} refund={booking.refund_status} dispute={tracked.dispute}")
            event(f"transferred={bool(_transfers(self.stripe, booking.id))}")

    def _learner_of(self, booking: Booking) -> ApiUser:
        return next(learner for learner in self.learners if learner.user.id == booking.learner_id)

    # --- the invariant -----------------------------------------------------------------------------

    @invariant()
    def money_adds_up(self) -> None:
        db.session.expire_all()
        for tracked in self.bookings:
            self._check(tracked, db.session.get_one(Booking, tracked.id))

    def _check(self, tracked: Tracked, booking: Booking) -> None:
        charged, refunded = _payments(self.stripe, booking.id)
        transfers = _transfers(self.stripe, booking.id) if charged else []
        where = f"booking {booking.id} ({booking.status}): charged {charged}, refunded {refunded}"
        assert refunded + tracked.lost_cents <= charged, f"refunded twice: {where}, lost {tracked.lost_cents}"
        assert len(transfers) <= 1, f"more than one transfer: {where}"
        if tracked.mentor == 1 and booking.confirmed_at is None:
            assert charged == 0, f"a request never accepted was charged: {where}"

        by_policy = booking.refund_amount_cents or 0 if booking.refund_status == RefundStatus.SUCCEEDED else 0
        assert by_policy + _refunded_by_admins(booking.id) == refunded, f"ledger and provider differ: {where}"

        share = _share(booking.id)
        transferred = sum(t["amount"] - t["amount_reversed"] for t in transfers)
        if booking.confirmed_at is None:
            assert (share, transferred, refunded) == (0, 0, charged), f"unconfirmed money kept: {where}"
            return
        kept = charged - refunded - tracked.lost_cents
        fee = kept - share
        held = share - transferred
        assert charged == refunded + tracked.lost_cents + transferred + fee + held
        assert share == kept - _fee(kept), f"mentor's share {share} is not the share of {kept} kept: {where}"
        assert min(share, fee, transferred, held) >= 0, f"share {share}, transferred {transferred}: {where}"
        self._check_transfer_record(booking, transfers, share, where)
        if self._settled(tracked, booking) and share > 0:
            assert transferred == share, f"a settled session was not paid ({transferred} of {share}): {where}"

    @staticmethod
    def _check_transfer_record(
        booking: Booking, transfers: list[dict[str, Any]], share: int, where: str
    ) -> None:
        record = db.session.scalar(select(MentorTransfer).where(MentorTransfer.booking_id == booking.id))
        if not transfers:
            assert record is None, f"a transfer recorded that the provider never made: {where}"
            return
        [transfer] = transfers
        assert record is not None, f"the provider's transfer is not recorded: {where}"
        assert (record.stripe_transfer_id, record.amount_cents, record.amount_reversed_cents) == (
            transfer["id"],
            transfer["amount"],
            transfer["amount_reversed"],
        ), where
        assert transfer["amount"] - transfer["amount_reversed"] == share, where
        references = set(
            db.session.scalars(
                select(EarningEntry.payout_reference).where(EarningEntry.booking_id == booking.id)
            )
        )
        assert references == {transfer["id"]}, f"ledger entries not pointing at the transfer: {where}"

    def _settled(self, tracked: Tracked, booking: Booking) -> bool:
        """Money that is the mentor's by now, whose transfer the last sweep must have made."""
        paid_for = booking.state in (BookingStatus.COMPLETED, BookingStatus.CANCELLED) or (
            booking.state is BookingStatus.NO_SHOW and booking.no_show_party == NoShowParty.LEARNER.value
        )
        delay = timedelta(hours=int(current_app.config["PAYOUT_DELAY_HOURS"]))
        return (
            paid_for
            and self.swept_at is not None
            and booking.end_at + delay <= self.swept_at
            and tracked.dispute != "open"
            and not booking.disputed
            and booking.refund_status != RefundStatus.PENDING.value
            and self.enabled[tracked.mentor]
        )


def _intents(booking_id: int) -> list[str]:
    return list(db.session.scalars(select(IssuedIntent.id).where(IssuedIntent.booking_id == booking_id)))


def _payments(stripe: StripeTestClient, booking_id: int) -> tuple[int, int]:
    """What the provider captured for the booking and refunded of it, over every intent it ever had."""
    charges = [
        charge
        for intent_id in _intents(booking_id)
        for charge in stripe.intent(intent_id)["charges"]["data"]
        if charge["captured"] and charge["status"] == "succeeded"
    ]
    return sum(charge["amount"] for charge in charges), sum(charge["amount_refunded"] for charge in charges)


def _transfers(stripe: StripeTestClient, booking_id: int) -> list[dict[str, Any]]:
    """The transfers made from the booking's own charges. Its transfer group alone is not enough: the stand-in
    serves the whole run, and a SQLite test, rolled back, may have used the same booking id before."""
    charges = {
        charge["id"]
        for intent_id in _intents(booking_id)
        for charge in stripe.intent(intent_id)["charges"]["data"]
    }
    found: list[dict[str, Any]] = stripe.session.get(
        f"{stripe.api_base}/v1/transfers", params={"transfer_group": f"booking-{booking_id}"}, timeout=10
    ).json()["data"]
    return [transfer for transfer in found if transfer["source_transaction"] in charges]


def _refunded_by_admins(booking_id: int) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(AdminRefund.amount_cents), 0)).where(
            AdminRefund.booking_id == booking_id, AdminRefund.status == RefundStatus.SUCCEEDED.value
        )
    )
    return int(total or 0)


def _share(booking_id: int) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(EarningEntry.amount_cents), 0)).where(
            EarningEntry.booking_id == booking_id
        )
    )
    return int(total or 0)


def _fee(kept_cents: int) -> int:
    return round(kept_cents * int(current_app.config["PLATFORM_FEE_PERCENT"]) / 100)


def test_money_is_conserved_over_random_lifecycles(
    app: Flask, client: FlaskClient, clock: time_machine.Coordinates, stripe_client: StripeTestClient
) -> None:
    run_state_machine_as_test(
        lambda: MoneyLifecycle(client, clock, stripe_client),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=25,
            deadline=None,
            derandomize=os.environ.get("CI") == "true" or "MONEY_EXAMPLES" not in os.environ,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# --- what the machine found, kept as plain regression tests --------------------------------------------------------


def _refund_by_admin(client: FlaskClient, booking_id: int, cents: int, key: str) -> Any:
    admin = ApiUser(client, UserFactory(roles=("admin",)))
    return admin.post(
        f"/api/v1/admin/bookings/{booking_id}/refund",
        json={"amount_cents": cents, "reason": "Goodwill"},
        headers={"Idempotency-Key": key},
    )


def _lose_chargeback(client: FlaskClient, booking_id: int) -> None:
    intent_id = db.session.get_one(Booking, booking_id).payment_intent_id
    dispute = {"id": f"dp_{booking_id}", "object": "dispute", "payment_intent": intent_id, "amount": 6000}
    _deliver(client, "charge.dispute.created", {**dispute, "status": "needs_response"})
    _deliver(client, "charge.dispute.closed", {**dispute, "status": "lost"})


def _deliver(client: FlaskClient, event_type: str, obj: dict[str, Any]) -> None:
    answer = deliver(client, event_type, obj)
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_a_session_cancelled_too_late_for_a_refund_pays_the_mentor_their_share(
    client: FlaskClient,
    clock: time_machine.Coordinates,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    booking_id, _account_id = enabled_mentor_with_paid_booking(
        client, mentor, mentor_api, learner, stripe_client
    )
    clock.move_to(SESSION_END - timedelta(hours=4))
    cancelled = learner.post(f"/api/v1/bookings/{booking_id}/cancel", json={"reason": "Too late"})
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert cancelled.get_json()["refund"] is None or cancelled.get_json()["refund"]["amount_cents"] == 0

    clock.move_to(SESSION_END + timedelta(hours=25))
    tasks.transfer_settled()
    tasks.transfer_settled()

    [transfer] = _transfers(stripe_client, booking_id)
    assert (transfer["amount"], transfer["amount_reversed"]) == (4800, 0)
    assert _share(booking_id) == 4800


def test_a_policy_refund_after_an_admins_partial_refund_gives_back_only_the_rest(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    booking_id, _account_id = enabled_mentor_with_paid_booking(
        client, mentor, mentor_api, learner, stripe_client
    )
    refunded = _refund_by_admin(client, booking_id, 1001, "partial-1")
    assert refunded.status_code == 200, refunded.get_data(as_text=True)

    cancelled = mentor_api.post(f"/api/v1/bookings/{booking_id}/cancel", json={"reason": "Ill"})

    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert _payments(stripe_client, booking_id) == (6000, 6000)  # 1001 by the admin, 4999 by the policy
    assert _share(booking_id) == 0


def test_nothing_is_refunded_after_a_lost_chargeback(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    booking_id, _account_id = enabled_mentor_with_paid_booking(
        client, mentor, mentor_api, learner, stripe_client
    )
    _lose_chargeback(client, booking_id)

    refused = _refund_by_admin(client, booking_id, 100, "after-lost")
    cancelled = mentor_api.post(f"/api/v1/bookings/{booking_id}/cancel", json={"reason": "Ill"})

    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert _payments(stripe_client, booking_id) == (6000, 0)  # the card network took the 6000 back already
    assert _share(booking_id) == 0


def test_the_ledger_loses_no_cent_to_rounding_over_several_refunds(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    booking_id, _account_id = enabled_mentor_with_paid_booking(
        client, mentor, mentor_api, learner, stripe_client
    )
    for key in ("three-cents-1", "three-cents-2"):
        answer = _refund_by_admin(client, booking_id, 3, key)
        assert answer.status_code == 200, answer.get_data(as_text=True)
    assert _share(booking_id) == 5994 - _fee(5994)  # each refund's entry rounds the whole, not its own part

    _lose_chargeback(client, booking_id)

    assert _share(booking_id) == 0  # nothing kept, nothing owed: not a cent either way
