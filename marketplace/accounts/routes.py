from __future__ import annotations

from typing import Any

from flask import current_app, session
from flask.views import MethodView
from flask_login import current_user, login_user, logout_user

from marketplace.accounts import service
from marketplace.accounts.auth import csrf_token
from marketplace.accounts.models import Role, User
from marketplace.accounts.schemas import (
    CredentialsSchema,
    RegisterSchema,
    SessionSchema,
    TokenSchema,
    UserSchema,
)
from marketplace.core.api import Blueprint
from marketplace.core.auth import login_optional, login_required
from marketplace.extensions import limiter

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Accounts, sessions and API tokens")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


@blp.route("/auth/register")
class Register(MethodView):
    @blp.arguments(RegisterSchema)
    @blp.response(201, UserSchema)
    def post(self, data: dict[str, Any]) -> User:
        """Create a learner or mentor account."""
        return service.register(
            email=data["email"],
            password=data["password"],
            name=data["name"],
            role=Role(data["role"]),
            timezone=data["timezone"],
        )


@blp.route("/auth/login")
class Login(MethodView):
    decorators = [limiter.limit(_login_limit, methods=["POST"])]

    @blp.arguments(CredentialsSchema)
    @blp.response(200, SessionSchema)
    @blp.alt_response(401, description="Bad credentials")
    @blp.alt_response(429, description="Too many attempts")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Start a cookie session; unsafe calls then carry the returned token in X-CSRF-Token."""
        user = service.authenticate(data["email"], data["password"])
        session.clear()
        login_user(user)
        return {"user": user, "csrf_token": csrf_token()}


@blp.route("/auth/logout")
class Logout(MethodView):
    @login_optional
    @blp.response(204)
    def post(self) -> None:
        logout_user()
        session.clear()


@blp.route("/auth/session")
class Session(MethodView):
    @login_required
    @blp.response(200, SessionSchema)
    def get(self) -> dict[str, Any]:
        return {"user": current_user, "csrf_token": csrf_token()}


@blp.route("/auth/tokens")
class Tokens(MethodView):
    decorators = [limiter.limit(_login_limit, methods=["POST"])]

    @blp.arguments(CredentialsSchema)
    @blp.response(201, TokenSchema)
    @blp.alt_response(401, description="Bad credentials")
    @blp.alt_response(429, description="Too many attempts")
    def post(self, data: dict[str, Any]) -> dict[str, str]:
        """Issue a Bearer token for API clients; it is shown once and stored only as a hash."""
        user = service.authenticate(data["email"], data["password"])
        return {"token": service.issue_token(user)}


@blp.route("/me")
class Me(MethodView):
    @login_required
    @blp.response(200, UserSchema)
    def get(self) -> User:
        return current_user
