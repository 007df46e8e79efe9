"""Account operations. Each flushes; the request or command commits."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from marketplace.accounts import links, signals
from marketplace.accounts.models import ApiToken, Role, User, UserSession
from marketplace.accounts.passwords import hash_password, needs_rehash, verify_password
from marketplace.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from marketplace.core.time import utcnow
from marketplace.extensions import db

TOKEN_PREFIX = "mk_"
DEFAULT_TOKEN_NAME = "API token"
# The largest id any of our integer keys holds; a larger one in a path names nothing.


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
    # The welcome mail carries the link that verifies the address.
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


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- cookie sessions ---------------------------------------------------------------------------------


def start_session(user: User) -> str:
    """A server-side session for a cookie login; returns the key the (signed) cookie carries."""
    now = utcnow()
    db.session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now)
    )
    key = secrets.token_urlsafe(32)
    lifetime = timedelta(days=int(current_app.config["SESSION_LIFETIME_DAYS"]))
    db.session.add(UserSession(id=_digest(key), user_id=user.id, created_at=now, expires_at=now + lifetime))
    db.session.flush()
    return key


def user_for_session(key: str, user_id: str) -> User | None:
    """The active user of a live session, in one query; None once it was ended or expired."""
    user: User | None = db.session.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.id == _digest(key), UserSession.expires_at > utcnow())
    )
    if user is None or str(user.id) != user_id or not user.is_active:
        return None
    return user


def end_session(key: str) -> None:
    db.session.execute(delete(UserSession).where(UserSession.id == _digest(key)))


def end_credentials(user: User, *, keep_session: str | None = None, keep_token: int | None = None) -> None:
    """End every session and revoke every API token of `user`, but the ones given (the caller's own)."""
    sessions = delete(UserSession).where(UserSession.user_id == user.id)
    if keep_session is not None:
        sessions = sessions.where(UserSession.id != _digest(keep_session))
    db.session.execute(sessions)
    tokens = update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    if keep_token is not None:
        tokens = tokens.where(ApiToken.id != keep_token)
    db.session.execute(tokens.values(revoked_at=utcnow()))


# --- passwords and email verification ----------------------------------------------------------------


def change_password(
    user: User,
    current_password: str,
    new_password: str,
    *,
    keep_session: str | None = None,
    keep_token: int | None = None,
) -> None:
    """Set a new password; every other session and token of the user ends (the caller's own stays)."""
    if not verify_password(user.password_hash, current_password):
        raise Forbidden("The current password is wrong.", {"current_password": ["Wrong password."]})
    user.password_hash = hash_password(new_password)
    end_credentials(user, keep_session=keep_session, keep_token=keep_token)
    db.session.flush()


def request_password_reset(email: str) -> None:
    """Mail a reset link to an active account with this address; an unknown address gets nothing, and the
    caller answers the same either way."""
    user = find_user_by_email(email)
    if user is None or not user.is_active:
        return
    # One message per minute of asking: a burst of requests mails one link (each link works alone).
    signals.password_reset_requested.send(user.id, version=int(utcnow().timestamp()) // 60)


def reset_password(token: str, new_password: str) -> User:
    """Set the password a reset link allows; every session and token of the user ends. The link proved
    the mailbox, so the address counts as verified."""
    user = links.user_for_password_reset(token)
    user.password_hash = hash_password(new_password)
    user.email_verified = True
    end_credentials(user)
    db.session.flush()
    return user


def verify_email(token: str) -> User:
    user = links.user_for_verification(token)
    user.email_verified = True
    db.session.flush()
    return user


# --- API tokens --------------------------------------------------------------------------------------


def create_token(user: User, name: str = DEFAULT_TOKEN_NAME) -> tuple[ApiToken, str]:
    """A new token expiring in API_TOKEN_TTL_DAYS, and its secret (shown once, stored as a hash)."""
    now = utcnow()
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        name=name,
        token_hash=_digest(raw),
        created_at=now,
        expires_at=now + timedelta(days=int(current_app.config["API_TOKEN_TTL_DAYS"])),
    )
    db.session.add(token)
    db.session.flush()
    return token, raw


def issue_token(user: User, name: str = DEFAULT_TOKEN_NAME) -> str:
    return create_token(user, name)[1]


def _live_tokens(now: datetime) -> Select[ApiToken]:
    return select(ApiToken).where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > now)


def live_token(raw_token: str) -> ApiToken | None:
    """The unexpired, unrevoked token of an active user (loaded with it, in one query)."""
    token: ApiToken | None = db.session.scalar(
        _live_tokens(utcnow())
        .where(ApiToken.token_hash == _digest(raw_token))
        .options(joinedload(ApiToken.user))
    )
    if token is None or not token.user.is_active:
        return None
    return token


def token_use_unrecorded(token: ApiToken) -> bool:
    """Whether `last_used_at` is older than API_TOKEN_USE_RESOLUTION_MINUTES (so worth a write)."""
    resolution = timedelta(minutes=int(current_app.config["API_TOKEN_USE_RESOLUTION_MINUTES"]))
    return token.last_used_at is None or utcnow() - token.last_used_at >= resolution


def record_token_use(token_id: int) -> None:
    db.session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id)
        .values(last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def my_tokens(user: User) -> Select[ApiToken]:
    """The user's working tokens, newest first (a SELECT, for pagination)."""
    return (
        _live_tokens(utcnow())
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )


def revoke_token(user: User, token_id: int) -> None:
    """Revoke one of the user's working tokens; anyone else's, or one already dead, is not found."""
    token = db.session.scalar(
        _live_tokens(utcnow()).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    if token is None:
        raise NotFound("No such token.")
    token.revoked_at = utcnow()
    db.session.flush()


def create_admin(*, email: str, password: str, name: str | None = None) -> User:
    """Promote an existing account or create a new one; idempotent so ops can rerun it. Setting the password
    of an existing account ends its sessions and tokens, as any password change does."""
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
        end_credentials(user)
    user.add_role(Role.ADMIN)
    db.session.flush()
    return user
