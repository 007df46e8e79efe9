from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.accounts.models import User
from marketplace.core.models import TimestampMixin
from marketplace.core.time import utcnow
from marketplace.extensions import Model, db
from marketplace.mentors.vetting import VettingAction, VettingStatus, next_status


class TagKind(enum.StrEnum):
    SKILL = "skill"
    LANGUAGE = "language"
    CAREER_PATH = "career_path"


class MentorProfile(TimestampMixin, Model):
    __tablename__ = "mentor_profiles"
    __table_args__ = (
        CheckConstraint("price_cents IS NULL OR price_cents >= 0", name="price_not_negative"),
        Index("ix_mentor_profiles_status_price", "vetting_status", "price_cents"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    headline: Mapped[str | None] = mapped_column(String(160))
    bio: Mapped[str | None] = mapped_column(Text)
    years_experience: Mapped[int | None]
    price_cents: Mapped[int | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    session_minutes: Mapped[list[int]] = mapped_column(db.JSON, default=list)
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Booking settings (not public copy: they apply at once, no admin review). A mentor who requires
    # confirmation has each paid request's card authorized only, and accepts or declines it.
    requires_confirmation: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Minimum notice: a learner cannot cancel a confirmed session later than this before its start (0: any
    # time), and nobody can move one later than this (None: the platform's CANCELLATION_FULL_REFUND_HOURS).
    cancel_notice_hours: Mapped[int] = mapped_column(default=0, server_default="0")
    reschedule_notice_hours: Mapped[int | None]
    vetting_status: Mapped[str] = mapped_column(String(32), default=VettingStatus.DRAFT.value, index=True)
    rating_avg: Mapped[float | None]
    rating_count: Mapped[int] = mapped_column(default=0)
    next_available_at: Mapped[datetime | None]
    # Bumped by mentors.calendar_version.bump_calendar_versions with every change to the mentor's free slots (slot cache key).
    calendar_version: Mapped[int] = mapped_column(default=0, server_default="0")

    user: Mapped[User] = relationship(lazy="joined")
    tags: Mapped[list[MentorTag]] = relationship(
        back_populates="profile", cascade="all, delete-orphan", lazy="selectin", order_by="MentorTag.position"
    )
    # Newest first; read only where the owner or an admin looks at the profile, never by the public.
    revisions: Mapped[list[ProfileRevision]] = relationship(
        back_populates="profile", cascade="all, delete-orphan", order_by="ProfileRevision.id.desc()"
    )

    def _tag_values(self, kind: TagKind) -> list[str]:
        return [tag.value for tag in self.tags if tag.kind == kind]

    @property
    def skills(self) -> list[str]:
        return self._tag_values(TagKind.SKILL)

    @property
    def languages(self) -> list[str]:
        return self._tag_values(TagKind.LANGUAGE)

    @property
    def career_paths(self) -> list[str]:
        return self._tag_values(TagKind.CAREER_PATH)

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def status(self) -> VettingStatus:
        return VettingStatus(self.vetting_status)

    @property
    def is_public(self) -> bool:
        return self.status is VettingStatus.APPROVED

    @property
    def revision(self) -> ProfileRevision | None:
        """The latest revision the mentor proposed, whatever became of it."""
        return self.revisions[0] if self.revisions else None

    @property
    def pending_revision(self) -> ProfileRevision | None:
        latest = self.revision
        return latest if latest is not None and latest.is_pending else None

    def set_tags(self, kind: TagKind, values: list[str]) -> None:
        """Replace one kind of tag, keeping the order the mentor gave and dropping repeats."""
        kept = [tag for tag in self.tags if tag.kind != kind]
        unique = list(dict.fromkeys(values))
        self.tags = kept + [MentorTag(kind=kind.value, value=v, position=i) for i, v in enumerate(unique)]

    def can_edit(self, user: User) -> bool:
        return user.id == self.user_id

    def can_vet(self, user: User) -> bool:
        return user.has_role("admin") and user.id != self.user_id

    def apply(self, action: VettingAction) -> tuple[VettingStatus, VettingStatus]:
        before = self.status
        after = next_status(before, action)
        self.vetting_status = after.value
        return before, after


class MentorTag(Model):
    """Skills, languages and career paths as rows, so every database filters on them with an index."""

    __tablename__ = "mentor_tags"
    __table_args__ = (Index("ix_mentor_tags_kind_value", "kind", "value"),)

    profile_id: Mapped[int] = mapped_column(
        ForeignKey("mentor_profiles.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(80), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)

    profile: Mapped[MentorProfile] = relationship(back_populates="tags")


class VettingEvent(Model):
    """Append-only audit of every vetting step: who, when, from which state to which, and why."""

    __tablename__ = "vetting_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="CASCADE"), index=True)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decision: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set on the steps of a profile revision (submitted, withdrawn, approved, rejected).
    revision_id: Mapped[int | None] = mapped_column(
        ForeignKey("profile_revisions.id", ondelete="SET NULL"), index=True
    )


class RevisionStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REPLACED = "replaced"  # the mentor proposed something else before an admin decided
    WITHDRAWN = "withdrawn"  # the mentor put every field back as it is live


class ProfileRevision(TimestampMixin, Model):
    """Changes to public fields of a submitted profile, waiting for an admin: the live profile (what the
    public sees) takes them only when an admin approves. At most one is pending per profile."""

    __tablename__ = "profile_revisions"
    __table_args__ = (
        Index(
            "uq_profile_revisions_one_pending",
            "profile_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("mentor_profiles.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=RevisionStatus.PENDING.value)
    # Field name -> proposed value, only the fields that differ from the live profile.
    changes: Mapped[dict[str, Any]] = mapped_column(db.JSON)
    admin_note: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None]

    profile: Mapped[MentorProfile] = relationship(back_populates="revisions")

    @property
    def is_pending(self) -> bool:
        return self.status == RevisionStatus.PENDING.value


class CatalogVersion(Model):
    """One row whose number moves with every commit that changes what search shows (migration 0008's
    triggers); see `mentors.catalog`."""

    __tablename__ = "catalog_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class CareerPathMatch(Model):
    """How a mentor relates to a path: chose it, and how many of its skills they list.

    Written only by database triggers (migration 0004) whenever mentor tags, path skills or paths change,
    so a path's mentors are read from an index instead of aggregating every mentor's tags per request.
    A row exists when the mentor chose the path or shares at least one of its skills. Keyed by slug, not
    by path id: a choice is the mentor's tag and counts even before the content is loaded.
    """

    __tablename__ = "career_path_matches"

    path_slug: Mapped[str] = mapped_column(String(80), primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("mentor_profiles.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    # 1 or 0 rather than a boolean: the ranking multiplies by it in SQL.
    chose: Mapped[int]
    overlap: Mapped[int]
