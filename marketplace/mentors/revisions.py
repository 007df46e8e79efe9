"""Editing a mentor profile, and the revisions that hold a submitted profile's changes for an admin.

A draft (or a profile sent back or rejected) is edited in place. Once submitted, a change to public fields
becomes the profile's pending revision, and the live profile, which is all the public reads, takes it only
when an admin approves. Each function flushes; the request commits.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from marketplace.accounts.models import User
from marketplace.core.errors import Conflict, Unprocessable
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors import rules, signals
from marketplace.mentors.calendar_version import bump_calendar_versions
from marketplace.mentors.models import (
    MentorProfile,
    ProfileRevision,
    RevisionStatus,
    TagKind,
    VettingEvent,
)
from marketplace.mentors.vetting import REVISED_STATUSES, RevisionAction

# What the public sees and an admin vets. The time zone is not among them: it only says how the mentor's
# hours are read, and changes take effect at once in every state. Nor are the booking settings
# (`requires_confirmation`, the notice periods): they change how the mentor's bookings run, not what the
# profile claims, so an admin has nothing to vet in them and the mentor needs them to apply at once.
PUBLIC_FIELDS = (
    "headline",
    "bio",
    "skills",
    "career_paths",
    "languages",
    "years_experience",
    "price_cents",
    "currency",
    "session_minutes",
)
_PRICE_FIELDS = ("price_cents", "currency", "session_minutes")
TAG_FIELDS = {"skills": TagKind.SKILL, "languages": TagKind.LANGUAGE, "career_paths": TagKind.CAREER_PATH}


def save(profile: MentorProfile, data: dict[str, Any]) -> None:
    """Apply a validated PUT (fields left out keep their value), or propose it as a revision."""
    data = _normalized(data)
    if profile.status not in REVISED_STATUSES:
        _raise_field_errors(_field_errors(_values_with(profile, data), changed=data))
        _apply_fields(profile, data)
        db.session.flush()
        return
    _apply_fields(profile, {key: value for key, value in data.items() if key not in PUBLIC_FIELDS})
    _propose(profile, {key: value for key, value in data.items() if key in PUBLIC_FIELDS})
    db.session.flush()


def _normalized(data: dict[str, Any]) -> dict[str, Any]:
    """Values as the profile keeps them, so a proposal can be compared with the live fields."""
    normal = dict(data)
    for key in TAG_FIELDS:
        if key in normal:
            normal[key] = list(dict.fromkeys(normal[key]))
    if "session_minutes" in normal:
        normal["session_minutes"] = sorted(normal["session_minutes"])
    return normal


def _values_with(profile: MentorProfile, changes: dict[str, Any]) -> dict[str, Any]:
    return {**{name: getattr(profile, name) for name in PUBLIC_FIELDS}, **changes}


def price_errors(profile: MentorProfile) -> dict[str, list[str]]:
    """The price rules on the profile as it is: submission checks them again, since a draft's price may
    have been saved before its currency was known."""
    return _field_errors(_values_with(profile, {}), changed=dict.fromkeys(_PRICE_FIELDS))


def _field_errors(values: dict[str, Any], changed: dict[str, Any]) -> dict[str, list[str]]:
    """The price rules on the profile as it would be, when this change touches the price, its currency or
    the session lengths (with the currency still unknown, submission checks them)."""
    errors: dict[str, list[str]] = {}
    touched = [name for name in _PRICE_FIELDS if name in changed]
    if touched and values["price_cents"] is not None and values["currency"] is not None:
        problem = rules.price_error(
            values["price_cents"],
            values["currency"],
            values["session_minutes"] or [],
            current_app.config["MENTOR_MAX_HOURLY_PRICE_USD"],
        )
        if problem:
            errors[touched[0]] = [problem]
    return errors


def _raise_field_errors(errors: dict[str, list[str]]) -> None:
    if errors:
        raise Unprocessable("Some profile fields are not valid.", {"json": errors})


def _propose(profile: MentorProfile, public: dict[str, Any]) -> None:
    """Make `public` (on top of what is pending) the profile's pending revision: a new revision replaces
    the pending one, and proposing the live values again withdraws it."""
    pending = profile.pending_revision
    before = pending.changes if pending is not None else {}
    proposed = {**before, **public}
    changes = {
        name: proposed[name]
        for name in PUBLIC_FIELDS
        if name in proposed and proposed[name] != getattr(profile, name)
    }
    if changes == before:
        return
    errors = {
        name: ["A public profile must keep this field."]
        for name, value in changes.items()
        if value in (None, "", [])
    }
    errors.update(_field_errors(_values_with(profile, changes), changed=changes))
    _raise_field_errors(errors)
    if pending is not None:
        pending.status = RevisionStatus.REPLACED.value if changes else RevisionStatus.WITHDRAWN.value
        db.session.flush()  # the one pending revision per profile is a unique index
        if not changes:
            _record_revision_step(profile, pending, RevisionAction.WITHDRAW, actor=None, note=None)
            return
    revision = ProfileRevision(changes=changes)
    profile.revisions.insert(0, revision)  # the collection is newest first
    db.session.flush()
    _record_revision_step(
        profile, revision, RevisionAction.SUBMIT, actor=None, note=f"Proposed: {', '.join(changes)}."
    )


def _record_revision_step(
    profile: MentorProfile,
    revision: ProfileRevision,
    action: RevisionAction,
    actor: User | None,
    note: str | None,
) -> VettingEvent:
    event = VettingEvent(
        profile_id=profile.id,
        admin_id=actor.id if actor else None,
        decision=action.value,
        from_status=profile.vetting_status,
        to_status=profile.vetting_status,
        note=note,
        revision_id=revision.id,
    )
    db.session.add(event)
    db.session.flush()
    return event


def _apply_fields(profile: MentorProfile, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key in TAG_FIELDS:
            profile.set_tags(TAG_FIELDS[key], value)
        elif key == "session_minutes":
            if profile.id is not None and sorted(value) != profile.session_minutes:
                bump_calendar_versions(
                    [profile.id]
                )  # lengths offered decide the slots (a new profile has none listed)
            profile.session_minutes = sorted(value)
        else:
            setattr(profile, key, value)


def decide(
    profile: MentorProfile, action: RevisionAction, admin: User, note: str | None, revision_id: int | None
) -> None:
    """Approve (copy the fields onto the live profile) or reject the pending revision; 409 when there is
    none, or when `revision_id` names another one (replaced since the admin read it)."""
    revision = profile.pending_revision
    if revision is None:
        raise Conflict("This profile has no pending revision to decide.")
    if revision_id is not None and revision_id != revision.id:
        raise Conflict(f"Revision {revision_id} is no longer pending: the pending one is {revision.id}.")
    if action is RevisionAction.APPROVE:
        _apply_fields(profile, revision.changes)  # the catalog's triggers see it in this same commit
        revision.status = RevisionStatus.APPROVED.value
    else:
        revision.status = RevisionStatus.REJECTED.value
    revision.admin_note = note
    revision.decided_by_id = admin.id
    revision.decided_at = utcnow()
    event = _record_revision_step(profile, revision, action, actor=admin, note=note)
    signals.revision_decided.send(
        profile.id, action=action.value, revision_id=revision.id, event_id=event.id, note=note
    )
