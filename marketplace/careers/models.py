"""Career paths as rows, loaded from the reviewed TOML content (``content.py``) by ``load-career-paths``.

Books, courses and related slugs are display data read whole with their path, so they are JSON. Skills
get a table of their own, from which the database derives `career_path_matches` (`mentors.models.
CareerPathMatch`): which mentors chose a path or share its skills, the relevance input of `mentors.ranking`.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from marketplace.careers.content import expected_hike_percent
from marketplace.core.models import TimestampMixin
from marketplace.extensions import Model, db

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


class CareerPath(TimestampMixin, Model):
    __tablename__ = "career_paths"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    books: Mapped[list[dict[str, Any]]] = mapped_column(db.JSON)
    courses: Mapped[list[dict[str, Any]]] = mapped_column(db.JSON)
    related: Mapped[list[str]] = mapped_column(db.JSON)
    salary_currency: Mapped[str] = mapped_column(String(3))
    salary_entry: Mapped[int]
    salary_senior: Mapped[int]
    salary_basis: Mapped[str] = mapped_column(String(300))

    skill_rows: Mapped[list[CareerPathSkill]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="CareerPathSkill.position"
    )

    @property
    def skills(self) -> list[str]:
        return [row.skill for row in self.skill_rows]

    def set_skills(self, skills: list[str]) -> None:
        """Replace the skills only when they differ, so reloading unchanged content writes nothing."""
        if self.skills != skills:
            self.skill_rows = [CareerPathSkill(skill=skill, position=i) for i, skill in enumerate(skills)]

    @property
    def salary(self) -> dict[str, Any]:
        """Entry and senior pay; the hike is derived, as the content loader insists it must agree."""
        return {
            "currency": self.salary_currency,
            "entry": self.salary_entry,
            "senior": self.salary_senior,
            "hike_amount": self.salary_senior - self.salary_entry,
            "hike_percent": expected_hike_percent(self.salary_entry, self.salary_senior),
            "basis": self.salary_basis,
        }

    @property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in _PARAGRAPH_BREAK.split(self.description) if p.strip()]


class CareerPathSkill(Model):
    """A skill that defines a path; indexed by skill so "which paths fit these skills" is one lookup."""

    __tablename__ = "career_path_skills"

    path_id: Mapped[int] = mapped_column(ForeignKey("career_paths.id", ondelete="CASCADE"), primary_key=True)
    skill: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(default=0)
