"""Mails of the money lifecycle, through the API, real payments on the Stripe stand-in, the outbox, the send
task and SMTP: receipts of payments and refunds, requests accepted, no-show reports, strikes, suspensions and
disputed reports. Each is sent once, however often the event that asks for it comes again."""

from __future__ import annotations

from typing import Any

import pytest
import time_machine
from flask.testing import FlaskClient

from marketplace.accounts.models import Role
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from tests.factories import UserFactory
from tests.fixtures.bookable import DURING, deliver, paid_booking
from tests.fixtures.mail import bodies, only_to, run_task, with_subject
from tests.helpers import ApiUser
from tests.payments.test_approval import request_and_authorize
from tests.support.servers import ReceivedMail, SmtpSink
from tests.support.stripe_client import StripeTestClient

# THURSDAY_10's session (09:00-10:00 UTC) as the learner's mails write it: 4:00 AM in New York.
LEARNER_TIME = "Thursday, 7 January 2027, 4:00 AM EST (America/New_York)"


def _to(mailbox: SmtpSink, subject: str, user: Any) -> list[ReceivedMail]:
    """The mails to `user` whose subject, unfolded, starts with `subject`."""
    return [
        m
        for m in mailbox.messages
        if m.rcpt_tos == [user.email] and str(m.message["Subject"]).strip().startswith(subject)
    ]


def _text(mail: ReceivedMail) -> str:
    """The plain text, with the HTML alternative checked to say the same key facts."""
    text, html = bodies(mail.message)
    assert html.startswith("<!doctype html>")
    return " ".join(text.split())


