"""A claim committed before its answer (a new hold commits before its PaymentIntent is made): a request with
the same key waits for the answer, gives up with 409 after a while, and takes over a claim whose request died."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine

from marketplace.core import idempotency
from marketplace.core.idempotency import IdempotencyKey
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from tests.fixtures.bookable import book
from tests.helpers import ApiUser, assert_error_shape

THURSDAY_10 = "2027-01-07T10:00:00+01:00"


def _unanswered_claim(learner: ApiUser, key: str) -> None:
    db.session.add(IdempotencyKey(user_id=learner.user.id, key=key, fingerprint="another request"))
    db.session.commit()


def test_a_claim_still_waiting_for_its_answer_makes_a_repeat_409_after_waiting(
    mentor: MentorProfile, learner: ApiUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "WAIT_FOR_ANSWER_SECONDS", 0.2)
    _unanswered_claim(learner, "in-flight")

    response = book(learner, mentor, THURSDAY_10, headers={"Idempotency-Key": "in-flight"})

    body = assert_error_shape(response, 409)
    assert "in progress" in body["message"]


def test_a_claim_left_without_an_answer_by_a_dead_request_is_taken_over(
    mentor: MentorProfile, learner: ApiUser, clock: time_machine.Coordinates
) -> None:
    _unanswered_claim(learner, "orphaned")
    clock.shift(idempotency.ABANDONED_AFTER + timedelta(seconds=1))

    response = book(learner, mentor, THURSDAY_10, headers={"Idempotency-Key": "orphaned"})

    assert response.status_code == 201, response.get_data(as_text=True)
    db.session.expire_all()
    (claim,) = db.session.query(IdempotencyKey).filter_by(key="orphaned").all()
    assert claim.response_status == 201
    replay = book(learner, mentor, THURSDAY_10, headers={"Idempotency-Key": "orphaned"})
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
