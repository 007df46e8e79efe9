"""Career-path content kept as TOML files and validated into plain dicts.

Copy for the career-path pages (role description, books, courses, pay growth, related paths) lives in
version-controlled files so it can be reviewed like code and edited without a migration. This module is
the single gate in front of that data: a typo in a file must fail loudly here, naming the file and the
field, rather than surface later as a broken page or a bad row in the database.

Pure on purpose: it imports neither Flask nor SQLAlchemy, so seeding scripts, tests and the app can all
reuse it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

__all__ = [
    "CONTENT_DIR",
    "BookSchema",
    "CareerPathContentSchema",
    "ContentError",
    "CourseSchema",
    "SalarySchema",
    "expected_hike_percent",
    "load_career_paths",
]

#: Folder holding one ``<slug>.toml`` file per career path.
CONTENT_DIR = Path(__file__).resolve().parent / "content"

SLUG_RE = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
# Skill tags are matched against mentors' skills by exact overlap, so they must be normalised:
# lowercase, no surrounding spaces, a small set of punctuation for tags such as "ci/cd" or "c++".
SKILL_RE = r"^[a-z0-9](?:[a-z0-9 +#./-]*[a-z0-9+#])?$"
CURRENCY_RE = r"^[A-Z]{3}$"
_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")


class ContentError(Exception):
    """A content file (or the set of files) is invalid.

    Carries ``path`` and ``field`` so callers and tests can tell exactly what to fix.
    """

    def __init__(self, path: Path | None, field: str | None, message: str) -> None:
        self.path = path
        self.field = field
        self.message = message
        where = path.name if path is not None else "career content"
        prefix = f"{where}: {field}" if field else where
        super().__init__(f"{prefix}: {message}")


def expected_hike_percent(entry: int, senior: int) -> int:
    """Return the entry-to-senior rise in whole percent; one formula shared by validation and callers."""
    return round((senior - entry) / entry * 100)


def _unique(values: list[Any]) -> bool:
    return len(values) == len(set(values))


_NON_BLANK = validate.Length(min=1)


class BookSchema(Schema):
    """A real book recommended for the path, with why it is worth reading."""

    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    authors = fields.List(
        fields.String(validate=validate.Length(min=1, max=120)),
        required=True,
        validate=validate.Length(min=1, max=8),
    )
    why = fields.String(required=True, validate=validate.Length(min=20, max=400))


class CourseSchema(Schema):
    """A course recommended for the path; ``url`` is optional because we only link what we are sure of."""

    class Meta:
        unknown = RAISE

    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    provider = fields.String(required=True, validate=validate.Length(min=1, max=120))
    url = fields.Url(schemes={"https"})
    why = fields.String(required=True, validate=validate.Length(min=20, max=400))


class SalarySchema(Schema):
    """Annual pay for entry and senior level, with a hike that must agree with both figures."""

    class Meta:
        unknown = RAISE

    currency = fields.String(
        required=True, validate=validate.Regexp(CURRENCY_RE, error="must be an ISO 4217 code")
    )
    entry = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    senior = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    hike_percent = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    # Optional absolute rise, for sources that state the gap in money rather than in percent.
    hike_amount = fields.Integer(strict=True, validate=validate.Range(min=0))
    basis = fields.String(required=True, validate=validate.Length(min=10, max=300))

    @validates_schema
    def _check_consistency(self, data: dict[str, Any], **kwargs: Any) -> None:
        entry, senior = data["entry"], data["senior"]
        if senior < entry:
            raise ValidationError(f"senior ({senior}) is below entry ({entry})", field_name="senior")
        expected = expected_hike_percent(entry, senior)
        if data["hike_percent"] != expected:
            raise ValidationError(
                f"{data['hike_percent']} does not match entry {entry} and senior {senior} "
                f"(expected {expected})",
                field_name="hike_percent",
            )
        if "hike_amount" in data and data["hike_amount"] != senior - entry:
            raise ValidationError(
                f"{data['hike_amount']} does not equal senior - entry ({senior - entry})",
                field_name="hike_amount",
            )


class CareerPathContentSchema(Schema):
    """One career path file. Unknown keys are rejected so misspelt fields cannot be silently ignored."""

    class Meta:
        unknown = RAISE

    slug = fields.String(
        required=True, validate=validate.Regexp(SLUG_RE, error="must be a lowercase-hyphen slug")
    )
    title = fields.String(required=True, validate=validate.Length(min=1, max=120))
    summary = fields.String(required=True, validate=validate.Length(min=20, max=300))
    description = fields.String(required=True, validate=validate.Length(min=200, max=6000))
    skills = fields.List(
        fields.String(validate=validate.Regexp(SKILL_RE, error="must be a lowercase skill tag")),
        required=True,
        validate=validate.Length(min=6, max=15),
    )
    books = fields.List(fields.Nested(BookSchema), required=True, validate=validate.Length(min=3, max=6))
    courses = fields.List(fields.Nested(CourseSchema), required=True, validate=validate.Length(min=2, max=4))
    salary = fields.Nested(SalarySchema, required=True)
    related = fields.List(
        fields.String(validate=validate.Regexp(SLUG_RE, error="must be a lowercase-hyphen slug")),
        required=True,
        validate=validate.Length(min=2, max=5),
    )

    @validates_schema
    def _check_lists(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        paragraphs = [p for p in _PARAGRAPH_SPLIT.split(data["description"].strip()) if p.strip()]
        if not 2 <= len(paragraphs) <= 4:
            errors["description"] = [
                f"must have 2-4 paragraphs separated by blank lines, got {len(paragraphs)}"
            ]
        if not _unique(data["skills"]):
            errors["skills"] = ["contains duplicate tags"]
        if not _unique([book["title"].casefold() for book in data["books"]]):
            errors["books"] = ["contains duplicate titles"]
        if not _unique([course["title"].casefold() for course in data["courses"]]):
            errors["courses"] = ["contains duplicate titles"]
        if not _unique(data["related"]):
            errors["related"] = ["contains duplicate slugs"]
        elif data["slug"] in data["related"]:
            errors["related"] = ["must not list the path itself"]
        if errors:
            raise ValidationError(errors)


def _first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """Flatten marshmallow's nested error dict to its first ``(dotted.field, message)`` pair."""
    if isinstance(messages, dict):
        key = sorted(messages, key=str)[0]
        path = f"{prefix}.{key}" if prefix else str(key)
        return _first_error(messages[key], path)
    if isinstance(messages, list) and messages:
        if all(isinstance(item, str) for item in messages):
            return prefix or "_schema", "; ".join(messages)
        return _first_error(messages[0], prefix)
    return prefix or "_schema", str(messages)


