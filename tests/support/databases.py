"""Databases of their own for tests that commit for real across processes (servers, workers)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool


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
