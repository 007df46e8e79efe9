"""Booking from the pages: pick a length and a time, say what the session is for, pay with Stripe.js, then
follow the booking until the payment is confirmed.

The hold is made by `service.create_booking`, the call behind `POST /api/v1/bookings`, with the API's own
schema, so a page refuses exactly what the API refuses, its messages next to the fields. Paying happens in the
browser (Stripe.js with the hold's client secret); the webhook confirms the booking, and the status page
follows it through the API's `GET /api/v1/bookings/{id}`. Only the checkout page may load Stripe.js
(`STRIPE_JS_URL`): its CSP allows that one origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import current_app, redirect, request, url_for
from flask.views import MethodView
from flask_login import current_user
from marshmallow import validate
from werkzeug.exceptions import UnprocessableEntity
from werkzeug.wrappers import Response

from marketplace.accounts import auth
from marketplace.accounts.models import User
from marketplace.accounts.schemas import validate_timezone
from marketplace.bookings import policy, service
from marketplace.bookings.availability.service import list_free_slots
from marketplace.bookings.models import Booking
from marketplace.bookings.schemas import BookingCreateSchema
from marketplace.core.api import CSRF_HEADER, Blueprint, note_operation
from marketplace.core.errors import Conflict, DomainError, NotFound
from marketplace.core.money import format_money
from marketplace.core.pages import Form, read_form, render_page
from marketplace.core.security_headers import allow_stripe_js
from marketplace.core.time import as_utc, utcnow
from marketplace.core.validation import QuerySchema, fields
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.service import public_profile

html = Blueprint("booking_pages", __name__, description="Booking and checkout pages (HTML)")

HTML = "text/html"
PAGE = {"type": "string", "description": "An HTML document"}
EXPIRED_FORM = "This form has expired. Please send it again."
SIGN_IN_TO_SEE = "Please sign in to see this booking."
MINUTES = validate.Range(min=1, max=24 * 60)


class PickArgsSchema(QuerySchema):
    duration = fields.Integer(load_default=None, validate=MINUTES, metadata={"description": "Minutes"})
    tz = fields.String(load_default=None, validate=validate_timezone)
    start = fields.AwareDateTime(load_default=None, metadata={"description": "The time to preselect"})


class BookArgsSchema(QuerySchema):
    mentor_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    start = fields.AwareDateTime(load_default=None)
    duration_minutes = fields.Integer(load_default=None, validate=MINUTES)
    tz = fields.String(load_default=None, validate=validate_timezone)


class BookingFormSchema(BookingCreateSchema):
    """The API's hold schema, reading a posted form, where numbers arrive as digits."""

    reads_query_string = True


@dataclass(frozen=True)
class Terms:
    """The mentor's rules a learner agrees to, in words, from the settings and the profile."""

    full_refund_hours: int
    cancel_notice_hours: int
    reschedule_notice_hours: int
    requires_confirmation: bool
    confirmation_hours: int
    hold_minutes: int


def terms_of(profile: MentorProfile) -> Terms:
    config = current_app.config
    full_refund = int(config["CANCELLATION_FULL_REFUND_HOURS"])
    reschedule = profile.reschedule_notice_hours
    return Terms(
        full_refund_hours=full_refund,
        cancel_notice_hours=profile.cancel_notice_hours,
        reschedule_notice_hours=full_refund if reschedule is None else reschedule,
        requires_confirmation=profile.requires_confirmation,
        confirmation_hours=int(config["CONFIRMATION_WINDOW_HOURS"]),
        hold_minutes=int(config["BOOKING_HOLD_MINUTES"]),
    )


def _zone(name: str | None) -> ZoneInfo:
    """The visitor's zone: the one chosen, else the signed-in user's, else UTC."""
    if name:
        return ZoneInfo(name)
    if current_user.is_authenticated:
        return ZoneInfo(cast(User, current_user).timezone or "UTC")
    return ZoneInfo("UTC")


def default_length(offered: list[int]) -> int:
    """The length shown first: an hour when offered, else the shortest (as the slots API chooses)."""
    return 60 if 60 in offered or not offered else min(offered)


def _mentor_zone(profile: MentorProfile) -> ZoneInfo:
    return ZoneInfo(profile.timezone or "UTC")


def _render(template: str, title: str, status: int = 200, **context: Any) -> Response:
    return render_page(
        template,
        title=title,
        description=f"{title} on the mentor marketplace.",
        status=status,
        **context,
    )


def _signed_in() -> User | None:
    return cast(User, current_user) if current_user.is_authenticated else None


def _to_sign_in(next_path: str) -> Response:
    return redirect(url_for("account_pages.SignInPage", next=next_path), code=303)


