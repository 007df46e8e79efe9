"""The account pages: sign up, sign in and out, forgot and reset password, verify email, change password.

Each form is read with the API's own schema and acted on by the API's own service call, behind the same
throttles; the cookie session is the API's, and every form carries the session's CSRF token in a hidden
field (checked here for every posted form, signed in or not, so even a sign-in cannot be forged). A refused
form comes back with the values typed (never a password) and the messages next to the fields.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import flash, redirect, request, url_for
from flask.views import MethodView
from flask_login import current_user
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from marketplace.accounts import auth, links, service
from marketplace.accounts.models import Role, User
from marketplace.accounts.schemas import (
    CredentialsSchema,
    PasswordChangeSchema,
    PasswordResetConfirmSchema,
    PasswordResetRequestSchema,
    RegisterSchema,
    SignedLinkSchema,
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
from marketplace.core.errors import BadRequest, DomainError, Forbidden
from marketplace.core.pages import Form, read_form, render_page, safe_next

html = Blueprint("account_pages", __name__, description="Account pages (HTML forms)")

HTML = "text/html"
PAGE = {"type": "string", "description": "An HTML document"}
PASSWORDS = ("password", "current_password")
EXPIRED_FORM = "This form has expired. Please send it again."
TOO_MANY = "Too many attempts. Please wait a few minutes, then try again."


# What a page answers besides its success, each as a page (the form again where there is one).
REFUSALS = {
    400: "The link is invalid, expired or already used",
    401: "Wrong email or password: the form again",
    403: "The form's CSRF token is missing or stale, or the current password is wrong: the form again",
    409: "The address is taken: the form again",
    422: "The form again, with what to change next to each field",
    429: "Too many attempts: the form again, to send later",
}
F = TypeVar("F", bound=Callable[..., Any])


def refusals(*statuses: int) -> Callable[[F], F]:
    """Document these answers of a view as HTML pages (else the document would say they are JSON)."""

    def decorator(view: F) -> F:
        for status in statuses:
            view = html.alt_response(status, schema=PAGE, content_type=HTML, description=REFUSALS[status])(
                view
            )
        return view

    return decorator


def _page(template: str, title: str, form: Form | None = None, status: int = 200, **context: Any) -> Response:
    return render_page(
        f"accounts/{template}",
        title=title,
        description=f"{title} on the mentor marketplace.",
        form=form or Form(),
        status=status,
        next=safe_next(request.values.get("next"), default=""),
        **context,
    )


def _done(default: str) -> Response:
    """Back where the visitor was (a path on this site only), else `default`."""
    return redirect(safe_next(request.values.get("next"), default=default), code=303)


def signed_in_page(view: Callable[..., Response]) -> Callable[..., Response]:
    """A page for signed-in users: anyone else is sent to sign in, and comes back here afterwards."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        if not current_user.is_authenticated:
            here = request.full_path.rstrip("?")
            return redirect(url_for("account_pages.SignInPage", next=here), code=303)
        return view(*args, **kwargs)

    return wrapper


def _user() -> User:
    return cast(User, current_user)  # behind signed_in_page: the signed-in User


# --- sign up, in and out -----------------------------------------------------------------------------


@html.route("/signup")
class SignUpPage(MethodView):
    decorators = [registrations_per_address]

    @html.response(200, schema=PAGE, content_type=HTML, description="The sign-up form")
    def get(self) -> Response:
        role = request.args.get("role")
        return self.show(Form(values={"role": role if role in ("learner", "mentor") else "learner"}))

    @html.response(303, description="Signed up and in: on to `next`, or to the account page")
    @refusals(403, 409, 422, 429)
    def post(self) -> Response:
        data, form = read_form(RegisterSchema(), secret=PASSWORDS)
        if data is None:
            return self.show(form, 422)
        try:
            user = service.register(
                email=data["email"],
                password=data["password"],
                name=data["name"],
                role=Role(data["role"]),
                timezone=data["timezone"],
            )
        except DomainError as exc:
            return self.show(form.fail(exc), int(exc.status_code))
        auth.sign_in(user)
        flash(f"Welcome, {user.name}. We sent a link to {user.email}: open it to verify your address.")
        return _done(url_for("account_pages.AccountPage"))

    @staticmethod
    def show(form: Form, status: int = 200) -> Response:
        return _page("signup.html", "Create your account", form, status)


