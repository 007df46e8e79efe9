"""The admin's booking pages: the list with its filters, a booking with its payment, refunds, no-show reports
and disputes, the refund and dispute forms; and the parked payment events with their replay.

Filters are the API's `AdminBookingArgsSchema`; a refund is checked by the API's `AdminRefundCreateSchema`
and made by `admin_refunds.refund_by_admin`, once per form (the form carries its own request key, so sending
it twice refunds once); a dispute is decided by `no_shows.resolve_report_dispute` with `ResolveDisputeSchema`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from babel.numbers import get_currency_precision
from flask import flash, redirect, request, url_for
from flask.views import MethodView
from flask_login import current_user
from marshmallow import ValidationError, validate
from werkzeug.wrappers import Response

from marketplace.bookings import no_shows
from marketplace.bookings import service as bookings
from marketplace.bookings.models import BookingStatus, NoShowParty
from marketplace.bookings.schemas import AdminBookingArgsSchema, ResolveDisputeSchema
from marketplace.core.admin_pages import (
    ListArgsSchema,
    ParkedItem,
    acted,
    admin_page,
    admin_render,
    documented,
    listing,
    listing_page,
    page_errors,
    parked_page,
    retried,
)
from marketplace.core.api import Blueprint
from marketplace.core.errors import DomainError, Unprocessable
from marketplace.core.money import format_money, major_units
from marketplace.core.pages import Form, read_form
from marketplace.core.validation import Schema, fields
from marketplace.payments import service
from marketplace.payments.models import EventState
from marketplace.payments.schemas import AdminRefundCreateSchema, PaymentEventArgsSchema
from marketplace.payments.service import admin_refunds

html = Blueprint(
    "admin_booking_pages", __name__, url_prefix="/admin", description="Bookings and payments pages (admin)"
)
NOT_AN_AMOUNT = "Enter an amount like 12.50."
FORM_ERRORS = (422, "The booking's page again, with what to change next to each field")


class BookingFilterSchema(ListArgsSchema, AdminBookingArgsSchema):
    """The list's filters: the API's, from a form that sends every field."""


class PaymentEventPageArgsSchema(ListArgsSchema, PaymentEventArgsSchema):
    """The API's filter by state, and a page number."""


class RefundFormSchema(AdminRefundCreateSchema):
    """The refund form: the amount as people type it (in the booking's currency), the API's reason, and the
    key that makes the form refund once however often it is sent."""

    class Meta:
        exclude = ("amount_cents",)

    amount = fields.String(required=True, validate=validate.Length(max=20))
    request_key = fields.String(required=True, validate=validate.Length(min=16, max=64))


def minor_amount(typed: str, currency: str) -> int:
    """`12.50` USD is 1250 cents; more decimals than the currency has is refused, not rounded."""
    try:
        cents = Decimal(typed.strip().replace(",", "")).scaleb(get_currency_precision(currency))
    except InvalidOperation:
        raise ValidationError({"amount": [NOT_AN_AMOUNT]}) from None
    if not cents.is_finite() or cents != cents.to_integral_value():
        raise ValidationError({"amount": [NOT_AN_AMOUNT]})
    return int(cents)


@html.route("/bookings")
class BookingListPage(MethodView):
    @listing_page(
        html, BookingFilterSchema, "Every booking, filtered by status, mentor, learner and open dispute"
    )
    def get(self, args: dict[str, Any]) -> Response:
        page = listing(bookings.admin_bookings(args), args.pop("page"))
        statuses = [status.value for status in BookingStatus]
        return admin_render("bookings.html", "Bookings", filters=args, listing=page, statuses=statuses)


@html.route("/bookings/<int:booking_id>")
class BookingPage(MethodView):
    @admin_page
    @documented(
        html,
        "A booking: its payment, refunds, no-show reports, disputes; refund and dispute forms",
        (404, "No such booking"),
    )
    def get(self, booking_id: int) -> Response:
        return show_booking(Form(), 200)


def show_booking(form: Form, status: int) -> Response:
    """The booking's page; `form` is the refund or dispute form that was sent (by `form.values['form']`)."""
    booking = bookings.get_booking(current_user, int((request.view_args or {})["booking_id"]))
    refund = form if form.values.get("form") == "refund" else Form()
    resolve = form if form.values.get("form") == "resolve" else Form()
    if not refund.values:
        refund.values = {
            "amount": str(major_units(admin_refunds.refundable_cents(booking), booking.currency))
        }
    refund.values.setdefault("request_key", secrets.token_urlsafe(24))
    return admin_render(
        "booking.html",
        f"Booking {booking.id}",
        status,
        booking=booking,
        reports=no_shows.reports_of(booking.id),
        refunds=admin_refunds.refunds_of(booking.id),
        refundable=admin_refunds.refundable_cents(booking),
        refund_form=refund,
        resolve_form=resolve,
        parties=[party.value for party in NoShowParty],
    )


