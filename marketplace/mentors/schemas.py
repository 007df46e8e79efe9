from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, pre_load, validate, validates, validates_schema

from marketplace.accounts.schemas import validate_timezone
from marketplace.core.validation import QuerySchema, Schema, fields
from marketplace.mentors import rules
from marketplace.mentors.signals import career_paths_named
from marketplace.mentors.vetting import (
    ADMIN_ACTIONS,
    REVISION_DECISIONS,
    REVISION_PENDING,
    RevisionAction,
    VettingAction,
    VettingStatus,
)

SESSION_LENGTHS = (15, 30, 45, 60, 90, 120)
NOTE_REQUIRED_FOR = frozenset(
    {VettingAction.REJECT, VettingAction.REQUEST_CHANGES, VettingAction.SUSPEND, RevisionAction.REJECT}
)
SORTS = ("relevance", "rating", "price", "next_available")


def _tag(max_length: int = 80) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length))


def validate_language(value: str) -> None:
    if rules.canonical_language(value) is None:
        raise ValidationError("Not a known ISO 639 language code (e.g. 'en').")


def validate_currency(value: str) -> None:
    problem = rules.currency_error(value)
    if problem:
        raise ValidationError(problem)


# A week: notice periods longer than that would make most of a mentor's calendar unmovable.
MAX_NOTICE_HOURS = 168


class MentorProfileInputSchema(Schema):
    """Every field may be left out while the profile is a draft; completeness is checked on submission.
    No field may be set to null. The price's bounds depend on its currency and session lengths: the service
    checks them (`rules.price_error`)."""

    headline = fields.String(validate=validate.Length(max=160))
    bio = fields.String(validate=validate.Length(max=5000), multiline=True)
    skills = fields.List(_tag(), validate=validate.Length(max=30))
    career_paths = fields.List(fields.String(), validate=validate.Length(max=10))
    languages = fields.List(fields.String(validate=validate_language), validate=validate.Length(max=10))
    years_experience = fields.Integer(validate=validate.Range(min=0, max=70))
    price_cents = fields.Integer(
        min=1,
        metadata={"description": "Hourly rate in the currency's minor unit (whole units for JPY)"},
    )
    currency = fields.String(validate=validate_currency)
    session_minutes = fields.List(
        fields.Integer(validate=validate.OneOf(SESSION_LENGTHS)),
        validate=validate.Length(max=len(SESSION_LENGTHS)),
    )
    timezone = fields.String(validate=validate_timezone)
    # Booking settings: they apply at once, with no admin review (they are not public copy).
    requires_confirmation = fields.Boolean(
        metadata={
            "description": "Authorize each request's card and accept or decline it before it is charged"
        }
    )
    cancel_notice_hours = fields.Integer(
        validate=validate.Range(min=0, max=MAX_NOTICE_HOURS),
        metadata={"description": "Learners cannot cancel a session later than this before it starts"},
    )
    reschedule_notice_hours = fields.Integer(
        validate=validate.Range(min=0, max=MAX_NOTICE_HOURS),
        metadata={"description": "Nobody can move a session later than this before it starts"},
    )

    @pre_load
    def _normalize(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("skills", "languages", "career_paths"):
            if isinstance(data.get(key), list):
                data[key] = [v.strip().lower() if isinstance(v, str) else v for v in data[key]]
        if isinstance(data.get("languages"), list):
            data["languages"] = [
                (rules.canonical_language(v) or v) if isinstance(v, str) else v for v in data["languages"]
            ]
        if isinstance(data.get("currency"), str):
            data["currency"] = data["currency"].strip().upper()
        return data

    @validates("career_paths")
    def _known_paths(self, value: list[str], **_: Any) -> None:
        """Only loaded career paths (`flask load-career-paths`) can be chosen; the careers module answers."""
        unknown = sorted(
            {slug for _, answer in career_paths_named.send(self, slugs=value) for slug in answer}
        )
        if unknown:
            raise ValidationError(f"Unknown career path: {', '.join(unknown)}.")

    @validates("session_minutes")
    def _sorted_lengths(self, value: list[int], **_: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("Each session length may appear once.")


class RevisionChangesSchema(Schema):
    """The public fields a revision proposes; only those that differ from the live profile are present."""

    headline = fields.String()
    bio = fields.String()
    skills = fields.List(fields.String())
    career_paths = fields.List(fields.String())
    languages = fields.List(fields.String())
    years_experience = fields.Integer()
    price_cents = fields.Integer()
    currency = fields.String()
    session_minutes = fields.List(fields.Integer())


class ProfileRevisionSchema(Schema):
    id = fields.Integer()
    status = fields.String(metadata={"description": "pending, approved, rejected, replaced or withdrawn"})
    changes = fields.Nested(RevisionChangesSchema)
    admin_note = fields.String(allow_none=True)
    submitted_at = fields.DateTime(attribute="created_at")
    decided_at = fields.DateTime(allow_none=True)


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
    requires_confirmation = fields.Boolean(dump_only=True)
    cancel_notice_hours = fields.Integer(dump_only=True)
    reschedule_notice_hours = fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "null: the platform's default"}
    )
    vetting_status = fields.String(dump_only=True)
    rating_avg = fields.Float(dump_only=True, allow_none=True)
    rating_count = fields.Integer(dump_only=True)
    next_available_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    revision = fields.Nested(
        ProfileRevisionSchema,
        dump_only=True,
        allow_none=True,
        metadata={
            "description": "The latest change to public fields the mentor proposed (pending until an admin "
            "decides); the fields above are the live, approved ones"
        },
    )


