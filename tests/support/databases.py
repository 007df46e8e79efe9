"""Databases for tests: rolled-back transactions for tests in this process, and databases of their own for
tests that commit for real across processes (servers, workers)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask_sqlalchemy.session import _app_ctx_id
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from sqlalchemy.pool import NullPool

from marketplace.extensions import db


@contextmanager
def fresh_database(database_url: str, directory: Path, prefix: str = "scratch") -> Iterator[str]:
    """A new, empty database beside the suite's: on the same PostgreSQL server (dropped afterwards), or a
    new SQLite file in `directory`."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{directory / f'{prefix}.db'}"
        return
    name = f"{prefix}_{secrets.token_hex(6)}"
    server = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with server.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with server.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        server.dispose()


@contextmanager
def rolled_back_connection() -> Iterator[Connection]:
    """A connection of the current app's engine inside a transaction that is rolled back at the end.

    PostgreSQL's deferred triggers (the catalog version's) fire at the outer commit, which a test never
    reaches: here they fire at the end of each statement instead.
    """
    connection = db.engine.connect()
    outer = connection.begin()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")
    try:
        yield connection
    finally:
        outer.rollback()
        connection.close()


@contextmanager
def session_on(connection: Connection) -> Iterator[scoped_session[Session]]:
    """`db.session` bound to `connection` while the block runs: the app's commits become savepoints."""
    original = db.session
    # A plain Session: Flask-SQLAlchemy's own ignores `bind` and would pick the engine again.
    db.session = scoped_session(
        sessionmaker(bind=connection, join_transaction_mode="create_savepoint"), scopefunc=_app_ctx_id
    )
    try:
        yield db.session
    finally:
        db.session.remove()
        db.session = original
