"""Booking messages end to end: API or service call, outbox, task, SMTP, parsed back from the sink."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from icalendar import Calendar
from sqlalchemy import select

from marketplace.bookings import signals as booking_signals
from marketplace.bookings import state_changes
from marketplace.bookings.ics import booking_uid
from marketplace.bookings.models import Booking
from marketplace.core.db import unit_of_work
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.notifications.models import EmailStatus, SentEmail
from tests.factories import UserFactory
from tests.fixtures.bookable import book
from tests.fixtures.mail import bodies, invite_of, only_to, run_task, with_subject
from tests.helpers import ApiUser
from tests.support.servers import SmtpSink

THURSDAY_15_BERLIN = "2027-01-07T15:00:00+01:00"  # 14:00 UTC, 9:00 AM in New York
FRIDAY_14_BERLIN = "2027-01-08T14:00:00+01:00"  # 13:00 UTC, 8:00 AM in New York


def _confirmed(learner: ApiUser, mentor: MentorProfile, start: str = THURSDAY_15_BERLIN) -> int:
    response = book(learner, mentor, start)
    assert response.status_code == 201, response.get_data(as_text=True)
    booking_id = response.get_json()["id"]
    with unit_of_work():
        assert state_changes.confirm_paid_booking(booking_id)
    return booking_id


def _calendar(data: bytes) -> tuple[Calendar, dict]:
    calendar = Calendar.from_ical(data)
    (event,) = calendar.walk("VEVENT")
    return calendar, event


def test_confirmation_reaches_learner_and_mentor_in_their_own_zones_with_a_request_invite(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)

    confirmed = with_subject(mailbox.wait_for(3), "Confirmed:")
    assert len(confirmed) == 2
    to_learner = only_to(confirmed, learner.user.email)
    to_mentor = only_to(confirmed, mentor.user.email)
    learner_time = "Thursday, 7 January 2027, 9:00 AM EST (America/New_York)"
    mentor_time = "Thursday, 7 January 2027, 3:00 PM CET (Europe/Berlin)"
    assert to_learner.message["Subject"] == f"Confirmed: mentoring session with {mentor.name}, {learner_time}"
    assert (
        to_mentor.message["Subject"]
        == f"Confirmed: mentoring session with {learner.user.name}, {mentor_time}"
    )
    for mail, when in ((to_learner, learner_time), (to_mentor, mentor_time)):
        text, html = bodies(mail.message)
        assert when in text
        assert when in html
        part, data = invite_of(mail.message)
        assert part.get_filename() == "invite.ics"
        assert part.get_param("method") == "REQUEST"
        calendar, event = _calendar(data)
        assert calendar["METHOD"] == "REQUEST"
        assert str(event["UID"]) == f"booking-{booking_id}@mentor-marketplace"
        assert event["SEQUENCE"] == 0
        assert event["STATUS"] == "CONFIRMED"
        assert event.decoded("DTSTART") == datetime(2027, 1, 7, 14, 0, tzinfo=UTC)
    assert "$60.00" in bodies(to_learner.message)[0]
    assert to_learner.message["Message-ID"] != to_mentor.message["Message-ID"]


def test_the_hold_message_says_when_to_pay_by_in_the_learners_zone(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser
) -> None:
    book(learner, mentor, THURSDAY_15_BERLIN)

    (held,) = mailbox.wait_for(1)
    # Booked at 06:00 UTC with a 15 minute hold: pay by 1:15 AM in New York.
    assert held.rcpt_tos == [learner.user.email]
    assert held.message["Subject"] == (
        "Pay by Monday, 4 January 2027, 1:15 AM EST (America/New_York) to keep your session"
    )
    assert "$60.00" in bodies(held.message)[0]


@pytest.mark.parametrize(
    ("hourly_minor", "currency", "shown"),
    [(6000, "USD", "$60.00"), (7250, "EUR", "€72.50"), (8000, "JPY", "¥8,000")],
    ids=["USD", "EUR", "JPY"],
)
def test_the_price_in_a_mail_is_in_the_currencys_own_units(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser, hourly_minor: int, currency: str, shown: str
) -> None:
    """Prices are minor units: cents for dollars and euros, whole yen for JPY (no minor unit)."""
    mentor.price_cents, mentor.currency = hourly_minor, currency
    db.session.commit()

    book(learner, mentor, THURSDAY_15_BERLIN)

    (held,) = mailbox.wait_for(1)
    text, html = bodies(held.message)
    assert f"Pay {shown} before then" in text
    assert shown in html


def test_a_redelivered_send_task_sends_nothing_again(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)
    before = len(mailbox.wait_for(3))

    again = run_task("notifications.send_email", kind="booking_confirmed", object_id=booking_id)

    assert again == 0
    assert len(mailbox.messages) == before
    rows = db.session.scalars(
        select(SentEmail).where(SentEmail.kind == "booking_confirmed", SentEmail.object_id == booking_id)
    ).all()
    assert sorted(r.recipient for r in rows) == sorted([learner.user.email, mentor.user.email])
    assert {(r.status, r.attempts) for r in rows} == {(EmailStatus.SENT.value, 1)}


def test_reschedule_sends_an_updated_invite_with_the_same_uid_and_a_higher_sequence(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)
    mailbox.wait_for(3)

    moved = learner.post(f"/api/v1/bookings/{booking_id}/reschedule", json={"start": FRIDAY_14_BERLIN})
    assert moved.status_code == 200, moved.get_data(as_text=True)

    rescheduled = with_subject(mailbox.wait_for(5), "New time:")
    assert sorted(m.rcpt_tos[0] for m in rescheduled) == sorted([learner.user.email, mentor.user.email])
    to_learner = only_to(rescheduled, learner.user.email)
    assert "Friday, 8 January 2027, 8:00 AM EST (America/New_York)" in to_learner.message["Subject"]
    calendar, event = _calendar(invite_of(to_learner.message)[1])
    assert calendar["METHOD"] == "REQUEST"
    assert str(event["UID"]) == booking_uid(db.session.get(Booking, booking_id))
    assert event["SEQUENCE"] == 1
    assert event.decoded("DTSTART") == datetime(2027, 1, 8, 13, 0, tzinfo=UTC)


def test_cancellation_tells_the_learner_the_refund_and_takes_the_event_off_calendars(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)
    mailbox.wait_for(3)

    cancelled = learner.post(f"/api/v1/bookings/{booking_id}/cancel", json={"reason": "Exam moved"})
    assert cancelled.status_code == 200

    mails = with_subject(mailbox.wait_for(5), "Cancelled:")
    to_learner = only_to(mails, learner.user.email)
    to_mentor = only_to(mails, mentor.user.email)
    learner_text = bodies(to_learner.message)[0]
    assert "You will be refunded $60.00." in learner_text
    assert "cancelled by the learner" in learner_text
    assert "Exam moved" in bodies(to_mentor.message)[1]
    assert "refunded" not in bodies(to_mentor.message)[0]
    calendar, event = _calendar(invite_of(to_mentor.message)[1])
    assert calendar["METHOD"] == "CANCEL"
    assert event["STATUS"] == "CANCELLED"
    assert event["SEQUENCE"] == 1


def test_a_confirmation_found_cancelled_at_send_time_is_not_sent(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser
) -> None:
    booking_id = _confirmed(learner, mentor)
    mailbox.wait_for(4)  # the hold, the two confirmations and the learner's receipt
    learner.post(f"/api/v1/bookings/{booking_id}/cancel", json={})
    mailbox.wait_for(6)

    assert run_task("notifications.send_email", kind="booking_held", object_id=booking_id) == 0
    stale = run_task("notifications.send_email", kind="booking_confirmed", object_id=booking_id, version=7)
    assert stale == 0
    assert len(mailbox.messages) == 6


def test_expiry_payment_and_completion_messages_go_to_the_learner(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser, clock
) -> None:
    lapsing = book(learner, mentor, THURSDAY_15_BERLIN).get_json()["id"]
    with unit_of_work():
        db.session.get(Booking, lapsing).last_payment_error = "Your card was declined."
        db.session.get(Booking, lapsing).payment_attempts = 1
        booking_signals.payment_failed.send(lapsing)
    with unit_of_work():
        booking_signals.late_payment_refunded.send(lapsing)
    clock.shift(60 * 20)
    with unit_of_work():
        assert state_changes.expire_lapsed_holds() == [lapsing]

    mails = mailbox.wait_for(4)
    assert [m.rcpt_tos for m in mails] == [[learner.user.email]] * 4
    failed = only_to(with_subject(mails, "Payment failed"), learner.user.email)
    assert "Your card was declined." in bodies(failed.message)[0]
    assert (
        "try again with another card until Monday, 4 January 2027, 1:15 AM EST" in bodies(failed.message)[0]
    )
    refunded = with_subject(mails, "Your payment arrived after the slot was taken")
    assert "full: $60.00" in bodies(refunded[0].message)[0]
    assert len(with_subject(mails, "Your unpaid booking was released")) == 1


def test_completion_asks_the_learner_for_a_review(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser, clock
) -> None:
    booking_id = _confirmed(learner, mentor)
    clock.move_to(datetime(2027, 1, 8, 17, 0, tzinfo=UTC))
    with unit_of_work():
        assert state_changes.complete_finished() == [booking_id]

    (review,) = with_subject(mailbox.wait_for(4), "How was your session")
    assert review.rcpt_tos == [learner.user.email]
    assert "Thursday, 7 January 2027, 9:00 AM EST" in bodies(review.message)[0]


def test_a_dispute_is_reported_to_every_admin(
    mailbox: SmtpSink, mentor: MentorProfile, learner: ApiUser
) -> None:
    admins = [UserFactory(roles=("admin",), timezone=zone) for zone in ("UTC", "Asia/Tokyo")]
    booking_id = _confirmed(learner, mentor)
    with unit_of_work():
        booking_signals.booking_disputed.send(booking_id)

    disputed = with_subject(mailbox.wait_for(4), "Payment disputed")
    assert sorted(m.rcpt_tos[0] for m in disputed) == sorted(a.email for a in admins)
    tokyo = only_to(disputed, admins[1].email)
    assert "Thursday, 7 January 2027, 11:00 PM JST (Asia/Tokyo)" in bodies(tokyo.message)[0]
    utc_lines = bodies(only_to(disputed, admins[0].email).message)[0].splitlines()
    assert "  When:   Thursday, 7 January 2027, 2:00 PM UTC" in utc_lines
