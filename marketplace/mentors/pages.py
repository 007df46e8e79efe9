"""The mentor's profile page (`/mentor/profile`), and what every page of a signed-in mentor shares.

The form is read into the API's own input (`MentorProfileInputSchema`) and saved by the API's own service, so a
submitted profile's public changes become a revision exactly as through `PUT /api/v1/me/mentor-profile`. The
other mentor pages (availability, bookings, earnings) live with the domains whose services they call, and use
`mentor_view`, `refusals_as_pages` and the form helpers from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import wraps
from typing import Any, cast

from flask import flash, redirect, request, url_for
from flask.views import MethodView
from flask_login import current_user
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from marketplace.accounts.models import Role, User
from marketplace.accounts.pages import signed_in_page
from marketplace.core.api import Blueprint
from marketplace.core.errors import DomainError, Forbidden, NotFound
from marketplace.core.money import major_units
from marketplace.core.pages import Form, render_page
from marketplace.mentors import rules, service
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.schemas import SESSION_LENGTHS, MentorProfileInputSchema
from marketplace.mentors.vetting import VettingStatus

html = Blueprint("mentor_pages", __name__, description="The mentor's own pages (HTML): the profile")

HTML = "text/html"
PAGE = {"type": "string", "description": "An HTML document"}
EXPIRED_FORM = "This form has expired. Please reload the page and send it again."
NOT_A_MENTOR = "These pages are for mentor accounts."
NO_PROFILE = "Fill in your mentor profile first (Profile, in the mentoring menu); then this page opens."

STATUS_TEXT = {
    VettingStatus.DRAFT: "Draft: not sent for review yet. Fill in every field, then submit it.",
    VettingStatus.PENDING_REVIEW: "In review: our team is checking your profile. We mail you when they decide.",
    VettingStatus.APPROVED: "Approved: your profile is public and learners can book you.",
    VettingStatus.CHANGES_REQUESTED: "Changes requested: read the reviewer's note, edit, then submit again.",
    VettingStatus.REJECTED: "Not approved: read the reviewer's note below.",
    VettingStatus.SUSPENDED: "Suspended: your profile is hidden from learners for now.",
}
SUBMITTABLE = frozenset({VettingStatus.DRAFT, VettingStatus.CHANGES_REQUESTED})
# Tags are typed as one line, separated by commas.
LIST_FIELDS = ("skills", "career_paths", "languages")
NUMBER_FIELDS = ("years_experience", "cancel_notice_hours", "reschedule_notice_hours")
TEXT_FIELDS = ("headline", "bio", "currency", "timezone")
# The form asks for the price in the currency's units; the API takes minor units.
FORM_NAMES = {"price_cents": "price"}
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,9}")


# --- what every mentor page shares ---------------------------------------------------------------------


def mentor_only(view: Callable[..., Response]) -> Callable[..., Response]:
    """Signed in (anyone else is sent to sign in and back) and a mentor (anyone else: 403)."""

    @signed_in_page
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        if not current_mentor().has_role(Role.MENTOR):
            raise Forbidden(NOT_A_MENTOR)
        return view(*args, **kwargs)

    return wrapper


def mentor_view(
    blueprint: Blueprint, description: str, *answers: tuple[int, str], status: int = 200
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """A view of a mentor page (`mentor_only`), documented as answering `status` (a page, or for 303 a
    redirect) and each of `answers` (status, description) as a page, besides the refusals every one has."""

    def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
        for code, text in (*answers, (403, "Not a mentor account")):
            view = blueprint.alt_response(code, schema=PAGE, content_type=HTML, description=text)(view)
        if status == 303:
            view = blueprint.response(303, description=description)(view)
        else:
            view = blueprint.alt_response(303, description="Not signed in: to sign in, and back here after")(
                view
            )
            view = blueprint.response(status, schema=PAGE, content_type=HTML, description=description)(view)
        return mentor_only(view)

    return decorator


def current_mentor() -> User:
    return cast(User, current_user)  # behind signed_in_page: the signed-in User


def refusals_as_pages(blueprint: Blueprint) -> None:
    """A refusal on a mentor page (a stale CSRF token, a role, a missing object) is a page, not JSON."""

    @blueprint.errorhandler(DomainError)
    def _refused(error: DomainError) -> Response:
        message = EXPIRED_FORM if isinstance(error, Forbidden) and "CSRF" in error.message else error.message
        return render_page(
            "errors/error.html", title="Sorry", description=message, message=message, status=error.status_code
        )


def field_messages(messages: Any, names: dict[str, str] | None = None) -> dict[str, list[str]]:
    """marshmallow's or a service's messages as sentences per form field (`names` renames fields); a list's
    item messages name the item ("Item 2: ...")."""
    if not isinstance(messages, dict):
        return {"_schema": [str(messages)]}
    flat: dict[str, list[str]] = {}
    for name, value in messages.items():
        target = (names or {}).get(str(name), str(name))
        if isinstance(value, dict):
            flat[target] = [
                f"Item {int(index) + 1}: {' '.join(map(str, texts if isinstance(texts, list) else [texts]))}"
                for index, texts in value.items()
            ]
        else:
            flat[target] = [str(item) for item in (value if isinstance(value, list) else [value])]
    return flat


def whole_number(text: str) -> int | str:
    """A typed whole number as the API's schemas take it (JSON numbers); anything else stays text, which the
    schema refuses with its own message."""
    text = text.strip()
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else text


def refused(form: Form, error: DomainError, names: dict[str, str] | None = None) -> Form:
    """A service's refusal on a form: per-field messages next to the fields (the API nests a schema-like
    refusal under `json`), else its message on top."""
    errors = error.errors or {}
    errors = errors.get("json", errors) if isinstance(errors.get("json"), dict) else errors
    form.errors.update(field_messages(errors, names))
    if not errors:
        form.message = error.message
    return form


# --- the profile -------------------------------------------------------------------------------------


def own_profile_or_none(user: User) -> MentorProfile | None:
    try:
        return service.own_profile(user)
    except NotFound:
        return None


def own_profile_first(user: User) -> MentorProfile:
    """The mentor's profile, for the pages that need one: without it, a page that says to make it."""
    profile = own_profile_or_none(user)
    if profile is None:
        raise NotFound(NO_PROFILE)
    return profile


