"""No-show reports, report disputes, closed Stripe disputes and admin refunds

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BOOKING_COLUMNS = (
    ("dispute_closed_at", sa.DateTime(timezone=True)),
    ("dispute_outcome", sa.String(length=32)),
    ("no_show_party", sa.String(length=16)),
    ("report_dispute_at", sa.DateTime(timezone=True)),
    ("report_dispute_resolved_at", sa.DateTime(timezone=True)),
    ("report_dispute_outcome", sa.String(length=16)),
)


def upgrade():
    for name, kind in BOOKING_COLUMNS:
        op.add_column("bookings", sa.Column(name, kind, nullable=True))
    op.create_table(
        "no_show_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("reporter_id", sa.Integer(), nullable=False),
        sa.Column("absent_party", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_no_show_reports_booking_id_bookings"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reporter_id"], ["users.id"], name=op.f("fk_no_show_reports_reporter_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_no_show_reports")),
        sa.UniqueConstraint("booking_id", "absent_party", name=op.f("uq_no_show_reports_booking_id")),
    )
    op.create_index(op.f("ix_no_show_reports_booking_id"), "no_show_reports", ["booking_id"])
    op.create_table(
        "admin_refunds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("admin_id", sa.Integer(), nullable=True),
        sa.Column("request_key", sa.String(length=255), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("refund_reference", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["bookings.id"], name=op.f("fk_admin_refunds_booking_id_bookings"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["users.id"], name=op.f("fk_admin_refunds_admin_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_refunds")),
        sa.UniqueConstraint("booking_id", "request_key", name=op.f("uq_admin_refunds_booking_id")),
    )
    op.create_index(op.f("ix_admin_refunds_booking_id"), "admin_refunds", ["booking_id"])


def downgrade():
    op.drop_index(op.f("ix_admin_refunds_booking_id"), table_name="admin_refunds")
    op.drop_table("admin_refunds")
    op.drop_index(op.f("ix_no_show_reports_booking_id"), table_name="no_show_reports")
    op.drop_table("no_show_reports")
    with op.batch_alter_table("bookings") as batch:
        for name, _kind in reversed(BOOKING_COLUMNS):
            batch.drop_column(name)