@html.route("/bookings/<int:booking_id>/refund")
class BookingRefundPage(MethodView):
    @admin_page
    @acted(
        html,
        "Refunded: back to the booking",
        (404, "No such booking"),
        (409, "The booking was never paid"),
        FORM_ERRORS,
        (503, "Stripe cannot be reached: the form again, to send as it is"),
    )
    def post(self, booking_id: int) -> Response:
        return act_on_booking(booking_id, "refund", RefundFormSchema(), refund)


def refund(booking_id: int, data: dict[str, Any]) -> str:
    """The typed amount in minor units, checked by the API's schema, refunded by the API's service."""
    booking = bookings.get_booking(current_user, booking_id)
    try:
        checked = AdminRefundCreateSchema().load(
            {"amount_cents": minor_amount(data["amount"], booking.currency), "reason": data["reason"]}
        )
        admin_refunds.refund_by_admin(
            current_user, booking_id, checked["amount_cents"], checked["reason"], data["request_key"]
        )
    except ValidationError as exc:
        raise Unprocessable("The refund is not valid.", _amount_named(exc.messages)) from exc
    except DomainError as exc:
        if exc.errors and "amount_cents" in exc.errors:  # said in cents by the API: in money here
            left = format_money(admin_refunds.refundable_cents(booking), booking.currency)
            exc.errors = {"amount": [f"At most {left} is left to refund."]}
        raise
    return f"Refunded {data['amount']} {booking.currency} to the learner."


def _amount_named(errors: Any) -> dict[str, Any]:
    """The API names the field `amount_cents`; the form's field is `amount`."""
    return {"amount" if name == "amount_cents" else name: messages for name, messages in dict(errors).items()}


def act_on_booking(
    booking_id: int, name: str, schema: Schema, act: Callable[[int, dict[str, Any]], str]
) -> Response:
    """Read the booking page's form `name` with `schema` and `act`; back to the booking with what was done,
    or its page again with the form as sent and what to change."""
    data, form = read_form(schema)
    form.values["form"] = name
    if data is None:
        return show_booking(form, 422)
    try:
        done = act(booking_id, data)
    except DomainError as exc:
        return show_booking(form.fail(exc), int(exc.status_code))
    flash(done)
    return redirect(url_for("admin_booking_pages.BookingPage", booking_id=booking_id), code=303)


@html.route("/bookings/<int:booking_id>/resolve")
class BookingResolvePage(MethodView):
    @admin_page
    @acted(
        html,
        "Decided: back to the booking",
        (404, "No such booking"),
        (409, "The booking has no open no-show dispute"),
        FORM_ERRORS,
    )
    def post(self, booking_id: int) -> Response:
        return act_on_booking(booking_id, "resolve", ResolveDisputeSchema(), resolve)


def resolve(booking_id: int, data: dict[str, Any]) -> str:
    no_shows.resolve_report_dispute(booking_id, NoShowParty(data["absent"]))
    return f"Decided: the {data['absent']} did not come."


@html.route("/payment-events")
class PaymentEventsPage(MethodView):
    @listing_page(
        html,
        PaymentEventPageArgsSchema,
        "Stored Stripe events by state: parked ones (the default) with a replay button",
    )
    def get(self, args: dict[str, Any]) -> Response:
        page = listing(service.payment_events(EventState(args["state"])), args["page"])
        items = [
            ParkedItem(
                id=event.id,
                title=event.type,
                detail=f"About {event.object_id}" if event.object_id else "",
                attempts=event.attempts,
                last_error=event.last_error,
                since=event.parked_at or event.processed_at or event.received_at,
                retry_url=None
                if event.processed_at
                else url_for("admin_booking_pages.PaymentEventReplayPage", event_id=event.id),
            )
            for event in page.rows
        ]
        return parked_page("Payment events", [s.value for s in EventState], args["state"], items, page)


@html.route("/payment-events/<event_id>/replay")
class PaymentEventReplayPage(MethodView):
    @admin_page
    @acted(html, "Queued again: back to the events", (404, "No such event"), (409, "Processed already"))
    def post(self, event_id: str) -> Response:
        service.replay_event(event_id)
        return retried(
            f"Payment event {event_id} is queued again.", url_for("admin_booking_pages.PaymentEventsPage")
        )


page_errors(
    html,
    {
        "admin_booking_pages.BookingRefundPage": show_booking,
        "admin_booking_pages.BookingResolvePage": show_booking,
    },
)
