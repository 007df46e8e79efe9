"""The learner's own sessions as pages: the list, one session, and cancelling, moving and reviewing it.

Every page is the API's operation in a form: the refund shown before cancelling is `cancellation_preview`
(what `GET /api/v1/bookings/{id}/cancellation` answers), the free times offered for a move are the mentor's
public slots (`availability.service.list_free_slots`), and each form is read with the API's own schema and
acted on by the API's own service call. Only the booking's learner sees these pages: anyone else gets 404,
as from the API, and a visitor who is not signed in is sent to sign in. Times are shown in the learner's
own zone, or in the one `tz` chooses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, ClassVar, TypeVar, cast
from zoneinfo import ZoneInfo

from flask import flash, redirect, request, url_for
from flask.views import MethodView
from flask_login import current_user
from marshmallow import Schema, ValidationError
from sqlalchemy import select
from werkzeug.wrappers import Response

from marketplace.accounts.models import User
from marketplace.accounts.pages import EXPIRED_FORM, HTML, PAGE
from marketplace.accounts.schemas import validate_timezone
from marketplace.bookings import service
from marketplace.bookings.availability.service import list_free_slots
from marketplace.bookings.models import Booking, BookingStatus, Review
from marketplace.bookings.routes import calendar_response
from marketplace.bookings.schemas import CancelSchema, RescheduleSchema, ReviewCreateSchema
from marketplace.core.api import Blueprint
from marketplace.core.errors import DomainError, Forbidden, NotFound
from marketplace.core.money import format_money
from marketplace.core.pages import Form, read_form, render_page
from marketplace.core.time import utcnow
from marketplace.core.validation import QuerySchema, fields
from marketplace.extensions import db

html = Blueprint("session_pages", __name__, description="The learner's sessions (HTML pages)")

TZ = {
    "in": "query",
    "name": "tz",
    "required": False,
    "schema": {"type": "string", "example": "Europe/Berlin"},
    "description": "Show the times in this IANA zone instead of your own",
}
STATUS_LABELS = {
    BookingStatus.PENDING_PAYMENT: "Waiting for payment",
    BookingStatus.AWAITING_MENTOR: "Waiting for the mentor to accept",
    BookingStatus.CONFIRMED: "Confirmed",
    BookingStatus.COMPLETED: "Completed",
    BookingStatus.NO_SHOW: "Missed",
    BookingStatus.EXPIRED: "Expired (not paid in time)",
    BookingStatus.CANCELLED: "Cancelled",
    BookingStatus.DECLINED: "Declined by the mentor",
}
F = TypeVar("F", bound=Callable[..., Any])
REFUSALS = {
    303: "Not signed in: to sign in, and back here after",
    403: "The form's CSRF token is missing or stale: the form again, values kept",
    404: "Not a booking of yours",
    409: "Refused by the rules now (too late, taken meanwhile, not completed): the form again",
    422: "Not valid (or an unknown `tz`): the page again, with what to change next to the field",
}
REFUND_LABELS = {"pending": "on its way", "succeeded": "refunded", "failed": "failed, our team is on it"}


class ZoneArgsSchema(QuerySchema):
    tz = fields.String(validate=validate_timezone)


class ReviewFormSchema(ReviewCreateSchema):
    """The API's review schema, reading a form: every value a string, so the rating is parsed from digits."""

    reads_query_string = True


@dataclass(frozen=True)
class SessionView:
    """One booking as the learner reads it, its times in `zone`."""

    booking: Booking
    zone: tzinfo

    @property
    def when(self) -> str:
        start, end = self.booking.start_at.astimezone(self.zone), self.booking.end_at.astimezone(self.zone)
        return f"{start:%a} {start.day} {start:%b %Y}, {start:%H:%M} to {end:%H:%M}"

    @property
    def status(self) -> str:
        return STATUS_LABELS[self.booking.state]

    @property
    def price(self) -> str:
        return format_money(self.booking.price_cents, self.booking.currency)

    @property
    def payment(self) -> str:
        """What the learner paid: charged once confirmed, only authorized while a mentor decides."""
        state = self.booking.state
        if self.booking.confirmed_at is not None:
            return f"{self.price} paid"
        if state is BookingStatus.AWAITING_MENTOR:
            return f"{self.price} authorized on your card, charged when the mentor accepts"
        if state is BookingStatus.PENDING_PAYMENT:
            return f"{self.price}, not paid yet"
        return "Nothing charged"

    @property
    def refund(self) -> str | None:
        booking = self.booking
        if not booking.refund_amount_cents:
            return "No refund" if booking.refund_amount_cents == 0 and booking.confirmed_at else None
        amount = format_money(booking.refund_amount_cents, booking.currency)
        return f"{amount} {REFUND_LABELS.get(booking.refund_status, booking.refund_status)}"


def _refusals(*statuses: int) -> Callable[[F], F]:
    """Document these answers of a view (each an HTML page but the redirect)."""

    def decorator(view: F) -> F:
        for status in statuses:
            if status == 303:
                view = html.alt_response(303, description=REFUSALS[303])(view)
            else:
                view = html.alt_response(
                    status, schema=PAGE, content_type=HTML, description=REFUSALS[status]
                )(view)
        return view

    return decorator


