from __future__ import annotations

from marketplace.core.validation import Schema, fields


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
