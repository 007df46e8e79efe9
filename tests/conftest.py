"""Test fixtures: every database test runs on PostgreSQL and on SQLite, each on a real server or file.

`--db=postgresql` or `--db=sqlite` narrows a run to one backend; the default runs both and the summary
reports how many tests ran on each.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import celery
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy.orm import Session, scoped_session

from marketplace.bookings.availability.routes import SLOTS_CACHE
from marketplace.careers.routes import MENTOR_PAGES
from marketplace.extensions import db, limiter
from marketplace.mentors.catalog import CATALOG_RESPONSES
from tests.helpers import STRIPE_SETTINGS, STRIPE_TEST_SETTINGS, make_test_app
from tests.support.databases import rolled_back_connection, session_on
from tests.support.servers import LocalStripe, localstripe_server, postgres_server

BACKENDS = ("postgresql", "sqlite")
# Fixtures shared by several folders: the bookable world (a mentor, learners, a frozen clock) and the mail sink.
pytest_plugins = ["tests.fixtures.bookable", "tests.fixtures.mail"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db", choices=(*BACKENDS, "both"), default="both", help="Database backend(s) to test on."
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--db")
        backends = BACKENDS if chosen == "both" else (chosen,)
        if metafunc.definition.get_closest_marker("postgres_only"):
            backends = tuple(b for b in backends if b == "postgresql")
        metafunc.parametrize("backend", backends, scope="session")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, so the pytest-xdist processes run out of work together: the `slow` ones
    (servers, browsers), those that say about how long they take (`slow(seconds=...)`) longest first; then
    the rest by their number of tests. The order within a file is kept."""
    tests_per_file = Counter(item.nodeid.split("::")[0] for item in items)

    def longest_first(item: pytest.Item) -> tuple[bool, int, int]:
        slow = item.get_closest_marker("slow")
        declared = int(slow.kwargs.get("seconds", 0)) if slow else 0
        return slow is None, -declared, -tests_per_file[item.nodeid.split("::")[0]]

    items.sort(key=longest_first)


@pytest.fixture(scope="session")
def _servers() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session", autouse=True)
def stripe_stand_in(_servers: ExitStack) -> Iterator[LocalStripe]:
    """One localstripe for the run; apps built in this process and server subprocesses both point at it."""
    server = _servers.enter_context(localstripe_server())
    settings = {**STRIPE_TEST_SETTINGS, "STRIPE_API_BASE": server.api_base}
    STRIPE_SETTINGS.update(settings)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        yield server


@pytest.fixture(scope="session")
def _database_urls() -> dict[str, str]:
    """One database per backend for the whole run, made when first asked for."""
    return {}


@pytest.fixture(scope="session")
def database_url(
    backend: str,
    _servers: ExitStack,
    _database_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The backend's database. pytest-xdist hands a process whole files, so the backend changes file by file;
    pytest then tears this fixture down and sets it up again, and the database must outlive that."""
    if backend not in _database_urls:
        _database_urls[backend] = (
            _servers.enter_context(postgres_server())
            if backend == "postgresql"
            else f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        )
    return _database_urls[backend]


@pytest.fixture(scope="session")
def _apps() -> Iterator[dict[str, Flask]]:
    apps: dict[str, Flask] = {}
    yield apps
    for app in apps.values():
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="session")
def app(database_url: str, _apps: dict[str, Flask]) -> Flask:
    """The suite's app on the backend's database, built and migrated once per backend (see `database_url`)."""
    if database_url not in _apps:
        app = make_test_app(database_url)
        with app.app_context():
            upgrade()
        _apps[database_url] = app
    return _apps[database_url]


def clear_process_caches() -> None:
    """Every per-process cache of the app. Tests roll back, so the next test may get the same ids and
    versions (at the same frozen minute): a response cached by an earlier test must not answer for it."""
    CATALOG_RESPONSES.clear()
    MENTOR_PAGES.clear()
    SLOTS_CACHE.clear()


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    clear_process_caches()
    yield
    clear_process_caches()


@pytest.fixture
def db_session(app: Flask) -> Iterator[scoped_session[Session]]:
    """Each test runs inside a transaction that is rolled back; the app's commits become savepoints.

    The suite's Celery app is the current one while it runs: a shared task called with `.apply()` runs in
    this app, on this connection, not in the app a module built before (every new Celery app makes itself
    the current one of its thread, and such an app may point at a Redis already stopped).
    """
    previous_celery = celery.current_app._get_current_object()
    app.extensions["celery"].set_current()
    try:
        with app.app_context(), rolled_back_connection() as connection, session_on(connection) as session:
            yield session
    finally:
        previous_celery.set_current()
    limiter.reset()


@pytest.fixture
def client(app: Flask, db_session: scoped_session) -> FlaskClient:
    return app.test_client()


_BACKEND_ID = re.compile(r"\[(?:.*-)?(postgresql|sqlite)(?:-.*)?\]$")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say how many tests ran on each database, so a green run shows both were exercised."""
    per_backend: Counter[str] = Counter()
    for key in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(key, []):
            if getattr(report, "when", "call") != "call":
                continue
            match = _BACKEND_ID.search(report.nodeid)
            per_backend[match.group(1) if match else "no database"] += 1
    if per_backend:
        terminalreporter.write_sep("-", "tests per database")
        for name in (*BACKENDS, "no database"):
            if per_backend[name]:
                terminalreporter.write_line(f"{name}: {per_backend[name]} tests")
