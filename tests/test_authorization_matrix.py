"""Every operation of the OpenAPI document, called by eight roles against objects they do not own: no leaks.

The operations are read from the app's own `/api/openapi.json`, so a route added later is walked too. What
the test needs to know about a route is declared here, and a route it cannot handle fails its case with a
message naming what to declare:

- a path parameter: `PATH_FILLERS` says, per parameter name, which object of the world fills it and who owns
  that object (an unknown parameter fails the case);
- a request body: `BODY_FILLERS`, per schema name (an unknown schema fails the case);
- a required query parameter: `QUERY_FILLERS`;
- who may call it: `/api/v1/admin/...` is admin only (401 anonymous, 403 everyone else), an operation in
  `PUBLIC_OPERATIONS` is open to all, and every other operation needs a signed-in user (401 anonymous).

Objects that are not yours answer 404 (never 403: existence must not leak), and no response ever carries a
marker of data the caller may not see (another user's email, a booking's topic, an unapproved profile's
headline, a feed token).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, func, select
from werkzeug.test import TestResponse

from marketplace.accounts.models import ApiToken, Role, User
from marketplace.accounts.service import issue_token
from marketplace.core.time import utcnow
from marketplace.extensions import db, limiter
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.vetting import VettingStatus
from tests.factories import PASSWORD, AvailabilityScheduleFactory, MentorProfileFactory, UserFactory
from tests.helpers import ApiUser, temporary_app
from tests.support.databases import rolled_back_connection, session_on

METHODS = ("get", "put", "post", "patch", "delete")
ANONYMOUS = "anonymous"
# Outsiders first, so an owner's successful call (a cancel, a vetting decision) cannot hide their answers.
ROLES = (
    ANONYMOUS,
    "learner_b",
    "mentor_y",
    "pending_mentor",
    "suspended_mentor",
    "learner_a",
    "mentor_x",
    "admin",
)
ADMIN_PREFIX = "/api/v1/admin/"
# The admin pages: like the admin API, but a visitor who is not signed in is sent to sign in (303).
ADMIN_PAGES = "/admin"


def _is_admin_page(path: str) -> bool:
    return path == ADMIN_PAGES or path.startswith(ADMIN_PAGES + "/")


# The caller's own data that only a mentor has: learners and admins get 403 (a role violation).
MENTOR_ONLY_PREFIXES = (
    "/api/v1/me/mentor-profile",
    "/api/v1/me/availability",
    "/api/v1/me/calendar-feed",
    "/api/v1/me/earnings",
    "/api/v1/me/payouts",
)
# Pages for signed-in users only: anyone else is sent to sign in (303). A booking's session pages are its
# learner's alone (its mentor and the admins have pages of their own): 404 for everyone else.
SIGNED_IN_PAGE_PREFIXES = ("/sessions",)
LEARNER_PAGE_PREFIX = "/sessions/"
MENTOR_ROLES = frozenset({"mentor_x", "mentor_y", "pending_mentor", "suspended_mentor"})
# Open to anyone, signed in or not (webhooks authenticate by signature, the feed by the token in its URL).
PUBLIC_OPERATIONS = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/tokens"),
        ("POST", "/api/v1/auth/password-reset"),
        ("POST", "/api/v1/auth/password-reset/confirm"),
        ("POST", "/api/v1/auth/verify-email"),
        ("GET", "/api/v1/mentors"),
        ("GET", "/api/v1/mentors/{mentor_id}"),
        ("GET", "/api/v1/mentors/{mentor_id}/slots"),
        ("GET", "/api/v1/career-paths"),
        ("GET", "/api/v1/career-paths/{slug}"),
        ("GET", "/careers"),
        ("GET", "/careers/{slug}"),
        ("GET", "/mentors"),
        ("GET", "/mentors/{mentor_id}"),
        ("GET", "/"),
        # The account pages: open to all; the signed-in ones send anyone else to sign in.
        *(("GET", path) for path in ("/signup", "/login", "/account", "/account/password")),
        *(("GET", path) for path in ("/forgot-password", "/reset-password", "/verify-email")),
        *(("POST", path) for path in ("/signup", "/login", "/logout", "/account/password")),
        *(("POST", path) for path in ("/forgot-password", "/reset-password", "/verify-email")),
        # The mentor's pages: anyone not signed in is sent to sign in (303), anyone not a mentor gets 403.
        *(("GET", path) for path in ("/mentor/profile", "/mentor/availability", "/mentor/bookings")),
        ("GET", "/mentor/earnings"),
        *(("POST", path) for path in ("/mentor/profile", "/mentor/profile/submit", "/mentor/availability")),
        *(
            ("POST", path)
            for path in ("/mentor/availability/overrides", "/mentor/availability/overrides/remove")
        ),
        *(("POST", path) for path in ("/mentor/bookings/answer", "/mentor/calendar-feed")),
        ("POST", "/mentor/earnings/payouts"),
        # Booking pages: choosing is open to all; holding sends anyone not signed in to sign in first.
        *(("GET", path) for path in ("/mentors/{mentor_id}/book", "/book")),
        ("POST", "/book"),
        ("GET", "/calendar/{token}.ics"),
        ("POST", "/webhooks/stripe"),
    }
)


@dataclass
class World:
    """Two learners, approved mentors X and Y, a pending and a suspended mentor, an admin; learner A's
    booking with mentor X; mentor X's calendar feed; and a secret marker for what each may see."""

    app: Flask
    users: dict[str, User]
    tokens: dict[str, str]
    profiles: dict[str, MentorProfile]
    booking_ids: tuple[int, int]
    free_start: str
    feed_token: str
    newcomer_email: str
    spare_token_id: int
    # marker text -> the roles that may see it
    markers: dict[str, frozenset[str]] = field(default_factory=dict)

    def call(self, role: str, method: str, path: str, body: Any | None) -> TestResponse:
        client = self.app.test_client(use_cookies=False)
        headers = {} if role == ANONYMOUS else {"Authorization": f"Bearer {self.tokens[role]}"}
        return client.open(path, method=method, json=body, headers=headers)


