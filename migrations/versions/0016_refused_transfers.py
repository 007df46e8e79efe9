"""Transfers the provider refused, parked for the admins and retried with backoff

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "refused_transfers",
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("mentor_id", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("first_refused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_refused_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_refused_transfers_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mentor_id"],
            ["mentor_profiles.id"],
            name=op.f("fk_refused_transfers_mentor_id_mentor_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", name=op.f("pk_refused_transfers")),
    )
    op.create_index(op.f("ix_refused_transfers_mentor_id"), "refused_transfers", ["mentor_id"], unique=False)
    op.create_index(
        op.f("ix_refused_transfers_next_attempt_at"), "refused_transfers", ["next_attempt_at"], unique=False
    )


def downgrade():
    op.drop_index(op.f("ix_refused_transfers_next_attempt_at"), table_name="refused_transfers")
    op.drop_index(op.f("ix_refused_transfers_mentor_id"), table_name="refused_transfers")
    op.drop_table("refused_transfers")
