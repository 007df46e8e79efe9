from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import ValidationError, validate, validates_schema

from marketplace.accounts.schemas import validate_timezone
from marketplace.core.validation import QuerySchema, Schema, fields

MAX_SLOT_WINDOW_DAYS = 62


class SlotArgsSchema(QuerySchema):
    from_ = fields.Date(data_key="from", load_default=None)
    to = fields.Date(load_default=None)
    duration = fields.Integer(load_default=None, validate=validate.Range(min=1, max=24 * 60))
    tz = fields.String(load_default="UTC", validate=validate_timezone)

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        start: date | None = data.get("from_")
        end: date | None = data.get("to")
        if start and end and end < start:
            raise ValidationError("Must not be before `from`.", "to")
        if start and end and (end - start).days >= MAX_SLOT_WINDOW_DAYS:
            raise ValidationError(f"Ask for at most {MAX_SLOT_WINDOW_DAYS} days at once.", "to")


class SlotSchema(Schema):
    """A free slot, its instants shown in the offset of the zone the listing was asked in."""

    start = fields.DateTime()
    end = fields.DateTime()