def _shown_values(profile: MentorProfile | None) -> dict[str, str]:
    """The form as the mentor last left it: the live profile, with a pending revision's proposal on top."""
    if profile is None:
        return {"session_minutes": "60", "cancel_notice_hours": "0"}
    values: dict[str, Any] = {
        name: getattr(profile, name)
        for name in (*TEXT_FIELDS, *LIST_FIELDS, *NUMBER_FIELDS, "price_cents", "session_minutes")
    }
    pending = profile.pending_revision
    if pending is not None:
        values.update(pending.changes)
    shown = {
        name: "" if values[name] is None else str(values[name]) for name in (*TEXT_FIELDS, *NUMBER_FIELDS)
    }
    shown.update({name: ", ".join(values[name] or []) for name in LIST_FIELDS})
    price, currency = values["price_cents"], values["currency"]
    shown["price"] = "" if price is None or not currency else str(major_units(price, currency))
    shown["session_minutes"] = ",".join(map(str, values["session_minutes"] or []))
    shown["requires_confirmation"] = "on" if profile.requires_confirmation else ""
    return shown


def _posted_profile() -> tuple[dict[str, Any] | None, Form]:
    """The posted form as the API's input (blank numbers keep their value), loaded by the API's schema."""
    posted = request.form
    names = (*TEXT_FIELDS, *LIST_FIELDS, *NUMBER_FIELDS, "price", "requires_confirmation")
    form = Form(values={name: posted.get(name, "") for name in names})
    form.values["session_minutes"] = ",".join(posted.getlist("session_minutes"))
    payload: dict[str, Any] = {name: posted.get(name, "").strip() for name in ("headline", "bio")}
    payload.update(
        {name: value for name in ("currency", "timezone") if (value := posted.get(name, "").strip())}
    )
    for name in LIST_FIELDS:
        payload[name] = [item.strip() for item in posted.get(name, "").split(",") if item.strip()]
    for name in NUMBER_FIELDS:
        if posted.get(name, "").strip():
            payload[name] = whole_number(posted[name])
    payload["session_minutes"] = [whole_number(value) for value in posted.getlist("session_minutes")]
    payload["requires_confirmation"] = posted.get("requires_confirmation") == "on"
    price = posted.get("price", "").strip()
    if price:
        try:
            payload["price_cents"] = _minor_units(price, payload.get("currency", ""))
        except (InvalidOperation, ValueError):
            form.errors["price"] = ["Enter the hourly price as a number, e.g. 90 or 72.50, and a currency."]
    try:
        data = MentorProfileInputSchema().load(payload)
    except ValidationError as exc:
        form.errors = {**field_messages(exc.messages, FORM_NAMES), **form.errors}
        return None, form
    return (None if form.errors else data), form