def _sign_in_first() -> Response:
    """A booking's own pages answer 401 to a stranger, with a link to sign in and come back."""
    here = request.full_path.rstrip("?")
    return _render(
        "bookings/sign_in_first.html", "Sign in to continue", 401, next=here, message=SIGN_IN_TO_SEE
    )


# --- pick a length and a time ------------------------------------------------------------------------


@html.route("/mentors/<int:mentor_id>/book")
class PickTimePage(MethodView):
    @html.arguments(PickArgsSchema, location="query")
    @html.response(200, schema=PAGE, content_type=HTML, description="A mentor's lengths and free times")
    @html.alt_response(404, schema=PAGE, content_type=HTML, description="No such approved mentor")
    @html.alt_response(422, schema=PAGE, content_type=HTML, description="A length the mentor does not offer")
    def get(self, args: dict[str, Any], mentor_id: int) -> Response:
        profile = public_profile(mentor_id)
        zone = _zone(args["tz"])
        form = Form(values={"duration": str(args["duration"] or "")})
        status = 200
        try:
            slots = list_free_slots(profile.id, None, None, zone, args["duration"])
        except DomainError as exc:
            form.errors["duration"] = [exc.message]
            slots, status = [], int(exc.status_code)
        duration = args["duration"] or default_length(profile.session_minutes)
        days: dict[Any, list[datetime]] = {}
        for slot in slots:
            days.setdefault(slot.start.astimezone(zone).date(), []).append(slot.start)
        chosen = args["start"]
        return _render(
            "bookings/pick.html",
            f"Book a session with {profile.name}",
            status,
            profile=profile,
            form=form,
            duration=duration,
            days=list(days.items()),
            zone=zone,
            chosen_tz=args["tz"],
            chosen=chosen.timestamp() if chosen else None,
            terms=terms_of(profile),
        )


# --- what the session is for, the price and the rules; the hold ----------------------------------------


@html.route("/book")
class BookingFormPage(MethodView):
    @html.arguments(BookArgsSchema, location="query")
    @html.response(200, schema=PAGE, content_type=HTML, description="Topic, price and the mentor's rules")
    @html.alt_response(303, description="Not signed in: to sign in (or up), and back to this choice after")
    @html.alt_response(404, schema=PAGE, content_type=HTML, description="No such approved mentor")
    @html.alt_response(422, schema=PAGE, content_type=HTML, description="A choice that cannot be read")
    def get(self, args: dict[str, Any]) -> Response:
        if args["mentor_id"] is None:
            return redirect(url_for("pages.MentorListPage"), code=303)
        profile = public_profile(args["mentor_id"])
        if args["start"] is None or args["duration_minutes"] is None:
            return redirect(url_for("booking_pages.PickTimePage", mentor_id=profile.id), code=303)
        if _signed_in() is None:
            return _to_sign_in(request.full_path.rstrip("?"))
        values = {
            "mentor_id": str(profile.id),
            "start": args["start"].isoformat(),
            "duration_minutes": str(args["duration_minutes"]),
        }
        return self.show(profile, Form(values=values), args["tz"])

    @html.response(303, description="Held: on to checkout")
    @html.alt_response(403, schema=PAGE, content_type=HTML, description="The form's CSRF token is stale")
    @html.alt_response(404, schema=PAGE, content_type=HTML, description="No such approved mentor")
    @html.alt_response(
        409,
        schema=PAGE,
        content_type=HTML,
        description="The time was taken, or let go of by you too recently",
    )
    @html.alt_response(422, schema=PAGE, content_type=HTML, description="The form again, with the messages")
    @html.alt_response(429, schema=PAGE, content_type=HTML, description="Too many unpaid holds")
    @html.alt_response(503, schema=PAGE, content_type=HTML, description="Payments cannot be reached now")
    def post(self) -> Response:
        """The hold, by `service.create_booking` (as `POST /api/v1/bookings`)."""
        data, form = read_form(BookingFormSchema())
        tz = request.form.get("tz") or None
        profile = public_profile(int(data["mentor_id"])) if data else None
        learner = _signed_in()
        if learner is None:
            chosen: dict[str, Any] = {name: value for name, value in form.values.items() if name != "topic"}
            back = url_for("booking_pages.BookingFormPage", **chosen)
            return _to_sign_in(back)
        if auth.current_token_id() is None and not auth.csrf_sent_matches():
            form.message = EXPIRED_FORM
            return self.show(profile, form, tz, 403)
        if data is None or profile is None:
            return self.show(_profile_of(form), form, tz, 422)
        try:
            booking = service.create_booking(
                learner, profile.id, data["start"], data["duration_minutes"], data["topic"]
            )
        except DomainError as exc:
            return self.show(profile, _refusal(form, exc), tz, int(exc.status_code))
        return redirect(url_for("booking_pages.CheckoutPage", booking_id=booking.id), code=303)

    @staticmethod
    def show(profile: MentorProfile | None, form: Form, tz: str | None, status: int = 200) -> Response:
        if profile is None:
            raise NotFound("No such mentor.")
        start = _start_of(form)
        duration = int(form.values.get("duration_minutes") or 0)
        return _render(
            "bookings/details.html",
            "About your session",
            status,
            profile=profile,
            form=form,
            start=start,
            duration=duration,
            price=format_money(
                policy.session_price_cents(profile.price_cents or 0, duration), profile.currency or "USD"
            ),
            zone=_zone(tz),
            mentor_zone=_mentor_zone(profile),
            chosen_tz=tz,
            terms=terms_of(profile),
        )


