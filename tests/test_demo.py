from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from marketplace.accounts.models import User
from marketplace.bookings.models import Booking
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile, VettingEvent
from marketplace.scheduling.service import rules_for


def _counts() -> tuple[int, int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(User)),
        db.session.scalar(select(func.count()).select_from(MentorProfile)),
        db.session.scalar(select(func.count()).select_from(VettingEvent)),
    )


def test_seed_demo_is_idempotent_and_its_logins_work(app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()

    first = runner.invoke(args=["seed-demo"])
    after_first = _counts()
    second = runner.invoke(args=["seed-demo"])

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert after_first == _counts()
    users, profiles, _ = after_first
    assert profiles >= 12
    assert users >= profiles + 4
    statuses = set(db.session.scalars(select(MentorProfile.vetting_status)))
    assert statuses >= {"approved", "pending_review", "draft", "changes_requested", "suspended"}
    booking_states = set(db.session.scalars(select(Booking.status)))
    assert booking_states >= {"pending_payment", "confirmed", "cancelled", "completed"}
    approved = db.session.scalars(
        select(MentorProfile).where(MentorProfile.vetting_status == "approved")
    ).all()
    assert all(rules_for(profile) is not None for profile in approved)
    assert all(profile.rating_count >= 1 for profile in approved)
    # Search shows them with their first free slot at once: computed by the command, not left to a queue.
    assert all(profile.next_available_at is not None for profile in approved)
    for line in first.output.splitlines()[1:]:
        _role, email, _slash, password = line.split()
        assert (
            client.post("/api/v1/auth/login", json={"email": email, "password": password}).status_code == 200
        )


@pytest.mark.parametrize("environment", ["production", "testing"])
def test_seed_demo_refuses_outside_development(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setitem(app.config, "APP_ENV", environment)

    result = app.test_cli_runner().invoke(args=["seed-demo"])

    assert result.exit_code != 0
    assert "runs only in development" in result.output
    assert _counts() == (0, 0, 0)