@dataclass(frozen=True)
class Target:
    """A value for a path parameter, and who may reach the object behind it (None: whoever the route
    lets in, the object being public or the route answering for the caller's own data)."""

    value: str
    insiders: frozenset[str] | None = None
    hidden_from_all: bool = False
    # A capability (the feed token): whoever holds it sees what this role sees.
    acts_as: str | None = None


def _booking(world: World, method: str, path: str) -> list[Target]:
    """Learner A's booking with mentor X, and learner B's with mentor Y: each hidden from the other pair."""
    if path.startswith(LEARNER_PAGE_PREFIX):
        return [
            Target(str(world.booking_ids[0]), frozenset({"learner_a"})),
            Target(str(world.booking_ids[1]), frozenset({"learner_b"})),
        ]
    return [
        Target(str(world.booking_ids[0]), frozenset({"learner_a", "mentor_x", "admin"})),
        Target(str(world.booking_ids[1]), frozenset({"learner_b", "mentor_y", "admin"})),
    ]


def _mentor(world: World, method: str, path: str) -> list[Target]:
    """Public reads: mentor X's profile is public, the pending and suspended ones hidden from everyone.
    Writes outside /admin: only mentor X reaches X's profile. Admin routes: any profile will do."""
    approved, pending, suspended = (
        str(world.profiles[name].id) for name in ("mentor_x", "pending", "suspended")
    )
    if path.startswith(ADMIN_PREFIX) or _is_admin_page(path):
        return [Target(pending)]
    if (method, path) in PUBLIC_OPERATIONS:
        return [
            Target(approved),
            Target(pending, hidden_from_all=True),
            Target(suspended, hidden_from_all=True),
        ]
    return [Target(approved, frozenset({"mentor_x"}))]


def _feed_token(world: World, method: str, path: str) -> list[Target]:
    """The feed's token is its credential: the right one opens it to anyone, a guessed one to no one."""
    return [
        Target(world.feed_token, acts_as="mentor_x"),
        Target(secrets.token_urlsafe(32), hidden_from_all=True),
    ]


