"""The admin pages through HTTP as a browser sends them (cookie session, the CSRF token of the page's form):
who may open them, the vetting decision, refunds and disputes with real payments at the Stripe stand-in,
and the retry of parked work. The rules are the API's: these tests check the pages reach them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.accounts.models import Role, User
from marketplace.core.outbox import OutboxMessage
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile, VettingEvent
from marketplace.mentors.vetting import VettingStatus
from marketplace.notifications.models import EmailStatus, SentEmail
from marketplace.payments.models import AdminRefund
from tests.factories import MentorProfileFactory, UserFactory
from tests.fixtures.bookable import (
    DURING,
    LEARNER_ABSENT,
    MENTOR_ABSENT,
    THURSDAY_10,
    confirmed_booking,
    refunds_at_stripe,
)
from tests.helpers import ApiUser
from tests.pages.forms import field_errors, post_form, sign_in_with_form
from tests.payments.test_webhooks import _booking
from tests.support.stripe_client import StripeTestClient

ADMIN_LISTS = (
    "/admin",
    "/admin/vetting",
    "/admin/bookings",
    "/admin/outbox",
    "/admin/emails",
    "/admin/payment-events",
)
_CHECKED = re.compile(r'<input type="radio" id="([a-z_-]+)"[^>]* checked>')


def _admin(client: FlaskClient) -> User:
    admin = UserFactory(roles=(Role.ADMIN,))
    db.session.commit()
    sign_in_with_form(client, admin.email)
    return admin


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_admin_pages_answer_like_the_admin_api_to_everyone_else(client: FlaskClient) -> None:
    learner = UserFactory(roles=(Role.LEARNER,))
    profile = MentorProfileFactory(vetting_status=VettingStatus.PENDING_REVIEW.value)
    db.session.commit()

    for path in ADMIN_LISTS:
        response = client.get(path)
        assert (response.status_code, response.headers["Location"]) == (303, f"/login?next={path}")
    assert client.post(f"/admin/vetting/{profile.id}", data={"decision": "approve"}).status_code == 303

    sign_in_with_form(client, learner.email)
    for path in ADMIN_LISTS:
        response = client.get(path)
        assert response.status_code == 403, path
        assert "This page is for admins." in response.get_data(as_text=True)
    refused = post_form(
        client, f"/admin/vetting/{profile.id}", {"decision": "approve"}, token_from="/account"
    )
    assert refused.status_code == 403
    assert profile.headline not in refused.get_data(as_text=True)
    without_token = client.post(f"/admin/vetting/{profile.id}", data={"decision": "approve"})
    assert without_token.status_code == 403
    assert profile.user.email not in without_token.get_data(as_text=True)
    assert "Admin</a>" not in client.get("/account").get_data(as_text=True)
    assert db.session.get(MentorProfile, profile.id).vetting_status == VettingStatus.PENDING_REVIEW.value


def test_an_admin_vets_from_the_queue_with_a_note_required_to_refuse(client: FlaskClient) -> None:
    profile = MentorProfileFactory(
        vetting_status=VettingStatus.PENDING_REVIEW.value, headline="Queue headline"
    )
    MentorProfileFactory(headline="Live already")
    db.session.commit()
    admin = _admin(client)
    path = f"/admin/vetting/{profile.id}"

    queue = client.get("/admin/vetting").get_data(as_text=True)
    assert "Queue headline" in queue
    assert "Live already" not in queue
    assert 'href="/admin">Admin</a>' in queue or 'href="/admin" aria-current="page">Admin</a>' in queue
    page = client.get(path).get_data(as_text=True)
    assert re.findall(r'name="decision" value="([a-z_]+)"', page) == ["approve", "reject", "request_changes"]

    refused = post_form(client, path, {"decision": "reject", "note": "  "})

    assert refused.status_code == 422
    assert field_errors(refused) == {
        "note": "Error: Tell the mentor why: a note is required for this decision."
    }
    assert _CHECKED.findall(refused.get_data(as_text=True)) == ["decision-reject"]
    assert db.session.get(MentorProfile, profile.id).vetting_status == VettingStatus.PENDING_REVIEW.value

    approved = post_form(client, path, {"decision": "approve", "note": "Strong references"})

    assert (approved.status_code, approved.headers["Location"]) == (303, path)
    after = client.get(path).get_data(as_text=True)
    assert "profile is approved" in after
    assert re.findall(r'name="decision" value="([a-z_]+)"', after) == ["suspend"]
    assert "Strong references" in _text(after)
    events = db.session.scalars(select(VettingEvent).where(VettingEvent.profile_id == profile.id)).all()
    assert [(e.decision, e.admin_id, e.note) for e in events] == [("approve", admin.id, "Strong references")]
    conflict = post_form(client, path, {"decision": "approve", "note": ""})
    assert conflict.status_code == 409
    assert "Cannot approve a profile that is approved." in conflict.get_data(as_text=True)
    assert client.get("/admin/vetting/999999").status_code == 404


def test_a_form_sent_without_its_token_changes_nothing_and_keeps_what_was_typed(client: FlaskClient) -> None:
    profile = MentorProfileFactory(vetting_status=VettingStatus.PENDING_REVIEW.value)
    db.session.commit()
    _admin(client)

    response = client.post(f"/admin/vetting/{profile.id}", data={"decision": "reject", "note": "Kept note"})

    assert response.status_code == 403
    html = response.get_data(as_text=True)
    assert "This form has expired" in html
    assert ">Kept note</textarea>" in html
    assert db.session.get(MentorProfile, profile.id).vetting_status == VettingStatus.PENDING_REVIEW.value


@pytest.mark.usefixtures("clock")
def test_an_admin_refunds_any_amount_up_to_what_was_paid_once_per_form(
    client: FlaskClient, mentor: MentorProfile, learner: ApiUser, stripe_client: StripeTestClient
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, THURSDAY_10)
    intent_id = body["payment"]["payment_intent_id"]
    _admin(client)
    page = f"/admin/bookings/{body['id']}"
    path = f"{page}/refund"
    shown = client.get(page).get_data(as_text=True)
    assert 'name="amount" type="text" required value="60.00"' in shown
    key = re.search(r'name="request_key" value="([^"]+)"', shown).group(1)  # type: ignore[union-attr]

    too_much = post_form(
        client, path, {"amount": "70", "reason": "Audio broke", "request_key": key}, token_from=page
    )
    not_money = post_form(
        client, path, {"amount": "12.345", "reason": "Audio broke", "request_key": key}, token_from=page
    )
    no_reason = post_form(client, path, {"amount": "20", "reason": "", "request_key": key}, token_from=page)

    assert (too_much.status_code, field_errors(too_much)) == (
        422,
        {"amount": "Error: At most $60.00 is left to refund."},
    )
    assert ">Audio broke</textarea>" in too_much.get_data(as_text=True)
    assert field_errors(not_money) == {"amount": "Error: Enter an amount like 12.50."}
    assert field_errors(no_reason) == {"reason": "Error: Please fill in this field."}
    assert refunds_at_stripe(stripe_client, intent_id) == []

    first = post_form(
        client, path, {"amount": "20.00", "reason": "Audio broke", "request_key": key}, token_from=page
    )
    again = post_form(
        client, path, {"amount": "20.00", "reason": "Audio broke", "request_key": key}, token_from=page
    )

    assert (first.status_code, first.headers["Location"]) == (303, page)
    assert again.status_code == 303
    assert refunds_at_stripe(stripe_client, intent_id) == [2000]
    after = _text(client.get(page).get_data(as_text=True))
    assert "Refunded 20.00 USD to the learner." in after
    assert "$20.00 , succeeded" in after
    assert "Left to refund $40.00" in after
    (made,) = db.session.scalars(select(AdminRefund)).all()
    assert (made.amount_cents, made.reason) == (2000, "Audio broke")


def test_the_list_filters_and_an_admin_decides_a_dispute_between_the_parties(
    client: FlaskClient,
    mentor: MentorProfile,
    mentor_api: ApiUser,
    learner: ApiUser,
    stripe_client: StripeTestClient,
    clock: time_machine.Coordinates,
) -> None:
    body = confirmed_booking(client, learner, mentor, stripe_client, THURSDAY_10)
    clock.move_to(DURING)
    assert mentor_api.post(f"/api/v1/bookings/{body['id']}/no-show", json=LEARNER_ABSENT).status_code == 200
    assert learner.post(f"/api/v1/bookings/{body['id']}/no-show", json=MENTOR_ABSENT).status_code == 200
    _admin(client)
    page = f"/admin/bookings/{body['id']}"

    def listed(query: str) -> list[str]:
        response = client.get(f"/admin/bookings?{query}")
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return re.findall(r'href="/admin/bookings/(\d+)"', response.get_data(as_text=True))

    assert listed("status=&mentor_id=&learner_id=&disputed=true") == [str(body["id"])]
    assert listed(f"status=confirmed&mentor_id={mentor.id}&disputed=") == []
    assert listed(f"status=no_show&learner_id={learner.user.id}") == [str(body["id"])]
    assert listed("disputed=false") == []
    assert client.get("/admin/bookings?status=lost").status_code == 422
    shown = _text(client.get(page).get_data(as_text=True))
    assert "Waited 20 minutes, nobody came." in shown
    assert "Decide the dispute" in shown

    unanswered = post_form(client, f"{page}/resolve", {}, token_from=page)
    assert (unanswered.status_code, field_errors(unanswered)) == (
        422,
        {"absent": "Error: Please fill in this field."},
    )

    decided = post_form(client, f"{page}/resolve", {"absent": "mentor"}, token_from=page)

    assert (decided.status_code, decided.headers["Location"]) == (303, page)
    booking = _booking(body["id"])
    assert (booking.no_show_party, booking.report_dispute_outcome) == ("mentor", "mentor")
    assert "the mentor did not come" in _text(client.get(page).get_data(as_text=True))
    assert post_form(client, f"{page}/resolve", {"absent": "learner"}, token_from="/admin").status_code == 409


def test_parked_work_is_listed_and_retried_from_the_pages(client: FlaskClient) -> None:
    parked = OutboxMessage(
        task="mentors.refresh_next_available",
        payload={"profile_id": 7},
        attempts=9,
        last_error="broker down",
        parked_at=datetime(2027, 1, 1, tzinfo=UTC),
    )
    failed = SentEmail(
        kind="booking_confirmed",
        object_id=1,
        recipient="lin@example.test",
        status=EmailStatus.FAILED.value,
        attempts=5,
        last_error="550 mailbox unavailable",
    )
    db.session.add_all([parked, failed])
    db.session.commit()
    _admin(client)

    outbox_page = _text(client.get("/admin/outbox").get_data(as_text=True))
    emails_page = _text(client.get("/admin/emails").get_data(as_text=True))
    assert "mentors.refresh_next_available" in outbox_page
    assert "broker down" in outbox_page
    assert "To lin@example.test" in emails_page
    assert "550 mailbox unavailable" in emails_page

    retried = post_form(client, f"/admin/outbox/{parked.id}/retry", {}, token_from="/admin/outbox")
    mailed = post_form(client, f"/admin/emails/{failed.id}/retry", {}, token_from="/admin/emails")

    assert (retried.status_code, retried.headers["Location"]) == (303, "/admin/outbox")
    assert (mailed.status_code, mailed.headers["Location"]) == (303, "/admin/emails")
    db.session.expire_all()
    assert (parked.parked_at, parked.attempts) == (None, 0)
    assert failed.status != EmailStatus.FAILED.value
    again = post_form(client, f"/admin/outbox/{parked.id}/retry", {}, token_from="/admin/outbox")
    assert again.status_code == 409
    assert "Only a failed message can be retried" in again.get_data(as_text=True)
