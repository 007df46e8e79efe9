"""career paths and their mentor matches; mentor full-text search (PostgreSQL tsvector + GIN, SQLite FTS5)

Revision ID: 0004
Revises: 0003

Two derived tables, kept right by triggers whichever code path (or bulk load) changes their sources:

- mentor_search: one document per mentor, their name, headline, bio and skills. It spans users,
  mentor_profiles and mentor_tags, so no generated column can hold it.
- career_path_matches: per (path, mentor), whether the mentor chose the path and how many of its skills
  they list. Searching a path reads these rows by index instead of aggregating every mentor's tags.

Rating, price and next_available_at are not inputs of either, so their frequent updates change nothing
here. PostgreSQL triggers are statement-level with transition tables, so a bulk load refreshes each
mentor once per statement; SQLite only has row-level triggers.

Punctuation splits words on both databases (`ci/cd` -> `ci cd`) and neither folds accents, so one query
finds the same mentors on both.

SQLite drops a table's triggers with the table: a later batch migration that recreates one of the
tables named in SQLITE_TRIGGERS must create its triggers again.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Refreshing the matches of some mentors, some paths or some removed paths: delete their rows, then insert
# what the tags show. Choosing a path needs only the mentor's tags (so it counts even before the content is
# loaded); sharing skills needs the path's skills. Every condition reaches the rows it needs by index.
MATCHES = """
    DELETE FROM career_path_matches WHERE {delete};
    INSERT INTO career_path_matches (path_slug, profile_id, chose, overlap)
    SELECT found.path_slug, found.profile_id, max(found.chose), sum(found.overlap)
    FROM (
        SELECT t.value AS path_slug, t.profile_id AS profile_id, 1 AS chose, 0 AS overlap
        FROM mentor_tags AS t
        WHERE t.kind = 'career_path' AND {chosen}
        UNION ALL
        SELECT p.slug, t.profile_id, 0, 1
        FROM career_paths AS p
        JOIN career_path_skills AS s ON s.path_id = p.id
        JOIN mentor_tags AS t ON t.kind = 'skill' AND t.value = s.skill
        WHERE {skilled}
    ) AS found
    GROUP BY found.path_slug, found.profile_id;
"""


def _matches_of_mentors(ids):
    """For the mentors whose ids are in `ids` (an SQL list such as `(NEW.profile_id)`).

    Mentors being deleted are skipped: their tags are going in the same cascade.
    """
    live = f"t.profile_id IN (SELECT id FROM mentor_profiles WHERE id IN {ids})"
    return MATCHES.format(delete=f"profile_id IN {ids}", chosen=live, skilled=live)


def _matches_of_paths(ids):
    """For the paths whose ids are in `ids`; they exist, so their slugs can be looked up."""
    slugs = f"(SELECT slug FROM career_paths WHERE id IN {ids})"
    return MATCHES.format(
        delete=f"path_slug IN {slugs}", chosen=f"t.value IN {slugs}", skilled=f"p.id IN {ids}"
    )


def _matches_of_removed_paths(slugs):
    """For paths just deleted: only the mentors who chose them remain."""
    return MATCHES.format(delete=f"path_slug IN {slugs}", chosen=f"t.value IN {slugs}", skilled="FALSE")


def _create_tables(dialect):
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
    op.create_table(
        "career_path_matches",
        sa.Column("path_slug", sa.String(length=80), nullable=False),
        sa.Column("profile_id", sa.Integer(), nullable=False),
        sa.Column("chose", sa.Integer(), nullable=False),
        sa.Column("overlap", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["mentor_profiles.id"],
            name=op.f("fk_career_path_matches_profile_id_mentor_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("path_slug", "profile_id", name=op.f("pk_career_path_matches")),
    )
    op.create_index(op.f("ix_career_path_matches_profile_id"), "career_path_matches", ["profile_id"])
    if dialect == "postgresql":
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
    else:
        op.execute(
            "CREATE VIRTUAL TABLE mentor_search USING fts5(document, tokenize = 'unicode61 remove_diacritics 0')"
        )


# --- PostgreSQL --------------------------------------------------------------------------------------

PG_FUNCTIONS = (
    r"""
