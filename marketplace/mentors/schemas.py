from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates, validates_schema

from marketplace.accounts.schemas import validate_timezone
from marketplace.careers.content import load_career_paths
from marketplace.mentors.vetting import ADMIN_ACTIONS, VettingAction, VettingStatus

SESSION_LENGTHS = (15, 30, 45, 60, 90, 120)
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF", "INR", "SGD", "JPY", "SEK", "NOK", "DKK", "PLN")
NOTE_REQUIRED_FOR = frozenset({VettingAction.REJECT, VettingAction.REQUEST_CHANGES, VettingAction.SUSPEND})
SORTS = ("relevance", "rating", "price", "next_available")


@cache
def career_path_slugs() -> frozenset[str]:
    return frozenset(path["slug"] for path in load_career_paths())


def _tag(max_length: int = 80) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length))


class MentorProfileInputSchema(Schema):
    """Every field may be left out while the profile is a draft; completeness is checked on submission."""

    headline = fields.String(validate=validate.Length(max=160), allow_none=True)
    bio = fields.String(validate=validate.Length(max=5000), allow_none=True)
    skills = fields.List(_tag(), validate=validate.Length(max=30))
    career_paths = fields.List(fields.String(), validate=validate.Length(max=10))
    languages = fields.List(
        fields.String(validate=validate.Regexp(r"^[a-z]{2,3}$", error="Use ISO 639 codes such as 'en'.")),
        validate=validate.Length(max=10),
    )
    years_experience = fields.Integer(validate=validate.Range(min=0, max=70), allow_none=True)
    price_cents = fields.Integer(validate=validate.Range(min=0, max=1_000_000), allow_none=True)
    currency = fields.String(validate=validate.OneOf(CURRENCIES), allow_none=True)
    session_minutes = fields.List(
        fields.Integer(validate=validate.OneOf(SESSION_LENGTHS)),
        validate=validate.Length(max=len(SESSION_LENGTHS)),
    )
    timezone = fields.String(validate=validate_timezone, allow_none=True)

    @pre_load
    def _normalize(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("skills", "languages", "career_paths"):
            if isinstance(data.get(key), list):
                data[key] = [v.strip().lower() if isinstance(v, str) else v for v in data[key]]
        if isinstance(data.get("currency"), str):
            data["currency"] = data["currency"].strip().upper()
        return data

    @validates("career_paths")
    def _known_paths(self, value: list[str], **_: Any) -> None:
        unknown = sorted(set(value) - career_path_slugs())
        if unknown:
            raise ValidationError(f"Unknown career path: {', '.join(unknown)}.")

    @validates("session_minutes")
    def _sorted_lengths(self, value: list[int], **_: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("Each session length may appear once.")


class MentorProfileSchema(Schema):
    id = fields.Integer(dump_only=True)
    user_id = fields.Integer(dump_only=True)
    name = fields.String(dump_only=True)
    headline = fields.String(dump_only=True, allow_none=True)
    bio = fields.String(dump_only=True, allow_none=True)
    skills = fields.List(fields.String(), dump_only=True)
    career_paths = fields.List(fields.String(), dump_only=True)
    languages = fields.List(fields.String(), dump_only=True)
    years_experience = fields.Integer(dump_only=True, allow_none=True)
    price_cents = fields.Integer(dump_only=True, allow_none=True)
    currency = fields.String(dump_only=True, allow_none=True)
    session_minutes = fields.List(fields.Integer(), dump_only=True)
    timezone = fields.String(dump_only=True, allow_none=True)
    vetting_status = fields.String(dump_only=True)
    rating_avg = fields.Float(dump_only=True, allow_none=True)
    rating_count = fields.Integer(dump_only=True)
    next_available_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class PublicMentorSchema(MentorProfileSchema):
    class Meta:
        exclude = ("user_id", "vetting_status", "created_at", "updated_at")


class VettingDecisionSchema(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(sorted(a.value for a in ADMIN_ACTIONS)))
    note = fields.String(validate=validate.Length(max=2000), load_default=None, allow_none=True)

    @validates_schema
    def _note_when_refusing(self, data: dict[str, Any], **_: Any) -> None:
        if VettingAction(data["decision"]) in NOTE_REQUIRED_FOR and not (data.get("note") or "").strip():
            raise ValidationError("Tell the mentor why: a note is required for this decision.", "note")


class VettingEventSchema(Schema):
    from_status = fields.String()
    to_status = fields.String()
    decision = fields.String()
    note = fields.String(allow_none=True)
    admin_id = fields.Integer(allow_none=True)
    at = fields.DateTime()


class VettingQueueArgsSchema(Schema):
    status = fields.String(
        load_default=VettingStatus.PENDING_REVIEW.value,
        validate=validate.OneOf([s.value for s in VettingStatus]),
    )


class MentorSearchArgsSchema(Schema):
    career_path = fields.String(validate=validate.Length(max=80))
    skill = fields.String(validate=validate.Length(max=80))
    language = fields.String(validate=validate.Length(max=3))
    max_price_cents = fields.Integer(validate=validate.Range(min=0))
    available_within_days = fields.Integer(validate=validate.Range(min=0, max=365))
    q = fields.String(validate=validate.Length(max=200))
    sort = fields.String(load_default="relevance", validate=validate.OneOf(SORTS))

    @pre_load
    def _normalize(self, data: Any, **_: Any) -> Any:
        """Blank parameters mean "any" (an HTML GET form sends every field); tags are stored lower-case."""
        if not isinstance(data, Mapping):
            return data
        cleaned = {
            key: value.strip() for key, value in data.items() if isinstance(value, str) and value.strip()
        }
        for key in ("career_path", "skill", "language"):
            if key in cleaned:
                cleaned[key] = cleaned[key].lower()
        return cleaned