def _user() -> User:
    return cast(User, current_user)  # behind `_signed_in`: the signed-in User


def _learners_booking(booking_id: int) -> Booking:
    """The booking, when the signed-in user is its learner: its mentor and the admins have pages of their own."""
    booking = service.get_booking(_user(), booking_id)
    if not booking.is_learner(_user()):
        raise NotFound("No such booking.")
    return booking


def _zone() -> tuple[ZoneInfo, Form]:
    """The zone `tz` chooses (checked by the schema), else the learner's own; and the zone form to show."""
    chosen = request.args.get("tz", "").strip()
    form = Form(values={"tz": chosen})
    if chosen:
        try:
            return ZoneInfo(ZoneArgsSchema().load({"tz": chosen})["tz"]), form
        except ValidationError as exc:
            form.errors = {"tz": [str(message) for message in cast(dict[str, Any], exc.messages)["tz"]]}
    return ZoneInfo(_user().timezone), form


def _page(template: str, title: str, status: int = 200, **context: Any) -> Response:
    zone, zone_form = _zone()
    return render_page(
        f"sessions/{template}",
        title=title,
        description=f"{title}: your mentoring sessions on the mentor marketplace.",
        status=422 if zone_form.failed and status == 200 else status,
        zone=zone,
        zone_form=zone_form,
        chosen_tz=zone.key,  # base.html's footer names it, and local-time.js keeps to it
        **context,
    )


def _detail_url(booking_id: int) -> str:
    return url_for("session_pages.SessionPage", booking_id=booking_id, tz=request.args.get("tz") or None)


def _status_of(error: DomainError) -> int:
    return int(error.status_code)


def _on_field(form: Form, error: DomainError, name: str) -> Form:
    """A refusal next to the field it concerns: the service's own per-field messages, else its message."""
    if error.errors:
        return form.fail(error)
    form.errors[name] = [error.message]
    return form


# --- reading -----------------------------------------------------------------------------------------


@html.route("/sessions", parameters=[TZ])
class SessionsPage(MethodView):
    @html.response(200, schema=PAGE, content_type=HTML, description="My sessions, upcoming and past")
    @_refusals(303, 422)
    def get(self) -> Response:
        zone, _form = _zone()
        now = utcnow()
        bookings = db.session.scalars(service.list_bookings(_user(), "learner", None)).all()
        upcoming = [b for b in bookings if b.is_live and b.end_at > now]
        past = [b for b in bookings if b not in upcoming]
        return _page(
            "list.html",
            "My sessions",
            upcoming=[SessionView(b, zone) for b in reversed(upcoming)],
            past=[SessionView(b, zone) for b in past],
        )


@html.route("/sessions/<int:booking_id>", parameters=[TZ])
class SessionPage(MethodView):
    @html.response(200, schema=PAGE, content_type=HTML, description="One session and what can be done")
    @_refusals(303, 404, 422)
    def get(self, booking_id: int) -> Response:
        booking = _learners_booking(booking_id)
        zone, _form = _zone()
        review = db.session.scalar(select(Review).where(Review.booking_id == booking.id))
        return _page(
            "detail.html",
            f"Session with {booking.mentor.name}",
            session=SessionView(booking, zone),
            terms=service.cancellation_preview(_user(), booking_id),
            cannot_move=service.reschedule_refusal(booking, utcnow()),
            can_move=booking.can_reschedule(_user()),
            can_review=booking.can_review(_user()) and review is None,
            review=review,
        )


@html.route("/sessions/<int:booking_id>/calendar.ics")
class SessionCalendar(MethodView):
    @html.response(200, schema={"type": "string"}, content_type="text/calendar", description="One VEVENT")
    @_refusals(303, 404)
    def get(self, booking_id: int) -> Response:
        _learners_booking(booking_id)
        return calendar_response(service.booking_calendar(_user(), booking_id), f"session-{booking_id}.ics")


# --- changing ----------------------------------------------------------------------------------------


class SessionForm(MethodView):
    """A form that acts on one session: read with the API's schema, done by the API's service call, refused
    with the service's message next to `error_field` (values kept); done, back to the session's page."""

    template: ClassVar[str]
    title: ClassVar[str]
    schema: ClassVar[type[Schema]]
    error_field: ClassVar[str]

    @html.response(200, schema=PAGE, content_type=HTML, description="The form, and what it would do now")
    @_refusals(303, 404, 422)
    def get(self, booking_id: int) -> Response:
        return self.show(booking_id, Form())

    @html.response(303, description="Done: back to the session's page, which shows the outcome")
    @_refusals(403, 404, 409, 422)
    def post(self, booking_id: int) -> Response:
        _learners_booking(booking_id)
        data, form = read_form(self.schema())
        if data is None:
            return self.show(booking_id, form, 422)
        try:
            done = self.act(booking_id, data)
        except DomainError as exc:
            return self.show(booking_id, _on_field(form, exc, self.error_field), _status_of(exc))
        flash(done)
        return redirect(_detail_url(booking_id), code=303)

    def act(self, booking_id: int, data: dict[str, Any]) -> str:
        """Do it through the API's service; what to tell the learner."""
        raise NotImplementedError

    @classmethod
    def context(cls, booking: Booking, zone: ZoneInfo) -> dict[str, Any]:
        """What the template shows besides the session and the form."""
        return {}

    @classmethod
    def show(cls, booking_id: int, form: Form, status: int = 200) -> Response:
        booking = _learners_booking(booking_id)
        zone, _zone_form = _zone()
        extra = cls.context(booking, zone)
        return _page(cls.template, cls.title, status, form=form, session=SessionView(booking, zone), **extra)


