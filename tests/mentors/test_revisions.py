"""Profile revisions: a submitted mentor's changes to public fields wait for an admin, and the public keeps
the approved version until one approves them."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.accounts.models import Role
from marketplace.core.outbox import OutboxMessage
from marketplace.extensions import db
from marketplace.mentors import catalog
from marketplace.mentors.models import MentorProfile, VettingEvent
from marketplace.mentors.vetting import VettingStatus
from marketplace.notifications.messages import Kind, compose
from marketplace.notifications.service import SEND_EMAIL_TASK
from tests.factories import MentorProfileFactory, UserFactory
from tests.helpers import ApiUser, assert_error_shape

ME = "/api/v1/me/mentor-profile"
HOSTILE = {"headline": "Cheap sessions, visit evil.example", "price_cents": 9900}


def _vetting(mentor_id: int) -> str:
    return f"/api/v1/admin/mentors/{mentor_id}/vetting"


def _history(admin: ApiUser, mentor_id: int) -> list[tuple[str, str, str, str | None, bool]]:
    response = admin.get(f"/api/v1/admin/mentors/{mentor_id}/vetting-history")
    assert response.status_code == 200
    return [
        (h["decision"], h["from_status"], h["to_status"], h["note"], h["revision_id"] is not None)
        for h in response.get_json()
    ]


def _search_headlines(client: FlaskClient, query: str) -> list[str]:
    response = client.get(f"/api/v1/mentors?q={query}")
    assert response.status_code == 200
    return [m["headline"] for m in response.get_json()]


def _mails_requested(kind: Kind) -> list[dict[str, Any]]:
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.task == SEND_EMAIL_TASK))
    return [row.payload for row in rows if row.payload["kind"] == kind.value]


@pytest.fixture
def mentor(client: FlaskClient) -> ApiUser:
    """An approved mentor, public under the headline 'Senior backend engineer' at 80 USD an hour."""
    profile = MentorProfileFactory(headline="Senior backend engineer", bio="Kubernetes and Go.")
    return ApiUser(client, profile.user)


@pytest.fixture
def admin(client: FlaskClient) -> ApiUser:
    return ApiUser(client, UserFactory(roles=(Role.ADMIN,)))


def _profile_id(mentor: ApiUser) -> int:
    return db.session.scalars(select(MentorProfile.id).where(MentorProfile.user_id == mentor.user.id)).one()


def test_an_approved_mentors_edit_waits_and_the_public_keeps_the_approved_version(
    client: FlaskClient, mentor: ApiUser
) -> None:
    mentor_id = _profile_id(mentor)

    saved = mentor.put(ME, json={**HOSTILE, "timezone": "America/New_York"})

    assert saved.status_code == 200, saved.get_data(as_text=True)
    body = saved.get_json()
    assert body["vetting_status"] == "approved"
    assert body["headline"] == "Senior backend engineer"
    assert body["price_cents"] == 8000
    assert body["timezone"] == "America/New_York"  # not a public field: it applies at once
    assert body["revision"]["status"] == "pending"
    assert body["revision"]["changes"] == HOSTILE
    assert body["revision"]["admin_note"] is None
    assert mentor.get(ME).get_json()["revision"] == body["revision"]

    public = client.get(f"/api/v1/mentors/{mentor_id}").get_json()
    assert public["headline"] == "Senior backend engineer"
    assert public["price_cents"] == 8000
    assert "revision" not in public
    page = client.get(f"/mentors/{mentor_id}").get_data(as_text=True)
    assert "Senior backend engineer" in page
    assert "evil.example" not in page
    assert _search_headlines(client, "evil") == []
    assert _search_headlines(client, "senior") == ["Senior backend engineer"]
    assert db.session.get(MentorProfile, mentor_id).price_cents == 8000  # what a booking is charged


@pytest.mark.parametrize(
    ("status", "revised"),
    [
        (VettingStatus.DRAFT, False),
        (VettingStatus.CHANGES_REQUESTED, False),
        (VettingStatus.REJECTED, False),
        (VettingStatus.PENDING_REVIEW, True),
        (VettingStatus.APPROVED, True),
        (VettingStatus.SUSPENDED, True),
    ],
)
def test_only_a_submitted_profile_is_revised_the_others_are_edited_in_place(
    client: FlaskClient, status: VettingStatus, revised: bool
) -> None:
    profile = MentorProfileFactory(headline="Before", vetting_status=status.value)
    owner = ApiUser(client, profile.user)

    body = owner.put(ME, json={"headline": "After"}).get_json()

    assert body["headline"] == ("Before" if revised else "After")
    assert (body["revision"] is not None) is revised
    assert body["vetting_status"] == status.value


def test_editing_by_id_follows_the_same_rules(client: FlaskClient, mentor: ApiUser) -> None:
    mentor_id = _profile_id(mentor)

    body = mentor.patch(f"/api/v1/mentors/{mentor_id}", json={"headline": "Patched"}).get_json()

    assert body["headline"] == "Senior backend engineer"
    assert body["revision"]["changes"] == {"headline": "Patched"}


def test_approving_a_revision_publishes_it_and_search_sees_it_only_then(
    client: FlaskClient, mentor: ApiUser, admin: ApiUser
) -> None:
    mentor_id = _profile_id(mentor)
    assert _search_headlines(client, "platform") == []  # cached for this catalog version
    mentor.put(ME, json={"headline": "Platform engineering mentor", "skills": ["go", "kubernetes"]})
    revision = mentor.get(ME).get_json()["revision"]

    queue = admin.get("/api/v1/admin/vetting-queue?status=revision_pending")
    assert [(p["id"], p["revision"]["id"]) for p in queue.get_json()] == [(mentor_id, revision["id"])]
    assert queue.get_json()[0]["headline"] == "Senior backend engineer"
    assert _search_headlines(client, "platform") == []
    before = catalog.version()

    approved = admin.post(
        _vetting(mentor_id), json={"decision": "approve_revision", "revision_id": revision["id"]}
    )

    assert approved.status_code == 200, approved.get_data(as_text=True)
    assert approved.get_json()["headline"] == "Platform engineering mentor"
    assert approved.get_json()["vetting_status"] == "approved"
    assert approved.get_json()["revision"]["status"] == "approved"
    assert catalog.version() > before
    assert _search_headlines(client, "platform") == ["Platform engineering mentor"]
    assert _search_headlines(client, "senior") == []
    public = client.get(f"/api/v1/mentors/{mentor_id}").get_json()
    assert public["skills"] == ["go", "kubernetes"]
    assert "Platform engineering mentor" in client.get(f"/mentors/{mentor_id}").get_data(as_text=True)
    assert admin.get("/api/v1/admin/vetting-queue?status=revision_pending").get_json() == []
    assert _history(admin, mentor_id) == [
        ("submit_revision", "approved", "approved", "Proposed: headline, skills.", True),
        ("approve_revision", "approved", "approved", None, True),
    ]
    decision = db.session.scalars(
        select(VettingEvent).where(VettingEvent.profile_id == mentor_id).order_by(VettingEvent.id.desc())
    ).first()
    assert [m["object_id"] for m in _mails_requested(Kind.REVISION_APPROVED)] == [decision.id]
    (letter,) = compose(Kind.REVISION_APPROVED, decision.id, 0)
    assert letter.subject == "Your profile changes are live"


def test_rejecting_a_revision_keeps_the_public_version_and_tells_the_mentor_why(
    client: FlaskClient, mentor: ApiUser, admin: ApiUser
) -> None:
    mentor_id = _profile_id(mentor)
    mentor.put(ME, json=HOSTILE)
    note = "No links to other sites in the headline."

    rejected = admin.post(_vetting(mentor_id), json={"decision": "reject_revision", "note": note})

    assert rejected.status_code == 200, rejected.get_data(as_text=True)
    assert client.get(f"/api/v1/mentors/{mentor_id}").get_json()["headline"] == "Senior backend engineer"
    own = mentor.get(ME).get_json()
    assert own["headline"] == "Senior backend engineer"
    assert own["revision"]["status"] == "rejected"
    assert own["revision"]["admin_note"] == note
    assert own["revision"]["changes"] == HOSTILE
    assert own["revision"]["decided_at"] is not None
    assert _history(admin, mentor_id) == [
        ("submit_revision", "approved", "approved", "Proposed: headline, price_cents.", True),
        ("reject_revision", "approved", "approved", note, True),
    ]
    (mail,) = _mails_requested(Kind.REVISION_REJECTED)
    (letter,) = compose(Kind.REVISION_REJECTED, mail["object_id"], 0)
    assert letter.recipient.id == mentor.user.id
    assert letter.subject == "Your profile changes were not accepted"
    assert letter.context["note"] == note
    assert _mails_requested(Kind.APPLICATION_APPROVED) == []  # not mistaken for a vetting decision


def test_a_second_edit_replaces_the_pending_revision_and_the_live_values_withdraw_it(
    mentor: ApiUser, admin: ApiUser
) -> None:
    mentor_id = _profile_id(mentor)
    first = mentor.put(ME, json={"headline": "First try"}).get_json()["revision"]

    second = mentor.put(ME, json={"bio": "Go, Kubernetes and on-call."}).get_json()["revision"]

    assert second["id"] != first["id"]
    assert second["changes"] == {"headline": "First try", "bio": "Go, Kubernetes and on-call."}
    queue = admin.get("/api/v1/admin/vetting-queue?status=revision_pending").get_json()
    assert [p["revision"]["id"] for p in queue] == [second["id"]]
    stale = admin.post(_vetting(mentor_id), json={"decision": "approve_revision", "revision_id": first["id"]})
    assert_error_shape(stale, 409)
    assert mentor.get(ME).get_json()["headline"] == "Senior backend engineer"

    same_again = mentor.put(ME, json={"bio": "Go, Kubernetes and on-call."}).get_json()["revision"]
    assert same_again["id"] == second["id"]
    back = mentor.put(ME, json={"headline": "Senior backend engineer", "bio": "Kubernetes and Go."})
    assert back.get_json()["revision"]["status"] == "withdrawn"
    assert admin.get("/api/v1/admin/vetting-queue?status=revision_pending").get_json() == []
    assert [step[0] for step in _history(admin, mentor_id)] == [
        "submit_revision",
        "submit_revision",
        "withdraw_revision",
    ]


@pytest.mark.parametrize("decision", ["approve_revision", "reject_revision"])
def test_deciding_a_revision_that_does_not_exist_is_409(
    mentor: ApiUser, admin: ApiUser, decision: str
) -> None:
    mentor_id = _profile_id(mentor)

    assert_error_shape(admin.post(_vetting(mentor_id), json={"decision": decision, "note": "why"}), 409)

    assert _history(admin, mentor_id) == []
    assert mentor.get(ME).get_json()["revision"] is None


def test_only_an_admin_decides_a_revision_and_a_rejection_needs_a_note(
    client: FlaskClient, mentor: ApiUser, admin: ApiUser
) -> None:
    mentor_id = _profile_id(mentor)
    mentor.put(ME, json=HOSTILE)
    learner = ApiUser(client, UserFactory(roles=(Role.LEARNER,)))
    other_mentor = ApiUser(client, MentorProfileFactory().user)

    for caller in (mentor, learner, other_mentor):
        assert_error_shape(caller.post(_vetting(mentor_id), json={"decision": "approve_revision"}), 403)
    body = assert_error_shape(admin.post(_vetting(mentor_id), json={"decision": "reject_revision"}), 422)
    assert "note" in body["errors"]["json"]

    assert mentor.get(ME).get_json()["revision"]["status"] == "pending"
    assert client.get(f"/api/v1/mentors/{mentor_id}").get_json()["headline"] == "Senior backend engineer"


BAD_VALUES = [
    ("headline", None),
    ("bio", None),
    ("price_cents", None),
    ("currency", None),
    ("years_experience", None),
    ("timezone", None),
    ("price_cents", 0),
    ("price_cents", 1),
    ("price_cents", 49),
    ("price_cents", 1_000_000),
    ("languages", ["xx"]),
    ("languages", ["en", "zxx"]),
    ("currency", "XXX"),
    ("currency", "ZZZ"),
    ("currency", "ZAR"),  # real, but no Stripe minimum known here
]


@pytest.mark.parametrize("status", [VettingStatus.DRAFT, VettingStatus.APPROVED])
@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_values_are_422_with_a_field_error_and_change_nothing(
    client: FlaskClient, status: VettingStatus, field: str, value: Any
) -> None:
    profile = MentorProfileFactory(vetting_status=status.value)
    owner = ApiUser(client, profile.user)

    body = assert_error_shape(owner.put(ME, json={field: value}), 422)

    assert field in body["errors"]["json"], body
    own = owner.get(ME).get_json()
    assert own["revision"] is None
    assert (own["price_cents"], own["currency"], own["languages"]) == (8000, "USD", ["en"])


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"currency": "JPY", "price_cents": 49}, "price_cents"),  # zero-decimal: 49 yen, under Stripe's 50
        ({"currency": "JPY"}, "currency"),  # 8000 yen an hour is fine, but ...
        ({"currency": "GBP", "price_cents": 29}, "price_cents"),
        ({"price_cents": 150, "session_minutes": [15, 60]}, "price_cents"),  # a 15-minute session: 38 cents
        ({"session_minutes": [15]}, "session_minutes"),
    ],
)
def test_the_price_is_checked_against_its_currency_and_the_shortest_session(
    client: FlaskClient, changes: dict[str, Any], field: str
) -> None:
    profile = MentorProfileFactory(vetting_status=VettingStatus.DRAFT.value, price_cents=8000)
    if changes == {"currency": "JPY"}:
        profile.price_cents = 200_000  # ... 200,000 yen an hour is past the cap (about 1,000 USD)
    elif changes == {"session_minutes": [15]}:
        profile.price_cents = 150
    owner = ApiUser(client, profile.user)

    body = assert_error_shape(owner.put(ME, json=changes), 422)

    assert field in body["errors"]["json"], body


@pytest.mark.parametrize(
    "changes",
    [
        {"currency": "JPY", "price_cents": 50, "session_minutes": [60]},
        {"currency": "JPY", "price_cents": 150_000},
        {"currency": "GBP", "price_cents": 30, "session_minutes": [60]},
        {"price_cents": 200, "session_minutes": [15, 60]},
        {"price_cents": 100_000},
    ],
)
def test_prices_at_the_bounds_are_accepted(client: FlaskClient, changes: dict[str, Any]) -> None:
    owner = ApiUser(client, MentorProfileFactory(vetting_status=VettingStatus.DRAFT.value).user)

    response = owner.put(ME, json=changes)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["price_cents"] == changes["price_cents"]


def test_languages_are_stored_as_cldr_codes(client: FlaskClient) -> None:
    owner = ApiUser(client, MentorProfileFactory(vetting_status=VettingStatus.DRAFT.value).user)

    response = owner.put(ME, json={"languages": ["ENG", "de", "iw", "yue"]})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["languages"] == ["en", "de", "he", "yue"]


@pytest.mark.parametrize(("field", "value"), [("headline", ""), ("skills", []), ("session_minutes", [])])
def test_a_revision_cannot_empty_a_required_field(
    mentor: ApiUser, admin: ApiUser, field: str, value: Any
) -> None:
    body = assert_error_shape(mentor.put(ME, json={field: value}), 422)

    assert field in body["errors"]["json"]
    assert mentor.get(ME).get_json()["revision"] is None


def test_a_draft_with_an_unchargeable_price_cannot_be_submitted(client: FlaskClient) -> None:
    profile = MentorProfileFactory(vetting_status=VettingStatus.DRAFT.value, price_cents=10)
    owner = ApiUser(client, profile.user)

    body = assert_error_shape(owner.post("/api/v1/me/mentor-profile/submit"), 422)

    assert "price_cents" in body["errors"]
    assert owner.get(ME).get_json()["vetting_status"] == "draft"


def test_search_reads_language_codes_as_profiles_store_them(client: FlaskClient) -> None:
    german = MentorProfileFactory(tags={"languages": ["de"]})
    MentorProfileFactory(tags={"languages": ["en"]})
    db.session.commit()

    for code in ("de", "DE", "ger", "deu"):
        response = client.get(f"/api/v1/mentors?language={code}")
        assert [m["id"] for m in response.get_json()] == [german.id], code
