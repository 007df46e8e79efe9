"""profile_revisions: changes to a submitted mentor profile's public fields, waiting for an admin

Revision ID: 0010
Revises: 0009

An approved (or suspended, or in-review) mentor's edit of public fields is kept here until an admin approves
it; only then are the fields copied onto mentor_profiles (whose catalog triggers of 0008 then fire). At most
one revision per profile is pending (a partial unique index). vetting_events.revision_id ties the audit
steps (submitted, withdrawn, approved, rejected) to their revision. Nothing public reads this table, so it
has no catalog trigger.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade():
    op.create_table(
        "profile_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("admin_note", sa.Text(), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["mentor_profiles.id"],
            name=op.f("fk_profile_revisions_profile_id_mentor_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_profile_revisions_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_revisions")),
    )
    op.create_index(op.f("ix_profile_revisions_profile_id"), "profile_revisions", ["profile_id"])
    op.create_index(
        "uq_profile_revisions_one_pending",
        "profile_revisions",
        ["profile_id"],
        unique=True,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    # Batch mode: SQLite cannot add a foreign key to an existing table, so it rebuilds vetting_events
    # (which has no triggers to lose); PostgreSQL gets plain ALTERs.
    with op.batch_alter_table("vetting_events") as batch_op:
        batch_op.add_column(sa.Column("revision_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_vetting_events_revision_id_profile_revisions"),
            "profile_revisions",
            ["revision_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(batch_op.f("ix_vetting_events_revision_id"), ["revision_id"])


def downgrade():
    with op.batch_alter_table("vetting_events") as batch_op:
        batch_op.drop_index(batch_op.f("ix_vetting_events_revision_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_vetting_events_revision_id_profile_revisions"), type_="foreignkey"
        )
        batch_op.drop_column("revision_id")
    op.drop_index("uq_profile_revisions_one_pending", table_name="profile_revisions")
    op.drop_index(op.f("ix_profile_revisions_profile_id"), table_name="profile_revisions")
    op.drop_table("profile_revisions")
