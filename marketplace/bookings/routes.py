from __future__ import annotations

from typing import Any

from flask import Response, current_app, url_for
from flask.views import MethodView
from flask_limiter.util import get_remote_address
from flask_login import current_user

from marketplace.bookings import approval, no_shows, service
from marketplace.bookings.models import Booking, NoShowParty, Review
from marketplace.bookings.schemas import (
    AdminBookingArgsSchema,
    BookingCreateSchema,
    BookingListArgsSchema,
    BookingSchema,
    CalendarFeedSchema,
    CancellationPreviewSchema,
    CancelSchema,
    NoShowSchema,
    RescheduleSchema,
    ResolveDisputeSchema,
    ReviewCreateSchema,
    ReviewSchema,
)
from marketplace.core.api import Blueprint
from marketplace.core.auth import login_required, roles_required
from marketplace.core.idempotency import REPLAY_HEADER, idempotent
from marketplace.core.pagination import SelectPage
from marketplace.extensions import limiter

blp = Blueprint("bookings", __name__, url_prefix="/api/v1", description="Bookings, reviews, calendars")
feeds = Blueprint("calendar_feeds", __name__, url_prefix="/calendar", description="Calendar subscriptions")

ICS_MIMETYPE = "text/calendar"
ICS_BODY = {"type": "string", "description": "An iCalendar document"}


