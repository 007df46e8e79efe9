"""The blueprint every module's API uses: flask-smorest's, with the contract's pagination header."""

from __future__ import annotations

from typing import Any

import flask_smorest

from marketplace.core.validation import ArgumentsParser


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ArgumentsParser()
    PAGINATION_ARGUMENTS_PARSER = ArgumentsParser()

    @staticmethod
    def _make_pagination_metadata(page: int, page_size: int, item_count: int) -> dict[str, Any]:
        """`X-Pagination: {"total", "total_pages", "page", "page_size"}`, plus neighbours when they exist."""
        total_pages = (item_count + page_size - 1) // page_size
        metadata: dict[str, Any] = {
            "total": item_count,
            "total_pages": total_pages,
            "page": page,
            "page_size": page_size,
        }
        if 1 < page <= total_pages + 1:
            metadata["previous_page"] = page - 1
        if page < total_pages:
            metadata["next_page"] = page + 1
        return metadata
