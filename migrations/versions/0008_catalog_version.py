"""catalog_version: one number bumped by every commit that changes what mentor search or a career page shows

Revision ID: 0008
Revises: 0007

Search results and career pages are cached per process under this number (marketplace/mentors/catalog.py),
so triggers bump it whichever code path (or bulk load, or hand-written SQL) changes their sources.

On PostgreSQL the triggers are deferred constraint triggers: the bump runs as the transaction commits, after
all of its statements, so the single row is the last lock any transaction takes and is held only while it
commits (bumping mid-transaction would let two writers deadlock on it). Deferred triggers all fire in the
COMMIT statement, so a transaction-local flag holding that statement's timestamp makes the first changed row
bump and the others skip. SQLite has one writer at a time, so its row-level triggers bump at once.

Columns that do not change what search shows are left out (`calendar_version` moves with every booking,
`updated_at` with it), as are reviews (a mentor's rating is copied to their profile).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PROFILE_COLUMNS = (
    "user_id, headline, bio, years_experience, price_cents, currency, session_minutes, timezone, "
    "vetting_status, rating_avg, rating_count, next_available_at"
)
# (table, events): what search and the career pages read.
SOURCES = (
    ("mentor_profiles", ("INSERT", f"UPDATE OF {PROFILE_COLUMNS}", "DELETE")),
    ("mentor_tags", ("INSERT", "UPDATE", "DELETE")),
    ("users", ("UPDATE OF name, is_active_account", "DELETE")),
    ("career_paths", ("INSERT", "UPDATE", "DELETE")),
    ("career_path_skills", ("INSERT", "UPDATE", "DELETE")),
)
BUMP = "UPDATE catalog_version SET version = version + 1 WHERE id = 1;"

PG_FUNCTION = f"""
CREATE FUNCTION catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('marketplace.catalog_bumped', true) IS DISTINCT FROM statement_timestamp()::text THEN
        PERFORM set_config('marketplace.catalog_bumped', statement_timestamp()::text, true);
        {BUMP}
    END IF;
    RETURN NULL;
END $$;
"""


def _trigger_name(table, event):
    return f"catalog_{table}_{event.split()[0].lower()}"


def upgrade():
    op.create_table(
        "catalog_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO catalog_version (id, version) VALUES (1, 1)")
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(PG_FUNCTION)
    for table, events in SOURCES:
        for event in events:
            name = _trigger_name(table, event)
            if postgresql:
                op.execute(
                    f"CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON {table} "
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION catalog_changed()"
                )
            else:
                op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {BUMP} END")


def downgrade():
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, events in SOURCES:
        for event in events:
            op.execute(f"DROP TRIGGER {_trigger_name(table, event)}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION catalog_changed()")
    op.drop_table("catalog_version")
