"""How a request is authenticated: a Bearer token, or a cookie session guarded by a CSRF header."""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, g, request, session
from flask_login import current_user

from marketplace.accounts.models import User
from marketplace.accounts.service import user_for_token
from marketplace.core.api import CSRF_HEADER
from marketplace.core.db import SAFE_METHODS
from marketplace.core.errors import Forbidden, Unauthorized
from marketplace.extensions import db, login_manager

CSRF_SESSION_KEY = "csrf_token"
# These take credentials in the body (or, for Stripe's deliveries, a signature over it) and act on no
# signed-in user, so a forged cross-site request gains nothing.
CSRF_EXEMPT_ENDPOINTS = frozenset(
    {"accounts.Login", "accounts.Register", "accounts.Tokens", "webhooks.StripeWebhook"}
)


def csrf_token() -> str:
    token = session.get(CSRF_SESSION_KEY)
    if token is None:
        token = session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def init_app(app: Flask) -> None:
    login_manager.init_app(app)

    @login_manager.user_loader
    def _load_user(user_id: str) -> User | None:
        user = db.session.get(User, int(user_id)) if user_id.isdigit() else None
        return user if user is not None and user.is_active else None

    @login_manager.unauthorized_handler
    def _unauthorized() -> None:
        raise Unauthorized("Authentication required.")

    @app.before_request
    def _authenticate() -> None:
        # A request inside an already pushed app context (CLI, tests) must not inherit the previous user.
        g.pop("_login_user", None)
        token = _bearer_token()
        if token is not None:
            user = user_for_token(token)
            if user is None:
                raise Unauthorized("Invalid or revoked API token.")
            # Flask-Login keeps the request's user here; a token never touches the cookie session.
            g._login_user = user
            return
        if request.method in SAFE_METHODS or request.endpoint in CSRF_EXEMPT_ENDPOINTS:
            return
        if current_user.is_authenticated:
            sent = request.headers.get(CSRF_HEADER, "")
            expected = session.get(CSRF_SESSION_KEY, "")
            if not expected or not hmac.compare_digest(sent, expected):
                raise Forbidden(f"Missing or invalid {CSRF_HEADER} header.")
