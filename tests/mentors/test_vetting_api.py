from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from marketplace.accounts.models import Role
from marketplace.careers.content import load_career_paths
from marketplace.careers.service import sync_career_paths
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus
from tests.careers.support import load_paths
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import ApiUser, assert_error_shape

COMPLETE_PROFILE = {
    "headline": "Backend engineer at a bank",
    "bio": "Ten years of Python services.",
    "skills": ["Python", "SQL", "python"],
    "career_paths": ["backend-developer"],
    "languages": ["en", "de"],
    "years_experience": 10,
    "price_cents": 7500,
    "currency": "eur",
    "session_minutes": [60, 30],
    "timezone": "Europe/Berlin",
}


@pytest.fixture(autouse=True)
def _career_paths(client: FlaskClient) -> None:
    """Mentors choose among the career paths loaded into the database."""
    load_paths()


def _register(client: FlaskClient, email: str, role: str) -> ApiUser:
    response = client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": "a-long-password", "name": email.split("@")[0], "role": role},
    )
    assert response.status_code == 201
    token = client.post("/api/v1/auth/tokens", json={"email": email, "password": "a-long-password"})
    return _TokenClient(client, token.get_json()["token"])


class _TokenClient(ApiUser):
    """An API user known only by the token it obtained over HTTP."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.token = token


def _admin(app: Flask, client: FlaskClient) -> ApiUser:
    result = app.test_cli_runner().invoke(
        args=["create-admin", "admin@example.test", "--password", "admin-password-1"]
    )
    assert result.exit_code == 0, result.output
    token = client.post(
        "/api/v1/auth/tokens", json={"email": "admin@example.test", "password": "admin-password-1"}
    )
    return _TokenClient(client, token.get_json()["token"])


def _public_ids(client: FlaskClient) -> list[int]:
    return [m["id"] for m in client.get("/api/v1/mentors").get_json()]


def test_the_whole_vetting_story_over_http(app: Flask, client: FlaskClient) -> None:
    mentor = _register(client, "mia@example.test", "mentor")

    saved = mentor.put("/api/v1/me/mentor-profile", json=COMPLETE_PROFILE)
    assert saved.status_code == 200
    profile = saved.get_json()
    assert profile["vetting_status"] == "draft"
    assert profile["skills"] == ["python", "sql"]
    assert profile["currency"] == "EUR"
    assert profile["session_minutes"] == [30, 60]
    mentor_id = profile["id"]

    submitted = mentor.post("/api/v1/me/mentor-profile/submit")
    assert submitted.get_json()["vetting_status"] == "pending_review"
    assert_error_shape(mentor.post("/api/v1/me/mentor-profile/submit"), 409)
    assert_error_shape(client.get(f"/api/v1/mentors/{mentor_id}"), 404)
    assert mentor_id not in _public_ids(client)

    admin = _admin(app, client)
    queue = admin.get("/api/v1/admin/vetting-queue?status=pending_review")
    assert [p["id"] for p in queue.get_json()] == [mentor_id]
    assert json.loads(queue.headers["X-Pagination"])["total"] == 1

    approved = admin.post(
        f"/api/v1/admin/mentors/{mentor_id}/vetting", json={"decision": "approve", "note": "ok"}
    )
    assert approved.get_json()["vetting_status"] == "approved"
    assert mentor_id in _public_ids(client)
    public = client.get(f"/api/v1/mentors/{mentor_id}").get_json()
    assert public["name"] == "mia"
    assert "vetting_status" not in public
    assert {"rating_avg", "rating_count", "next_available_at"} <= set(public)

    suspended = admin.post(
        f"/api/v1/admin/mentors/{mentor_id}/vetting", json={"decision": "suspend", "note": "complaints"}
    )
    assert suspended.status_code == 200
    assert mentor_id not in _public_ids(client)
    assert_error_shape(client.get(f"/api/v1/mentors/{mentor_id}"), 404)

    history = admin.get(f"/api/v1/admin/mentors/{mentor_id}/vetting-history").get_json()
    steps = [(h["from_status"], h["to_status"], h["decision"]) for h in history]
    assert steps == [
        ("draft", "pending_review", "submit"),
        ("pending_review", "approved", "approve"),
        ("approved", "suspended", "suspend"),
    ]
    assert history[0]["admin_id"] is None
    assert history[1]["admin_id"] == history[2]["admin_id"] is not None
    assert history[2]["note"] == "complaints"
    assert all(h["at"] for h in history)


def test_changes_requested_can_be_resubmitted(app: Flask, client: FlaskClient) -> None:
    mentor = _register(client, "mia@example.test", "mentor")
    mentor_id = mentor.put("/api/v1/me/mentor-profile", json=COMPLETE_PROFILE).get_json()["id"]
    mentor.post("/api/v1/me/mentor-profile/submit")
    admin = _admin(app, client)

    admin.post(
        f"/api/v1/admin/mentors/{mentor_id}/vetting", json={"decision": "request_changes", "note": "bio"}
    )
    mentor.put("/api/v1/me/mentor-profile", json={"bio": "A longer bio about my work."})
    again = mentor.post("/api/v1/me/mentor-profile/submit")

    assert again.status_code == 200
    assert again.get_json()["vetting_status"] == "pending_review"


def test_an_incomplete_profile_cannot_be_submitted_and_the_error_names_what_is_missing(
    client: FlaskClient,
) -> None:
    mentor = _register(client, "mia@example.test", "mentor")
    mentor.put("/api/v1/me/mentor-profile", json={"headline": "Hi", "skills": ["python"]})

    body = assert_error_shape(mentor.post("/api/v1/me/mentor-profile/submit"), 422)

    assert set(body["errors"]) == {
        "bio",
        "career_paths",
        "languages",
        "years_experience",
        "price_cents",
        "currency",
        "session_minutes",
        "timezone",
    }
    assert mentor.get("/api/v1/me/mentor-profile").get_json()["vetting_status"] == "draft"


def test_submitting_without_a_profile_is_404(client: FlaskClient) -> None:
    mentor = _register(client, "mia@example.test", "mentor")

    assert_error_shape(mentor.post("/api/v1/me/mentor-profile/submit"), 404)
    assert_error_shape(mentor.get("/api/v1/me/mentor-profile"), 404)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("career_paths", ["astronaut"]),
        ("session_minutes", [7]),
        ("price_cents", -1),
        ("currency", "XXX"),
        ("timezone", "Nowhere/City"),
        ("languages", ["English"]),
        ("skills", "python"),
        ("years_experience", "many"),
    ],
)
def test_bad_profile_fields_are_422(client: FlaskClient, field: str, value: Any) -> None:
    mentor = _register(client, "mia@example.test", "mentor")

    body = assert_error_shape(mentor.put("/api/v1/me/mentor-profile", json={field: value}), 422)

    assert field in body["errors"]["json"]


def test_learners_have_no_mentor_profile(client: FlaskClient) -> None:
    learner = _register(client, "leo@example.test", "learner")

    assert_error_shape(learner.put("/api/v1/me/mentor-profile", json={"headline": "x"}), 403)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/admin/vetting-queue"),
        ("post", "/api/v1/admin/mentors/{id}/vetting"),
        ("get", "/api/v1/admin/mentors/{id}/vetting-history"),
    ],
)
def test_learners_and_mentors_get_403_on_every_admin_endpoint(
    client: FlaskClient, method: str, path: str
) -> None:
    profile = MentorProfileFactory(vetting_status=VettingStatus.PENDING_REVIEW.value)
    db.session.commit()
    url = path.format(id=profile.id)
    for role in ("learner", "mentor"):
        caller = _register(client, f"{role}@example.test", role)
        kwargs = {"json": {"decision": "approve"}} if method == "post" else {}
        assert_error_shape(getattr(caller, method)(url, **kwargs), 403)
    assert_error_shape(getattr(client, method)(url), 401)


def test_another_mentor_editing_a_profile_gets_404(client: FlaskClient) -> None:
    owner = MentorProfileFactory(headline="Original")
    db.session.commit()
    intruder = _register(client, "eve@example.test", "mentor")

    assert_error_shape(intruder.patch(f"/api/v1/mentors/{owner.id}", json={"headline": "Hacked"}), 404)
    assert db.session.get(MentorProfile, owner.id).headline == "Original"


def test_the_owner_can_edit_a_draft_by_id(client: FlaskClient) -> None:
    owner = MentorProfileFactory(headline="Original", vetting_status=VettingStatus.DRAFT.value)
    api = ApiUser(client, owner.user)

    response = api.patch(f"/api/v1/mentors/{owner.id}", json={"headline": "Updated"})

    assert response.status_code == 200
    assert response.get_json()["headline"] == "Updated"


def test_an_admin_cannot_vet_their_own_profile(client: FlaskClient) -> None:
    profile = MentorProfileFactory(
        vetting_status=VettingStatus.PENDING_REVIEW.value,
        user=UserFactory(roles=(Role.MENTOR, Role.ADMIN)),
    )
    api = ApiUser(client, profile.user)

    assert_error_shape(
        api.post(f"/api/v1/admin/mentors/{profile.id}/vetting", json={"decision": "approve"}), 403
    )
    assert db.session.get(MentorProfile, profile.id).vetting_status == "pending_review"


def test_a_forbidden_transition_is_409_and_changes_nothing(client: FlaskClient) -> None:
    profile = MentorProfileFactory(vetting_status=VettingStatus.DRAFT.value)
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))

    assert_error_shape(
        admin.post(f"/api/v1/admin/mentors/{profile.id}/vetting", json={"decision": "approve"}), 409
    )
    assert db.session.get(MentorProfile, profile.id).vetting_status == "draft"
    assert admin.get(f"/api/v1/admin/mentors/{profile.id}/vetting-history").get_json() == []


def test_refusals_need_a_note(client: FlaskClient) -> None:
    profile = MentorProfileFactory(vetting_status=VettingStatus.PENDING_REVIEW.value)
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))

    body = assert_error_shape(
        admin.post(f"/api/v1/admin/mentors/{profile.id}/vetting", json={"decision": "reject"}), 422
    )
    assert "note" in body["errors"]["json"]


def test_vetting_an_unknown_mentor_is_404(client: FlaskClient) -> None:
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))

    assert_error_shape(admin.post("/api/v1/admin/mentors/999999/vetting", json={"decision": "approve"}), 404)
    assert_error_shape(admin.get("/api/v1/admin/mentors/999999/vetting-history"), 404)


def test_queue_rejects_an_unknown_status(client: FlaskClient) -> None:
    admin = ApiUser(client, UserFactory(roles=(Role.ADMIN,)))

    assert_error_shape(admin.get("/api/v1/admin/vetting-queue?status=bogus"), 422)


def test_a_career_path_loaded_from_another_directory_can_be_chosen(client: FlaskClient) -> None:
    """The schema accepts what `load-career-paths` loaded, not what the shipped files hold."""
    mentor = _register(client, "mia@example.test", "mentor")
    assert_error_shape(mentor.put("/api/v1/me/mentor-profile", json={"career_paths": ["astronaut"]}), 422)
    content = load_career_paths()[0]
    sync_career_paths([*load_career_paths(), {**content, "slug": "astronaut", "related": []}])

    response = mentor.put("/api/v1/me/mentor-profile", json={"career_paths": ["astronaut"]})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["career_paths"] == ["astronaut"]