def calendar_response(payload: bytes, filename: str) -> Response:
    """An iCalendar download: a private attachment no cache keeps."""
    response = Response(payload, mimetype=ICS_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _hold_limit() -> str:
    return str(current_app.config["HOLD_RATE_LIMIT"])


def _learner_key() -> str:
    """Holds are counted per learner, whichever address they come from."""
    if current_user.is_authenticated:
        return f"learner:{current_user.id}"
    return get_remote_address()


def _hold_made(response: Response) -> bool:
    """Only a new hold counts (not a refusal, nor an idempotent replay of one already counted)."""
    return response.status_code == 201 and REPLAY_HEADER not in response.headers


@blp.route("/bookings")
class Bookings(MethodView):
    decorators = [
        limiter.limit(
            _hold_limit,
            key_func=_learner_key,
            methods=["POST"],
            deduct_when=_hold_made,
            error_message="Too many holds made recently; pay for one or try again later.",
        )
    ]

    @login_required
    @blp.arguments(BookingListArgsSchema, location="query")
    @blp.response(200, BookingSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Your bookings, as learner, as mentor, or both."""
        return service.list_bookings(current_user, args.get("role"), args.get("status"))

    @login_required
    @idempotent
    @blp.arguments(BookingCreateSchema)
    @blp.response(201, BookingSchema)
    @blp.alt_response(404, description="No such mentor")
    @blp.alt_response(409, description="The slot is not free, or you let go of it too recently")
    @blp.alt_response(422, description="The time is not a slot of this mentor")
    @blp.alt_response(429, description="Too many unpaid holds, or too many holds made recently")
    @blp.alt_response(
        503,
        description="The payment provider (or the database) cannot be reached now: nothing is held; "
        "retry after `Retry-After` seconds",
    )
    def post(self, data: dict[str, Any]) -> Booking:
        """Hold a slot until `hold_expires_at`; send `Idempotency-Key` to retry safely.

        A 201 always carries the hold's PaymentIntent (`payment.client_secret`). When Stripe cannot make one
        within `STRIPE_REQUEST_TIMEOUT_SECONDS`, the hold is withdrawn and the answer is 503 with
        `Retry-After`: the slot was not held, and a retry (with the same `Idempotency-Key`) runs afresh."""
        return service.create_booking(
            current_user, data["mentor_id"], data["start"], data["duration_minutes"], data["topic"]
        )


@blp.route("/bookings/<int:booking_id>")
class BookingDetail(MethodView):
    @login_required
    @blp.response(200, BookingSchema)
    def get(self, booking_id: int) -> Booking:
        return service.get_booking(current_user, booking_id)


@blp.route("/bookings/<int:booking_id>/cancel")
class CancelBooking(MethodView):
    @login_required
    @idempotent
    @blp.arguments(CancelSchema)
    @blp.response(200, BookingSchema)
    def post(self, data: dict[str, Any], booking_id: int) -> Booking:
        """Cancel; the refund follows the cancellation policy."""
        return service.cancel_booking(current_user, booking_id, data["reason"])


@blp.route("/bookings/<int:booking_id>/cancellation")
class CancellationPreview(MethodView):
    @login_required
    @blp.response(200, CancellationPreviewSchema)
    def get(self, booking_id: int) -> dict[str, Any]:
        """What cancelling now would do (whether it is allowed, and the refund), before you confirm it."""
        return service.cancellation_preview(current_user, booking_id)


@blp.route("/bookings/<int:booking_id>/decline")
class DeclineBooking(MethodView):
    @login_required
    @idempotent
    @blp.arguments(CancelSchema)  # the reason, shown to the learner
    @blp.response(200, BookingSchema)
    @blp.alt_response(403, description="Not the booking's mentor")
    @blp.alt_response(409, description="Not awaiting the mentor's answer (any more)")
    def post(self, data: dict[str, Any], booking_id: int) -> Booking:
        """The mentor declines a request: the card's authorization is released, nothing is charged."""
        return approval.decline_booking(current_user, booking_id, data["reason"])


@blp.route("/bookings/<int:booking_id>/reschedule")
class RescheduleBooking(MethodView):
    @login_required
    @idempotent
    @blp.arguments(RescheduleSchema)
    @blp.response(200, BookingSchema)
    def post(self, data: dict[str, Any], booking_id: int) -> Booking:
        """Move the same booking to another free slot of the mentor."""
        return service.reschedule_booking(current_user, booking_id, data["start"])


@blp.route("/bookings/<int:booking_id>/no-show")
class NoShow(MethodView):
    @login_required
    @idempotent
    @blp.arguments(NoShowSchema)
    @blp.response(200, BookingSchema)
    @blp.alt_response(403, description="Only the other party can report someone absent")
    @blp.alt_response(409, description="Outside the report window, or the booking cannot be reported now")
    def post(self, data: dict[str, Any], booking_id: int) -> Booking:
        """Report the other party (`who`) as absent, from the start until `NO_SHOW_REPORT_HOURS` after the end.

        A mentor's absence refunds the learner in full and counts a strike; a learner's absence pays the mentor
        as for a completed session; a report against the first reporter opens a dispute for the admins."""
        return no_shows.report_no_show(current_user, booking_id, NoShowParty(data["who"]), data["note"])


@blp.route("/admin/bookings")
class AdminBookings(MethodView):
    @roles_required("admin")
    @blp.arguments(AdminBookingArgsSchema, location="query")
    @blp.response(200, BookingSchema(many=True))
    @blp.paginate(SelectPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Every booking, filtered by `status`, `mentor_id`, `learner_id`, `disputed`; the latest first."""
        return service.admin_bookings(args)


@blp.route("/admin/bookings/<int:booking_id>/resolve")
class ResolveNoShowDispute(MethodView):
    @roles_required("admin")
    @idempotent
    @blp.arguments(ResolveDisputeSchema)
    @blp.response(200, BookingSchema)
    @blp.alt_response(404, description="No such booking")
    @blp.alt_response(409, description="The booking has no open no-show dispute")
    def post(self, data: dict[str, Any], booking_id: int) -> Booking:
        """Decide a no-show dispute: who was `absent`. A mentor's absence refunds the learner in full."""
        return no_shows.resolve_report_dispute(booking_id, NoShowParty(data["absent"]))


@blp.route("/bookings/<int:booking_id>/review")
class ReviewBooking(MethodView):
    @login_required
    @blp.arguments(ReviewCreateSchema)
    @blp.response(201, ReviewSchema)
    def post(self, data: dict[str, Any], booking_id: int) -> Review:
        return service.add_review(current_user, booking_id, data["rating"], data["comment"])


@blp.route("/bookings/<int:booking_id>/calendar.ics")
class BookingCalendar(MethodView):
    @login_required
    @blp.response(200, schema=ICS_BODY, content_type=ICS_MIMETYPE, description="One VEVENT (RFC 5545)")
    def get(self, booking_id: int) -> Response:
        return calendar_response(
            service.booking_calendar(current_user, booking_id), f"booking-{booking_id}.ics"
        )


@blp.route("/me/calendar-feed")
class CalendarFeed(MethodView):
    @roles_required("mentor")
    @blp.response(201, CalendarFeedSchema)
    @blp.alt_response(404, description="No mentor profile")
    def post(self) -> dict[str, str]:
        """Issue (or rotate) your private subscription URL; keep it secret."""
        token = service.rotate_calendar_feed(current_user)
        return {"url": url_for("calendar_feeds.FeedCalendar", token=token, _external=True)}


@feeds.route("/<token>.ics")
class FeedCalendar(MethodView):
    @feeds.response(
        200, schema=ICS_BODY, content_type=ICS_MIMETYPE, description="A VCALENDAR of live bookings"
    )
    def get(self, token: str) -> Response:
        """A mentor's live bookings, for any calendar app to subscribe to."""
        return calendar_response(service.feed_calendar(token), "sessions.ics")
