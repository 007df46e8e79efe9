from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import redirect, request
from flask.views import MethodView
from flask_login import current_user
from werkzeug.wrappers import Response

from marketplace.bookings import service as bookings
from marketplace.bookings.models import Booking
from marketplace.bookings.schemas import BookingSchema
from marketplace.core.api import Blueprint
from marketplace.core.auth import login_required, roles_required
from marketplace.core.db import autocommit_statements
from marketplace.core.errors import BadRequest, Unprocessable
from marketplace.core.idempotency import HEADER, idempotent
from marketplace.core.pagination import SelectPage
from marketplace.extensions import limiter
from marketplace.payments import service
from marketplace.payments.gateway import InvalidWebhook
from marketplace.payments.models import EventState, StripeEvent
from marketplace.payments.schemas import (
    AdminBookingSchema,
    AdminRefundCreateSchema,
    EarningsSchema,
    MentorBalanceSchema,
    OnboardingArgsSchema,
    OnboardingLinkSchema,
    PaymentEventArgsSchema,
    PaymentEventSchema,
    PayoutsSchema,
    RefreshArgsSchema,
    RefusedTransferSchema,
    WebhookAckSchema,
)
from marketplace.payments.service import admin_refunds

blp = Blueprint("payments", __name__, url_prefix="/api/v1", description="Payments and mentor earnings")
webhooks = Blueprint("webhooks", __name__, url_prefix="/webhooks", description="Provider webhooks")
# Deliveries are authenticated by their signature; a 429 would only make Stripe retry them later.
limiter.exempt(webhooks)
# Read raw (the signature covers the exact bytes), so documented by hand rather than by a schema.
STRIPE_SIGNATURE = {
    "in": "header",
    "name": "Stripe-Signature",
    "required": True,
    "schema": {"type": "string"},
    "description": "`t=<unix time>,v1=<HMAC-SHA256 of t.body with STRIPE_WEBHOOK_SECRET>`",
}
STRIPE_EVENT = {
    "required": True,
    "content": {"application/json": {"schema": {"type": "object", "description": "A Stripe Event"}}},
}


@webhooks.route("/stripe")
class StripeWebhook(MethodView):
    @webhooks.doc(parameters=[STRIPE_SIGNATURE], requestBody=STRIPE_EVENT)
    @webhooks.response(200, WebhookAckSchema)
    @webhooks.alt_response(400, description="Bad or stale Stripe-Signature")
    def post(self) -> dict[str, bool]:
        """Verified on the raw body, stored once by event id, processed by a worker."""
        autocommit_statements()  # storing the event is one INSERT: atomic without BEGIN and COMMIT
        try:
            stored = service.receive_webhook(request.get_data(), request.headers.get("Stripe-Signature"))
        except InvalidWebhook as exc:
            raise BadRequest(f"Invalid webhook: {exc}") from exc
        return {"received": True, "duplicate": not stored}


@blp.route("/bookings/<int:booking_id>/payment")
class RetryPayment(MethodView):
    @login_required
    @blp.response(201, BookingSchema)
    @blp.alt_response(409, description="The booking is no longer held for payment")
    def post(self, booking_id: int) -> Booking:
        """A fresh PaymentIntent for a held booking, to try another card after a decline."""
        return service.retry_payment(current_user, booking_id)


@blp.route("/bookings/<int:booking_id>/accept")
class AcceptBooking(MethodView):
    @login_required
    @idempotent
    @blp.response(200, BookingSchema)
    @blp.alt_response(403, description="Not the booking's mentor")
    @blp.alt_response(409, description="Not awaiting the mentor's answer (any more)")
    @blp.alt_response(503, description="The payment provider could not be reached; accept again")
    def post(self, booking_id: int) -> Booking:
        """The mentor accepts a request: the held card is charged (once) and the booking is confirmed."""
        return service.accept_booking(current_user, booking_id)


@blp.route("/me/earnings")
class MyEarnings(MethodView):
    @login_required
    @blp.response(200, EarningsSchema)
    @blp.alt_response(403, description="Only mentor accounts have earnings")
    @blp.alt_response(404, description="No mentor profile")
    def get(self) -> dict[str, Any]:
        """What the platform owes you, per currency, and the latest ledger entries."""
        return service.earnings_of(current_user)