def _day(world: World, method: str, path: str) -> list[Target]:
    return [Target((utcnow().date() + timedelta(days=3)).isoformat())]


def _slug(world: World, method: str, path: str) -> list[Target]:
    return [Target("backend-developer")]


def _api_token(world: World, method: str, path: str) -> list[Target]:
    """A spare API token of learner A (not the one the matrix calls with)."""
    return [Target(str(world.spare_token_id), frozenset({"learner_a"}))]


def _any_id(world: World, method: str, path: str) -> list[Target]:
    """On an admin route the role check comes before any lookup, so any id will do."""
    return [Target("1")]


PATH_FILLERS: dict[str, Callable[[World, str, str], list[Target]]] = {
    "booking_id": _booking,
    "mentor_id": _mentor,
    "token": _feed_token,
    "day": _day,
    "slug": _slug,
    "token_id": _api_token,
}


def _filler(path: str, param: str) -> Callable[[World, str, str], list[Target]] | None:
    if param in PATH_FILLERS:
        return PATH_FILLERS[param]
    if param == "id" and path.startswith("/api/v1/auth/tokens/"):
        return _api_token
    if path.startswith(ADMIN_PREFIX) or _is_admin_page(path):
        return _any_id
    return None


BODY_FILLERS: dict[str, Callable[[World], Any]] = {
    "Register": lambda world: {
        "email": f"new-{secrets.token_hex(4)}@example.test",
        "password": PASSWORD,
        "name": "New user",
        "role": "learner",
        "timezone": "UTC",
    },
    # Someone outside the eight roles: signing in as them shows nobody's data.
    "Credentials": lambda world: {"email": world.newcomer_email, "password": PASSWORD},
    "TokenRequest": lambda world: {"email": world.newcomer_email, "password": PASSWORD, "name": "matrix"},
    "PasswordResetRequest": lambda world: {"email": world.newcomer_email},
    # A link nobody signed: it opens no account, whoever sends it.
    "SignedLink": lambda world: {"token": "forged.link"},
    "PasswordResetConfirm": lambda world: {"token": "forged.link", "password": "another-password-1"},
    # Each caller's own password, unchanged: the change applies to the caller alone.
    "PasswordChange": lambda world: {"current_password": PASSWORD, "password": PASSWORD},
    "MentorProfileInput": lambda world: {"headline": "Changed by the matrix", "price_cents": 9000},
    "VettingDecision": lambda world: {"decision": "approve", "note": "Checked by the matrix"},
    "Availability": lambda world: {
        "timezone": "UTC",
        "weekly": [{"weekday": 0, "start": "09:00", "end": "12:00"}],
        "buffer_minutes": 0,
        "min_notice_minutes": 0,
        "horizon_days": 30,
    },
    "DateOverride": lambda world: {
        "date": (utcnow().date() + timedelta(days=3)).isoformat(),
        "intervals": [],
    },
    "BookingCreate": lambda world: {
        "mentor_id": world.profiles["mentor_x"].id,
        "start": world.free_start,
        "duration_minutes": 60,
        "topic": "A second session",
    },
    # Unsigned: whoever sends it, it changes nothing.
    "A Stripe Event": lambda world: {"id": "evt_matrix", "type": "payment_intent.succeeded", "data": {}},
    "Cancel": lambda world: {"reason": "Matrix"},
    "Reschedule": lambda world: {"start": world.free_start},
    "ReviewCreate": lambda world: {"rating": 5, "comment": "Matrix"},
    # A mentor gets a link to their own payout account only.
    "OnboardingArgs": lambda world: {
        "return_url": "https://marketplace.test/payouts",
        "refresh_url": "https://marketplace.test/payouts/refresh",
    },
    "NoShow": lambda world: {"who": "mentor", "note": "Matrix"},
    "ResolveDispute": lambda world: {"absent": "mentor"},
    "AdminRefundCreate": lambda world: {"amount_cents": 1, "reason": "Matrix"},
}

