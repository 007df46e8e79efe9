"""Career-path content: the shipped TOML files and the loader that guards them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from marshmallow import ValidationError

from marketplace.careers.content import (
    CONTENT_DIR,
    CareerPathContentSchema,
    ContentError,
    expected_hike_percent,
    load_career_paths,
)

REQUIRED_SLUGS = {
    "backend-developer",
    "frontend-developer",
    "full-stack-developer",
    "devops-engineer",
    "data-engineer",
    "data-scientist",
    "machine-learning-engineer",
    "mobile-developer",
    "qa-automation-engineer",
    "security-engineer",
    "engineering-manager",
    "product-manager",
}

# Facts taken from the seed page the feature was specified from.
SEED_BOOKS = {
    "Microservice APIs": ["José Haro Peralta"],
    "High Performance Python": ["Micha Gorelick", "Ian Ozsvald"],
    "Python Cookbook": ["David Beazley", "Brian K. Jones"],
    "Designing Data-Intensive Applications": ["Martin Kleppmann"],
}
SEED_COURSES = {
    "Advanced Python",
    "Python Bootcamp: From Zero to Hero",
    "Introduction to Back-End Development",
}
SEED_SALARY_GAP_USD = 30_000
# The seed sits in the `shared/` folder beside the project checkout (see README).
SEED_PAGE = Path(__file__).resolve().parents[3] / "shared" / "seeds" / "backend-developer-career-path.txt"


@pytest.fixture(scope="module")
def paths() -> dict[str, dict[str, Any]]:
    return {item["slug"]: item for item in load_career_paths()}


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped content, so each test can break exactly one thing."""
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    return target