CREATE FUNCTION mentor_search_refresh(ids integer[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO mentor_search (profile_id, document)
    SELECT p.id,
           to_tsvector('simple', regexp_replace(
               concat_ws(' ', u.name, p.headline, p.bio,
                         (SELECT string_agg(t.value, ' ') FROM mentor_tags AS t
                          WHERE t.profile_id = p.id AND t.kind = 'skill')),
               '[[:punct:][:space:]]+', ' ', 'g'))
    FROM mentor_profiles AS p JOIN users AS u ON u.id = p.user_id
    WHERE p.id = ANY(ids)
    ON CONFLICT (profile_id) DO UPDATE SET document = EXCLUDED.document
$$
""",
    f"""
CREATE FUNCTION career_path_matches_of_mentors(ids integer[]) RETURNS void LANGUAGE sql AS $$
    {_matches_of_mentors("(SELECT unnest(ids))")}
$$
""",
    f"""
CREATE FUNCTION career_path_matches_of_paths(ids integer[]) RETURNS void LANGUAGE sql AS $$
    {_matches_of_paths("(SELECT unnest(ids))")}
$$
""",
    f"""
CREATE FUNCTION career_path_matches_of_removed_paths(slugs text[]) RETURNS void LANGUAGE sql AS $$
    {_matches_of_removed_paths("(SELECT unnest(slugs))")}
$$
""",
    r"""
CREATE FUNCTION mentor_profiles_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM mentor_search_refresh(ARRAY(SELECT id FROM new_rows));
    ELSE
        PERFORM mentor_search_refresh(ARRAY(
            SELECT n.id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
            WHERE (n.headline, n.bio, n.user_id) IS DISTINCT FROM (o.headline, o.bio, o.user_id)));
    END IF;
    RETURN NULL;
END $$
""",
    r"""
CREATE FUNCTION mentor_tags_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed integer[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        changed := ARRAY(SELECT DISTINCT profile_id FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        changed := ARRAY(SELECT DISTINCT profile_id FROM old_rows);
    ELSE
        changed := ARRAY(SELECT profile_id FROM new_rows UNION SELECT profile_id FROM old_rows);
    END IF;
    PERFORM mentor_search_refresh(changed);
    PERFORM career_path_matches_of_mentors(changed);
    RETURN NULL;
END $$
""",
    r"""
CREATE FUNCTION users_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mentor_search_refresh(ARRAY(
        SELECT p.id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        JOIN mentor_profiles AS p ON p.user_id = n.id
        WHERE n.name IS DISTINCT FROM o.name));
    RETURN NULL;
END $$
""",
    r"""
CREATE FUNCTION career_paths_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM career_path_matches_of_removed_paths(ARRAY(SELECT slug::text FROM old_rows));
    RETURN NULL;
END $$
""",
    r"""
CREATE FUNCTION career_path_skills_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM career_path_matches_of_paths(ARRAY(SELECT DISTINCT path_id FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM career_path_matches_of_paths(ARRAY(SELECT DISTINCT path_id FROM old_rows));
    ELSE
        PERFORM career_path_matches_of_paths(ARRAY(SELECT path_id FROM new_rows UNION SELECT path_id FROM old_rows));
    END IF;
    RETURN NULL;
END $$
""",
)

# (table, function): one statement-level trigger per event, each with the transition tables it may use.
PG_TRIGGERS = (
    ("mentor_profiles", "mentor_profiles_changed", ("INSERT", "UPDATE")),
    ("mentor_tags", "mentor_tags_changed", ("INSERT", "UPDATE", "DELETE")),
    ("users", "users_renamed", ("UPDATE",)),
    ("career_path_skills", "career_path_skills_changed", ("INSERT", "UPDATE", "DELETE")),
    ("career_paths", "career_paths_removed", ("DELETE",)),
)
PG_TRANSITIONS = {
    "INSERT": "NEW TABLE AS new_rows",
    "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "OLD TABLE AS old_rows",
}


def _upgrade_postgresql():
    for statement in PG_FUNCTIONS:
        op.execute(statement)
    for table, function, events in PG_TRIGGERS:
        for event in events:
            op.execute(
                f"CREATE TRIGGER {function}_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {PG_TRANSITIONS[event]} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    op.execute("SELECT mentor_search_refresh(ARRAY(SELECT id FROM mentor_profiles))")
    op.execute("SELECT career_path_matches_of_mentors(ARRAY(SELECT id FROM mentor_profiles))")


def _downgrade_postgresql():
    for table, function, events in PG_TRIGGERS:
        for event in events:
            op.execute(f"DROP TRIGGER {function}_{event.lower()} ON {table}")
        op.execute(f"DROP FUNCTION {function}()")
    op.execute("DROP FUNCTION career_path_matches_of_removed_paths(text[])")
    op.execute("DROP FUNCTION career_path_matches_of_paths(integer[])")
    op.execute("DROP FUNCTION career_path_matches_of_mentors(integer[])")
    op.execute("DROP FUNCTION mentor_search_refresh(integer[])")


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


# SQLite triggers cannot call a shared function, so each one repeats these bodies for its own ids.
def _sqlite_search(ids):
    return f"DELETE FROM mentor_search WHERE rowid IN ({ids});" + SQLITE_DOCUMENTS.format(ids=ids)


SQLITE_TRIGGERS = {
    "mentor_profiles_inserted": ("AFTER INSERT ON mentor_profiles", _sqlite_search("NEW.id")),
    "mentor_profiles_updated": (
        "AFTER UPDATE OF headline, bio, user_id ON mentor_profiles",
        _sqlite_search("NEW.id"),
    ),
    "mentor_profiles_deleted": (
        "AFTER DELETE ON mentor_profiles",
        "DELETE FROM mentor_search WHERE rowid = OLD.id;",
    ),
    "mentor_tags_inserted": (
        "AFTER INSERT ON mentor_tags",
        _sqlite_search("NEW.profile_id") + _matches_of_mentors("(NEW.profile_id)"),
    ),
    "mentor_tags_deleted": (
        "AFTER DELETE ON mentor_tags",
        _sqlite_search("OLD.profile_id") + _matches_of_mentors("(OLD.profile_id)"),
    ),
    "mentor_tags_updated": (
        "AFTER UPDATE ON mentor_tags",
        _sqlite_search("OLD.profile_id, NEW.profile_id")
        + _matches_of_mentors("(OLD.profile_id, NEW.profile_id)"),
    ),
    "users_renamed": (
        "AFTER UPDATE OF name ON users",
        _sqlite_search("SELECT id FROM mentor_profiles WHERE user_id = NEW.id"),
    ),
    "career_path_skills_inserted": (
        "AFTER INSERT ON career_path_skills",
        _matches_of_paths("(NEW.path_id)"),
    ),
    "career_path_skills_deleted": (
        "AFTER DELETE ON career_path_skills",
        _matches_of_paths("(OLD.path_id)"),
    ),
    "career_path_skills_updated": (
        "AFTER UPDATE ON career_path_skills",
        _matches_of_paths("(OLD.path_id, NEW.path_id)"),
    ),
    "career_paths_removed": ("AFTER DELETE ON career_paths", _matches_of_removed_paths("(OLD.slug)")),
}


def _upgrade_sqlite():
    for name, (when, body) in SQLITE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    op.execute(SQLITE_DOCUMENTS.format(ids="SELECT id FROM mentor_profiles"))
    for statement in _matches_of_mentors("(SELECT id FROM mentor_profiles)").split(";"):
        if statement.strip():
            op.execute(statement)


def _downgrade_sqlite():
    for name in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER {name}")


# --- both --------------------------------------------------------------------------------------------


def upgrade():
    dialect = op.get_bind().dialect.name
    _create_tables(dialect)
    if dialect == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        _downgrade_postgresql()
    else:
        _downgrade_sqlite()
    op.drop_table("mentor_search")
    op.drop_index(op.f("ix_career_path_matches_profile_id"), table_name="career_path_matches")
    op.drop_table("career_path_matches")
    op.drop_index(op.f("ix_career_path_skills_skill"), table_name="career_path_skills")
    op.drop_table("career_path_skills")
    op.drop_table("career_paths")
