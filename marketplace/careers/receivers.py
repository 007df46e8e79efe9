"""Career answers to questions of the mentors module, which sits below careers and cannot ask directly."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select

from marketplace.careers.models import CareerPath
from marketplace.extensions import db
from marketplace.mentors.signals import career_paths_named


def _unknown_paths(_sender: Any, *, slugs: Collection[str], **_: Any) -> set[str]:
    """The slugs no loaded career path has: a mentor may choose only what the pages can show."""
    if not slugs:
        return set()
    known = db.session.scalars(select(CareerPath.slug).where(CareerPath.slug.in_(set(slugs))))
    return set(slugs) - set(known)


def connect() -> None:
    career_paths_named.connect(_unknown_paths)
