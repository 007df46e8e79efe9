"""Career-path operations: loading the content into the database, and what the API and the pages read.

Each flushes; the request or command commits. Mentors are always found through `mentors.service.search`,
so a path's page, its API and `/mentors?career_path=` agree on who matches and in which order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select

from marketplace.accounts.models import User
from marketplace.bookings.availability.service import list_free_slots
from marketplace.bookings.models import Review
from marketplace.careers.models import CareerPath
from marketplace.core.errors import NotFound
from marketplace.core.pagination import page_and_total
from marketplace.extensions import db
from marketplace.mentors.models import CareerPathMatch, CatalogVersion, MentorProfile, MentorTag, TagKind
from marketplace.mentors.service import path_match_clause, public_profile, search
from marketplace.mentors.vetting import VettingStatus

TOP_MENTORS = 6
PAGE_SIZE = 20
LATEST_REVIEWS = 10
# Enough for a full-time fortnight at 30-minute steps; a round-the-clock calendar would otherwise make
# the profile page several times larger than every other page.
MAX_SLOTS_SHOWN = 160

# Columns copied verbatim from a content item (see content.CareerPathContentSchema) to its row.
_PLAIN_FIELDS = ("title", "summary", "description", "books", "courses", "related")


# --- loading content ---------------------------------------------------------------------------------


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def sync_career_paths(items: list[dict[str, Any]]) -> SyncReport:
    """Make the table equal the validated content: insert new paths, update edited ones, delete dropped ones.

    Only fields that differ are assigned, so loading unchanged content writes nothing (not even
    `updated_at`), and running it twice is the same as running it once.
    """
    report = SyncReport()
    existing = {path.slug: path for path in db.session.scalars(select(CareerPath))}
    for item in items:
        path = existing.pop(item["slug"], None)
        if path is None:
            path = CareerPath(slug=item["slug"])
            db.session.add(path)
            _apply(path, item)
            report.created.append(path.slug)
        elif _apply(path, item):
            report.updated.append(path.slug)
        else:
            report.unchanged.append(path.slug)
    for slug, path in existing.items():
        db.session.delete(path)
        report.deleted.append(slug)
    db.session.flush()
    return report


def _apply(path: CareerPath, item: dict[str, Any]) -> bool:
    """Copy the item onto the row; True if anything changed."""
    salary = item["salary"]
    wanted = {name: item[name] for name in _PLAIN_FIELDS} | {
        "salary_currency": salary["currency"],
        "salary_entry": salary["entry"],
        "salary_senior": salary["senior"],
        "salary_basis": salary["basis"],
    }
    changed = False
    for name, value in wanted.items():
        if getattr(path, name, None) != value:
            setattr(path, name, value)
            changed = True
    if path.skills != item["skills"]:
        path.set_skills(item["skills"])
        changed = True
    return changed


# --- reading -----------------------------------------------------------------------------------------


def list_paths() -> list[CareerPath]:
    return list(db.session.scalars(select(CareerPath).order_by(CareerPath.title)))


def get_path(slug: str) -> CareerPath:
    path: CareerPath | None = db.session.scalar(select(CareerPath).where(CareerPath.slug == slug))
    if path is None:
        raise NotFound("No such career path.")
    return path


@dataclass(frozen=True)
class PathDetail:
    path: CareerPath
    related: list[CareerPath]
    mentors: list[MentorProfile]
    mentor_count: int


def path_detail(slug: str, top: int = TOP_MENTORS) -> PathDetail:
    """A path with its related paths, its best matching mentors and how many match in all."""
    path = get_path(slug)
    mentors, count = page_and_total(search({"career_path": path.slug, "sort": "relevance"}), top, 0)
    related_rows = db.session.scalars(select(CareerPath).where(CareerPath.slug.in_(path.related)))
    by_slug = {row.slug: row for row in related_rows}
    return PathDetail(
        path=path,
        related=[by_slug[slug] for slug in path.related if slug in by_slug],
        mentors=mentors,
        mentor_count=count,
    )


@dataclass(frozen=True)
class MentorListing:
    filters: dict[str, Any]
    mentors: list[MentorProfile]
    total: int
    page: int
    page_size: int
    paths: list[CareerPath]
    languages: list[str]
    currencies: list[str]

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def path(self) -> CareerPath | None:
        """The career path filtered on, if it is a known one."""
        return next((path for path in self.paths if path.slug == self.filters.get("career_path")), None)


def mentor_listing(filters: dict[str, Any], page: int, page_size: int = PAGE_SIZE) -> MentorListing:
    """One page of the search, plus what the filter form offers (paths, languages mentors speak, currencies
    they charge in)."""
    mentors, total = page_and_total(search(filters), page_size, (page - 1) * page_size)
    languages = (
        select(MentorTag.value)
        .distinct()
        .where(
            MentorTag.kind == TagKind.LANGUAGE.value,
            MentorTag.profile_id.in_(
                select(MentorProfile.id).where(MentorProfile.vetting_status == VettingStatus.APPROVED.value)
            ),
        )
    )
    return MentorListing(
        filters=filters,
        mentors=mentors,
        total=total,
        page=page,
        page_size=page_size,
        paths=list_paths(),
        languages=sorted(db.session.scalars(languages)),
        currencies=sorted(
            db.session.scalars(
                select(MentorProfile.currency)
                .distinct()
                .where(
                    MentorProfile.vetting_status == VettingStatus.APPROVED.value,
                    MentorProfile.currency.is_not(None),
                )
            )
        ),
    )


@dataclass(frozen=True)
class ReviewView:
    rating: int
    comment: str | None
    created_at: datetime
    learner_first_name: str


@dataclass(frozen=True)
class MentorPage:
    profile: MentorProfile
    paths: list[CareerPath]
    reviews: list[ReviewView]
    slot_days: list[tuple[date, list[datetime]]]
    more_slots: bool
    zone: ZoneInfo


# Built once: on a cache hit this is the request's only query.
_MENTOR_PAGE_VERSION = select(
    CatalogVersion.version,
    select(MentorProfile.calendar_version)
    .where(MentorProfile.id == bindparam("mentor_id"))
    .scalar_subquery(),
).where(CatalogVersion.id == 1)


def mentor_page_version(mentor_id: int) -> tuple[int, int | None]:
    """What a mentor's page shows moves with these two: the catalog version (the profile, its tags and
    paths, names, and the rating a new review changes) and the mentor's calendar version (free times)."""
    catalog, calendar = db.session.execute(_MENTOR_PAGE_VERSION, {"mentor_id": mentor_id}).one()
    return catalog, calendar


