"""Pooled connections are pinged only after sitting idle (`core.db.ping_idle_connections`)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from marketplace.extensions import db
from tests.helpers import temporary_app

pytestmark = pytest.mark.postgres_only


def _backend_pid() -> int:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(pid: int, database_url: str) -> None:
    """From outside the pool, as a database restart would."""
    outside = create_engine(database_url, poolclass=NullPool)
    try:
        with outside.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        outside.dispose()


def test_an_idle_connection_that_died_is_replaced_without_an_error(database_url: str) -> None:
    with temporary_app(database_url, DATABASE_PING_AFTER_IDLE_SECONDS=0) as app, app.app_context():
        pid = _backend_pid()
        _terminate(pid, database_url)

        assert _backend_pid() != pid


def test_a_connection_just_returned_is_not_pinged_and_a_dead_one_fails_once(database_url: str) -> None:
    """The trade: no round trip per checkout under load; a database restart costs one failed request per
    process, after which the pool holds only new connections."""
    with temporary_app(database_url, DATABASE_PING_AFTER_IDLE_SECONDS=3600) as app, app.app_context():
        pid = _backend_pid()
        _terminate(pid, database_url)

        with pytest.raises(OperationalError):
            _backend_pid()
        assert _backend_pid() != pid
