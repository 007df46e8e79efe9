"""PaymentIntents this deployment opened; retry bookkeeping and parking of Stripe events

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "issued_intents",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_issued_intents_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_intents")),
    )
    op.create_index(op.f("ix_issued_intents_booking_id"), "issued_intents", ["booking_id"])
    # The intents of bookings made before this revision are ours too (their earlier ones are not known).
    op.execute(
        "INSERT INTO issued_intents (id, booking_id, created_at) "
        "SELECT payment_intent_id, id, created_at FROM bookings WHERE payment_intent_id IS NOT NULL"
    )

    op.add_column("stripe_events", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("stripe_events", sa.Column("last_error", sa.String(length=500), nullable=True))
    op.add_column("stripe_events", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("stripe_events", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(op.f("ix_stripe_events_parked_at"), "stripe_events", ["parked_at"])


def downgrade():
    op.drop_index(op.f("ix_stripe_events_parked_at"), table_name="stripe_events")
    with op.batch_alter_table("stripe_events") as batch:
        for column in ("parked_at", "next_attempt_at", "last_error", "attempts"):
            batch.drop_column(column)
    op.drop_index(op.f("ix_issued_intents_booking_id"), table_name="issued_intents")
    op.drop_table("issued_intents")