def _profile_of(form: Form) -> MentorProfile | None:
    mentor_id = form.values.get("mentor_id", "")
    return public_profile(int(mentor_id)) if mentor_id.isdigit() else None


def _start_of(form: Form) -> datetime | None:
    try:
        return datetime.fromisoformat(form.values.get("start", ""))
    except ValueError:
        return None


def _refusal(form: Form, error: DomainError) -> Form:
    """A refused time (taken, too soon, not a slot, let go of recently) is said next to the time, in words."""
    if isinstance(error, Conflict) or "start" in (error.errors or {}):
        form.errors["start"] = [error.message]
        return form
    return form.fail(error)


# --- checkout and the booking's status ----------------------------------------------------------------


def own_booking_page(view: Callable[[Any, User, Booking], Response]) -> Callable[[Any, int], Response]:
    """A booking's own page: 401 (a page with a link to sign in) for a stranger, 404 for anyone the booking
    is not shown to (`service.get_booking`, as the API), else the view with the user and the booking."""

    @wraps(view)
    @html.alt_response(401, schema=PAGE, content_type=HTML, description="Not signed in: a link to sign in")
    @html.alt_response(404, schema=PAGE, content_type=HTML, description="No such booking of yours")
    def wrapper(self: Any, booking_id: int) -> Response:
        user = _signed_in()
        if user is None:
            return _sign_in_first()
        return view(self, user, service.get_booking(user, booking_id))

    return note_operation(wrapper, auth={"roles": ()})


@html.route("/bookings/<int:booking_id>/checkout")
class CheckoutPage(MethodView):
    @html.response(200, schema=PAGE, content_type=HTML, description="Pay for a held booking with Stripe.js")
    @html.alt_response(303, description="Not (or no longer) to be paid by you: on to the booking's status")
    @own_booking_page
    def get(self, user: User, booking: Booking) -> Response:
        if not booking.can_pay(user):
            return redirect(url_for("booking_pages.BookingStatusPage", booking_id=booking.id), code=303)
        page = _render(
            "bookings/checkout.html",
            "Pay for your session",
            **_booking_context(booking, user),
            stripe_js_url=current_app.config["STRIPE_JS_URL"],
            publishable_key=current_app.config["STRIPE_PUBLISHABLE_KEY"],
            csrf_header=CSRF_HEADER,
        )
        return allow_stripe_js(page)


@html.route("/bookings/<int:booking_id>/status")
class BookingStatusPage(MethodView):
    @html.response(200, schema=PAGE, content_type=HTML, description="Where the booking is; follows it live")
    @own_booking_page
    def get(self, user: User, booking: Booking) -> Response:
        return _render("bookings/status.html", "Your booking", **_booking_context(booking, user))


def minutes_left(until: datetime) -> str:
    """How long a hold has left, as the page first shows it (checkout.js then counts it down)."""
    minutes = max(0, int((as_utc(until) - utcnow()).total_seconds() // 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def _booking_context(booking: Booking, user: User) -> dict[str, Any]:
    profile = booking.mentor
    return {
        "minutes_left": minutes_left,
        "booking": booking,
        "profile": profile,
        "price": format_money(booking.price_cents, booking.currency),
        "zone": _zone(None),
        "mentor_zone": _mentor_zone(profile),
        "terms": terms_of(profile),
        "is_learner": booking.is_learner(user),
    }


# --- refusals as pages ----------------------------------------------------------------------------------


@html.errorhandler(DomainError)
def _domain_error(error: DomainError) -> Response:
    return _render("errors/error.html", "Sorry", int(error.status_code), message=error.message)


@html.errorhandler(UnprocessableEntity)
def _bad_arguments(_error: UnprocessableEntity) -> Response:
    message = "The link was not understood: please pick the time again from the mentor's page."
    return _render("errors/error.html", "Please pick the time again", 422, message=message)
