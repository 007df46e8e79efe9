"""Pagination over a SELECT with flask-smorest's parameters (page, page_size, X-Pagination header)."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from flask_smorest import Page
from sqlalchemy import Select, func, select

from marketplace.extensions import db


def page_and_total(stmt: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    """A page and the total in one query: a window count over the rows the filter and sort read anyway."""
    rows = db.session.execute(stmt.add_columns(func.count().over()).limit(limit).offset(offset)).all()
    if rows:
        return [row[0] for row in rows], rows[0][-1]
    if offset == 0:
        return [], 0
    # Past the last page the window has no row to ride on; count on its own.
    return [], db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0


class SelectPage(Page):  # type: ignore[misc]  # flask-smorest ships no type information
    """flask-smorest's Page over a SELECT: one query per page whatever the table size."""

    @cached_property
    def _page(self) -> tuple[list[Any], int]:
        size = self.page_params.page_size
        return page_and_total(self.collection, size, (self.page_params.page - 1) * size)

    @property
    def items(self) -> list[Any]:
        return self._page[0]

    @property
    def item_count(self) -> int:
        return self._page[1]
