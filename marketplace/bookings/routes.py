from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, url_for
from flask.views import MethodView
from flask_login import current_user

from marketplace.bookings import service
from marketplace.bookings.models import Booking, Review
from marketplace.bookings.schemas import (
    BookingCreateSchema,
    BookingListArgsSchema,
    BookingSchema,
    CalendarFeedSchema,
    CancelSchema,
    RescheduleSchema,
    ReviewCreateSchema,
    ReviewSchema,
    SlotArgsSchema,
    SlotSchema,
)
from marketplace.core.api import Blueprint
from marketplace.core.auth import login_required
from marketplace.core.idempotency import idempotent
from marketplace.core.pagination import SelectPage

blp = Blueprint("bookings", __name__, url_prefix="/api/v1", description="Slots, bookings, reviews, calendars")
feeds = Blueprint("calendar_feeds", __name__, url_prefix="/calendar", description="Calendar subscriptions")

ICS_MIMETYPE = "text/calendar"


def _ics(payload: bytes, filename: str) -> Response:
    response = Response(payload, mimetype=ICS_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blp.route("/mentors/<int:mentor_id>/slots")
class Slots(MethodView):
    @blp.arguments(SlotArgsSchema, location="query")
    @blp.response(200, SlotSchema(many=True))
    def get(self, args: dict[str, Any], mentor_id: int) -> list[dict[str, str]]:
        """Free bookable starts between two dates of the `tz` calendar, shown in `tz`."""
        zone = ZoneInfo(args["tz"])
        slots = service.list_free_slots(mentor_id, args["from_"], args["to"], zone, args["duration"])
        return [
            {"start": slot.start.astimezone(zone).isoformat(), "end": slot.end.astimezone(zone).isoformat()}
            for slot in slots
        ]


@blp.route("/bookings")
class Bookings(MethodView):
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
    @blp.alt_response(409, description="The slot is not free")
    @blp.alt_response(422, description="The time is not a slot of this mentor")
    @blp.alt_response(429, description="Too many unpaid holds")
    def post(self, data: dict[str, Any]) -> Booking:
        """Hold a slot until `hold_expires_at`; send `Idempotency-Key` to retry safely."""
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
    @blp.response(200, BookingSchema)
    def post(self, booking_id: int) -> Booking:
        """The mentor reports that the learner did not come."""
        return service.mark_no_show(current_user, booking_id)


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
    @blp.response(200, content_type=ICS_MIMETYPE)
    def get(self, booking_id: int) -> Response:
        return _ics(service.booking_calendar(current_user, booking_id), f"booking-{booking_id}.ics")


@blp.route("/me/calendar-feed")
class CalendarFeed(MethodView):
    @login_required
    @blp.response(201, CalendarFeedSchema)
    def post(self) -> dict[str, str]:
        """Issue (or rotate) your private subscription URL; keep it secret."""
        token = service.rotate_calendar_feed(current_user)
        return {"url": url_for("calendar_feeds.FeedCalendar", token=token, _external=True)}


@feeds.route("/<token>.ics")
class FeedCalendar(MethodView):
    @feeds.response(200, content_type=ICS_MIMETYPE)
    def get(self, token: str) -> Response:
        """A mentor's live bookings, for any calendar app to subscribe to."""
        return _ics(service.feed_calendar(token), "sessions.ics")