QUERY_FILLERS: dict[str, Callable[[World], str]] = {
    "return_url": lambda world: "https://marketplace.test/payouts"
}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, {**item, **item[method]})
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One case per operation of the document an app of this code serves."""
    if "operation" in metafunc.fixturenames:
        with temporary_app("sqlite://") as app:
            document = app.test_client().get("/api/openapi.json").get_json()
        ids = [f"{method} {path}" for method, path, _ in _operations(document)]
        metafunc.parametrize("operation", ids)


@pytest.fixture(scope="module")
def _world_and_connection(app: Flask) -> Iterator[tuple[World, Connection]]:
    """The world is built once per module, in a transaction that each test enters through a savepoint."""
    with app.app_context(), rolled_back_connection() as connection:
        with session_on(connection):
            world = _build_world(app, app.test_client())
        yield world, connection


@pytest.fixture
def world(app: Flask, _world_and_connection: tuple[World, Connection]) -> Iterator[World]:
    """The module's world; what a test changes in the database is rolled back after it."""
    world, connection = _world_and_connection
    with app.app_context():
        savepoint = connection.begin_nested()
        try:
            with session_on(connection):
                yield world
        finally:
            if savepoint.is_active:
                savepoint.rollback()
    limiter.reset()


def _build_world(app: Flask, client: FlaskClient) -> World:
    users = {
        "learner_a": UserFactory(roles=(Role.LEARNER,), email="learner-a@example.test"),
        "learner_b": UserFactory(roles=(Role.LEARNER,), email="learner-b@example.test"),
        "admin": UserFactory(roles=(Role.ADMIN,), email="admin@example.test"),
    }
    newcomer = UserFactory(roles=(Role.LEARNER,), email="newcomer@example.test")
    profiles = {}
    for name, status in (
        ("mentor_x", VettingStatus.APPROVED),
        ("mentor_y", VettingStatus.APPROVED),
        ("pending", VettingStatus.PENDING_REVIEW),
        ("suspended", VettingStatus.SUSPENDED),
    ):
        mentor = UserFactory(
            roles=(Role.MENTOR,), email=f"{name.replace('_', '-')}@example.test", timezone="UTC"
        )
        profiles[name] = MentorProfileFactory(
            user=mentor,
            headline=f"headline-of-{name}-{secrets.token_hex(6)}",
            timezone="UTC",
            vetting_status=status.value,
        )
        AvailabilityScheduleFactory(profile=profiles[name], timezone="UTC")
        users[f"{name}_mentor" if name in ("pending", "suspended") else name] = mentor
    db.session.commit()
    tokens = {role: ApiUser(client, user).token for role, user in users.items()}
    issue_token(users["learner_a"])
    spare_token_id = db.session.scalar(
        select(func.max(ApiToken.id)).where(ApiToken.user_id == users["learner_a"].id)
    )
    db.session.commit()

    today = utcnow().date()
    window = f"from={today + timedelta(days=2)}&to={today + timedelta(days=9)}&duration=60"
    topics, secrets_of, booking_ids, free_starts = {}, {}, [], []
    for learner, mentor in (("learner_a", "mentor_x"), ("learner_b", "mentor_y")):
        slots = client.get(f"/api/v1/mentors/{profiles[mentor].id}/slots?{window}").get_json()
        assert len(slots) >= 3, slots
        topics[learner] = f"topic-of-{learner}-with-{mentor}-{secrets.token_hex(6)}"
        created = ApiUser(client, users[learner]).post(
            "/api/v1/bookings",
            json={
                "mentor_id": profiles[mentor].id,
                "start": slots[0]["start"],
                "duration_minutes": 60,
                "topic": topics[learner],
            },
        )
        assert created.status_code == 201, created.get_data(as_text=True)
        booking_ids.append(created.get_json()["id"])
        secrets_of[learner] = created.get_json()["payment"]["client_secret"]
        free_starts.append(slots[2]["start"])
    feed = ApiUser(client, users["mentor_x"]).post("/api/v1/me/calendar-feed")
    assert feed.status_code == 201, feed.get_data(as_text=True)
    feed_token = re.fullmatch(r".*/calendar/([^/]+)\.ics", feed.get_json()["url"]).group(1)

    # A booking's parties may see each other (and its topic); the admin sees everything.
    parties = {
        "learner_a": {"mentor_x"},
        "mentor_x": {"learner_a"},
        "learner_b": {"mentor_y"},
        "mentor_y": {"learner_b"},
    }
    markers = {
        topics["learner_a"]: frozenset({"learner_a", "mentor_x", "admin"}),
        topics["learner_b"]: frozenset({"learner_b", "mentor_y", "admin"}),
        feed_token: frozenset({"mentor_x"}),
        # Whoever holds a PaymentIntent's client secret can pay it and read it: its learner alone.
        secrets_of["learner_a"]: frozenset({"learner_a"}),
        secrets_of["learner_b"]: frozenset({"learner_b"}),
        profiles["pending"].headline: frozenset({"pending_mentor", "admin"}),
        profiles["suspended"].headline: frozenset({"suspended_mentor", "admin"}),
    }
    for role, user in users.items():
        markers[user.email] = frozenset({role, "admin", *parties.get(role, ())})
    # The tests read these objects' columns after this session is gone.
    for loaded in (*users.values(), *profiles.values()):
        db.session.refresh(loaded)
    return World(
        app=app,
        users=users,
        tokens=tokens,
        profiles=profiles,
        booking_ids=(booking_ids[0], booking_ids[1]),
        free_start=free_starts[0],
        feed_token=feed_token,
        newcomer_email=newcomer.email,
        spare_token_id=spare_token_id,
        markers=markers,
    )


