"""The migrations are the schema: they build what the models describe, and every revision can be undone."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from marketplace.extensions import db
from tests.helpers import temporary_app
from tests.support.databases import fresh_database

pytestmark = pytest.mark.slow


def _include_name(name: str | None, type_: str, _parents: object) -> bool:
    return not (type_ == "table" and (name or "").startswith("mentor_search"))


def test_migrations_match_the_models_and_downgrade_to_nothing(database_url: str, tmp_path: Path) -> None:
    with (
        fresh_database(database_url, tmp_path, prefix="migrations") as url,
        temporary_app(url) as app,
        app.app_context(),
    ):
        upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": _include_name}
            )
            assert compare_metadata(context, db.metadata) == []

        downgrade(revision="base")
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}

        upgrade()
        with db.engine.connect() as connection:
            assert "bookings" in inspect(connection).get_table_names()
