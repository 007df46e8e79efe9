"""Mentor payouts with Stripe Connect: connected accounts, transfers per booking, payouts

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "payout_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mentor_id", sa.Integer(), nullable=False),
        sa.Column("stripe_account_id", sa.String(length=255), nullable=False),
        sa.Column("charges_enabled", sa.Boolean(), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), nullable=False),
        sa.Column("transfers_enabled", sa.Boolean(), nullable=False),
        sa.Column("details_submitted", sa.Boolean(), nullable=False),
        sa.Column("requirements_due", sa.JSON(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mentor_id"],
            ["mentor_profiles.id"],
            name=op.f("fk_payout_accounts_mentor_id_mentor_profiles"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_accounts")),
        sa.UniqueConstraint("mentor_id", name=op.f("uq_payout_accounts_mentor_id")),
        sa.UniqueConstraint("stripe_account_id", name=op.f("uq_payout_accounts_stripe_account_id")),
    )
    op.create_table(
        "mentor_transfers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("mentor_id", sa.Integer(), nullable=False),
        sa.Column("stripe_transfer_id", sa.String(length=255), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("amount_reversed_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_mentor_transfers_booking_id_bookings"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["mentor_id"],
            ["mentor_profiles.id"],
            name=op.f("fk_mentor_transfers_mentor_id_mentor_profiles"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentor_transfers")),
        sa.UniqueConstraint("booking_id", name=op.f("uq_mentor_transfers_booking_id")),
        sa.UniqueConstraint("stripe_transfer_id", name=op.f("uq_mentor_transfers_stripe_transfer_id")),
    )
    op.create_index(op.f("ix_mentor_transfers_mentor_id"), "mentor_transfers", ["mentor_id"])
    op.create_table(
        "connect_payouts",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("payout_account_id", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_message", sa.String(length=500), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["payout_account_id"],
            ["payout_accounts.id"],
            name=op.f("fk_connect_payouts_payout_account_id_payout_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connect_payouts")),
    )
    op.create_index(op.f("ix_connect_payouts_payout_account_id"), "connect_payouts", ["payout_account_id"])


def downgrade():
    op.drop_index(op.f("ix_connect_payouts_payout_account_id"), table_name="connect_payouts")
    op.drop_table("connect_payouts")
    op.drop_index(op.f("ix_mentor_transfers_mentor_id"), table_name="mentor_transfers")
    op.drop_table("mentor_transfers")
    op.drop_table("payout_accounts")