def _minor_units(price: str, currency: str) -> int:
    """The typed hourly price in the currency's minor unit (ValueError: not a price in a known currency)."""
    amount = Decimal(price)
    if not amount.is_finite() or rules.currency_error(currency.upper()):
        raise ValueError(price)
    return rules.to_minor_units(amount, currency.upper())


def _history(profile: MentorProfile | None) -> list[Any]:
    """The reviewers' decisions with a note, newest first: what the mentor is told to change."""
    if profile is None:
        return []
    return [event for event in reversed(service.vetting_history(profile.id)) if event.note]


@html.route("/mentor/profile")
class ProfilePage(MethodView):
    @mentor_view(html, "Your mentor profile, its review and notes")
    def get(self) -> Response:
        profile = own_profile_or_none(current_mentor())
        return self.show(profile, Form(values=_shown_values(profile)))

    @mentor_view(
        html,
        "Saved (public changes of a submitted profile wait for review)",
        (422, "The form again, with what to change"),
        status=303,
    )
    def post(self) -> Response:
        data, form = _posted_profile()
        if data is None:
            return self.show(own_profile_or_none(current_mentor()), form, 422)
        try:
            profile = service.save_own_profile(current_mentor(), data)
        except DomainError as exc:
            return self.show(
                own_profile_or_none(current_mentor()), refused(form, exc, FORM_NAMES), exc.status_code
            )
        if profile.pending_revision is not None:
            flash("Saved. Your public changes wait for our team's review; learners see the approved profile.")
        else:
            flash("Your profile is saved.")
        return redirect(url_for("mentor_pages.ProfilePage"), code=303)

    @staticmethod
    def show(profile: MentorProfile | None, form: Form, status: int = 200) -> Response:
        status_name = profile.status if profile else VettingStatus.DRAFT
        return render_page(
            "mentor/profile.html",
            title="Your mentor profile",
            description="Edit your mentor profile, see its review and submit it.",
            status=status,
            form=form,
            profile=profile,
            status_text=STATUS_TEXT[status_name],
            can_submit=profile is not None and status_name in SUBMITTABLE,
            history=_history(profile),
            session_lengths=SESSION_LENGTHS,
        )


@html.route("/mentor/profile/submit")
class SubmitProfilePage(MethodView):
    @mentor_view(
        html,
        "Sent for review: back to the profile",
        (409, "Not a draft nor sent back"),
        (422, "Incomplete: what is missing, per field"),
        status=303,
    )
    def post(self) -> Response:
        try:
            service.submit_profile(current_mentor())
        except DomainError as exc:
            profile = own_profile_or_none(current_mentor())
            form = refused(Form(values=_shown_values(profile)), exc, FORM_NAMES)
            return ProfilePage.show(profile, form, exc.status_code)
        flash("Your profile is sent for review. We mail you when our team has decided.")
        return redirect(url_for("mentor_pages.ProfilePage"), code=303)


refusals_as_pages(html)
