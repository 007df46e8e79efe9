"""Whatever a client sends gets a 4xx in the error shape, never a 5xx (issue 10, item 2).

The tables are generated from the app itself: every URL rule with an id or a string segment, and every
integer, string, date and date-time field of every request body and query string in the OpenAPI document,
so a new route or field is covered without editing this file. A few explicit cases cover nested fields,
whole-body attacks and werkzeug's own errors; the last tests show valid input still works.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import Schema as MarshmallowSchema
from marshmallow import fields as ma_fields
from werkzeug.routing import IntegerConverter, UnicodeConverter
from werkzeug.test import TestResponse

from marketplace.accounts.models import Role
from marketplace.core import validation
from marketplace.extensions import limiter
from marketplace.mentors.models import MentorProfile
from tests.factories import AvailabilityScheduleFactory, MentorProfileFactory, UserFactory
from tests.helpers import ApiUser, assert_error_shape, make_test_app

# Input that schemas refuse before any query runs is the same on both databases: these tables run on
# PostgreSQL, the production one. Ids past the integer column reach the database, so they run on both.
ONE_DATABASE = pytest.mark.postgres_only
BIG_IDS = ["2147483648", "99999999999999999999", "9" * 5000]
BAD_SEGMENTS = ["a%00b", "%00", "backend-developer%00", "a%1Bb", "a%7Fb", "x" * 300]
BODY_INTEGERS = [2**31, -(2**31) - 1, 10**20, 9223372036854775808, 1.5, "100", True]
QUERY_INTEGERS = [
    "2147483648",
    "4611686018427387904",
    "9223372036854775808",
    "-2147483649",
    "1.5",
    "9" * 5000,
]
BODY_STRINGS = ["a\u0000b", "\u0000", "a\ud800b", "a\u001bb", "a\u0085b"]
QUERY_STRINGS = ["a\x00b", "\x00", "a\x1bb"]
BODY_DATETIMES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "1999-12-31T23:59:59+00:00",
    "2101-01-01T00:00:00+00:00",
    "2027-01-04T09:00:00" + "0" * 5000,
]
DATES = ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01"]


def _openapi(app: Flask) -> dict[str, Any]:
    with app.test_client() as client:
        return client.get("/api/openapi.json").get_json()


# The routes and the document do not depend on the database: an app on an unused in-memory SQLite builds the
# tables at collection time.
_APP = make_test_app("sqlite://")
_SPEC = _openapi(_APP)


@pytest.fixture
def spec() -> dict[str, Any]:
    return _SPEC


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _kind(schema: dict[str, Any]) -> str | None:
    if schema.get("type") == "integer":
        return "integer"
    if schema.get("type") == "string":
        return {"date": "date", "date-time": "datetime"}.get(schema.get("format", ""), "string")
    return None


def _fill(path: str) -> str:
    """Any well-formed path parameters: the arguments are checked before the view looks anything up."""
    return path.replace("{slug}", "backend-developer").replace("{token}", "t").replace("{day}", "2027-01-04")


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, _fill(path).replace("{", "").replace("}", ""), operation


def _body_fields(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, str, bool]]:
    """(method, path, field, kind, listed) for each top-level scalar field, or list of scalars, of each body."""
    for method, path, operation in _operations(spec):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if not content:
            continue
        for name, field in _resolve(spec, content["schema"]).get("properties", {}).items():
            field = _resolve(spec, field)
            if field.get("readOnly"):
                continue
            if field.get("type") == "array":
                kind, listed = _kind(_resolve(spec, field["items"])), True
            else:
                kind, listed = _kind(field), False
            if kind:
                yield method, path, name, kind, listed


def _query_fields(spec: dict[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    for method, path, operation in _operations(spec):
        for parameter in operation.get("parameters", []):
            kind = _kind(parameter.get("schema", {}))
            if parameter["in"] == "query" and kind:
                yield method, path, parameter["name"], kind


BODY_VALUES = {"integer": BODY_INTEGERS, "string": BODY_STRINGS, "datetime": BODY_DATETIMES, "date": DATES}
QUERY_VALUES = {"integer": QUERY_INTEGERS, "string": QUERY_STRINGS, "datetime": BODY_DATETIMES, "date": DATES}
BODY_CASES = [
    pytest.param(method, path, name, [value] if listed else value, id=f"{method} {path} {name}={value!r:.30}")
    for method, path, name, kind, listed in _body_fields(_SPEC)
    for value in BODY_VALUES[kind]
]
QUERY_CASES = [
    pytest.param(method, path, name, value, id=f"{method} {path} {name}={value!r:.30}")
    for method, path, name, kind in _query_fields(_SPEC)
    for value in QUERY_VALUES[kind]
]


def _rules(app: Flask, converter: type) -> list[Any]:
    rules = []
    for rule in app.url_map.iter_rules():
        names = [name for name, conv in rule._converters.items() if isinstance(conv, converter)]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            rules.extend(pytest.param(rule.rule, name, method, id=f"{method} {rule.rule}") for name in names)
    return rules


ID_RULES = _rules(_APP, IntegerConverter)
SEGMENT_RULES = _rules(_APP, UnicodeConverter)


@pytest.fixture(autouse=True)
def _no_rate_limits() -> Iterator[None]:
    """Login and token issuing are limited per address; these tests send many bad bodies to them."""
    limiter.reset()
    yield
    limiter.reset()


@pytest.fixture
def admin(client: FlaskClient) -> ApiUser:
    """Passes every login and role check, so each request reaches its argument parsing."""
    return ApiUser(client, UserFactory(roles=(Role.ADMIN, Role.MENTOR, Role.LEARNER)))


@pytest.fixture
def mentor(client: FlaskClient) -> MentorProfile:
    profile = MentorProfileFactory()
    AvailabilityScheduleFactory(profile=profile)
    return profile


def _send(api: ApiUser, method: str, path: str, **kwargs: Any) -> TestResponse:
    return getattr(api, method)(path, **kwargs)


def _assert_rejected(response: TestResponse, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.get_data(as_text=True)[:500])
    body = assert_error_shape(response, response.status_code)
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def _path_with(rule: str, name: str, value: str) -> str:
    path = rule.replace(f"<int:{name}>", value).replace(f"<{name}>", value)
    return (
        path.replace("<int:mentor_id>", "1").replace("<int:booking_id>", "1").replace("<day>", "2027-01-04")
    )


@pytest.mark.parametrize("value", BIG_IDS)
@pytest.mark.parametrize(("rule", "name", "method"), ID_RULES)
def test_ids_past_the_integer_column_are_404(
    admin: ApiUser, rule: str, name: str, method: str, value: str
) -> None:
    _assert_rejected(_send(admin, method.lower(), _path_with(rule, name, value)), 404)


@ONE_DATABASE
@pytest.mark.parametrize("value", BAD_SEGMENTS)
@pytest.mark.parametrize(("rule", "name", "method"), SEGMENT_RULES)
def test_path_segments_with_control_characters_or_too_long_are_404(
    admin: ApiUser, rule: str, name: str, method: str, value: str
) -> None:
    _assert_rejected(_send(admin, method.lower(), _path_with(rule, name, value)), 404)


def test_the_tables_cover_every_kind_of_input() -> None:
    """A guard on the generators: if the document stopped listing fields, the tables would be empty."""
    body_routes = {(values[0], values[1]) for values in (p.values for p in BODY_CASES)}
    assert ("post", "/api/v1/bookings") in body_routes
    assert ("put", "/api/v1/me/mentor-profile") in body_routes
    assert ("post", "/api/v1/auth/register") in body_routes
    query_fields = {(p.values[1], p.values[2]) for p in QUERY_CASES}
    assert {("/api/v1/mentors", "page"), ("/api/v1/mentors", "max_price_cents")} <= query_fields
    assert ("/api/v1/mentors/mentor_id/slots", "from") in query_fields
    assert len(ID_RULES) >= 10
    assert len(SEGMENT_RULES) >= 4


@ONE_DATABASE
@pytest.mark.parametrize(("method", "path", "name", "value"), BODY_CASES)
def test_bad_body_fields_are_422_naming_the_field(
    admin: ApiUser, method: str, path: str, name: str, value: Any
) -> None:
    path = path.replace("mentor_id", "1").replace("booking_id", "1")
    body = _assert_rejected(_send(admin, method, path, json={name: value}), 422)
    assert name in body["errors"]["json"]


@ONE_DATABASE
@pytest.mark.parametrize(("method", "path", "name", "value"), QUERY_CASES)
def test_bad_query_parameters_are_422(admin: ApiUser, method: str, path: str, name: str, value: Any) -> None:
    path = path.replace("mentor_id", "1").replace("booking_id", "1")
    response = _send(admin, method, path, query_string={name: value})
    if path.startswith("/api/"):
        body = _assert_rejected(response, 422)
        assert name in body["errors"]["query"]
    else:  # the HTML pages answer with a page
        assert response.status_code in {404, 422}, response.get_data(as_text=True)[:300]
        assert response.mimetype == "text/html"


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        (
            "put",
            "/api/v1/me/availability",
            {"weekly": [{"weekday": 2**31, "start": "09:00", "end": "10:00"}]},
            "weekly",
        ),
        (
            "put",
            "/api/v1/me/availability",
            {"weekly": [{"weekday": "1", "start": "09:00", "end": "10:00"}]},
            "weekly",
        ),
        (
            "put",
            "/api/v1/me/availability",
            {"weekly": [{"weekday": 1, "start": "09\u0000", "end": "10:00"}]},
            "weekly",
        ),
        (
            "post",
            "/api/v1/me/availability/overrides",
            {"date": "2027-01-04", "intervals": [{"start": "\ud800", "end": "10:00"}]},
            "intervals",
        ),
        ("put", "/api/v1/me/mentor-profile", {"session_minutes": [10**20]}, "session_minutes"),
        ("put", "/api/v1/me/mentor-profile", {"skills": ["py\u0000thon"]}, "skills"),
        ("put", "/api/v1/me/mentor-profile", {"headline": "line one\nline two"}, "headline"),
        ("put", "/api/v1/me/mentor-profile", {"headline": "x" * 161}, "headline"),
        ("put", "/api/v1/me/mentor-profile", {"bio": "a\u0000b"}, "bio"),
        ("post", "/api/v1/auth/register", {"name": "Ann\r\nBcc: x"}, "name"),
        ("post", "/api/v1/bookings", {"topic": "first line\nsecond line"}, "topic"),
        ("post", "/api/v1/bookings/1/review", {"rating": 5.0}, "rating"),
    ],
)
def test_bad_nested_and_single_line_fields_are_422(
    admin: ApiUser, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    result = _assert_rejected(_send(admin, method, path, json=body), 422)
    assert field in result["errors"]["json"]


JSON_BODY_ROUTES = sorted({(p.values[0], p.values[1]) for p in BODY_CASES})


@ONE_DATABASE
@pytest.mark.parametrize(
    ("raw", "content_type", "statuses"),
    [
        pytest.param("[" * 1000 + "]" * 1000, "application/json", {400}, id="1000-deep array"),
        pytest.param('{"a":' * 1000 + "1" + "}" * 1000, "application/json", {400}, id="1000-deep object"),
        pytest.param('{"mentor_id": ' + "9" * 5000 + "}", "application/json", {400}, id="5000-digit integer"),
        pytest.param('{"rating": 1e999999}', "application/json", {400, 422}, id="huge exponent"),
        pytest.param('{"rating": NaN}', "application/json", {400}, id="NaN"),
        pytest.param(
            '{"name": "a\\ud800b", "topic": "\\udfff"}', "application/json", {422}, id="lone surrogate"
        ),
        pytest.param(b'{"name": "\xff\xfe"}', "application/json", {400}, id="invalid UTF-8"),
        pytest.param("[1, 2]", "application/json", {422}, id="not an object"),
        pytest.param('{"name": "a"', "application/json", {400}, id="truncated"),
        pytest.param("name=a", "application/x-www-form-urlencoded", {415}, id="a form"),
        pytest.param("hello", "text/plain", {415}, id="plain text"),
    ],
)
@pytest.mark.parametrize(("method", "path"), JSON_BODY_ROUTES)
def test_hostile_bodies_are_4xx(
    admin: ApiUser, method: str, path: str, raw: str | bytes, content_type: str, statuses: set[int]
) -> None:
    path = path.replace("mentor_id", "1").replace("booking_id", "1")
    response = _send(admin, method, path, data=raw, content_type=content_type)
    _assert_rejected(response, *statuses)


def test_a_body_past_max_content_length_is_413_before_it_is_parsed(app: Flask, admin: ApiUser) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = '{"topic": "' + "x" * limit + '"}'

    response = admin.post("/api/v1/bookings", data=body, content_type="application/json")

    _assert_rejected(response, 413)


def test_a_deep_body_is_refused_with_the_reason(admin: ApiUser) -> None:
    response = admin.post("/api/v1/bookings", data="[" * 100 + "]" * 100, content_type="application/json")

    body = _assert_rejected(response, 400)
    assert "nest" in body["errors"]["json"][0]


def test_an_idempotency_key_with_a_control_character_is_422(admin: ApiUser, mentor: MentorProfile) -> None:
    response = admin.post(
        "/api/v1/bookings",
        json={
            "mentor_id": mentor.id,
            "start": "2027-01-04T09:00:00+01:00",
            "duration_minutes": 60,
            "topic": "t",
        },
        headers={"Idempotency-Key": "key\x01"},
    )

    _assert_rejected(response, 422)


def test_slots_from_year_one_is_422(client: FlaskClient, mentor: MentorProfile) -> None:
    response = client.get(f"/api/v1/mentors/{mentor.id}/slots?from=0001-01-01")

    body = _assert_rejected(response, 422)
    assert "from" in body["errors"]["query"]


def test_deleting_an_override_on_a_date_out_of_range_is_422(admin: ApiUser) -> None:
    _assert_rejected(admin.delete("/api/v1/me/availability/overrides/0001-01-01"), 422)


class TestWerkzeugErrorsUseTheShape:
    def test_unknown_route_is_404(self, client: FlaskClient) -> None:
        _assert_rejected(client.get("/api/v1/no-such-thing"), 404)

    def test_wrong_method_is_405_and_keeps_allow(self, client: FlaskClient) -> None:
        response = client.delete("/api/v1/career-paths")

        _assert_rejected(response, 405)
        assert "GET" in response.headers["Allow"]

    def test_validation_errors_carry_a_message(self, client: FlaskClient) -> None:
        body = _assert_rejected(client.post("/api/v1/auth/register", json={}), 422)

        assert set(body["errors"]["json"]) >= {"email", "password", "name", "role"}


def test_the_openapi_document_states_the_bounds(spec: dict[str, Any]) -> None:
    mentor_id = spec["paths"]["/api/v1/mentors/{mentor_id}"]["parameters"][0]["schema"]
    assert mentor_id == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    page = next(p for p in spec["paths"]["/api/v1/mentors"]["get"]["parameters"] if p["name"] == "page")
    assert page["schema"]["maximum"] == 2**31 - 1


def test_every_schema_of_the_modules_is_built_on_the_layer() -> None:
    import marketplace.accounts.schemas
    import marketplace.bookings.schemas
    import marketplace.careers.schemas
    import marketplace.core.ops
    import marketplace.mentors.schemas
    import marketplace.payments.schemas
    import marketplace.scheduling.schemas

    modules = [
        marketplace.accounts.schemas,
        marketplace.bookings.schemas,
        marketplace.careers.schemas,
        marketplace.core.ops,
        marketplace.mentors.schemas,
        marketplace.payments.schemas,
        marketplace.scheduling.schemas,
    ]
    schemas = [
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, MarshmallowSchema)
        and value.__module__ == module.__name__
    ]
    assert schemas
    assert [s.__name__ for s in schemas if not issubclass(s, validation.Schema)] == []


def test_a_schema_with_an_unbounded_input_field_cannot_be_built() -> None:
    class Unbounded(validation.Schema):
        count = ma_fields.Integer()

    with pytest.raises(TypeError, match=r"Unbounded\.count"):
        Unbounded()


class TestValidInputStillWorks:
    def test_largest_id_is_a_plain_404(self, client: FlaskClient) -> None:
        _assert_rejected(client.get(f"/api/v1/mentors/{2**31 - 1}"), 404)

    def test_bounded_query_integers_and_dates_are_accepted(
        self, client: FlaskClient, mentor: MentorProfile
    ) -> None:
        listing = client.get("/api/v1/mentors?max_price_cents=2147483647&page=1&page_size=100")
        slots = client.get(f"/api/v1/mentors/{mentor.id}/slots?from=2100-12-01&to=2100-12-31&duration=60")

        assert listing.status_code == 200, listing.get_data(as_text=True)
        assert slots.status_code == 200, slots.get_data(as_text=True)

    def test_free_text_keeps_line_breaks_and_tabs(self, client: FlaskClient) -> None:
        profile = MentorProfileFactory(vetting_status="draft")
        mentor_api = ApiUser(client, profile.user)

        response = mentor_api.put(
            "/api/v1/me/mentor-profile",
            json={"bio": "Line one.\n\tLine two.\r\nÜnïcödé ✓", "years_experience": 70},
        )

        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["bio"] == "Line one.\n\tLine two.\r\nÜnïcödé ✓"

    def test_a_valid_path_segment_still_routes(self, client: FlaskClient) -> None:
        assert client.get("/api/v1/career-paths/backend-developer").status_code in {200, 404}

    def test_a_booking_with_valid_fields_is_created(self, client: FlaskClient, mentor: MentorProfile) -> None:
        learner = ApiUser(client, UserFactory())
        body = {
            "mentor_id": mentor.id,
            "start": "2027-01-04T09:00:00+01:00",
            "duration_minutes": 60,
            "topic": "t",
        }

        with time_machine.travel("2027-01-04T05:00:00+00:00", tick=False):
            response = learner.post("/api/v1/bookings", json=body)

        assert response.status_code == 201, response.get_data(as_text=True)