def _fill_query(world: World, spec: dict[str, Any], name: str) -> str:
    required = [p["name"] for p in spec.get("parameters", []) if p["in"] == "query" and p.get("required")]
    unknown = [param for param in required if param not in QUERY_FILLERS]
    if unknown:
        pytest.fail(f"{name}: no filler for required query parameter(s) {unknown}: add them to QUERY_FILLERS")
    return "&".join(f"{param}={QUERY_FILLERS[param](world)}" for param in required)


def _body(world: World, spec: dict[str, Any], name: str) -> Any | None:
    content = spec.get("requestBody", {}).get("content", {})
    if not content:
        return None
    schema = content.get("application/json", {}).get("schema", {})
    # A named component, or an inline schema by its description (the webhook's Stripe event).
    schema_name = schema.get("$ref", "").rsplit("/", 1)[-1] or schema.get("description", "")
    if schema_name not in BODY_FILLERS:
        pytest.fail(
            f"{name}: no body filler for request schema {schema_name or schema}: add it to BODY_FILLERS"
        )
    return BODY_FILLERS[schema_name](world)


def _targets(world: World, method: str, path: str, name: str) -> Iterator[tuple[str, Target | None]]:
    """The concrete paths to call, each with the object its parameter points at (None: no parameter)."""
    params = re.findall(r"{([^}]+)}", path)
    fillers = {param: _filler(path, param) for param in params}
    unknown = [param for param, filler in fillers.items() if filler is None]
    if unknown:
        pytest.fail(f"{name}: no filler for path parameter(s) {unknown}: add them to PATH_FILLERS")
    if not params:
        yield path, None
        return
    if len(params) > 1:
        pytest.fail(f"{name}: more than one path parameter; teach _targets how to combine {params}")
    filler = fillers[params[0]]
    assert filler is not None
    for target in filler(world, method, path):
        yield path.replace("{" + params[0] + "}", target.value), target