def _load_file(path: Path, schema: CareerPathContentSchema) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ContentError(path, None, f"invalid TOML: {exc}") from exc
    try:
        loaded: dict[str, Any] = schema.load(raw)
    except ValidationError as exc:
        field, message = _first_error(exc.messages)
        raise ContentError(path, field, message) from exc
    return loaded


def load_career_paths(directory: Path | None = None) -> list[dict[str, Any]]:
    """Read, validate and cross-check every ``*.toml`` career path, sorted by slug.

    Checks per file (schema), then across files: slugs are unique, each file name matches its slug, and
    every ``related`` slug names a path in the same set. Raises :class:`ContentError` on the first problem.
    """
    folder = CONTENT_DIR if directory is None else Path(directory)
    if not folder.is_dir():
        raise ContentError(folder, None, "content directory does not exist")
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise ContentError(folder, None, "no *.toml career path files found")

    schema = CareerPathContentSchema()
    loaded = [(path, _load_file(path, schema)) for path in files]

    # Duplicates first: a copied file would otherwise be reported only as a name mismatch.
    by_slug: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, item in loaded:
        slug = item["slug"]
        if slug in by_slug:
            other = by_slug[slug][0].name
            raise ContentError(path, "slug", f"duplicate slug {slug!r}, also used by {other}")
        by_slug[slug] = (path, item)

    for path, item in loaded:
        if path.stem != item["slug"]:
            raise ContentError(
                path, "slug", f"slug {item['slug']!r} does not match the file name {path.stem!r}"
            )

    for slug in sorted(by_slug):
        path, item = by_slug[slug]
        unknown = [name for name in item["related"] if name not in by_slug]
        if unknown:
            raise ContentError(path, "related", f"unknown career path slug(s): {', '.join(unknown)}")

    return [by_slug[slug][1] for slug in sorted(by_slug)]
