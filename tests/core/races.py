"""Lost races on demand: the error a unit gets when it loses one, and stand-ins that raise it first."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.exc import OperationalError


def lost_race(backend: str) -> OperationalError:
    """What the driver raises when a unit loses a race on this backend."""
    if backend == "postgresql":
        return OperationalError("SELECT 1", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


def failing(times: int, error: Exception, then: Callable[..., Any]) -> tuple[Callable[..., Any], list[int]]:
    """A stand-in for `then` that raises `error` on its first `times` calls; the list counts calls."""
    calls: list[int] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return then(*args, **kwargs)

    return call, calls


def losing_each_unit_once(
    run_in_unit: Callable[..., Any], error: Exception
) -> tuple[Callable[..., Any], list[str]]:
    """A stand-in for `run_in_unit` whose every unit does its work, then loses a race once before its commit
    (as a deadlock on its last statement would); the list names the units that lost."""
    lost: list[str] = []

    def run(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        attempts: list[int] = []

        def attempt(*a: Any, **k: Any) -> Any:
            result = operation(*a, **k)
            attempts.append(1)
            if len(attempts) == 1:
                lost.append(operation.__name__)
                raise error
            return result

        return run_in_unit(attempt, *args, **kwargs)

    return run, lost
