from __future__ import annotations

from typing import Any

from marshmallow import validate

from marketplace.bookings import no_shows
from marketplace.bookings.models import Booking
from marketplace.bookings.schemas import BookingSchema, NoShowReportSchema
from marketplace.core.validation import QuerySchema, Schema, fields
from marketplace.payments.models import EventState
from marketplace.payments.service import admin_refunds


class WebhookAckSchema(Schema):
    received = fields.Boolean()
    duplicate = fields.Boolean()


class EarningEntrySchema(Schema):
    id = fields.Integer()
    booking_id = fields.Integer()
    kind = fields.String()
    amount_cents = fields.Integer()
    currency = fields.String()
    created_at = fields.DateTime()
    payout_reference = fields.String(allow_none=True)


class BalanceSchema(Schema):
    currency = fields.String()
    balance_cents = fields.Integer()
    unpaid_cents = fields.Integer()
    entries = fields.Integer()


class EarningsSchema(Schema):
    balances = fields.List(fields.Nested(BalanceSchema))
    entries = fields.List(fields.Nested(EarningEntrySchema))


class MentorBalanceSchema(BalanceSchema):
    mentor_id = fields.Integer()


class PaymentEventArgsSchema(QuerySchema):
    state = fields.String(
        load_default=EventState.FAILED.value, validate=validate.OneOf([state.value for state in EventState])
    )


class PaymentEventSchema(Schema):
    """A stored webhook event, without its payload (a PaymentIntent's carries the learner's client secret)."""

    id = fields.String()
    type = fields.String()
    object_id = fields.String(allow_none=True)
    state = fields.String()
    received_at = fields.DateTime()
    processed_at = fields.DateTime(allow_none=True)
    outcome = fields.String(allow_none=True)
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    parked_at = fields.DateTime(allow_none=True)


class OnboardingArgsSchema(Schema):
    return_url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    refresh_url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)


class RefreshArgsSchema(QuerySchema):
    return_url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)


class OnboardingLinkSchema(Schema):
    url = fields.String()
    expires_at = fields.DateTime()


class TransferSchema(Schema):
    id = fields.String(attribute="stripe_transfer_id")
    booking_id = fields.Integer()
    amount_cents = fields.Integer()
    amount_reversed_cents = fields.Integer()
    currency = fields.String()
    created_at = fields.DateTime()


class PayoutSchema(Schema):
    id = fields.String()
    amount_cents = fields.Integer()
    currency = fields.String()
    status = fields.String()
    failure_message = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class PayoutsSchema(Schema):
    account_status = fields.String()
    charges_enabled = fields.Boolean()
    payouts_enabled = fields.Boolean()
    requirements_due = fields.List(fields.String())
    disabled_reason = fields.String(allow_none=True)
    currency = fields.String()
    balance_cents = fields.Integer()
    pending_cents = fields.Integer()
    transfers = fields.List(fields.Nested(TransferSchema))
    payouts = fields.List(fields.Nested(PayoutSchema))


class AdminRefundCreateSchema(Schema):
    amount_cents = fields.Integer(required=True, validate=validate.Range(min=1))
    reason = fields.String(required=True, multiline=True, validate=validate.Length(min=1, max=2000))


class AdminRefundSchema(Schema):
    id = fields.Integer()
    admin_id = fields.Integer(allow_none=True)
    amount_cents = fields.Integer()
    reason = fields.String()
    status = fields.String()
    refund_reference = fields.String(allow_none=True)
    created_at = fields.DateTime()


class AdminBookingSchema(BookingSchema):
    """A booking as the admins see it: with its no-show reports, its dispute and the refunds admins made."""

    disputed_at = fields.DateTime(allow_none=True)
    dispute_closed_at = fields.DateTime(allow_none=True)
    dispute_outcome = fields.String(allow_none=True)
    report_dispute_at = fields.DateTime(allow_none=True)
    report_dispute_resolved_at = fields.DateTime(allow_none=True)
    report_dispute_outcome = fields.String(allow_none=True)
    no_show_reports = fields.Method("_reports", metadata={"type": "array", "items": {"type": "object"}})
    admin_refunds = fields.Method("_refunds", metadata={"type": "array", "items": {"type": "object"}})
    refundable_cents = fields.Method("_refundable", metadata={"type": "integer"})

    def _reports(self, booking: Booking) -> Any:
        return NoShowReportSchema(many=True).dump(no_shows.reports_of(booking.id))

    def _refunds(self, booking: Booking) -> Any:
        return AdminRefundSchema(many=True).dump(admin_refunds.refunds_of(booking.id))

    def _refundable(self, booking: Booking) -> int:
        return admin_refunds.refundable_cents(booking)


class RefusedTransferSchema(Schema):
    """A settled booking whose transfer Stripe refused: why, how often, and when it is tried again."""

    booking_id = fields.Integer()
    mentor_id = fields.Integer()
    attempts = fields.Integer()
    reason = fields.String()
    first_refused_at = fields.DateTime()
    last_refused_at = fields.DateTime()
    next_attempt_at = fields.DateTime()
