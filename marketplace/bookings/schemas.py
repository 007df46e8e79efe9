from __future__ import annotations

from typing import Any

from flask import current_app, has_request_context
from flask_login import current_user
from marshmallow import post_dump, validate

from marketplace.bookings.models import Booking, BookingStatus, NoShowParty
from marketplace.core.validation import QuerySchema, Schema, fields


class BookingCreateSchema(Schema):
    mentor_id = fields.Integer(required=True, validate=validate.Range(min=1))
    start = fields.AwareDateTime(required=True, metadata={"description": "RFC 3339 with an offset"})
    duration_minutes = fields.Integer(required=True, validate=validate.Range(min=1, max=24 * 60))
    topic = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class PaymentSchema(Schema):
    provider = fields.String()
    payment_intent_id = fields.String(allow_none=True)
    client_secret = fields.String(allow_none=True)
    publishable_key = fields.Function(
        lambda _payment: current_app.config["STRIPE_PUBLISHABLE_KEY"] or None,
        allow_none=True,
        metadata={"type": "string"},
    )
    last_error = fields.String(allow_none=True)


class RefundSchema(Schema):
    amount_cents = fields.Integer()
    status = fields.String()


class BookingSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    mentor_id = fields.Integer()
    learner_id = fields.Integer()
    start = fields.DateTime(attribute="start_at")
    end = fields.DateTime(attribute="end_at")
    duration_minutes = fields.Integer()
    topic = fields.String()
    price_cents = fields.Integer()
    currency = fields.String()
    hold_expires_at = fields.DateTime()
    payment = fields.Nested(PaymentSchema, allow_none=True)
    refund = fields.Nested(RefundSchema, allow_none=True)
    cancel_reason = fields.String(allow_none=True)
    no_show_party = fields.String(
        allow_none=True, metadata={"description": "Who did not come, once settled: `mentor` or `learner`"}
    )
    disputed = fields.Boolean(
        metadata={
            "description": "An open dispute (a chargeback, or no-show reports against each other): "
            "nothing is paid out or refunded by policy until it is settled"
        }
    )
    sequence = fields.Integer()
    created_at = fields.DateTime()

    @post_dump(pass_original=True)
    def _secret_for_the_learner_only(
        self, data: dict[str, Any], booking: Booking, **_: Any
    ) -> dict[str, Any]:
        """The client secret lets its holder pay (and read) the PaymentIntent: only the learner gets it,
        not the mentor or an admin viewing the same booking."""
        payment = data.get("payment")
        if payment and not _viewed_by_learner(booking):
            payment["client_secret"] = None
        return data


def _viewed_by_learner(booking: Booking) -> bool:
    return has_request_context() and current_user.is_authenticated and booking.is_learner(current_user)


class BookingListArgsSchema(QuerySchema):
    role = fields.String(validate=validate.OneOf(["learner", "mentor"]))
    status = fields.String(validate=validate.OneOf([s.value for s in BookingStatus]))


_PARTIES = validate.OneOf([party.value for party in NoShowParty])


class NoShowSchema(Schema):
    who = fields.String(
        required=True, validate=_PARTIES, metadata={"description": "The party who did not come"}
    )
    note = fields.String(
        load_default=None, allow_none=True, multiline=True, validate=validate.Length(max=2000)
    )


class ResolveDisputeSchema(Schema):
    absent = fields.String(
        required=True, validate=_PARTIES, metadata={"description": "The party the admin finds did not come"}
    )


class AdminBookingArgsSchema(QuerySchema):
    status = fields.String(validate=validate.OneOf([s.value for s in BookingStatus]))
    mentor_id = fields.Integer(validate=validate.Range(min=1))
    learner_id = fields.Integer(validate=validate.Range(min=1))
    disputed = fields.Boolean(metadata={"description": "`true`: only bookings with an open dispute"})


class NoShowReportSchema(Schema):
    id = fields.Integer()
    reporter_id = fields.Integer()
    absent_party = fields.String()
    note = fields.String(allow_none=True)
    created_at = fields.DateTime()


class CancelSchema(Schema):
    reason = fields.String(
        load_default=None, allow_none=True, multiline=True, validate=validate.Length(max=2000)
    )


class CancellationPreviewSchema(Schema):
    allowed = fields.Boolean(metadata={"description": "Whether you may cancel now (the mentor's notice)"})
    refund_cents = fields.Integer(metadata={"description": "What cancelling now gives back"})
    currency = fields.String()
    reason = fields.String(metadata={"description": "The rule that decides it, in words"})


class RescheduleSchema(Schema):
    start = fields.AwareDateTime(required=True)


class ReviewCreateSchema(Schema):
    rating = fields.Integer(required=True, validate=validate.Range(min=1, max=5))
    comment = fields.String(
        load_default=None, allow_none=True, multiline=True, validate=validate.Length(max=5000)
    )


class ReviewSchema(Schema):
    id = fields.Integer()
    booking_id = fields.Integer()
    mentor_id = fields.Integer()
    rating = fields.Integer()
    comment = fields.String(allow_none=True)
    created_at = fields.DateTime()


class CalendarFeedSchema(Schema):
    url = fields.String()
