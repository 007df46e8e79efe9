"""Mentor profile and vetting operations. Each flushes; the request or command commits."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Select,
    Subquery,
    case,
    cast,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    table,
)
from sqlalchemy.orm import aliased, selectinload

from marketplace.accounts.models import Role, User
from marketplace.core.db import is_sqlite
from marketplace.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors import ranking, revisions, signals
from marketplace.mentors.calendar_version import bump_calendar_versions
from marketplace.mentors.models import (
    CareerPathMatch,
    MentorProfile,
    MentorTag,
    ProfileRevision,
    RevisionStatus,
    TagKind,
    VettingEvent,
)
from marketplace.mentors.vetting import (
    REVISION_PENDING,
    ForbiddenTransition,
    RevisionAction,
    VettingAction,
    VettingStatus,
)

REQUIRED_FOR_SUBMISSION = (*revisions.PUBLIC_FIELDS, "timezone")


def _require_mentor(user: User) -> None:
    if not user.has_role(Role.MENTOR):
        raise Forbidden("Only mentor accounts have a mentor profile.")


def own_profile(user: User) -> MentorProfile:
    _require_mentor(user)
    profile = db.session.scalar(select(MentorProfile).where(MentorProfile.user_id == user.id))
    if profile is None:
        raise NotFound("You have no mentor profile yet: PUT one first.")
    return profile


def _locked(where: Any) -> MentorProfile | None:
    """The profile, its row locked: edits and revision decisions on one profile run one after another."""
    return db.session.scalar(
        select(MentorProfile).where(where).with_for_update(of=MentorProfile, key_share=True)
    )


def save_own_profile(user: User, data: dict[str, Any]) -> MentorProfile:
    """Create or update the caller's profile; fields left out keep their value."""
    _require_mentor(user)
    profile = _locked(MentorProfile.user_id == user.id)
    if profile is None:
        profile = MentorProfile(user=user, vetting_status=VettingStatus.DRAFT.value, session_minutes=[])
        db.session.add(profile)
    revisions.save(profile, data)
    return profile


def update_profile_by_id(user: User, profile_id: int, data: dict[str, Any]) -> MentorProfile:
    profile = _locked(MentorProfile.id == profile_id)
    if profile is None or not profile.can_edit(user):
        raise NotFound("No such mentor profile.")
    revisions.save(profile, data)
    return profile


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
    invalid = revisions.price_errors(profile)
    if invalid:
        raise Unprocessable("Some profile fields are not valid.", invalid)
    _transition(profile, VettingAction.SUBMIT, actor=None, note=None)
    return profile


def decide(
    admin: User,
    profile_id: int,
    action: VettingAction | RevisionAction,
    note: str | None,
    revision_id: int | None = None,
) -> MentorProfile:
    """A vetting decision, or (`approve_revision`/`reject_revision`) a decision on the pending revision;
    `revision_id`, when given, must name that revision, so an admin never decides one they did not read.
    The profile's row is locked first, as by edits, so a decision and an edit never interleave."""
    profile = _locked(MentorProfile.id == profile_id)
    if profile is None:
        raise NotFound("No such mentor profile.")
    if not profile.can_vet(admin):
        raise Forbidden("Admins cannot vet their own mentor profile.")
    if isinstance(action, RevisionAction):
        revisions.decide(profile, action, admin, note, revision_id)
    else:
        _transition(profile, action, actor=admin, note=note)
    return profile


def suspend_automatically(profile_id: int, note: str) -> bool:
    """Put an approved mentor back into the vetting queue as suspended, with no admin acting (e.g. after
    repeated no-shows); the history records `note`. False when the mentor is not approved (already out)."""
    profile = _locked(MentorProfile.id == profile_id)
    if profile is None or profile.vetting_status != VettingStatus.APPROVED.value:
        return False
    _transition(profile, VettingAction.SUSPEND, actor=None, note=note)
    return True


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
    bump_calendar_versions([profile.id])  # only an approved mentor's slots are listed
    signals.vetting_transition.send(
        profile.id, action=action.value, from_status=before.value, to_status=after.value, note=note
    )


