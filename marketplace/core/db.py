"""Transactions: one commit per request at the edge, retried as a whole, and SQLite made safe for writers.

SQLite's default deferred transactions let two writers read the same state and then race to write it; every
unsafe request (and every task or CLI command) therefore starts its transaction with BEGIN IMMEDIATE, which
serializes writers, so a check-then-insert inside it is atomic. Reads keep plain BEGIN and run concurrently
under WAL.

A unit of work (a request's view and its commit; a task's, a sweep item's or a command's operation and its
commit) that fails on a deadlock or a serialization failure (SQLSTATE 40P01, 40001; SQLite's "database is
locked") is rolled back and run again from the start, a few times with jittered backoff
(`DATABASE_RETRY_ATTEMPTS`); a request that still fails answers 503 with `Retry-After`, never 500, and so
does one that cannot reach the database at all. Nothing outside the database may happen inside a unit before
its commit (that is what the outbox is for), so running it again repeats nothing. A request that must call
out after its first write (a new hold's PaymentIntent) commits first with `commit_before_network_call`; from
then on it is not re-run as a whole, and what it writes afterwards goes through `run_in_unit`.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, cast

from flask import Flask, Response, current_app, g, has_request_context, request
from sqlalchemy import CursorResult, Executable, Insert, Table, event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from marketplace.core import outbox
from marketplace.core.errors import error_response
from marketplace.extensions import db

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

_write_intent: ContextVar[bool] = ContextVar("sqlite_write_intent", default=True)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Deadlock detected, serialization failure: the unit lost a race, and running it again is the fix.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
SQLITE_BUSY = ("database is locked", "database table is locked")
SQLITE_UNREACHABLE = ("unable to open database file", "disk I/O error")
# Connection exceptions (08...) and operator intervention (57P01 admin shutdown ... 57P03 cannot connect now).
UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P")
FIRST_RETRY_DELAY_SECONDS = 0.02
_COMMITTED_EARLY = "_unit_committed_early"


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


def limit_connect_time(engine: Engine, seconds: float) -> None:
    """A PostgreSQL that does not answer fails a connection attempt within `seconds` (libpq's
    `connect_timeout`), so a request answers 503 quickly instead of hanging on a dead address."""

    @event.listens_for(engine, "do_connect")
    def _with_timeout(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams.setdefault("connect_timeout", max(1, round(seconds)))


# --- what failed: a lost race, or a database out of reach ----------------------------------------------------------


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)


def is_retryable(exc: BaseException) -> bool:
    """A deadlock, a serialization failure, or SQLite's busy writer: the unit lost a race and may run again."""
    if not isinstance(exc, DBAPIError):
        return False
    if _sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and any(text in str(exc.orig) for text in SQLITE_BUSY)