class PublicMentorSchema(MentorProfileSchema):
    class Meta:
        exclude = ("user_id", "vetting_status", "created_at", "updated_at", "revision")


class VettingDecisionSchema(Schema):
    decision = fields.String(
        required=True,
        validate=validate.OneOf(sorted(a.value for a in ADMIN_ACTIONS | REVISION_DECISIONS)),
        metadata={"description": "approve_revision / reject_revision decide the pending profile revision"},
    )
    note = fields.String(
        validate=validate.Length(max=2000), load_default=None, allow_none=True, multiline=True
    )
    revision_id = fields.Integer(
        load_default=None,
        allow_none=True,
        min=1,
        metadata={"description": "For a revision decision: 409 unless this is the pending revision"},
    )

    @validates_schema
    def _note_when_refusing(self, data: dict[str, Any], **_: Any) -> None:
        if data["decision"] in NOTE_REQUIRED_FOR and not (data.get("note") or "").strip():
            raise ValidationError("Tell the mentor why: a note is required for this decision.", "note")


class VettingEventSchema(Schema):
    from_status = fields.String()
    to_status = fields.String()
    decision = fields.String()
    note = fields.String(allow_none=True)
    admin_id = fields.Integer(allow_none=True)
    at = fields.DateTime()
    revision_id = fields.Integer(allow_none=True)


class VettingQueueArgsSchema(QuerySchema):
    status = fields.String(
        load_default=VettingStatus.PENDING_REVIEW.value,
        validate=validate.OneOf([*(s.value for s in VettingStatus), REVISION_PENDING]),
        metadata={
            "description": f"A vetting status, or `{REVISION_PENDING}`: profiles with a revision waiting"
        },
    )


class MentorSearchArgsSchema(QuerySchema):
    career_path = fields.String(validate=validate.Length(max=80))
    skill = fields.String(validate=validate.Length(max=80))
    language = fields.String(validate=validate.Length(max=3))
    max_price_cents = fields.Integer(validate=validate.Range(min=0))
    currency = fields.String(
        validate=validate.Length(equal=3),
        metadata={"description": "Only mentors priced in this ISO 4217 currency (prices compare within one)"},
    )
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
        if "currency" in cleaned:
            cleaned["currency"] = cleaned["currency"].upper()
        for key in ("career_path", "skill", "language"):
            if key in cleaned:
                cleaned[key] = cleaned[key].lower()
        if "language" in cleaned:
            cleaned["language"] = rules.canonical_language(cleaned["language"]) or cleaned["language"]
        return cleaned
