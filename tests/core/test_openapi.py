"""The OpenAPI document tells the truth: who may call each operation, what the answers look like (nulls,
the pagination header, content types), and which headers the service reads. Walks the document itself
where it can, so a new route is held to the same rules."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30ReadValidator
from werkzeug.test import TestResponse

from marketplace.accounts.models import Role
from marketplace.bookings.models import BookingStatus
from marketplace.core.api import BEARER_SCHEME, COOKIE_SCHEME
from marketplace.extensions import db
from marketplace.mentors.vetting import VettingStatus
from tests.factories import (
    PASSWORD,
    AvailabilityScheduleFactory,
    BookingFactory,
    MentorProfileFactory,
    UserFactory,
)
from tests.helpers import ApiUser

SIGNED_IN = [{BEARER_SCHEME: []}, {COOKIE_SCHEME: []}]
# Path parameters that fit their converter, so the request reaches the view (and its guards).
SAMPLE_PATH_VALUES = {"slug": "backend-developer", "day": "2030-01-07", "token": "not-a-feed"}


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    return client.get("/api/openapi.json").get_json()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: SAMPLE_PATH_VALUES.get(match.group(1), "1"), path)


def _assert_matches(spec: dict[str, Any], path: str, method: str, response: TestResponse) -> None:
    """The body validates against the schema documented for this status and content type."""
    responses = spec["paths"][path][method]["responses"]
    documented = responses.get(str(response.status_code)) or responses["default"]
    if "$ref" in documented:
        documented = spec["components"]["responses"][documented["$ref"].rsplit("/", 1)[1]]
    schema = documented["content"][response.mimetype]["schema"]
    # The components ride along, so "#/components/..." resolves inside this one document.
    OAS30ReadValidator({**schema, "components": spec["components"]}).validate(response.get_json())


def test_both_ways_to_sign_in_are_declared(spec: dict[str, Any], client: FlaskClient) -> None:
    schemes = spec["components"]["securitySchemes"]

    assert schemes[BEARER_SCHEME] == {**schemes[BEARER_SCHEME], "type": "http", "scheme": "bearer"}
    assert schemes[COOKIE_SCHEME]["in"] == "cookie"
    assert schemes[COOKIE_SCHEME]["name"] == client.application.config["SESSION_COOKIE_NAME"]
    assert "X-CSRF-Token" in schemes[COOKIE_SCHEME]["description"]


def test_every_operation_declares_the_security_it_enforces(spec: dict[str, Any], client: FlaskClient) -> None:
    """Anonymous calls answer 401 exactly where the document asks for a signed-in user."""
    mismatches = []
    for path, method, operation in _operations(spec):
        response = client.open(_url(path), method=method.upper(), json={})
        requires_login = operation["security"] == SIGNED_IN
        if (response.status_code == 401) != requires_login:
            mismatches.append((method.upper(), path, operation["security"], response.status_code))
        if requires_login:
            assert "401" in operation["responses"], (method, path)

    assert mismatches == []


def test_unsafe_cookie_calls_document_the_csrf_header_they_need(
    spec: dict[str, Any], client: FlaskClient
) -> None:
    admin = UserFactory(roles=(Role.ADMIN, Role.MENTOR, Role.LEARNER))
    db.session.commit()
    client.post("/api/v1/auth/login", json={"email": admin.email, "password": PASSWORD})
    refused = []
    for path, method, operation in _operations(spec):
        if method == "get" or not any(COOKIE_SCHEME in option for option in operation["security"]):
            continue
        response = client.open(_url(path), method=method.upper(), json={})
        refused.append((method, path, response.status_code))
        names = [parameter["name"] for parameter in operation.get("parameters", [])]
        assert "X-CSRF-Token" in names, (method, path)
        assert "403" in operation["responses"], (method, path)

    assert refused
    assert {status for _method, _path, status in refused} == {403}


def test_fields_that_can_be_null_are_documented_nullable(spec: dict[str, Any], client: FlaskClient) -> None:
    mentor = MentorProfileFactory(
        headline=None,
        bio=None,
        years_experience=None,
        price_cents=None,
        currency=None,
        timezone=None,
        vetting_status=VettingStatus.DRAFT.value,
    )
    public = MentorProfileFactory(rating_avg=None, next_available_at=None)
    AvailabilityScheduleFactory(profile=public)
    learner = ApiUser(client, UserFactory())
    held = BookingFactory(
        mentor=public,
        learner=learner.user,
        status=BookingStatus.PENDING_PAYMENT.value,
        start_at=public.created_at,
        end_at=public.created_at.replace(year=public.created_at.year + 1),
        topic="Nulls",
        price_cents=6000,
        hold_expires_at=public.created_at,
    )
    db.session.commit()

    own = ApiUser(client, mentor.user).get("/api/v1/me/mentor-profile")
    listed = client.get("/api/v1/mentors")
    shown = client.get(f"/api/v1/mentors/{public.id}")
    booking = learner.get(f"/api/v1/bookings/{held.id}")

    assert own.get_json()["price_cents"] is None
    assert shown.get_json()["rating_avg"] is None
    assert booking.get_json()["payment"]["payment_intent_id"] is None
    _assert_matches(spec, "/api/v1/me/mentor-profile", "get", own)
    _assert_matches(spec, "/api/v1/mentors", "get", listed)
    _assert_matches(spec, "/api/v1/mentors/{mentor_id}", "get", shown)
    _assert_matches(spec, "/api/v1/bookings/{booking_id}", "get", booking)


def test_the_pagination_header_is_the_documented_json(spec: dict[str, Any], client: FlaskClient) -> None:
    MentorProfileFactory.create_batch(3)
    db.session.commit()
    header = spec["paths"]["/api/v1/mentors"]["get"]["responses"]["200"]["headers"]["X-Pagination"]
    schema = spec["components"]["headers"][header["$ref"].rsplit("/", 1)[1]]["content"]["application/json"]

    middle = json.loads(client.get("/api/v1/mentors?page=2&page_size=1").headers["X-Pagination"])

    assert middle == {
        "total": 3,
        "total_pages": 3,
        "page": 2,
        "page_size": 1,
        "previous_page": 1,
        "next_page": 3,
    }
    OAS30ReadValidator({**schema["schema"], "components": spec["components"]}).validate(middle)


def test_errors_are_documented_with_the_error_shape(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["Error"]

    assert set(error["required"]) == {"code", "status", "message"}
    for path, method, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if status.isdigit() and int(status) >= 400 and "$ref" not in response:
                assert "application/json" in response["content"] or "text/html" in response["content"], (
                    method,
                    path,
                    status,
                )


def test_idempotency_key_is_documented_where_it_is_honoured(spec: dict[str, Any]) -> None:
    honouring = {
        (method, path)
        for path, method, operation in _operations(spec)
        if "Idempotency-Key" in [parameter["name"] for parameter in operation.get("parameters", [])]
    }

    assert honouring == {
        ("post", "/api/v1/bookings"),
        ("post", "/api/v1/bookings/{booking_id}/cancel"),
        ("post", "/api/v1/bookings/{booking_id}/reschedule"),
        ("post", "/api/v1/bookings/{booking_id}/accept"),
        ("post", "/api/v1/bookings/{booking_id}/decline"),
        ("post", "/api/v1/bookings/{booking_id}/no-show"),
        ("post", "/api/v1/admin/bookings/{booking_id}/refund"),
        ("post", "/api/v1/admin/bookings/{booking_id}/resolve"),
    }


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/metrics", "text/plain"),
        ("/careers", "text/html"),
        ("/calendar/{token}.ics", "text/calendar"),
        ("/api/v1/bookings/{booking_id}/calendar.ics", "text/calendar"),
    ],
)
def test_bodies_that_are_not_json_are_declared_with_their_type(
    spec: dict[str, Any], client: FlaskClient, path: str, content_type: str
) -> None:
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]

    assert list(content) == [content_type]
    if "{" not in path:
        assert client.get(path).mimetype == content_type
