from __future__ import annotations

from marshmallow import validate

from marketplace.core.validation import QuerySchema, Schema, fields
from marketplace.notifications.models import EmailStatus


class EmailArgsSchema(QuerySchema):
    state = fields.String(
        load_default=EmailStatus.FAILED.value,
        validate=validate.OneOf([status.value for status in EmailStatus]),
    )


class EmailSchema(Schema):
    """One message to one recipient: what it was about, and how its delivery went."""

    id = fields.Integer()
    kind = fields.String()
    object_id = fields.Integer()
    version = fields.Integer()
    recipient = fields.String()
    state = fields.String(attribute="status")
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