@html.route("/login")
class SignInPage(MethodView):
    decorators = [failed_sign_ins_per_address, failed_sign_ins_per_account]

    @html.response(200, schema=PAGE, content_type=HTML, description="The sign-in form")
    def get(self) -> Response:
        return self.show(Form())

    @html.response(303, description="Signed in: back to `next` (a path on this site), or home")
    @refusals(401, 403, 422, 429)
    def post(self) -> Response:
        data, form = read_form(CredentialsSchema(), secret=PASSWORDS)
        if data is None:
            return self.show(form, 422)
        try:
            user = service.authenticate(data["email"], data["password"])
        except DomainError as exc:
            return self.show(form.fail(exc), int(exc.status_code))
        auth.sign_in(user)
        return _done("/")

    @staticmethod
    def show(form: Form, status: int = 200) -> Response:
        return _page("login.html", "Sign in", form, status)


@html.route("/logout")
class SignOutPage(MethodView):
    @html.response(303, description="Signed out (the session ends on the server); on to the home page")
    @refusals(403)
    def post(self) -> Response:
        auth.sign_out()
        flash("You are signed out.")
        return redirect(url_for("pages.HomePage"), code=303)


@html.route("/account")
class AccountPage(MethodView):
    @signed_in_page
    @html.response(200, schema=PAGE, content_type=HTML, description="My account (anyone else: to sign in)")
    @html.alt_response(303, description="Not signed in: to sign in, and back here after")
    def get(self) -> Response:
        return _page("account.html", "Your account", user=_user())


@html.route("/account/password")
class PasswordChangePage(MethodView):
    decorators = [wrong_current_passwords]

    @signed_in_page
    @html.response(200, schema=PAGE, content_type=HTML, description="The change-password form")
    @html.alt_response(303, description="Not signed in: to sign in, and back here after")
    def get(self) -> Response:
        return self.show(Form())

    @signed_in_page
    @html.response(303, description="Changed (other sessions and tokens ended); anyone else: to sign in")
    @refusals(403, 422, 429)
    def post(self) -> Response:
        data, form = read_form(PasswordChangeSchema(), secret=PASSWORDS)
        if data is None:
            return self.show(form, 422)
        try:
            service.change_password(
                _user(),
                data["current_password"],
                data["password"],
                keep_session=auth.current_session_key(),
                keep_token=auth.current_token_id(),
            )
        except DomainError as exc:
            return self.show(form.fail(exc), int(exc.status_code))
        flash("Your password is changed. You were signed out everywhere else.")
        return redirect(url_for("account_pages.AccountPage"), code=303)

    @staticmethod
    def show(form: Form, status: int = 200) -> Response:
        return _page("password.html", "Change your password", form, status)


# --- links sent by mail ------------------------------------------------------------------------------


@html.route("/forgot-password")
class ForgotPasswordPage(MethodView):
    decorators = [links_per_address, links_per_account]

    @html.response(200, schema=PAGE, content_type=HTML, description="The form that mails a reset link")
    def get(self) -> Response:
        return self.show(Form())

    @html.response(200, schema=PAGE, content_type=HTML, description="Check your inbox (for any address)")
    @refusals(403, 422, 429)
    def post(self) -> Response:
        """The same answer whether or not the address has an account."""
        data, form = read_form(PasswordResetRequestSchema())
        if data is None:
            return self.show(form, 422)
        service.request_password_reset(data["email"])
        return _page("reset_sent.html", "Check your inbox", email=data["email"])

    @staticmethod
    def show(form: Form, status: int = 200) -> Response:
        return _page("forgot.html", "Reset your password", form, status)


