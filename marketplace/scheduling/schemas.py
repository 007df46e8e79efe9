from __future__ import annotations

from itertools import pairwise
from typing import Any

from marshmallow import ValidationError, validate, validates_schema

from marketplace.accounts.schemas import validate_timezone
from marketplace.core.validation import Schema, fields

MAX_INTERVALS = 50
MAX_BUFFER_MINUTES = 240
MAX_NOTICE_MINUTES = 30 * 24 * 60
MAX_HORIZON_DAYS = 365
DEFAULT_BUFFER_MINUTES = 0
DEFAULT_NOTICE_MINUTES = 120
DEFAULT_HORIZON_DAYS = 60
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Zero-padded ASCII digits, so the strings also order correctly as text (the service and the database rely
# on it); [0-9] and \Z because \d takes any Unicode digit and $ lets a trailing newline through.
_START = validate.Regexp(r"([01][0-9]|2[0-3]):[0-5][0-9]\Z", error="Use HH:MM between 00:00 and 23:59.")
_END = validate.Regexp(r"(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)\Z", error="Use HH:MM between 00:01 and 24:00.")
# The same patterns for the OpenAPI document, in the ECMA dialect of JSON Schema (no \Z; unanchored search).
_START_DOC = "^([01][0-9]|2[0-3]):[0-5][0-9]$"
_END_DOC = "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"


def _check_no_overlap(intervals: list[dict[str, Any]], where: str, field: str) -> None:
    """Touching intervals are allowed; a session must still fit inside one of them."""
    ordered = sorted(intervals, key=lambda interval: interval["start"])
    for before, after in pairwise(ordered):
        if after["start"] < before["end"]:
            raise ValidationError(
                f"Intervals overlap on {where}: {before['start']}-{before['end']} "
                f"and {after['start']}-{after['end']}.",
                field,
            )


class IntervalSchema(Schema):
    start = fields.String(
        required=True, validate=_START, metadata={"example": "09:00", "pattern": _START_DOC}
    )
    end = fields.String(
        required=True,
        validate=_END,
        metadata={
            "example": "12:30",
            "pattern": _END_DOC,
            "description": "Exclusive; 24:00 is the end of the day.",
        },
    )

    @validates_schema
    def _start_before_end(self, data: dict[str, Any], **_: Any) -> None:
        if data["start"] >= data["end"]:
            raise ValidationError("End must be after start.", "end")


class WeeklyIntervalSchema(IntervalSchema):
    weekday = fields.Integer(
        required=True,
        validate=validate.Range(min=0, max=6),
        metadata={"description": "0 = Monday, 6 = Sunday"},
    )


class DateOverrideSchema(Schema):
    """One mentor-local date whose intervals replace the weekly ones; an empty list is a day off."""

    date = fields.Date(required=True, attribute="day", metadata={"description": "Mentor-local date."})
    intervals = fields.List(
        fields.Nested(IntervalSchema), required=True, validate=validate.Length(max=MAX_INTERVALS)
    )

    # A schema validator, not @validates: that one also runs on the valid part of a list with bad items.
    @validates_schema
    def _no_overlap(self, data: dict[str, Any], **_: Any) -> None:
        _check_no_overlap(data["intervals"], "that date", "intervals")


class AvailabilitySchema(Schema):
    """The whole schedule: a PUT replaces the weekly intervals and settings, and leaves overrides alone."""

    timezone = fields.String(
        required=True, validate=validate_timezone, metadata={"description": "IANA zone of every wall time."}
    )
    weekly = fields.List(
        fields.Nested(WeeklyIntervalSchema), required=True, validate=validate.Length(max=MAX_INTERVALS)
    )
    buffer_minutes = fields.Integer(
        load_default=DEFAULT_BUFFER_MINUTES,
        validate=validate.Range(min=0, max=MAX_BUFFER_MINUTES),
        metadata={"description": f"Free time kept after each session; default {DEFAULT_BUFFER_MINUTES}."},
    )
    min_notice_minutes = fields.Integer(
        load_default=DEFAULT_NOTICE_MINUTES,
        validate=validate.Range(min=0, max=MAX_NOTICE_MINUTES),
        metadata={
            "description": f"How soon a session may start; default {DEFAULT_NOTICE_MINUTES} (2 hours)."
        },
    )
    horizon_days = fields.Integer(
        load_default=DEFAULT_HORIZON_DAYS,
        validate=validate.Range(min=1, max=MAX_HORIZON_DAYS),
        metadata={"description": f"How far ahead sessions may be booked; default {DEFAULT_HORIZON_DAYS}."},
    )
    overrides = fields.List(
        fields.Nested(DateOverrideSchema),
        attribute="upcoming_overrides",
        dump_only=True,
        metadata={"description": "Overrides from the mentor's today on, by date."},
    )

    @validates_schema
    def _no_overlap(self, data: dict[str, Any], **_: Any) -> None:
        for weekday, name in enumerate(WEEKDAYS):
            same_day = [interval for interval in data["weekly"] if interval["weekday"] == weekday]
            _check_no_overlap(same_day, name, "weekly")