def is_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or is restarting (as opposed to refusing the statement)."""
    if isinstance(exc, (DisconnectionError, PoolTimeout)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith(UNAVAILABLE_SQLSTATE_PREFIXES)
    if not isinstance(exc, OperationalError):
        return False
    # psycopg reports a failed connection attempt (refused, timed out) without a SQLSTATE.
    if type(exc.orig).__module__.startswith("psycopg"):
        return True
    return any(text in str(exc.orig) for text in SQLITE_UNREACHABLE)


def _wait_before_retry(attempt: int) -> None:
    """Jittered exponential backoff: about 20, 40, 80 ms, so racing units do not collide again in step."""
    time.sleep(FIRST_RETRY_DELAY_SECONDS * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))


def _retry_attempts() -> int:
    return max(1, int(current_app.config["DATABASE_RETRY_ATTEMPTS"]))


# --- units of work ---------------------------------------------------------------------------------------------------


def _dispatch_in_unit(app: Flask, dispatch: Callable[[], Any]) -> Response:
    """The request's unit of work: its view and its commit, run again on a lost race (bounded).

    Flask runs this in place of `dispatch_request`, inside its error handling, so a failure that remains
    becomes the error shape (`_database_error`: 503) rather than a 500. Responses of 400 and above are not
    committed; `_after_commit` rolls them back.
    """
    attempts = _retry_attempts()
    for attempt in range(1, attempts + 1):
        try:
            response = app.make_response(dispatch())
            if response.status_code < 400:
                db.session.commit()
            return response
        except SQLAlchemyError as exc:
            if attempt == attempts or not is_retryable(exc) or g.get(_COMMITTED_EARLY):
                raise
            db.session.rollback()
            log.info(
                "request unit lost a race (attempt %s of %s), running it again: %s", attempt, attempts, exc
            )
            _wait_before_retry(attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def commit_before_network_call() -> None:
    """Commit what the current request did so far, so a network call can follow with no lock held.

    The request is not re-run as a whole after this (its first part is committed); what it writes
    afterwards runs in units of its own (`run_in_unit`). The outbox messages of this commit are relayed with
    those of the next unit (or the request's end), so the call that follows is not delayed by the broker.
    """
    db.session.commit()
    if has_request_context():
        g.setdefault(_COMMITTED_EARLY, True)


def committed_early() -> bool:
    """Whether this request has committed part of its work already (`commit_before_network_call`)."""
    return has_request_context() and bool(g.get(_COMMITTED_EARLY))


def run_in_unit(operation: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `operation` as one unit of work and commit it; on a lost race, roll back and run it again.

    For tasks, each item of a sweep, commands, and the steps of a request after its first commit. A few
    attempts with jittered backoff; the last failure is raised. The operation must do nothing outside the
    database (the outbox is relayed once the commit succeeded), so running it again repeats nothing.
    """
    attempts = _retry_attempts()
    for attempt in range(1, attempts + 1):
        try:
            result = operation(*args, **kwargs)
            db.session.commit()
        except BaseException as exc:
            db.session.rollback()
            if attempt == attempts or not is_retryable(exc):
                raise
            log.info(
                "unit %s lost a race (attempt %s of %s), running it again: %s",
                operation,
                attempt,
                attempts,
                exc,
            )
            _wait_before_retry(attempt)
            continue
        outbox.relay_committed()
        return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def _database_error(exc: SQLAlchemyError) -> Response:
    """503 with `Retry-After` for a race lost too often or a database out of reach; anything else stays a 500."""
    if is_retryable(exc):
        message = "The service is busy; please try again shortly."
    elif is_unavailable(exc):
        message = "The database cannot be reached; please try again shortly."
    else:
        raise exc
    log.warning("answering 503: %s: %s", exc.__class__.__name__, exc)
    try:
        db.session.rollback()
    except SQLAlchemyError:
        log.info("rollback after a database failure failed too", exc_info=True)
    response = error_response(503, message)
    response.headers["Retry-After"] = str(current_app.config["DATABASE_RETRY_AFTER_SECONDS"])
    return response


def init_app(app: Flask) -> None:
    with app.app_context():
        if is_sqlite():
            configure_sqlite(db.engine, app.config["SQLITE_BUSY_TIMEOUT_SECONDS"])
        else:
            limit_connect_time(db.engine, app.config["DATABASE_CONNECT_TIMEOUT_SECONDS"])
        ping_idle_connections(db.engine, app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])
    # The view and its commit, retried together (an instance attribute: Flask looks the method up on self).
    app.dispatch_request = functools.partial(_dispatch_in_unit, app, app.dispatch_request)  # type: ignore[method-assign]
    app.register_error_handler(SQLAlchemyError, _database_error)

    @app.before_request
    def _choose_transaction_kind() -> None:
        g._write_intent_token = _write_intent.set(request.method not in SAFE_METHODS)

    @app.after_request
    def _after_commit(response: Response) -> Response:
        """The view's unit committed (`_dispatch_in_unit`): relay its outbox; an error response rolls back."""
        if response.status_code < 400:
            db.session.commit()  # anything written after the unit (nothing, normally): as before
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
    """The one commit of a task or command: all of its changes, or none of them; then its outbox.

    Runs its body once; `run_in_unit` also runs it again after a lost race, and is what new code uses."""
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
