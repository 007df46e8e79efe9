"""career paths; mentor full-text search (PostgreSQL tsvector + GIN, SQLite FTS5), kept in sync by triggers

Revision ID: 0004
Revises: 0003

The search document of a mentor is their name, headline, bio and skills. It spans three tables (users,
mentor_profiles, mentor_tags), so no generated column can hold it; triggers on all three rebuild one
mentor's document whenever any of its parts changes, whichever code path changed it. Ratings and
next_available_at are not part of it, so the frequent writes to those columns do not fire anything.

Punctuation splits words on both databases (`ci/cd` -> `ci cd`), and neither folds accents, so one query
finds the same mentors on PostgreSQL and SQLite.

SQLite drops a table's triggers with the table: a later batch migration that recreates mentor_profiles,
mentor_tags or users must recreate these triggers (see SQLITE_TRIGGERS).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# --- PostgreSQL --------------------------------------------------------------------------------------

PG_REFRESH_FUNCTION = r"""
CREATE FUNCTION mentor_search_refresh(target integer) RETURNS void LANGUAGE sql AS $$
    INSERT INTO mentor_search (profile_id, document)
    SELECT p.id,
           to_tsvector('simple', regexp_replace(
               concat_ws(' ', u.name, p.headline, p.bio,
                         (SELECT string_agg(t.value, ' ') FROM mentor_tags AS t
                          WHERE t.profile_id = p.id AND t.kind = 'skill')),
               '[[:punct:][:space:]]+', ' ', 'g'))
    FROM mentor_profiles AS p JOIN users AS u ON u.id = p.user_id
    WHERE p.id = target
    ON CONFLICT (profile_id) DO UPDATE SET document = EXCLUDED.document
$$
"""

PG_TRIGGER_FUNCTIONS = (
    r"""
CREATE FUNCTION mentor_search_on_profile() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mentor_search_refresh(NEW.id);
    RETURN NULL;
END $$
""",
    r"""
CREATE FUNCTION mentor_search_on_tag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        IF OLD.kind = 'skill' THEN
            PERFORM mentor_search_refresh(OLD.profile_id);
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        IF NEW.kind = 'skill' THEN
            PERFORM mentor_search_refresh(NEW.profile_id);
        END IF;
    END IF;
    RETURN NULL;
END $$
""",
    r"""
CREATE FUNCTION mentor_search_on_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mentor_search_refresh(p.id) FROM mentor_profiles AS p WHERE p.user_id = NEW.id;
    RETURN NULL;
END $$
""",
)

PG_TRIGGERS = (
    "CREATE TRIGGER mentor_search_profile_insert AFTER INSERT ON mentor_profiles "
    "FOR EACH ROW EXECUTE FUNCTION mentor_search_on_profile()",
    "CREATE TRIGGER mentor_search_profile_update AFTER UPDATE OF headline, bio, user_id ON mentor_profiles "
    "FOR EACH ROW WHEN (OLD.headline IS DISTINCT FROM NEW.headline OR OLD.bio IS DISTINCT FROM NEW.bio "
    "OR OLD.user_id IS DISTINCT FROM NEW.user_id) EXECUTE FUNCTION mentor_search_on_profile()",
    "CREATE TRIGGER mentor_search_tag AFTER INSERT OR UPDATE OR DELETE ON mentor_tags "
    "FOR EACH ROW EXECUTE FUNCTION mentor_search_on_tag()",
    "CREATE TRIGGER mentor_search_user AFTER UPDATE OF name ON users "
    "FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION mentor_search_on_user()",
)


def _upgrade_postgresql():
    op.create_table(
        "mentor_search",
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("document", postgresql.TSVECTOR(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["mentor_profiles.id"],
            name=op.f("fk_mentor_search_profile_id_mentor_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_mentor_search")),
    )
    op.create_index("ix_mentor_search_document", "mentor_search", ["document"], postgresql_using="gin")
    op.execute(PG_REFRESH_FUNCTION)
    for statement in (*PG_TRIGGER_FUNCTIONS, *PG_TRIGGERS):
        op.execute(statement)
    op.execute("SELECT mentor_search_refresh(id) FROM mentor_profiles")


def _downgrade_postgresql():
    op.execute("DROP TRIGGER mentor_search_user ON users")
    op.execute("DROP TRIGGER mentor_search_tag ON mentor_tags")
    op.execute("DROP TRIGGER mentor_search_profile_update ON mentor_profiles")
    op.execute("DROP TRIGGER mentor_search_profile_insert ON mentor_profiles")
    op.execute("DROP FUNCTION mentor_search_on_user()")
    op.execute("DROP FUNCTION mentor_search_on_tag()")
    op.execute("DROP FUNCTION mentor_search_on_profile()")
    op.execute("DROP FUNCTION mentor_search_refresh(integer)")
    op.drop_table("mentor_search")


# --- SQLite ------------------------------------------------------------------------------------------

SQLITE_DOCUMENTS = """
    INSERT INTO mentor_search (rowid, document)
    SELECT p.id,
           u.name || ' ' || coalesce(p.headline, '') || ' ' || coalesce(p.bio, '') || ' ' ||
           coalesce((SELECT group_concat(t.value, ' ') FROM mentor_tags AS t
                     WHERE t.profile_id = p.id AND t.kind = 'skill'), '')
    FROM mentor_profiles AS p JOIN users AS u ON u.id = p.user_id
    WHERE p.id IN ({ids});
