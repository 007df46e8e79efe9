"""Transactions: one commit per request at the edge, and SQLite made safe for concurrent writers.

SQLite's default deferred transactions let two writers read the same state and then race to write it; every
unsafe request (and every task or CLI command) therefore starts its transaction with BEGIN IMMEDIATE, which
serializes writers, so a check-then-insert inside it is atomic. Reads keep plain BEGIN and run concurrently
under WAL.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from flask import Flask, Response, g, request
from sqlalchemy import CursorResult, Executable, Insert, Table, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError

from marketplace.core import outbox
from marketplace.extensions import db

_write_intent: ContextVar[bool] = ContextVar("sqlite_write_intent", default=True)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"


def configure_sqlite(engine: Engine, busy_timeout_seconds: int) -> None:
    """pysqlite's own transaction handling breaks SAVEPOINT and can't BEGIN IMMEDIATE; take it over."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")


@contextmanager
def read_only_transactions() -> Iterator[None]:
    token = _write_intent.set(False)
    try:
        yield
    finally:
        _write_intent.reset(token)


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """SQLAlchemy's `pool_pre_ping`, for connections that sat in the pool at least `idle_seconds`.

    Pre-ping costs a round trip per checkout, while under load a connection is taken again milliseconds
    after it was returned and is as alive as it was then. One idle for longer is pinged, and replaced if
    it is dead, without an error. One that died within the last second (the database restarted) fails its
    request, after which SQLAlchemy recycles every connection the pool had then.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checking_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get("checked_in_at")
        if checked_in is None or time.monotonic() - checked_in < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"an idle pooled connection failed its ping: {exc}") from exc


def init_app(app: Flask) -> None:
    with app.app_context():
        if is_sqlite():
            configure_sqlite(db.engine, app.config["SQLITE_BUSY_TIMEOUT_SECONDS"])
        ping_idle_connections(db.engine, app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])

    @app.before_request
    def _choose_transaction_kind() -> None:
        g._write_intent_token = _write_intent.set(request.method not in SAFE_METHODS)

    @app.after_request
    def _commit_once(response: Response) -> Response:
        if response.status_code < 400:
            db.session.commit()
            outbox.relay_committed()
        else:
            db.session.rollback()
        return response

    @app.teardown_request
    def _reset_transaction_kind(_exc: BaseException | None) -> None:
        token = g.pop("_write_intent_token", None)
        if token is not None:
            _write_intent.reset(token)


@contextmanager
def unit_of_work() -> Iterator[None]:
    """The one commit of a task or command: all of its changes, or none of them; then its outbox."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()
    outbox.relay_committed()


def insert_unless_exists(model: type[Any], **values: Any) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING in one round trip; True when the row was new.

    A Core statement on the session's connection (and transaction): the ORM's bulk-insert path would cost
    more than the statement itself on the hot paths that use this (webhook intake).
    """
    statement = _insert_unless_exists_statement(model.__table__, db.engine.dialect.name)
    return db.session.connection().execute(statement, values).first() is not None


@functools.cache
def _insert_unless_exists_statement(table: Table, dialect: str) -> Insert:
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)


def autocommit_statements() -> None:
    """Let this request's statements run without BEGIN and COMMIT on PostgreSQL.

    For requests on a hot path that read only (listing slots, cached listings) or write one statement
    (storing a webhook event): each statement sees the latest commits (READ COMMITTED either way) and is
    atomic on its own, and the request saves the BEGIN and COMMIT round trips.
    SQLite keeps its BEGIN (the write lock is what makes its writes safe), a request whose transaction has
    begun already (a token's user was loaded) keeps it, and so does a session bound to a connection whose
    transaction encloses its own (a test's).
    """
    session = db.session()
    if is_sqlite() or session.in_transaction() or isinstance(session.get_bind(), Connection):
        return
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def rows_matched(statement: Executable) -> int:
    """Run an UPDATE or DELETE in the session and say how many rows it matched (a compare-and-set's answer)."""
    return cast(CursorResult[Any], db.session.execute(statement)).rowcount
