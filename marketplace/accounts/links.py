"""Signed, expiring, single-use links for email verification and password reset.

A link carries an itsdangerous signature over the user id and the state its use changes: a fingerprint of
the password hash for a reset (any new password, even the same one, gets a new salt and so a new hash), the
address and its unverified state for a verification. Nothing is stored: once used, the state no longer
matches and the link is dead; past its age, the signature check refuses it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

from marketplace.accounts.models import User
from marketplace.core.errors import BadRequest
from marketplace.extensions import db

PASSWORD_RESET = "password-reset"
EMAIL_VERIFICATION = "email-verification"
INVALID_LINK = "This link is invalid, expired or already used."


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    # Oldest key first, newest last: links signed before a key rotation keep working until they expire.
    keys = [*(current_app.config.get("SECRET_KEY_FALLBACKS") or []), current_app.config["SECRET_KEY"]]
    return URLSafeTimedSerializer(keys, salt=purpose)


def _password_fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


def _url(path: str, token: str) -> str:
    return f"{current_app.config['PUBLIC_BASE_URL']}{path}?{urlencode({'token': token})}"


def _load(purpose: str, token: str, max_age_seconds: int) -> tuple[User, dict[str, Any]]:
    try:
        data = _serializer(purpose).loads(token, max_age=max_age_seconds)
    except BadData as exc:
        raise BadRequest(INVALID_LINK, {"token": [INVALID_LINK]}) from exc
    user = db.session.get(User, data["user"]) if isinstance(data, dict) else None
    if user is None or not user.is_active:
        raise BadRequest(INVALID_LINK, {"token": [INVALID_LINK]})
    return user, data


def password_reset_token(user: User) -> str:
    return _serializer(PASSWORD_RESET).dumps({"user": user.id, "password": _password_fingerprint(user)})


def password_reset_url(user: User) -> str:
    return _url("/reset-password", password_reset_token(user))


def user_for_password_reset(token: str) -> User:
    """The user a reset link was made for, if it is unused and younger than PASSWORD_RESET_LINK_MINUTES."""
    max_age = int(current_app.config["PASSWORD_RESET_LINK_MINUTES"]) * 60
    user, data = _load(PASSWORD_RESET, token, max_age)
    if not hmac.compare_digest(str(data.get("password")), _password_fingerprint(user)):
        raise BadRequest(INVALID_LINK, {"token": [INVALID_LINK]})
    return user


def verification_token(user: User) -> str:
    return _serializer(EMAIL_VERIFICATION).dumps({"user": user.id, "email": user.email})


def verification_url(user: User) -> str:
    return _url("/verify-email", verification_token(user))


def user_for_verification(token: str) -> User:
    """The user whose current, still unverified address a link younger than EMAIL_VERIFICATION_LINK_HOURS
    was sent to."""
    max_age = int(current_app.config["EMAIL_VERIFICATION_LINK_HOURS"]) * 3600
    user, data = _load(EMAIL_VERIFICATION, token, max_age)
    if user.email_verified or data.get("email") != user.email:
        raise BadRequest(INVALID_LINK, {"token": [INVALID_LINK]})
    return user
