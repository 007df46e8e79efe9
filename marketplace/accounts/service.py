"""Account operations. Each flushes; the request or command commits."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from marketplace.accounts import signals
from marketplace.accounts.models import ApiToken, Role, User
from marketplace.accounts.passwords import hash_password, needs_rehash, verify_password
from marketplace.core.errors import Conflict, Unauthorized
from marketplace.extensions import db

TOKEN_PREFIX = "mk_"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def register(*, email: str, password: str, name: str, role: Role, timezone: str = "UTC") -> User:
    user = User(
        email=normalize_email(email),
        password_hash=hash_password(password),
        name=name.strip(),
        timezone=timezone,
    )
    user.add_role(role)
    if find_user_by_email(user.email) is not None:
        raise Conflict("An account with this email already exists.", {"email": ["Already registered."]})
    try:
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError as exc:
        raise Conflict(
            "An account with this email already exists.", {"email": ["Already registered."]}
        ) from exc
    signals.user_registered.send(user.id)
    return user


def authenticate(email: str, password: str) -> User:
    user = find_user_by_email(email)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized("Invalid email or password.")
    if not user.is_active:
        raise Unauthorized("This account is disabled.")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def _token_digest(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def issue_token(user: User) -> str:
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.session.add(ApiToken(user=user, token_hash=_token_digest(raw)))
    db.session.flush()
    return raw


def user_for_token(raw_token: str) -> User | None:
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _token_digest(raw_token), ApiToken.revoked_at.is_(None))
    )
    if token is None or not token.user.is_active:
        return None
    return token.user


def create_admin(*, email: str, password: str, name: str | None = None) -> User:
    """Promote an existing account or create a new one; idempotent so ops can rerun it."""
    user = find_user_by_email(email)
    if user is None:
        user = User(
            email=normalize_email(email),
            password_hash=hash_password(password),
            name=name or email.split("@")[0],
            timezone="UTC",
        )
        db.session.add(user)
    else:
        user.password_hash = hash_password(password)
    user.add_role(Role.ADMIN)
    db.session.flush()
    return user
