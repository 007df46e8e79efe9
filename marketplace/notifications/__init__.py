"""Email (rendering, sending once) and reminders, driven by the signals of accounts, mentors and bookings."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Connect the receivers. Signals are process-wide and blinker keeps one connection per receiver, so
    building several apps in one process connects each receiver once."""
    from marketplace.accounts.signals import password_reset_requested, user_registered
    from marketplace.bookings import signals as bookings
    from marketplace.mentors.signals import revision_decided, vetting_transition
    from marketplace.notifications import money_receivers, service

    user_registered.connect(service.on_user_registered)
    password_reset_requested.connect(service.on_password_reset_requested)
    vetting_transition.connect(service.on_vetting_transition)
    revision_decided.connect(service.on_revision_decided)
    bookings.booking_held.connect(service.on_booking_held)
    bookings.booking_confirmed.connect(service.on_booking_confirmed)
    bookings.booking_cancelled.connect(service.on_booking_cancelled)
    bookings.booking_rescheduled.connect(service.on_booking_rescheduled)
    bookings.booking_expired.connect(service.on_booking_expired)
    bookings.booking_completed.connect(service.on_booking_completed)
    bookings.booking_requested.connect(service.on_booking_requested)
    bookings.booking_declined.connect(service.on_booking_declined)
    bookings.payment_failed.connect(service.on_payment_failed)
    bookings.late_payment_refunded.connect(service.on_late_payment_refunded)
    bookings.booking_disputed.connect(service.on_booking_disputed)
    money_receivers.connect()
