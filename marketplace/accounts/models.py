from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.core.models import TimestampMixin
from marketplace.core.time import utcnow
from marketplace.extensions import Model


class Role(enum.StrEnum):
    LEARNER = "learner"
    MENTOR = "mentor"
    ADMIN = "admin"


class User(UserMixin, TimestampMixin, Model):  # type: ignore[misc]  # flask-login ships no type information
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased by the service, so the unique constraint is case-insensitive on every database.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    is_active_account: Mapped[bool] = mapped_column(default=True)
    email_verified: Mapped[bool] = mapped_column(default=False)

    role_rows: Mapped[list[UserRole]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def roles(self) -> list[str]:
        return sorted(row.role for row in self.role_rows)

    def has_role(self, role: Role | str) -> bool:
        return any(row.role == role for row in self.role_rows)

    def add_role(self, role: Role) -> None:
        if not self.has_role(role):
            self.role_rows.append(UserRole(role=role.value))

    @property
    def is_active(self) -> bool:
        return self.is_active_account


class UserRole(Model):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class ApiToken(TimestampMixin, Model):
    """Only a SHA-256 of the token is kept: tokens are long random strings, so a slow hash adds nothing.

    A token works until `expires_at` unless `revoked_at` is set (by its owner, or by a password change).
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class UserSession(Model):
    """A signed-in browser: the cookie carries a random key, this row its SHA-256.

    Server-side rows rather than a per-user generation number, because logout must end one browser's
    session and leave the user's others alone, while a password change ends all but the current one; a
    generation can only end all of them at once. A row exists while its session is live: logout deletes it,
    and a login clears the user's rows past `expires_at`.
    """

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]

    user: Mapped[User] = relationship()
