"""How a request is authenticated: a Bearer token, or a cookie session guarded by a CSRF header.

A cookie session is live only while its server-side row is (accounts.models.UserSession), so logging out
or changing the password ends it everywhere, copies of the cookie included.
"""

from __future__ import annotations

import hmac
import secrets
from typing import cast

from flask import Flask, g, request, session
from flask_login import current_user, login_user, logout_user

from marketplace.accounts import service
from marketplace.accounts.models import ApiToken, User
from marketplace.core.api import CSRF_HEADER
from marketplace.core.auth import SELF_AUTHENTICATED_ENDPOINTS
from marketplace.core.db import SAFE_METHODS
from marketplace.core.errors import Forbidden, Unauthorized
from marketplace.core.pages import posted_field
from marketplace.extensions import db, login_manager

CSRF_SESSION_KEY = "csrf_token"
# A page's form carries the token in this hidden field, where an API call sends the header.
CSRF_FORM_FIELD = "csrf_token"
SESSION_KEY = "session_key"
# These take credentials in the body (or, for Stripe's deliveries, a signature over it, or a signed link)
# and act on no signed-in user, so a forged cross-site request gains nothing.
CSRF_EXEMPT_ENDPOINTS = frozenset(
    {
        "accounts.Login",
        "accounts.Register",
        "accounts.Tokens",
        "accounts.PasswordReset",
        "accounts.PasswordResetConfirm",
        "accounts.EmailVerification",
        "webhooks.StripeWebhook",
    }
)


def csrf_token() -> str:
    token = session.get(CSRF_SESSION_KEY)
    if token is None:
        token = session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_sent_matches() -> bool:
    """Whether the request carries this session's CSRF token, in the header or in a posted form's field."""
    sent = request.headers.get(CSRF_HEADER) or posted_field(CSRF_FORM_FIELD) or ""
    expected = session.get(CSRF_SESSION_KEY, "")
    # As bytes: compare_digest refuses str with non-ASCII characters, which a header may carry.
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def sign_in(user: User) -> None:
    """Start a fresh cookie session (nothing of the previous one survives) backed by a server-side row."""
    session.clear()
    session[SESSION_KEY] = service.start_session(user)
    login_user(user)


def sign_out() -> None:
    key = session.get(SESSION_KEY)
    if isinstance(key, str):
        service.end_session(key)
    logout_user()
    session.clear()


def current_session_key() -> str | None:
    """The server-side session key of a cookie-authenticated request."""
    if g.get("api_token_id") is not None:
        return None
    key = session.get(SESSION_KEY)
    return key if isinstance(key, str) else None


def current_token_id() -> int | None:
    """The id of the API token that authenticated this request."""
    return cast("int | None", g.get("api_token_id"))


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _record_use_alone(token: ApiToken) -> None:
    """Write the token's last use in a transaction of its own, ahead of the request's.

    GET requests on SQLite run in a read transaction (core.db), which cannot safely turn into a write one
    (a writer that committed meanwhile makes the upgrade fail at once). So the read that found the token is
    ended, the use is written in a fresh transaction (whose first statement is the write, so it waits for the
    lock like any writer) and committed, and the request goes on. It happens once per token per
    API_TOKEN_USE_RESOLUTION_MINUTES, and is recorded whatever the request's outcome.
    """
    token_id = token.id
    db.session.commit()
    service.record_token_use(token_id)
    db.session.commit()


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    # Pages put the token in their forms; flask-login already offers `current_user` to templates.
    app.context_processor(lambda: {"csrf_token": csrf_token})

    @login_manager.user_loader  # type: ignore[untyped-decorator]  # flask-login ships no type information
    def _load_user(user_id: str) -> User | None:
        key = session.get(SESSION_KEY)
        return service.user_for_session(key, user_id) if isinstance(key, str) else None

    @login_manager.unauthorized_handler  # type: ignore[untyped-decorator]  # flask-login ships no type information
    def _unauthorized() -> None:
        raise Unauthorized("Authentication required.")

    @app.before_request
    def _authenticate() -> None:
        # A request inside an already pushed app context (CLI, tests) must not inherit the previous user.
        g.pop("_login_user", None)
        g.pop("api_token_id", None)
        if request.endpoint in SELF_AUTHENTICATED_ENDPOINTS:
            return
        raw_token = _bearer_token()
        if raw_token is not None:
            token = service.live_token(raw_token)
            if token is None:
                raise Unauthorized("Invalid, expired or revoked API token.")
            if service.token_use_unrecorded(token):
                _record_use_alone(token)
            # Flask-Login keeps the request's user here; a token never touches the cookie session.
            g._login_user = token.user
            g.api_token_id = token.id
            return
        if request.method in SAFE_METHODS or request.endpoint in CSRF_EXEMPT_ENDPOINTS:
            return
        if current_user.is_authenticated and not csrf_sent_matches():
            raise Forbidden(f"Missing or invalid {CSRF_HEADER} header.")
