"""Mentor approval before charging (awaiting_mentor holds its slot); notice periods for cancelling and moving

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

OLD_LIVE = "('pending_payment', 'confirmed')"
NEW_LIVE = "('pending_payment', 'awaiting_mentor', 'confirmed')"


def _sqlite_check(live: str) -> str:
    # As in 0003: times are ISO strings of one fixed format, so string comparison is time order.
    return f"""
    SELECT RAISE(ABORT, 'booking overlaps another live booking of this mentor')
    WHERE NEW.status IN {live} AND EXISTS (
        SELECT 1 FROM bookings AS other
        WHERE other.mentor_id = NEW.mentor_id
          AND other.id IS NOT NEW.id
          AND other.status IN {live}
          AND other.start_at < NEW.blocked_until
          AND NEW.start_at < other.blocked_until
    );
"""


def _no_overlap(live: str) -> None:
    """The database's no-overlap invariant over the statuses in `live` (0003 made the first one)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE bookings DROP CONSTRAINT ex_bookings_mentor_no_overlap")
        op.execute(
            "ALTER TABLE bookings ADD CONSTRAINT ex_bookings_mentor_no_overlap EXCLUDE USING gist "
            "(mentor_id WITH =, tstzrange(start_at, blocked_until, '[)') WITH &&) "
            f"WHERE (status IN {live})"
        )
        return
    op.execute("DROP TRIGGER IF EXISTS bookings_no_overlap_update")
    op.execute("DROP TRIGGER IF EXISTS bookings_no_overlap_insert")
    check = _sqlite_check(live)
    op.execute(f"CREATE TRIGGER bookings_no_overlap_insert BEFORE INSERT ON bookings BEGIN {check} END")
    op.execute(
        "CREATE TRIGGER bookings_no_overlap_update "
        "BEFORE UPDATE OF start_at, blocked_until, status, mentor_id ON bookings "
        f"BEGIN {check} END"
    )


def upgrade():
    op.add_column(
        "mentor_profiles",
        sa.Column("requires_confirmation", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "mentor_profiles", sa.Column("cancel_notice_hours", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("mentor_profiles", sa.Column("reschedule_notice_hours", sa.Integer(), nullable=True))
    op.add_column("bookings", sa.Column("mentor_accepted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bookings", sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True))
    _no_overlap(NEW_LIVE)


def downgrade():
    # Requests still waiting for their mentor are released: the old schema has no such state.
    op.execute("UPDATE bookings SET status = 'expired' WHERE status = 'awaiting_mentor'")
    op.execute("UPDATE bookings SET status = 'cancelled' WHERE status = 'declined'")
    _no_overlap(OLD_LIVE)
    op.drop_column("bookings", "authorized_at")
    op.drop_column("bookings", "mentor_accepted_at")
    op.drop_column("mentor_profiles", "reschedule_notice_hours")
    op.drop_column("mentor_profiles", "cancel_notice_hours")
    op.drop_column("mentor_profiles", "requires_confirmation")
