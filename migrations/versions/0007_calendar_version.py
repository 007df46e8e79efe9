"""calendar_version on mentor_profiles: bumped with every change to a mentor's free slots

Revision ID: 0007
Revises: 0006

Slot listings are cached under the version (marketplace/mentors/calendar_version.py), so a cached list can never
outlive the calendar it was computed from.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    # A plain ALTER, not batch mode: recreating mentor_profiles on SQLite would drop its search triggers.
    op.add_column(
        "mentor_profiles", sa.Column("calendar_version", sa.Integer(), nullable=False, server_default="0")
    )


def downgrade():
    op.drop_column("mentor_profiles", "calendar_version")