def _edit(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text(encoding="utf-8")
    new_text, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert count == 1, f"test setup: {pattern!r} not found in {path.name}"
    path.write_text(new_text, encoding="utf-8")


# --- shipped content -------------------------------------------------------------------------------


def test_shipped_content_has_all_required_paths_sorted(paths: dict[str, dict[str, Any]]) -> None:
    loaded = load_career_paths()
    assert len(loaded) >= 12
    assert set(paths) >= REQUIRED_SLUGS
    assert [item["slug"] for item in loaded] == sorted(paths)
    assert paths["backend-developer"]["title"] == "Backend Developer"


def test_every_shipped_file_is_named_after_its_slug() -> None:
    stems = {path.stem for path in CONTENT_DIR.glob("*.toml")}
    assert stems == {item["slug"] for item in load_career_paths()}


def test_backend_carries_the_seed_books_with_their_authors(paths: dict[str, dict[str, Any]]) -> None:
    books = {book["title"]: book["authors"] for book in paths["backend-developer"]["books"]}
    for title, authors in SEED_BOOKS.items():
        assert books.get(title) == authors, title


def test_backend_carries_the_seed_courses(paths: dict[str, dict[str, Any]]) -> None:
    courses = {course["title"]: course for course in paths["backend-developer"]["courses"]}
    assert set(courses) >= SEED_COURSES
    assert courses["Introduction to Back-End Development"]["provider"].startswith("Meta")


def test_backend_salary_uses_the_seed_gap(paths: dict[str, dict[str, Any]]) -> None:
    salary = paths["backend-developer"]["salary"]
    assert salary["currency"] == "USD"
    assert salary["hike_amount"] == SEED_SALARY_GAP_USD
    assert salary["senior"] - salary["entry"] == SEED_SALARY_GAP_USD
    assert salary["hike_percent"] == expected_hike_percent(salary["entry"], salary["senior"])
    assert "30,000" in salary["basis"]


def test_shipped_salaries_are_internally_consistent(paths: dict[str, dict[str, Any]]) -> None:
    for slug, item in paths.items():
        salary = item["salary"]
        assert salary["senior"] > salary["entry"], slug
        assert salary["hike_percent"] == round((salary["senior"] - salary["entry"]) / salary["entry"] * 100)


def test_related_paths_point_inside_the_set(paths: dict[str, dict[str, Any]]) -> None:
    for slug, item in paths.items():
        assert 2 <= len(item["related"]) <= 5, slug
        assert slug not in item["related"]
        assert set(item["related"]) <= set(paths), slug


def test_skills_share_a_vocabulary(paths: dict[str, dict[str, Any]]) -> None:
    """Mentor matching works by overlapping tags, so paths in the same area must share some."""
    skills = {slug: set(item["skills"]) for slug, item in paths.items()}
    for slug, tags in skills.items():
        assert all(tag == tag.strip().lower() for tag in tags), slug
    assert {"python", "sql", "apis"} <= skills["backend-developer"]
    assert skills["backend-developer"] & skills["full-stack-developer"]
    assert skills["data-engineer"] & skills["data-scientist"]
    assert skills["devops-engineer"] & skills["security-engineer"]


def test_backend_prose_is_not_copied_from_the_seed(paths: dict[str, dict[str, Any]]) -> None:
    """Facts may come from the seed page; sentences must not (no 8-word run in common)."""
    assert SEED_PAGE.exists(), f"the seed page is expected beside the checkout: {SEED_PAGE}"

    def runs(text: str, size: int = 8) -> set[tuple[str, ...]]:
        words = re.findall(r"[a-z0-9']+", text.lower())
        return {tuple(words[i : i + size]) for i in range(len(words) - size + 1)}

    backend = paths["backend-developer"]
    prose = [backend["summary"], backend["description"]]
    prose += [entry["why"] for entry in backend["books"] + backend["courses"]]
    seed_runs = runs(SEED_PAGE.read_text(encoding="utf-8"))
    assert not runs(" ".join(prose)) & seed_runs


# --- broken content --------------------------------------------------------------------------------


def test_missing_field_is_reported_with_file_and_field(content_copy: Path) -> None:
    _edit(content_copy / "data-engineer.toml", r"^summary = .*\n", "")
    with pytest.raises(ContentError, match=r"data-engineer\.toml: summary: Missing data") as info:
        load_career_paths(content_copy)
    assert info.value.field == "summary"
    assert info.value.path is not None
    assert info.value.path.name == "data-engineer.toml"


def test_missing_nested_book_author_names_the_nested_field(content_copy: Path) -> None:
    _edit(content_copy / "backend-developer.toml", r'^authors = \["Martin Kleppmann"\]\n', "")
    with pytest.raises(ContentError) as info:
        load_career_paths(content_copy)
    assert info.value.field == "books.3.authors"
    assert "backend-developer.toml" in str(info.value)


def test_unknown_related_slug_is_rejected(content_copy: Path) -> None:
    _edit(
        content_copy / "backend-developer.toml",
        r"^related = \[.*\]$",
        'related = ["devops-engineer", "astronaut"]',
    )
    with pytest.raises(ContentError, match="astronaut") as info:
        load_career_paths(content_copy)
    assert info.value.field == "related"
    assert info.value.path is not None
    assert info.value.path.name == "backend-developer.toml"


def test_related_must_not_list_itself(content_copy: Path) -> None:
    _edit(
        content_copy / "backend-developer.toml",
        r"^related = \[.*\]$",
        'related = ["devops-engineer", "backend-developer"]',
    )
    with pytest.raises(ContentError, match="itself") as info:
        load_career_paths(content_copy)
    assert info.value.field == "related"


def test_inconsistent_hike_percent_is_rejected(content_copy: Path) -> None:
    _edit(content_copy / "frontend-developer.toml", r"^hike_percent = 73$", "hike_percent = 50")
    with pytest.raises(ContentError, match=r"expected 73") as info:
        load_career_paths(content_copy)
    assert info.value.field == "salary.hike_percent"
    assert "frontend-developer.toml" in str(info.value)


def test_hike_amount_must_match_the_salary_gap(content_copy: Path) -> None:
    _edit(content_copy / "backend-developer.toml", r"^hike_amount = 30000$", "hike_amount = 25000")
    with pytest.raises(ContentError) as info:
        load_career_paths(content_copy)
    assert info.value.field == "salary.hike_amount"


def test_file_name_must_match_slug(content_copy: Path) -> None:
    (content_copy / "backend-developer.toml").rename(content_copy / "backend.toml")
    with pytest.raises(ContentError, match="does not match the file name") as info:
        load_career_paths(content_copy)
    assert info.value.field == "slug"
    assert info.value.path is not None
    assert info.value.path.name == "backend.toml"


def test_duplicate_slug_is_rejected(content_copy: Path) -> None:
    shutil.copy(content_copy / "backend-developer.toml", content_copy / "backend-developer-copy.toml")
    with pytest.raises(ContentError, match=r"duplicate slug 'backend-developer'") as info:
        load_career_paths(content_copy)
    assert info.value.field == "slug"
    message = str(info.value)
    assert "backend-developer.toml" in message
    assert "backend-developer-copy.toml" in message


def test_unknown_keys_and_bad_toml_are_rejected(content_copy: Path) -> None:
    target = content_copy / "mobile-developer.toml"
    _edit(target, r"^title = ", 'subtitle = "typo"\ntitle = ')
    with pytest.raises(ContentError, match=r"mobile-developer\.toml: subtitle"):
        load_career_paths(content_copy)

    target.write_text('slug = "mobile-developer\n', encoding="utf-8")
    with pytest.raises(ContentError, match=r"mobile-developer\.toml: invalid TOML"):
        load_career_paths(content_copy)


def test_empty_or_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ContentError, match=r"no \*\.toml"):
        load_career_paths(tmp_path)
    with pytest.raises(ContentError, match="does not exist"):
        load_career_paths(tmp_path / "nope")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("skills", ["python", "python", "sql", "apis", "docker", "git"]),
        ("skills", ["Python", "sql", "apis", "docker", "git", "linux"]),
        ("skills", ["python", "sql"]),
        ("description", "One single paragraph that is long enough to pass the length check. " * 5),
        ("summary", "x" * 301),
    ],
)
def test_schema_rejects_bad_values(paths: dict[str, dict[str, Any]], field: str, value: Any) -> None:
    data = dict(paths["backend-developer"], **{field: value})
    with pytest.raises(ValidationError) as info:
        CareerPathContentSchema().load(data)
    assert field in info.value.messages