@blp.route("/me/payouts/onboarding")
class PayoutOnboarding(MethodView):
    @login_required
    @blp.arguments(OnboardingArgsSchema)
    @blp.response(201, OnboardingLinkSchema)
    @blp.alt_response(403, description="Only mentor accounts are paid out")
    @blp.alt_response(503, description="Stripe cannot be reached")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """A single-use, short-lived Stripe onboarding link; your Express account is made on the first call."""
        return service.onboarding_link(current_user, args["return_url"], args["refresh_url"])


@blp.route("/me/payouts/onboarding/refresh")
class PayoutOnboardingRefresh(MethodView):
    @login_required
    @blp.arguments(RefreshArgsSchema, location="query")
    @blp.response(302, description="To a fresh onboarding link")
    @blp.alt_response(403, description="Only mentor accounts are paid out")
    def get(self, args: dict[str, Any]) -> Response:
        """A `refresh_url` for onboarding links: Stripe sends the browser here when a link expired or was used;
        the signed-in mentor is sent on to a new link (whose own refresh URL is this one again)."""
        here = f"{request.base_url}?{urlencode({'return_url': args['return_url']})}"
        link = service.onboarding_link(current_user, args["return_url"], here)
        return redirect(link["url"], 302)


@blp.route("/me/payouts")
class MyPayouts(MethodView):
    @login_required
    @blp.response(200, PayoutsSchema)
    @blp.alt_response(403, description="Only mentor accounts are paid out")
    @blp.alt_response(404, description="No mentor profile")
    def get(self) -> dict[str, Any]:
        """Your payout account's state, money on its way to you, and the transfers made to you."""
        return service.payouts_of(current_user)


@blp.route("/admin/earnings")
class EarningsReport(MethodView):
    @roles_required("admin")
    @blp.response(200, MentorBalanceSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Balances owed to every mentor, per currency."""
        return service.earnings_report()


@blp.route("/admin/payment-events")
class PaymentEvents(MethodView):
    @roles_required("admin")
    @blp.arguments(PaymentEventArgsSchema, location="query")
    @blp.response(200, PaymentEventSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Stored Stripe events by state: `failed` (parked after too many failed attempts, the default),
        `pending` or `processed`."""
        return service.payment_events(EventState(args["state"]))


@blp.route("/admin/transfers/refused")
class RefusedTransfers(MethodView):
    @roles_required("admin")
    @blp.response(200, RefusedTransferSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self) -> Any:
        """Transfers to mentors that Stripe refused, with its reason, the most recently refused first; each is
        tried again after a doubling delay (at most a day) and leaves the list once it goes through."""
        return service.refused_transfers()


@blp.route("/admin/payment-events/<event_id>/replay")
class ReplayPaymentEvent(MethodView):
    @roles_required("admin")
    @blp.response(200, PaymentEventSchema)
    @blp.alt_response(404, description="No such event")
    @blp.alt_response(409, description="The event was processed already")
    def post(self, event_id: str) -> StripeEvent:
        """Queue a parked event again with a fresh set of attempts."""
        return service.replay_event(event_id)


@blp.route("/admin/bookings/<int:booking_id>")
class AdminBookingDetail(MethodView):
    @roles_required("admin")
    @blp.response(200, AdminBookingSchema)
    @blp.alt_response(404, description="No such booking")
    def get(self, booking_id: int) -> Booking:
        """A booking with its no-show reports, disputes and the refunds admins made (who, how much, why)."""
        return bookings.get_booking(current_user, booking_id)


@blp.route("/admin/bookings/<int:booking_id>/refund")
class AdminBookingRefund(MethodView):
    @roles_required("admin")
    @idempotent
    @blp.arguments(AdminRefundCreateSchema)
    @blp.response(200, AdminBookingSchema)
    @blp.alt_response(404, description="No such booking")
    @blp.alt_response(409, description="The booking was never paid")
    @blp.alt_response(422, description="More than is left to refund, or no `Idempotency-Key`")
    @blp.alt_response(503, description="Stripe cannot be reached: retry with the same `Idempotency-Key`")
    def post(self, data: dict[str, Any], booking_id: int) -> Booking:
        """Refund any amount up to what was paid less what was refunded already, with a reason. Requires an
        `Idempotency-Key`: a repeat gets the first answer, and never refunds twice."""
        key = request.headers.get(HEADER)
        if not key:
            raise Unprocessable(f"An admin refund needs an {HEADER} header, so it is made once.")
        return admin_refunds.refund_by_admin(
            current_user, booking_id, data["amount_cents"], data["reason"], key
        )
