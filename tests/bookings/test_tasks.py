from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from marketplace.bookings import state_changes, tasks
from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from tests.fixtures.bookable import book
from tests.helpers import ApiUser
from workers.schedule import BEAT_SCHEDULE


def test_beat_schedules_the_booking_upkeep() -> None:
    scheduled = {entry["task"] for entry in BEAT_SCHEDULE.values()}

    assert {tasks.expire_lapsed_holds.name, tasks.complete_finished.name} <= scheduled


def test_expiry_task_expires_lapsed_holds_once(
    mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    booking_id = book(learner, mentor, "2027-01-07T10:00:00+01:00").get_json()["id"]
    assert tasks.expire_lapsed_holds.apply().get() == 0

    clock.shift(timedelta(minutes=15))

    assert tasks.expire_lapsed_holds.apply().get() == 1
    assert tasks.expire_lapsed_holds.apply().get() == 0
    assert db.session.get(Booking, booking_id).status == "expired"


def test_completion_task_completes_after_the_report_window(
    mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    booking_id = book(learner, mentor, "2027-01-07T10:00:00+01:00").get_json()["id"]
    state_changes.confirm_paid_booking(booking_id)
    db.session.commit()

    clock.move_to(datetime(2027, 1, 8, 9, 59, tzinfo=UTC))  # the session ended at 10:00 UTC the day before
    assert tasks.complete_finished.apply().get() == 0
    clock.move_to(datetime(2027, 1, 8, 10, 0, tzinfo=UTC))
    assert tasks.complete_finished.apply().get() == 1
    assert db.session.get(Booking, booking_id).status == "completed"
