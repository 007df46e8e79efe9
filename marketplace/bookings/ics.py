"""RFC 5545 calendars for bookings, built with `icalendar`.

A booking keeps one UID for life, so calendar apps update the same event on reschedule (SEQUENCE bumped)
and mark it cancelled instead of leaving a stale copy.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from icalendar import Calendar, Event, vCalAddress, vText

from marketplace.bookings.models import Booking, BookingStatus

PRODID = "-//Mentor Marketplace//Bookings//EN"
UID_DOMAIN = "mentor-marketplace"

_STATUS = {
    BookingStatus.PENDING_PAYMENT: "TENTATIVE",
    BookingStatus.CONFIRMED: "CONFIRMED",
    BookingStatus.COMPLETED: "CONFIRMED",
    BookingStatus.NO_SHOW: "CONFIRMED",
    BookingStatus.EXPIRED: "CANCELLED",
    BookingStatus.CANCELLED: "CANCELLED",
}


def booking_uid(booking: Booking) -> str:
    return f"booking-{booking.id}@{UID_DOMAIN}"


def _attendee(email: str, name: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    address.params["cn"] = vText(name)
    return address


def booking_event(booking: Booking, stamp: datetime) -> Event:
    event = Event()
    event.add("uid", booking_uid(booking))
    event.add("dtstamp", stamp)
    event.add("dtstart", booking.start_at)
    event.add("dtend", booking.end_at)
    event.add("sequence", booking.sequence)
    event.add("status", _STATUS[booking.state])
    event.add("summary", f"Mentoring session: {booking.learner.name} with {booking.mentor.name}")
    event.add("description", booking.topic)
    event.add("organizer", _attendee(booking.mentor.user.email, booking.mentor.name))
    event.add("attendee", _attendee(booking.learner.email, booking.learner.name))
    return event


def ics_for(
    bookings: Iterable[Booking], stamp: datetime, name: str | None = None, method: str = "PUBLISH"
) -> bytes:
    """PUBLISH for feeds and downloads; an emailed invite says REQUEST (or CANCEL) so calendars act on it."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    if name:
        calendar.add("x-wr-calname", name)
    for booking in bookings:
        calendar.add_component(booking_event(booking, stamp))
    return cast(bytes, calendar.to_ical())  # icalendar's methods are untyped
