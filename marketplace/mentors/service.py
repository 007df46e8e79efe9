"""Mentor profile and vetting operations. Each flushes; the request or command commits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Select, exists, func, or_, select

from marketplace.accounts.models import Role, User
from marketplace.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile, MentorTag, TagKind, VettingEvent
from marketplace.mentors.vetting import ForbiddenTransition, VettingAction, VettingStatus

REQUIRED_FOR_SUBMISSION = (
    "headline",
    "bio",
    "skills",
    "career_paths",
    "languages",
    "years_experience",
    "price_cents",
    "currency",
    "session_minutes",
    "timezone",
)
_TAG_FIELDS = {"skills": TagKind.SKILL, "languages": TagKind.LANGUAGE, "career_paths": TagKind.CAREER_PATH}


def _require_mentor(user: User) -> None:
    if not user.has_role(Role.MENTOR):
        raise Forbidden("Only mentor accounts have a mentor profile.")


def own_profile(user: User) -> MentorProfile:
    _require_mentor(user)
    profile = db.session.scalar(select(MentorProfile).where(MentorProfile.user_id == user.id))
    if profile is None:
        raise NotFound("You have no mentor profile yet: PUT one first.")
    return profile


def save_own_profile(user: User, data: dict[str, Any]) -> MentorProfile:
    """Create or update the caller's profile; fields left out keep their value."""
    _require_mentor(user)
    profile = db.session.scalar(select(MentorProfile).where(MentorProfile.user_id == user.id))
    if profile is None:
        profile = MentorProfile(user=user, vetting_status=VettingStatus.DRAFT.value, session_minutes=[])
        db.session.add(profile)
    _apply_fields(profile, data)
    db.session.flush()
    return profile


def update_profile_by_id(user: User, profile_id: int, data: dict[str, Any]) -> MentorProfile:
    profile = db.session.get(MentorProfile, profile_id)
    if profile is None or not profile.can_edit(user):
        raise NotFound("No such mentor profile.")
    _apply_fields(profile, data)
    db.session.flush()
    return profile


def _apply_fields(profile: MentorProfile, data: dict[str, Any]) -> None:
    for key, value in data.items():
        if key in _TAG_FIELDS:
            profile.set_tags(_TAG_FIELDS[key], value)
        elif key == "session_minutes":
            profile.session_minutes = sorted(value)
        else:
            setattr(profile, key, value)


def missing_fields(profile: MentorProfile) -> list[str]:
    return [name for name in REQUIRED_FOR_SUBMISSION if getattr(profile, name) in (None, "", [])]


def submit_profile(user: User) -> MentorProfile:
    profile = own_profile(user)
    if profile.status not in (VettingStatus.DRAFT, VettingStatus.CHANGES_REQUESTED):
        raise Conflict(f"A profile that is {profile.status.value} cannot be submitted.")
    missing = missing_fields(profile)
    if missing:
        raise Unprocessable(
            "The profile is incomplete.", {name: ["Required before submission."] for name in missing}
        )
    _transition(profile, VettingAction.SUBMIT, actor=None, note=None)
    return profile


def decide(admin: User, profile_id: int, action: VettingAction, note: str | None) -> MentorProfile:
    profile = db.session.get(MentorProfile, profile_id)
    if profile is None:
        raise NotFound("No such mentor profile.")
    if not profile.can_vet(admin):
        raise Forbidden("Admins cannot vet their own mentor profile.")
    _transition(profile, action, actor=admin, note=note)
    return profile


def _transition(profile: MentorProfile, action: VettingAction, actor: User | None, note: str | None) -> None:
    try:
        before, after = profile.apply(action)
    except ForbiddenTransition as exc:
        raise Conflict(str(exc)) from exc
    db.session.add(
        VettingEvent(
            profile_id=profile.id,
            admin_id=actor.id if actor else None,
            decision=action.value,
            from_status=before.value,
            to_status=after.value,
            note=note,
        )
    )
    db.session.flush()


def vetting_queue(status: VettingStatus) -> Select:
    return (
        select(MentorProfile)
        .where(MentorProfile.vetting_status == status.value)
        .order_by(MentorProfile.updated_at, MentorProfile.id)
    )


def vetting_history(profile_id: int) -> list[VettingEvent]:
    if db.session.get(MentorProfile, profile_id) is None:
        raise NotFound("No such mentor profile.")
    return list(
        db.session.scalars(
            select(VettingEvent).where(VettingEvent.profile_id == profile_id).order_by(VettingEvent.id)
        )
    )


def public_profile(profile_id: int) -> MentorProfile:
    profile = db.session.get(MentorProfile, profile_id)
    if profile is None or not profile.is_public:
        raise NotFound("No such mentor.")
    return profile


def _has_tag(kind: TagKind, value: str) -> Any:
    return exists().where(
        MentorTag.profile_id == MentorProfile.id, MentorTag.kind == kind.value, MentorTag.value == value
    )


def search(filters: dict[str, Any]) -> Select:
    """Approved mentors only, whatever the filters say."""
    stmt = (
        select(MentorProfile)
        .join(MentorProfile.user)
        .where(MentorProfile.vetting_status == VettingStatus.APPROVED.value)
    )
    if filters.get("career_path"):
        stmt = stmt.where(_has_tag(TagKind.CAREER_PATH, filters["career_path"].lower()))
    if filters.get("skill"):
        stmt = stmt.where(_has_tag(TagKind.SKILL, filters["skill"].strip().lower()))
    if filters.get("language"):
        stmt = stmt.where(_has_tag(TagKind.LANGUAGE, filters["language"].lower()))
    if filters.get("max_price_cents") is not None:
        stmt = stmt.where(MentorProfile.price_cents <= filters["max_price_cents"])
    if filters.get("available_within_days") is not None:
        horizon = utcnow() + timedelta(days=filters["available_within_days"])
        stmt = stmt.where(MentorProfile.next_available_at <= horizon)
    if filters.get("q"):
        pattern = f"%{filters['q'].strip().lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(User.name).like(pattern),
                func.lower(MentorProfile.headline).like(pattern),
                func.lower(MentorProfile.bio).like(pattern),
                _has_tag_like(pattern),
            )
        )
    return stmt.order_by(*_ordering(filters.get("sort", "relevance")))


def _has_tag_like(pattern: str) -> Any:
    return exists().where(
        MentorTag.profile_id == MentorProfile.id,
        MentorTag.kind == TagKind.SKILL.value,
        MentorTag.value.like(pattern),
    )


def _ordering(sort: str) -> tuple[Any, ...]:
    rating = func.coalesce(MentorProfile.rating_avg, 0)
    if sort == "price":
        return (MentorProfile.price_cents.asc(), MentorProfile.id)
    if sort == "next_available":
        return (MentorProfile.next_available_at.is_(None), MentorProfile.next_available_at, MentorProfile.id)
    return (rating.desc(), MentorProfile.rating_count.desc(), MentorProfile.id)