def test_a_payment_sends_the_learner_one_receipt_however_often_its_event_comes(
    client: FlaskClient,
    mailbox: SmtpSink,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body, intent = paid_booking(client, learner, mentor, stripe_client)
    assert deliver(client, "payment_intent.succeeded", intent).status_code == 200  # redelivered, new event id
    assert run_task("notifications.send_email", kind="payment_receipt", object_id=body["id"]) == 0

    [receipt] = _to(mailbox, "Receipt:", learner.user)
    assert receipt.message["Subject"] == f"Receipt: $60.00 paid for your session with {mentor.name}"
    text = _text(receipt)
    html = bodies(receipt.message)[1]
    for fact in (
        "$60.00 (USD)",
        f"Booking: {body['id']}",
        f"Payment reference: {intent['id']}",
        LEARNER_TIME,
    ):
        assert fact in text
    for fact in ("$60.00 (USD)", intent["id"], LEARNER_TIME, mentor.name):
        assert fact in html
    assert _to(mailbox, "Receipt:", mentor.user) == []


def test_a_cancellation_refund_gets_one_receipt_even_when_stripes_refund_event_follows(
    client: FlaskClient,
    mailbox: SmtpSink,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body, intent = paid_booking(client, learner, mentor, stripe_client)
    cancelled = learner.post(f"/api/v1/bookings/{body['id']}/cancel", json={"reason": "Exam moved"})
    assert cancelled.get_json()["refund"]["amount_cents"] == 6000
    charge = stripe_client.intent(intent["id"])["charges"]["data"][0]
    assert deliver(client, "charge.refunded", {**charge, "amount_refunded": 6000}).status_code == 200

    [receipt] = _to(mailbox, "Refund receipt:", learner.user)
    assert receipt.message["Subject"] == f"Refund receipt: $60.00 for your session with {mentor.name}"
    text = _text(receipt)
    assert "Refunded: $60.00 (USD)" in text
    assert "Still paid: $0.00 of $60.00" in text
    assert "You cancelled the session; the refund follows the cancellation policy." in text
    assert "Reason given: Exam moved" in text
    assert "Refund reference: re_" in text


def test_each_admin_refund_gets_its_receipt_with_what_remains_paid(
    client: FlaskClient,
    mailbox: SmtpSink,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body, _intent = paid_booking(client, learner, mentor, stripe_client)
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))
    path = f"/api/v1/admin/bookings/{body['id']}/refund"
    for key, cents, reason in (
        ("a", 2000, "Late start"),
        ("b", 1000, "Audio trouble"),
        ("a", 2000, "Late start"),
    ):
        answer = admin.post(
            path, json={"amount_cents": cents, "reason": reason}, headers={"Idempotency-Key": key}
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)

    receipts = _to(mailbox, "Refund receipt:", learner.user)
    assert [m.message["Subject"].split(" for ")[0] for m in receipts] == [
        "Refund receipt: $20.00",
        "Refund receipt: $10.00",
    ]
    first, second = (_text(m) for m in receipts)
    assert "Still paid: $40.00 of $60.00" in first
    assert "Reason: Late start" in first
    assert "Still paid: $30.00 of $60.00" in second
    assert "Reason: Audio trouble" in second


def test_an_accepted_request_tells_the_learner_and_sends_the_receipt_once(
    client: FlaskClient,
    mailbox: SmtpSink,
    confirming_mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    body = request_and_authorize(client, learner, confirming_mentor, stripe_client)
    [asked] = _to(mailbox, "Request:", confirming_mentor.user)
    # 48 hours after the authorization (NOW), in the mentor's zone.
    assert "accept or decline by Wednesday, 6 January 2027, 7:00 AM CET (Europe/Berlin)" in _text(asked)

    for _ in range(2):
        assert mentor_api.post(f"/api/v1/bookings/{body['id']}/accept").status_code == 200

    [confirmed] = _to(mailbox, "Confirmed:", learner.user)
    assert f"{confirming_mentor.name} accepted your request" in _text(confirmed)
    [receipt] = _to(mailbox, "Receipt:", learner.user)
    assert "accepted your request, and your card was charged" in _text(receipt)


def test_a_mentor_no_show_tells_the_mentor_of_the_report_the_strike_the_suspension_and_how_to_contest(
    client: FlaskClient,
    mailbox: SmtpSink,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(client.application.config, "NO_SHOW_STRIKES_TO_SUSPEND", 1)
    body, _intent = paid_booking(client, learner, mentor, stripe_client)
    clock.move_to(DURING)
    reported = learner.post(
        f"/api/v1/bookings/{body['id']}/no-show", json={"who": "mentor", "note": "Nobody"}
    )
    assert reported.status_code == 200

    [report] = _to(mailbox, "No-show reported:", mentor.user)
    text = _text(report)
    assert (
        f"{learner.user.name} reported that you did not come to this session (booking {body['id']})" in text
    )
    assert "counts as a strike: you have 1 within 90 days, and 1 suspend your profile" in text
    [suspended] = _to(mailbox, "Your mentor profile is suspended", mentor.user)
    assert "Suspended automatically: 1 no-shows reported within 90 days" in _text(suspended)
    # 24 hours after the end (10:00 UTC), in the mentor's zone.
    assert "naming the learner) by Friday, 8 January 2027, 11:00 AM CET (Europe/Berlin)" in text
    [refund] = _to(mailbox, "Refund receipt:", learner.user)
    assert "The mentor did not come to the session: you are refunded in full." in _text(refund)
    assert _to(mailbox, "No-show reported:", learner.user) == []


def test_reports_against_each_other_tell_both_parties_and_the_admins_when_opened_and_decided(
    client: FlaskClient,
    mailbox: SmtpSink,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body, _intent = paid_booking(client, learner, mentor, stripe_client)
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))
    clock.move_to(DURING)
    assert (
        mentor_api.post(f"/api/v1/bookings/{body['id']}/no-show", json={"who": "learner"}).status_code == 200
    )
    [report] = _to(mailbox, "No-show reported:", learner.user)
    assert "paid to the mentor" in _text(report)
    assert "naming the mentor) by Friday, 8 January 2027, 5:00 AM EST (America/New_York)" in _text(report)

    assert learner.post(f"/api/v1/bookings/{body['id']}/no-show", json={"who": "mentor"}).status_code == 200
    resolved = admin.post(f"/api/v1/admin/bookings/{body['id']}/resolve", json={"absent": "mentor"})
    assert resolved.status_code == 200
    assert (
        admin.post(f"/api/v1/admin/bookings/{body['id']}/resolve", json={"absent": "mentor"}).status_code
        == 409
    )

    for user in (learner.user, mentor.user, admin.user):
        [opened] = _to(mailbox, f"No-show disputed: booking {body['id']}", user)
        assert "No money is paid out or refunded for this booking until the dispute is decided." in _text(
            opened
        )
        [decided] = _to(mailbox, f"No-show dispute decided: booking {body['id']}", user)
        assert "the mentor did not come to the session" in _text(decided)
    decided_for_mentor = only_to(with_subject(mailbox.messages, "No-show dispute decided"), mentor.user.email)
    assert "you have 1 within 90 days" in _text(decided_for_mentor)
    [refund] = _to(mailbox, "Refund receipt:", learner.user)
    assert "Still paid: $0.00 of $60.00" in _text(refund)


def test_a_name_with_a_line_break_cannot_add_a_header_to_a_receipt(
    client: FlaskClient,
    mailbox: SmtpSink,
    mentor: MentorProfile,
    learner: ApiUser,
    stripe_client: StripeTestClient,
) -> None:
    mentor.user.name = "Mallory\r\nBcc: victim@example.test"
    db.session.commit()

    paid_booking(client, learner, mentor, stripe_client)

    [receipt] = _to(mailbox, "Receipt:", learner.user)
    assert receipt.message["Bcc"] is None
    assert (
        receipt.message["Subject"].strip()
        == "Receipt: $60.00 paid for your session with Mallory Bcc: victim@example.test"
    )