def _expected(method: str, path: str, role: str, target: Target | None) -> tuple[set[int] | None, str]:
    """The statuses allowed for `role` (None: anything below 500), and why."""
    if path.startswith(ADMIN_PREFIX):
        if role == ANONYMOUS:
            return {401}, "admin route, anonymous"
        if role != "admin":
            return {403}, "admin route, not an admin"
        return None, "admin"
    if role == ANONYMOUS and path.startswith(SIGNED_IN_PAGE_PREFIXES):
        return {303}, "a page for signed-in users, anonymous: to sign in"
    if _is_admin_page(path):
        if role == ANONYMOUS:
            return {303}, "admin page, anonymous: to sign in"
        if role != "admin":
            return {403}, "admin page, not an admin"
        return None, "admin page"
    public = (method, path) in PUBLIC_OPERATIONS
    if role == ANONYMOUS and not public:
        return {401}, "protected route, anonymous"
    if target is not None and target.hidden_from_all:
        return {404}, "an object nobody may reach here"
    if target is not None and target.insiders is not None:
        if role not in target.insiders:
            return {404}, "not your object"
        return set(range(200, 500)) - {401, 404}, "your object: found, whatever the state allows"
    if path.startswith(MENTOR_ONLY_PREFIXES):
        if role not in MENTOR_ROLES:
            return {403}, "mentor route, not a mentor"
        return set(range(200, 500)) - {401, 403}, "mentor route, a mentor"
    return None, "public or your own data"


def _leaks(world: World, viewer: str, response: TestResponse) -> list[str]:
    text = response.get_data(as_text=True)
    return [marker for marker, allowed in world.markers.items() if viewer not in allowed and marker in text]


@pytest.mark.postgres_only  # the same rules and queries on SQLite; the matrix takes a minute per database
def test_every_operation_holds_for_every_role(world: World, operation: str) -> None:
    served = {
        f"{m} {p}": spec
        for m, p, spec in _operations(world.app.test_client().get("/api/openapi.json").get_json())
    }
    assert operation in served, f"{operation} left the document"
    method, path = operation.split(" ", 1)
    spec = served[operation]
    query = _fill_query(world, spec, operation)

    failures = []
    for concrete, target in list(_targets(world, method, path, operation)):
        url = f"{concrete}?{query}" if query else concrete
        for role in ROLES:
            response = world.call(role, method, url, _body(world, spec, operation))
            allowed, why = _expected(method, path, role, target)
            status = response.status_code
            if status >= 500 or (allowed is not None and status not in allowed):
                failures.append(
                    f"{role}: {method} {url} -> {status} ({why}): {response.get_data(as_text=True)[:200]}"
                )
            leaked = _leaks(world, target.acts_as if target and target.acts_as else role, response)
            if leaked:
                failures.append(f"{role}: {method} {url} -> {status} leaks {leaked}")
            if status in (401, 403, 404) and response.is_json:
                body = response.get_json()
                if not (isinstance(body, dict) and body.get("code") == status):
                    failures.append(f"{role}: {method} {url} -> {status} without the error shape: {body}")

    assert not failures, "\n".join(failures)


# Served outside the OpenAPI document on purpose: the docs page, its assets and static files.
UNDOCUMENTED_ENDPOINT_PREFIXES = ("static", "api-docs.", "swagger_ui_assets.")


def test_no_route_is_served_outside_the_document(app: Flask) -> None:
    """The matrix walks the document; a route registered past flask-smorest would escape it."""
    document = app.test_client().get("/api/openapi.json").get_json()
    documented = {(method, path) for method, path, _ in _operations(document)}
    served = {
        (method, re.sub(r"<(?:[a-z]+:)?([^>]+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if not rule.endpoint.startswith(UNDOCUMENTED_ENDPOINT_PREFIXES)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }

    assert served - documented == set()
    assert documented >= PUBLIC_OPERATIONS, sorted(PUBLIC_OPERATIONS - documented)


def test_a_route_the_matrix_cannot_fill_fails_naming_what_is_missing(world: World) -> None:
    name = "DELETE /api/v1/widgets/{widget_id}"
    with pytest.raises(
        pytest.fail.Exception, match=r"DELETE /api/v1/widgets/\{widget_id\}: .*\['widget_id'\]"
    ):
        list(_targets(world, "DELETE", "/api/v1/widgets/{widget_id}", name))
    spec = {
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}}}
    }
    with pytest.raises(pytest.fail.Exception, match=r"no body filler for request schema Widget"):
        _body(world, spec, name)
    spec = {"parameters": [{"in": "query", "name": "colour", "required": True}]}
    with pytest.raises(pytest.fail.Exception, match=r"required query parameter\(s\) \['colour'\]"):
        _fill_query(world, spec, name)
