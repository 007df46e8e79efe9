"""Pagination over a SELECT with flask-smorest's parameters (page, page_size, X-Pagination header)."""

from __future__ import annotations

from typing import Any

from flask_smorest import Page
from sqlalchemy import Select, func, select

from marketplace.extensions import db


class SelectPage(Page):
    """Counts and slices in SQL, so a page costs two queries whatever the table size."""

    @property
    def items(self) -> list[Any]:
        stmt: Select = self.collection
        offset = (self.page_params.page - 1) * self.page_params.page_size
        return list(db.session.scalars(stmt.limit(self.page_params.page_size).offset(offset)))

    @property
    def item_count(self) -> int:
        stmt: Select = self.collection
        counted = stmt.order_by(None).with_only_columns(*stmt.selected_columns).subquery()
        return db.session.scalar(select(func.count()).select_from(counted)) or 0
