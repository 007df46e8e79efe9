"""The mentor's bookings (`/mentor/bookings`, with the private calendar feed) and earnings (`/mentor/earnings`).

They live in payments because accepting a request charges the learner's card (`service.accept_booking`), and
earnings read the ledger and the Connect account; every action is the API's own service call: accept and
decline as `POST /bookings/{id}/accept|decline`, the feed as `POST /me/calendar-feed`, the payout account's
onboarding link as `POST /me/payouts/onboarding`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, request, url_for
from flask.views import MethodView
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from marketplace.bookings import approval
from marketplace.bookings import service as bookings
from marketplace.bookings.models import Booking
from marketplace.bookings.schemas import CancelSchema
from marketplace.core.api import Blueprint
from marketplace.core.errors import DomainError, NotFound
from marketplace.core.pages import Form, render_page
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.pages import (
    current_mentor,
    mentor_view,
    own_profile_first,
    own_profile_or_none,
    refusals_as_pages,
    refused,
    whole_number,
)
from marketplace.payments import service

html = Blueprint(
    "mentor_bookings_pages", __name__, description="The mentor's own pages (HTML): bookings and earnings"
)

SHOWN_BOOKINGS = 200
ANSWERS = ("accept", "decline")
ACCOUNT_TEXT = {
    "none": "Not set up yet: set up payouts to receive what you earn.",
    "onboarding": "Started: finish Stripe's form to receive payouts.",
    "restricted": "Stripe needs more information before it can pay you.",
    "enabled": "Ready: we transfer what you earn after each completed session.",
}


def _zone() -> ZoneInfo:
    """The mentor's own zone (their profile's, else their account's): times on these pages are in it."""
    user = current_mentor()
    profile = own_profile_or_none(user)
    return ZoneInfo((profile.timezone if profile else None) or user.timezone or "UTC")


def _show_bookings(form: Form | None = None, status: int = 200, feed_url: str | None = None) -> Response:
    now = utcnow()
    mine: list[Booking] = list(
        db.session.scalars(bookings.list_bookings(current_mentor(), "mentor", None).limit(SHOWN_BOOKINGS))
    )
    requests = [booking for booking in mine if booking.can_answer(current_mentor())]
    upcoming = [b for b in mine if b.end_at > now and b.is_live and b not in requests]
    past = [b for b in mine if b not in requests and b not in upcoming]
    return render_page(
        "mentor/bookings.html",
        title="Your bookings",
        description="Requests to answer, upcoming sessions and past ones, and your calendar feed.",
        status=status,
        form=form or Form(),
        requests=requests,
        upcoming=sorted(upcoming, key=lambda booking: booking.start_at),
        past=past,
        zone=_zone(),
        feed_url=feed_url,
    )


def _posted_booking_id() -> int:
    booking_id = whole_number(request.form.get("booking_id", ""))
    if not isinstance(booking_id, int) or booking_id < 1:
        raise NotFound("No such booking.")
    return booking_id


@html.route("/mentor/bookings")
class BookingsPage(MethodView):
    @mentor_view(html, "Requests, upcoming and past sessions")
    def get(self) -> Response:
        return _show_bookings()


@html.route("/mentor/bookings/answer")
class AnswerRequestPage(MethodView):
    @mentor_view(
        html,
        "Accepted (the card is charged) or declined (nothing is charged)",
        (404, "No such booking of yours"),
        (409, "No longer waiting for your answer"),
        (503, "Stripe cannot be reached: try again"),
        status=303,
    )
    def post(self) -> Response:
        booking_id = _posted_booking_id()
        answer = request.form.get("answer", "")
        form = Form(values={"booking_id": str(booking_id), "reason": request.form.get("reason", "")})
        try:
            if answer == "accept":
                service.accept_booking(current_mentor(), booking_id)
                flash("Request accepted: the session is confirmed and the learner's card is charged.")
            elif answer == "decline":
                reason = CancelSchema().load({"reason": request.form.get("reason") or None})["reason"]
                approval.decline_booking(current_mentor(), booking_id, reason)
                flash("Request declined: nothing is charged and the time is free again.")
            else:
                form.message = "Choose to accept or decline the request."
                return _show_bookings(form, 422)
        except ValidationError as exc:
            form.errors = {"reason": [str(message) for message in exc.messages_dict.get("reason", [])]}
            return _show_bookings(form, 422)
        except DomainError as exc:
            return _show_bookings(refused(form, exc), exc.status_code)
        return redirect(url_for("mentor_bookings_pages.BookingsPage"), code=303)


@html.route("/mentor/calendar-feed")
class CalendarFeedPage(MethodView):
    @mentor_view(html, "The bookings page with the new feed link", (404, "No mentor profile yet"))
    def post(self) -> Response:
        """A new private subscription link; the previous one stops working. Shown once, on this answer."""
        own_profile_first(current_mentor())
        token = bookings.rotate_calendar_feed(current_mentor())
        return _show_bookings(feed_url=url_for("calendar_feeds.FeedCalendar", token=token, _external=True))


@html.route("/mentor/earnings")
class EarningsPage(MethodView):
    @mentor_view(html, "Ledger, transfers, payouts, payout account", (404, "No mentor profile yet"))
    def get(self) -> Response:
        return self.show()

    @staticmethod
    def show(message: str | None = None, status: int = 200) -> Response:
        user = current_mentor()
        own_profile_first(user)
        payouts: dict[str, Any] = service.payouts_of(user)
        return render_page(
            "mentor/earnings.html",
            title="Your earnings",
            description="What you earned per session, the transfers to you, your payouts and payout account.",
            status=status,
            earnings=service.earnings_of(user),
            payouts=payouts,
            account_text=ACCOUNT_TEXT.get(payouts["account_status"], payouts["account_status"]),
            message=message,
            zone=_zone(),
        )


@html.route("/mentor/earnings/payouts")
class PayoutSetupPage(MethodView):
    @mentor_view(
        html,
        "To Stripe's onboarding form (a fresh, single-use link)",
        (503, "Stripe cannot be reached: try again"),
        status=303,
    )
    def post(self) -> Response:
        """Stripe sends the mentor back to the earnings page, or for an expired link to the API's refresh
        address, which hands out a fresh one."""
        back = url_for("mentor_bookings_pages.EarningsPage", _external=True)
        refresh = url_for("payments.PayoutOnboardingRefresh", return_url=back, _external=True)
        try:
            link = service.onboarding_link(current_mentor(), back, refresh)
        except DomainError as exc:
            return EarningsPage.show(exc.message, exc.status_code)
        return redirect(link["url"], code=303)


def deadline_left(deadline: datetime) -> str:
    """How long a mentor has left to answer, as a person says it."""
    minutes = max(int((deadline - utcnow()).total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


html.add_app_template_filter(deadline_left, "deadline_left")
refusals_as_pages(html)
