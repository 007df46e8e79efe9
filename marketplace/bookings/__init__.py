"""Bookings: holds, the lifecycle state machine, cancellation policy, reviews and calendars."""