def mentor_page(mentor_id: int, zone: ZoneInfo) -> MentorPage:
    """An approved mentor's profile, the paths they fit, their latest reviews and free starts by day."""
    profile = public_profile(mentor_id)
    # A mentor who offers no session length has nothing to book, but their profile is still public.
    slots = list_free_slots(profile.id, None, None, zone, None) if profile.session_minutes else []
    days: dict[date, list[datetime]] = {}
    for slot in slots[:MAX_SLOTS_SHOWN]:
        days.setdefault(slot.start.astimezone(zone).date(), []).append(slot.start)
    return MentorPage(
        profile=profile,
        paths=_paths_of(profile),
        reviews=_latest_reviews(profile.id),
        slot_days=list(days.items()),
        more_slots=len(slots) > MAX_SLOTS_SHOWN,
        zone=zone,
    )


def _paths_of(profile: MentorProfile) -> list[CareerPath]:
    """The paths a mentor chose, then those they match by skills alone."""
    rows = db.session.execute(
        select(CareerPath, CareerPathMatch.chose)
        .join(CareerPathMatch, CareerPathMatch.path_slug == CareerPath.slug)
        .where(CareerPathMatch.profile_id == profile.id, path_match_clause())
        .order_by(CareerPathMatch.chose.desc(), CareerPath.title)
    )
    return [path for path, _chose in rows]


def _latest_reviews(mentor_id: int) -> list[ReviewView]:
    rows = db.session.execute(
        select(Review.rating, Review.comment, Review.created_at, User.name)
        .join(User, User.id == Review.learner_id)
        .where(Review.mentor_id == mentor_id)
        .order_by(Review.created_at.desc(), Review.id.desc())
        .limit(LATEST_REVIEWS)
    )
    return [
        ReviewView(rating=rating, comment=comment, created_at=at, learner_first_name=_first_name(name))
        for rating, comment, at, name in rows
    ]


def _first_name(name: str) -> str:
    """Reviews show the learner's first name only: enough to feel real, not enough to identify them."""
    words = name.split()
    return words[0] if words else "A learner"
