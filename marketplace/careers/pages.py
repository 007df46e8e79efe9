"""Presentation for the server-rendered pages: formatting filters, structured data (JSON-LD), rendering.

Kept out of the routes so they stay parse -> one service call -> render, and out of the templates so
the JSON-LD is built as data (then serialized safely by `tojson`) rather than stitched together as text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from functools import partial
from typing import Any

from babel import Locale
from flask import Response, url_for

from marketplace.careers.models import CareerPath
from marketplace.careers.service import MentorListing, MentorPage, PathDetail
from marketplace.core.money import LOCALE, format_money, format_whole_amount, major_units
from marketplace.core.pages import render_page
from marketplace.mentors.models import MentorProfile

SLOT_DAYS = 14
# English language names from CLDR, by code (`de`: German).
LANGUAGE_NAMES = Locale(LOCALE).languages

# --- filters -----------------------------------------------------------------------------------------


def money(minor: int | None, currency: str | None) -> str:
    """An hourly rate as people read it: `$90.00`, `€72.50`, `¥5,000`."""
    return "price on request" if minor is None or currency is None else format_money(minor, currency)


def salary(amount: int, currency: str) -> str:
    """Yearly pay, kept in whole units in the content."""
    return format_whole_amount(amount, currency)


def utc_iso(moment: datetime) -> str:
    """What `<time datetime>` carries, and what the page's script converts to the visitor's zone."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def clock(moment: datetime, zone: tzinfo = UTC) -> str:
    return f"{moment.astimezone(zone):%H:%M}"


def moment_label(moment: datetime, zone: tzinfo = UTC) -> str:
    local = moment.astimezone(zone)
    return f"{day_label(local.date())}, {local:%H:%M}"


def language_name(code: str) -> str:
    """The language's English name, or the code itself when CLDR has none."""
    return str(LANGUAGE_NAMES.get(code, code.upper()))


FILTERS = {
    "money": money,
    "salary": salary,
    "utc_iso": utc_iso,
    "day_label": day_label,
    "clock": clock,
    "moment_label": moment_label,
    "language_name": language_name,
}


# --- rendering ---------------------------------------------------------------------------------------


def _render(template: str, **context: Any) -> Response:
    return render_page(template, slot_days=SLOT_DAYS, **context)


def _path_url(path: CareerPath) -> str:
    return url_for("pages.CareerPage", slug=path.slug, _external=True)


def _mentor_url(profile: MentorProfile) -> str:
    return url_for("pages.MentorProfilePage", mentor_id=profile.id, _external=True)


def _item_list(name: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "@type": "ItemList",
        "name": name,
        "numberOfItems": len(items),
        "itemListElement": [
            {"@type": "ListItem", "position": i, "url": url, "name": label}
            for i, (label, url) in enumerate(items, start=1)
        ],
    }


def home(paths: list[CareerPath]) -> Response:
    return _render(
        "home.html",
        title="Find a vetted tech mentor",
        description="Book a one-to-one session with a vetted mentor for your tech career: search by skill, "
        f"explore {len(paths)} career paths and pay securely online.",
        structured_data={
            "@type": "WebSite",
            "name": "Mentor marketplace",
            "url": url_for("pages.HomePage", _external=True),
            "potentialAction": {
                "@type": "SearchAction",
                "target": url_for("pages.MentorListPage", _external=True) + "?q={query}",
                "query-input": "required name=query",
            },
        },
        paths=paths,
    )


def career_index(paths: list[CareerPath]) -> Response:
    return _render(
        "careers/index.html",
        title="Career paths in tech",
        description=f"Explore {len(paths)} tech career paths: what each role involves, books, courses, "
        "pay from entry level to senior, and vetted mentors who can help.",
        structured_data=_item_list("Career paths", [(path.title, _path_url(path)) for path in paths]),
        paths=paths,
    )


def career(detail: PathDetail) -> Response:
    path, pay = detail.path, detail.path.salary
    occupation = {
        "@type": "Occupation",
        "name": path.title,
        "description": path.summary,
        "url": _path_url(path),
        "skills": ", ".join(path.skills),
        "estimatedSalary": [
            {
                "@type": "MonetaryAmountDistribution",
                "name": level,
                "currency": pay["currency"],
                "duration": "P1Y",
                "median": pay[key],
            }
            for level, key in (("Entry level", "entry"), ("Senior", "senior"))
        ],
    }
    return _render(
        "careers/detail.html",
        title=f"{path.title} career path: books, courses, salary and mentors",
        description=path.summary,
        structured_data=occupation,
        detail=detail,
    )


def mentor_list(listing: MentorListing) -> Response:
    path = listing.path
    heading = f"{path.title} mentors" if path else "Find a mentor"
    scope = f" for the {path.title} career path" if path else ""
    return _render(
        "mentors/list.html",
        title=heading if listing.page == 1 else f"{heading}, page {listing.page}",
        description=f"Browse {listing.total} vetted mentors{scope}: compare ratings, prices and when they "
        "are next free.",
        structured_data=_item_list("Mentors", [(m.name, _mentor_url(m)) for m in listing.mentors]),
        # Sorts and narrower filters show the same mentors; the path's listing is the page worth indexing.
        canonical=url_for("pages.MentorListPage", career_path=path.slug if path else None, _external=True),
        heading=heading,
        listing=listing,
        filters=listing.filters,
        page_url=partial(_listing_page_url, listing.filters),
    )


def _listing_page_url(filters: dict[str, Any], page: int) -> str:
    """The same filters as the form sends them (price in whole units), on another page."""
    params = {key: value for key, value in filters.items() if key != "max_price_cents"}
    return url_for("pages.MentorListPage", page=page, **params)


def mentor_profile(page: MentorPage, chosen_tz: str | None) -> Response:
    profile = page.profile
    person: dict[str, Any] = {
        "@type": "Person",
        "name": profile.name,
        "description": profile.headline,
        "url": _mentor_url(profile),
        "knowsAbout": profile.skills,
        "knowsLanguage": profile.languages,
    }
    if profile.price_cents is not None and profile.currency is not None:
        person["makesOffer"] = {
            "@type": "Offer",
            "name": "One-to-one mentoring, per hour",
            "price": str(major_units(profile.price_cents, profile.currency)),
            "priceCurrency": profile.currency,
        }
    return _render(
        "mentors/detail.html",
        title=f"{profile.name}, mentor: {profile.headline}",
        description=f"{profile.name}: {profile.headline}. Reviews, price and free times to book a session.",
        structured_data={"@type": "ProfilePage", "url": _mentor_url(profile), "mainEntity": person},
        page=page,
        profile=profile,
        chosen_tz=chosen_tz,
    )


def error(status: int, title: str, message: str, problems: dict[str, Any] | None = None) -> Response:
    return _render(
        "errors/error.html",
        title=title,
        description=f"{message} Explore career paths or browse the vetted mentors instead.",
        structured_data={"@type": "WebPage", "name": title},
        message=message,
        problems=problems or {},
        status=status,
    )
