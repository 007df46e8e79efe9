"""outbox, Stripe events, mentor earnings ledger, payment columns on bookings

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=120), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    op.create_index(op.f("ix_outbox_messages_published_at"), "outbox_messages", ["published_at"])

    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(op.f("ix_stripe_events_type"), "stripe_events", ["type"])

    op.create_table(
        "earning_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mentor_id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payout_reference", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_earning_entries_booking_id_bookings"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["mentor_id"],
            ["mentor_profiles.id"],
            name=op.f("fk_earning_entries_mentor_id_mentor_profiles"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_earning_entries")),
        sa.UniqueConstraint("booking_id", "kind", name=op.f("uq_earning_entries_booking_id")),
    )
    op.create_index(op.f("ix_earning_entries_mentor_id"), "earning_entries", ["mentor_id"])

    # Plain ALTERs, not batch mode: recreating `bookings` on SQLite would drop its no-overlap triggers.
    op.add_column("bookings", sa.Column("payment_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("bookings", sa.Column("last_payment_error", sa.String(length=500), nullable=True))
    op.add_column("bookings", sa.Column("refund_reference", sa.String(length=255), nullable=True))
    op.add_column("bookings", sa.Column("disputed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("bookings", sa.Column("payment_reconciled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    for column in ("payment_reconciled_at", "disputed_at", "refund_reference", "last_payment_error", "payment_attempts"):
        op.drop_column("bookings", column)
    op.drop_index(op.f("ix_earning_entries_mentor_id"), table_name="earning_entries")
    op.drop_table("earning_entries")
    op.drop_index(op.f("ix_stripe_events_type"), table_name="stripe_events")
    op.drop_table("stripe_events")
    op.drop_index(op.f("ix_outbox_messages_published_at"), table_name="outbox_messages")
    op.drop_table("outbox_messages")