"""
# SQLite triggers cannot call a shared function, so each one repeats this body for its own profile ids.
SQLITE_REFRESH = "DELETE FROM mentor_search WHERE rowid IN ({ids});" + SQLITE_DOCUMENTS

SQLITE_TRIGGERS = {
    "mentor_search_profile_insert": ("AFTER INSERT ON mentor_profiles", SQLITE_REFRESH.format(ids="NEW.id")),
    "mentor_search_profile_update": (
        "AFTER UPDATE OF headline, bio, user_id ON mentor_profiles",
        SQLITE_REFRESH.format(ids="NEW.id"),
    ),
    "mentor_search_profile_delete": (
        "AFTER DELETE ON mentor_profiles",
        "DELETE FROM mentor_search WHERE rowid = OLD.id;",
    ),
    "mentor_search_tag_insert": (
        "AFTER INSERT ON mentor_tags WHEN NEW.kind = 'skill'",
        SQLITE_REFRESH.format(ids="NEW.profile_id"),
    ),
    "mentor_search_tag_delete": (
        "AFTER DELETE ON mentor_tags WHEN OLD.kind = 'skill'",
        SQLITE_REFRESH.format(ids="OLD.profile_id"),
    ),
    "mentor_search_tag_update": (
        "AFTER UPDATE ON mentor_tags",
        SQLITE_REFRESH.format(ids="OLD.profile_id, NEW.profile_id"),
    ),
    "mentor_search_user_update": (
        "AFTER UPDATE OF name ON users",
        SQLITE_REFRESH.format(ids="SELECT id FROM mentor_profiles WHERE user_id = NEW.id"),
    ),
}


def _upgrade_sqlite():
    op.execute(
        "CREATE VIRTUAL TABLE mentor_search USING fts5(document, tokenize = 'unicode61 remove_diacritics 0')"
    )
    for name, (when, body) in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    op.execute(SQLITE_DOCUMENTS.format(ids="SELECT id FROM mentor_profiles"))


def _downgrade_sqlite():
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER {name}")
    op.execute("DROP TABLE mentor_search")


# --- both --------------------------------------------------------------------------------------------


def upgrade():
    op.create_table(
        "career_paths",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=80), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("summary", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("books", sa.JSON(), nullable=False),
        sa.Column("courses", sa.JSON(), nullable=False),
        sa.Column("related", sa.JSON(), nullable=False),
        sa.Column("salary_currency", sa.String(length=3), nullable=False),
        sa.Column("salary_entry", sa.Integer(), nullable=False),
        sa.Column("salary_senior", sa.Integer(), nullable=False),
        sa.Column("salary_basis", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_career_paths")),
        sa.UniqueConstraint("slug", name=op.f("uq_career_paths_slug")),
    )
    op.create_table(
        "career_path_skills",
        sa.Column("path_id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["path_id"],
            ["career_paths.id"],
            name=op.f("fk_career_path_skills_path_id_career_paths"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("path_id", "skill", name=op.f("pk_career_path_skills")),
    )
    op.create_index(op.f("ix_career_path_skills_skill"), "career_path_skills", ["skill"])
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgresql()
    else:
        _downgrade_sqlite()
    op.drop_index(op.f("ix_career_path_skills_skill"), table_name="career_path_skills")
    op.drop_table("career_path_skills")
    op.drop_table("career_paths")
