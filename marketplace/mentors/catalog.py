"""The catalog version, and the response cache of search and the career pages keyed on it.

What mentor search and the career pages show is a function of the approved profiles, their tags, their
users' names, the career-path content, and the time. Triggers (migration 0008) bump one number in the
same commit as any change to those tables, whichever code path writes them, so responses are cached per
process under (URL, version, minute): a suspension or a price change is seen by the next request of
every process, and a hit costs one primary-key read.
"""

from __future__ import annotations

from sqlalchemy import select

from marketplace.core.cache import ResponseCache
from marketplace.extensions import db
from marketplace.mentors.models import CatalogVersion


def version() -> int:
    return db.session.execute(select(CatalogVersion.version).where(CatalogVersion.id == 1)).scalar_one()


# A page is under 100 KB and a page of search results far less: a few MB per process at most.
CATALOG_RESPONSES = ResponseCache(version, maxsize=256)