def vetting_queue(status: str) -> Select[MentorProfile]:
    """Profiles in a vetting status, or (`revision_pending`) those with a revision waiting, oldest first."""
    stmt = select(MentorProfile).options(selectinload(MentorProfile.revisions))
    if status == REVISION_PENDING:
        pending = ProfileRevision
        return stmt.join(
            pending,
            (pending.profile_id == MentorProfile.id) & (pending.status == RevisionStatus.PENDING.value),
        ).order_by(pending.updated_at, MentorProfile.id)
    return stmt.where(MentorProfile.vetting_status == status).order_by(
        MentorProfile.updated_at, MentorProfile.id
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


def search(filters: dict[str, Any]) -> Select[MentorProfile]:
    """Approved mentors only, whatever the filters say, ordered in SQL by `ranking` so pages are cheap.

    `career_path` keeps the mentors who match the path (chose it, or share enough of its skills), and
    gives relevance its meaning; without it relevance is zero and the other parts of the score decide.
    """
    now = utcnow().replace(second=0, microsecond=0)  # the same order for every page asked within a minute
    stmt = (
        select(MentorProfile)
        .where(MentorProfile.vetting_status == VettingStatus.APPROVED.value)
        # Users are read for the page only, after the sort, instead of joined to every candidate.
        .options(selectinload(MentorProfile.user))
    )
    going_rates = _going_rates()
    stmt = stmt.outerjoin(going_rates, going_rates.c.currency == MentorProfile.currency)
    relevance: Any = 0.0
    if filters.get("career_path"):
        match = CareerPathMatch
        stmt = stmt.join(
            match, (match.profile_id == MentorProfile.id) & (match.path_slug == filters["career_path"])
        ).where(path_match_clause())
        # Double precision, as `ranking` computes in Python: integer columns times float literals would
        # otherwise be computed in NUMERIC, several times slower over every matching mentor.
        relevance = ranking.relevance(cast(match.chose, Float), cast(match.overlap, Float))
    if filters.get("skill"):
        stmt = stmt.where(_has_tag(TagKind.SKILL, filters["skill"]))
    if filters.get("language"):
        stmt = stmt.where(_has_tag(TagKind.LANGUAGE, filters["language"]))
    if filters.get("currency"):
        stmt = stmt.where(MentorProfile.currency == filters["currency"])
    if filters.get("max_price_cents") is not None:
        stmt = stmt.where(MentorProfile.price_cents <= filters["max_price_cents"])
    if filters.get("available_within_days") is not None:
        stmt = stmt.where(
            MentorProfile.next_available_at <= now + timedelta(days=filters["available_within_days"])
        )
    terms = _search_terms(filters.get("q") or "")
    text_rank: Any = None
    if terms:
        matches = _text_matches(terms)
        stmt = stmt.join(matches, matches.c.profile_id == MentorProfile.id)
        text_rank = matches.c.rank
    return stmt.order_by(
        *_ordering(filters.get("sort", "relevance"), _score(relevance, now, going_rates.c.cents), text_rank)
    )


def path_match_clause() -> Any:
    """`ranking.is_match` over `career_path_matches`: the mentor chose the path or shares enough skills."""
    return or_(CareerPathMatch.chose == 1, CareerPathMatch.overlap >= ranking.MIN_SKILL_OVERLAP)


def _going_rates() -> Subquery:
    """Per currency, the average hourly price of the approved mentors who charge in it (`ranking`'s T)."""
    priced = aliased(MentorProfile)
    return (
        select(priced.currency.label("currency"), func.avg(cast(priced.price_cents, Float)).label("cents"))
        .where(priced.vetting_status == VettingStatus.APPROVED.value, priced.price_cents.is_not(None))
        .group_by(priced.currency)
        .subquery("going_rates")
    )


def _score(relevance: Any, now: datetime, going_rate: Any) -> Any:
    """`ranking.score` as a SQL expression: the arithmetic is ranking's own, the steps become CASEs."""
    profile = MentorProfile
    availability = case(
        *[
            (profile.next_available_at <= now + timedelta(days=days), value)
            for days, value in ranking.AVAILABILITY_STEPS
        ],
        else_=0.0,
    )
    price = case(
        (profile.price_cents.is_(None) | going_rate.is_(None), 0.0),
        else_=ranking.price_score(cast(profile.price_cents, Float), going_rate),
    )
    rating = ranking.rating_score(func.coalesce(profile.rating_avg, 0.0), cast(profile.rating_count, Float))
    return ranking.combine(relevance, rating, availability, price)


def _ordering(sort: str, score: Any, text_rank: Any = None) -> tuple[Any, ...]:
    """Every sort ends with the score, then the id, so equal keys still page in a stable order.

    With a text query the best match comes first (`text_rank`, higher is better); prices are compared only
    within one currency: the price sort lists each currency's mentors together, cheapest first.
    """
    if sort == "price":
        keys: tuple[Any, ...] = (
            MentorProfile.price_cents.is_(None),
            MentorProfile.currency,
            MentorProfile.price_cents,
        )
    elif sort == "next_available":
        keys = (MentorProfile.next_available_at.is_(None), MentorProfile.next_available_at)
    elif sort == "rating":
        keys = (
            ranking.bayesian_rating(
                func.coalesce(MentorProfile.rating_avg, 0.0), MentorProfile.rating_count
            ).desc(),
        )
    elif text_rank is not None:
        keys = (text_rank.desc(),)
    else:
        keys = ()
    return (*keys, score.desc(), MentorProfile.id)


# --- full-text search: a `mentor_search` document per mentor, kept by triggers (migration 0004) --------

_WORD = re.compile(r"[^\W_]+")
_MAX_TERMS = 8
_search_table = table("mentor_search", column("profile_id"), column("rowid"), column("document"))
# FTS5's rank function is `bm25(table)`, lower for better matches; PostgreSQL's ts_rank is higher.
_bm25 = func.bm25(literal_column("mentor_search"))


def _search_terms(text: str) -> list[str]:
    """Words of a query, split at punctuation as the indexes split documents; each matches as a prefix."""
    return _WORD.findall(text.lower())[:_MAX_TERMS]


def _text_matches(terms: list[str]) -> Subquery:
    """Mentors whose name, headline, bio or skills contain every term (as a word prefix): `profile_id`, and
    `rank`, how well the text matches (higher is better; term frequency weighed against document length)."""
    if is_sqlite():
        fts_query = " AND ".join(f'"{term}"*' for term in terms)
        found = select(_search_table.c.rowid.label("profile_id"), (-_bm25).label("rank")).where(
            _search_table.c.document.op("MATCH")(fts_query)
        )
    else:
        ts_query = func.to_tsquery("simple", " & ".join(f"{term}:*" for term in terms))
        found = select(
            _search_table.c.profile_id, func.ts_rank(_search_table.c.document, ts_query).label("rank")
        ).where(_search_table.c.document.op("@@")(ts_query))
    return found.subquery("text_matches")