@html.route("/sessions/<int:booking_id>/cancel", parameters=[TZ])
class CancelSessionPage(SessionForm):
    """The refund cancelling now gives (the API's preview), then the confirmation."""

    template, title, schema, error_field = "cancel.html", "Cancel your session", CancelSchema, "reason"

    def act(self, booking_id: int, data: dict[str, Any]) -> str:
        booking = service.cancel_booking(_user(), booking_id, data["reason"])
        return f"Your session is cancelled. Refund: {SessionView(booking, UTC).refund or 'none'}."

    @classmethod
    def context(cls, booking: Booking, zone: ZoneInfo) -> dict[str, Any]:
        return {"terms": service.cancellation_preview(_user(), booking.id)}


@html.route("/sessions/<int:booking_id>/reschedule", parameters=[TZ])
class RescheduleSessionPage(SessionForm):
    """The mentor's free times for a session of this length (their public slots), to move it to."""

    template, title, schema, error_field = "reschedule.html", "Move your session", RescheduleSchema, "start"

    def act(self, booking_id: int, data: dict[str, Any]) -> str:
        service.reschedule_booking(_user(), booking_id, data["start"])
        return "Your session is moved. The calendar file has the new time."

    @classmethod
    def context(cls, booking: Booking, zone: ZoneInfo) -> dict[str, Any]:
        refusal = service.reschedule_refusal(booking, utcnow())
        if refusal is None and not booking.can_reschedule(_user()):
            refusal = f"A session that is {STATUS_LABELS[booking.state].lower()} cannot be moved."
        starts: list[datetime] = []
        if refusal is None:
            try:
                slots = list_free_slots(booking.mentor_id, None, None, zone, booking.duration_minutes)
            except DomainError as exc:  # the mentor stopped taking bookings, or this length
                refusal = exc.message
            else:
                starts = [slot.start for slot in slots]
        return {"refusal": refusal, "days": _by_day(starts, zone)}


def _by_day(starts: list[datetime], zone: ZoneInfo) -> list[tuple[str, list[tuple[str, datetime]]]]:
    """Free starts grouped under their date in `zone`, each with its clock time there."""
    days: dict[str, list[tuple[str, datetime]]] = {}
    for start in starts:
        local = start.astimezone(zone)
        days.setdefault(f"{local:%A} {local.day} {local:%B}", []).append((f"{local:%H:%M}", start))
    return list(days.items())


@html.route("/sessions/<int:booking_id>/review", parameters=[TZ])
class ReviewSessionPage(SessionForm):
    """A rating and a comment, once the session is completed."""

    template, title, schema, error_field = "review.html", "Review your session", ReviewFormSchema, "rating"

    def act(self, booking_id: int, data: dict[str, Any]) -> str:
        service.add_review(_user(), booking_id, data["rating"], data["comment"])
        return "Thank you for your review."

    @classmethod
    def context(cls, booking: Booking, zone: ZoneInfo) -> dict[str, Any]:
        return {"reviewable": booking.can_review(_user())}


# --- who may, and refusals as pages --------------------------------------------------------------------

# The form each page shows again when the CSRF check refuses it, values kept.
FORMS = {f"session_pages.{page.__name__}": page.show for page in SessionForm.__subclasses__()}


def _signed_in() -> Response | None:
    """Anyone not signed in is sent to sign in, and comes back here afterwards."""
    if current_user.is_authenticated:
        return None
    here = request.full_path.rstrip("?") if request.method == "GET" else request.path
    return redirect(url_for("account_pages.SignInPage", next=here), code=303)


html.before_request(_signed_in)


@html.errorhandler(DomainError)
def _refused(error: DomainError) -> Response:
    """A stale CSRF token shows the form again, values kept; anything else (404) a page that says so."""
    show = FORMS.get(request.endpoint or "")
    booking_id = (request.view_args or {}).get("booking_id")
    if isinstance(error, Forbidden) and show is not None and booking_id is not None:
        kept = {name: value for name, value in request.form.items() if name != "csrf_token"}
        try:
            return show(int(booking_id), Form(values=kept, message=EXPIRED_FORM), 403)
        except DomainError as exc:  # not the caller's booking after all
            error = exc
    status = _status_of(error)
    title = "Session not found" if status == 404 else "Sorry"
    return render_page(
        "errors/error.html", title=title, description=error.message, message=error.message, status=status
    )