@html.route("/reset-password")
class ResetPasswordPage(MethodView):
    decorators = [links_per_address]

    @html.response(200, schema=PAGE, content_type=HTML, description="The new-password form of a reset link")
    @refusals(400)
    def get(self) -> Response:
        token = request.args.get("token", "")
        try:
            links.user_for_password_reset(token)
        except BadRequest:
            return self.show(Form(), dead=True)
        return self.show(Form(values={"token": token}))

    @html.response(303, description="The password is set: on to sign in with it")
    @refusals(400, 403, 422, 429)
    def post(self) -> Response:
        data, form = read_form(PasswordResetConfirmSchema(), secret=PASSWORDS)
        if data is None:
            return self.show(form, status=422, dead="token" in form.errors)
        try:
            service.reset_password(data["token"], data["password"])
        except BadRequest:
            return self.show(form, dead=True)
        auth.sign_out()
        flash("Your new password is set. Sign in with it.")
        return redirect(url_for("account_pages.SignInPage"), code=303)

    @staticmethod
    def show(form: Form, status: int = 200, dead: bool = False) -> Response:
        return _page("reset.html", "Choose a new password", form, 400 if dead else status, dead=dead)


@html.route("/verify-email")
class VerifyEmailPage(MethodView):
    """The mailed link opens a page with one button: a link scanner's visit verifies nothing."""

    decorators = [links_per_address]

    @html.response(200, schema=PAGE, content_type=HTML, description="Confirm the address a link was sent to")
    def get(self) -> Response:
        return self.show(Form(values={"token": request.args.get("token", "")}))

    @html.response(303, description="Verified: on to the account page, or to sign in")
    @refusals(400, 403, 429)
    def post(self) -> Response:
        data, form = read_form(SignedLinkSchema())
        try:
            if data is None:
                raise BadRequest(links.INVALID_LINK)
            service.verify_email(data["token"])
        except BadRequest:
            return self.show(form, 400, dead=True)
        flash("Thank you: your email address is verified.")
        target = "AccountPage" if current_user.is_authenticated else "SignInPage"
        return redirect(url_for(f"account_pages.{target}"), code=303)

    @staticmethod
    def show(form: Form, status: int = 200, dead: bool = False) -> Response:
        return _page("verify.html", "Verify your email address", form, status, dead=dead)


# --- every posted form: the CSRF token, and refusals as pages ------------------------------------------

# The form each page shows again when a throttle or the CSRF check refuses it, values kept.
FORMS: dict[str, Callable[[Form, int], Response]] = {
    "account_pages.SignUpPage": SignUpPage.show,
    "account_pages.SignInPage": SignInPage.show,
    "account_pages.PasswordChangePage": PasswordChangePage.show,
    "account_pages.ForgotPasswordPage": ForgotPasswordPage.show,
    "account_pages.ResetPasswordPage": ResetPasswordPage.show,
    "account_pages.VerifyEmailPage": VerifyEmailPage.show,
}


def _check_form_token() -> None:
    """Signed in or not: a posted page form carries this session's token (a Bearer call needs none)."""
    if request.method == "POST" and auth.current_token_id() is None and not auth.csrf_sent_matches():
        raise Forbidden(EXPIRED_FORM)


html.before_request(_check_form_token)


def _refused(message: str, status: int) -> Response:
    """The page's form again, with what was typed, or a page that says what happened."""
    show = FORMS.get(request.endpoint or "")
    if show is not None and request.method == "POST":
        kept = {name: value for name, value in request.form.items() if name not in (*PASSWORDS, "csrf_token")}
        return show(Form(values=kept, message=message), status)
    return render_page(
        "errors/error.html", title="Sorry", description=message, message=message, status=status
    )


@html.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    """A refused CSRF token (here or in the app's check for signed-in users) and any other refusal."""
    return _refused(EXPIRED_FORM if isinstance(error, Forbidden) else error.message, int(error.status_code))


@html.errorhandler(TooManyRequests)
def _too_many(_error: TooManyRequests) -> Response:
    return _refused(TOO_MANY, 429)
