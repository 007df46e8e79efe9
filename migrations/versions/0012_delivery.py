"""Outbox rows done when consumed: completion, redelivery time and parking; failed mails listed by status

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("outbox_messages", sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox_messages", sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox_messages", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
    # Rows published before this revision are taken as done (nothing recorded otherwise); the rest are due.
    op.execute("UPDATE outbox_messages SET completed_at = published_at WHERE published_at IS NOT NULL")
    op.execute("UPDATE outbox_messages SET next_attempt_at = created_at WHERE published_at IS NULL")
    op.drop_index(op.f("ix_outbox_messages_published_at"), table_name="outbox_messages")
    op.create_index(op.f("ix_outbox_messages_next_attempt_at"), "outbox_messages", ["next_attempt_at"])
    op.create_index(op.f("ix_outbox_messages_parked_at"), "outbox_messages", ["parked_at"])
    op.create_index(op.f("ix_sent_emails_status"), "sent_emails", ["status"])


def downgrade():
    op.drop_index(op.f("ix_sent_emails_status"), table_name="sent_emails")
    op.drop_index(op.f("ix_outbox_messages_parked_at"), table_name="outbox_messages")
    op.drop_index(op.f("ix_outbox_messages_next_attempt_at"), table_name="outbox_messages")
    # Before this revision a published row was done: keep the ones not completed due for a new send.
    op.execute("UPDATE outbox_messages SET published_at = NULL WHERE completed_at IS NULL")
    op.create_index(op.f("ix_outbox_messages_published_at"), "outbox_messages", ["published_at"])
    with op.batch_alter_table("outbox_messages") as batch:
        for column in ("parked_at", "completed_at", "next_attempt_at"):
            batch.drop_column(column)
