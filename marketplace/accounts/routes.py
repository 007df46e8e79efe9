from __future__ import annotations

from typing import Any, cast

from flask import Response
from flask.views import MethodView
from flask_login import current_user
from sqlalchemy import Select

from marketplace.accounts import auth, service
from marketplace.accounts.auth import csrf_token
from marketplace.accounts.models import ApiToken, Role, User
from marketplace.accounts.schemas import (
    ApiTokenSchema,
    CredentialsSchema,
    PasswordChangeSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
    RegisterSchema,
    SessionSchema,
    SignedLinkSchema,
    TokenRequestSchema,
    TokenSchema,
    UserSchema,
)
from marketplace.accounts.throttles import (
    failed_sign_ins_per_account,
    failed_sign_ins_per_address,
    links_per_account,
    links_per_address,
    registrations_per_address,
    wrong_current_passwords,
)
from marketplace.core.api import Blueprint
from marketplace.core.auth import login_optional, login_required
from marketplace.core.pagination import SelectPage

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Accounts, sessions and API tokens")


# --- routes ---------------------------------------------------------------------------------------------


@blp.route("/auth/register")
class Register(MethodView):
    decorators = [registrations_per_address]

    @blp.arguments(RegisterSchema)
    @blp.response(201, UserSchema)
    @blp.alt_response(429, description="Too many registrations from this address")
    def post(self, data: dict[str, Any]) -> User:
        """Create a learner or mentor account; a link to verify the address is mailed."""
        return service.register(
            email=data["email"],
            password=data["password"],
            name=data["name"],
            role=Role(data["role"]),
            timezone=data["timezone"],
        )


@blp.route("/auth/login")
class Login(MethodView):
    decorators = [failed_sign_ins_per_address, failed_sign_ins_per_account]

    @blp.arguments(CredentialsSchema)
    @blp.response(200, SessionSchema)
    @blp.alt_response(401, description="Bad credentials")
    @blp.alt_response(429, description="Too many failed attempts from this address or on this account")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Start a cookie session; unsafe calls then carry the returned token in X-CSRF-Token."""
        user = service.authenticate(data["email"], data["password"])
        auth.sign_in(user)
        return {"user": user, "csrf_token": csrf_token()}


@blp.route("/auth/logout")
class Logout(MethodView):
    @login_optional
    @blp.response(204)
    def post(self) -> None:
        """End this session on the server: a copy of its cookie no longer authenticates."""
        auth.sign_out()


@blp.route("/auth/session")
class Session(MethodView):
    @login_required
    @blp.response(200, SessionSchema)
    def get(self) -> dict[str, Any]:
        return {"user": current_user, "csrf_token": csrf_token()}


@blp.route("/auth/tokens")
class Tokens(MethodView):
    decorators = [failed_sign_ins_per_address, failed_sign_ins_per_account]

    @blp.arguments(TokenRequestSchema)
    @blp.response(201, TokenSchema)
    @blp.alt_response(401, description="Bad credentials")
    @blp.alt_response(429, description="Too many failed attempts from this address or on this account")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Issue a Bearer token for API clients; it is shown once, stored only as a hash, and expires."""
        user = service.authenticate(data["email"], data["password"])
        token, raw = service.create_token(user, data["name"])
        return {"token": raw, "id": token.id, "name": token.name, "expires_at": token.expires_at}

    @login_required
    @blp.response(200, ApiTokenSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self) -> Select[ApiToken]:
        """My working tokens (not expired, not revoked), newest first; never their secrets."""
        return service.my_tokens(current_user)


@blp.route("/auth/tokens/<int:token_id>")
class TokenById(MethodView):
    @login_required
    @blp.response(204)
    @blp.alt_response(404, description="Not one of my working tokens")
    def delete(self, token_id: int) -> None:
        """Revoke one of my tokens; it stops working at once."""
        service.revoke_token(current_user, token_id)


@blp.route("/auth/password-reset")
class PasswordReset(MethodView):
    decorators = [links_per_address, links_per_account]

    @blp.arguments(PasswordResetRequestSchema)
    @blp.response(202)
    @blp.alt_response(429, description="Too many reset requests from this address or for this email")
    def post(self, data: dict[str, Any]) -> Response:
        """Mail a single-use reset link; the answer is the same whether or not the address has an account."""
        service.request_password_reset(data["email"])
        return Response(status=202)


@blp.route("/auth/password-reset/confirm")
class PasswordResetConfirm(MethodView):
    decorators = [links_per_address]

    @blp.arguments(PasswordResetConfirmSchema)
    @blp.response(204)
    @blp.alt_response(400, description="The link is invalid, expired or already used")
    def post(self, data: dict[str, Any]) -> None:
        """Set a new password with a reset link; every session and token of the account stops working."""
        service.reset_password(data["token"], data["password"])


@blp.route("/auth/verify-email")
class EmailVerification(MethodView):
    decorators = [links_per_address]

    @blp.arguments(SignedLinkSchema)
    @blp.response(204)
    @blp.alt_response(400, description="The link is invalid, expired or already used")
    def post(self, data: dict[str, Any]) -> None:
        """Confirm the account's email address with the link mailed at registration."""
        service.verify_email(data["token"])


@blp.route("/me")
class Me(MethodView):
    @login_required
    @blp.response(200, UserSchema)
    def get(self) -> User:
        return cast(User, current_user)  # login_required: the signed-in User


@blp.route("/me/password")
class MyPassword(MethodView):
    decorators = [wrong_current_passwords]

    @login_required
    @blp.arguments(PasswordChangeSchema)
    @blp.response(204)
    @blp.alt_response(403, description="The current password is wrong")
    @blp.alt_response(429, description="Too many wrong passwords on this account")
    def put(self, data: dict[str, Any]) -> None:
        """Change my password; my other sessions and API tokens stop working, this one goes on."""
        service.change_password(
            current_user,
            data["current_password"],
            data["password"],
            keep_session=auth.current_session_key(),
            keep_token=auth.current_token_id(),
        )
