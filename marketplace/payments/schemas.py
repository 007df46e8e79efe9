from __future__ import annotations

from marshmallow import validate

from marketplace.core.validation import QuerySchema, Schema, fields
from marketplace.payments.models import EventState


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
