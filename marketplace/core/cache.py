"""Per-process response caching of public GET endpoints, revalidated by ETag.

Safe across processes only because every key holds a version read from the database on each request (a
mentor's calendar version, the catalog version): a change commits a new version, so no process keeps
answering from data older than the last commit it can see. The LRU maps are cachetools'; the conditional
answers (ETag, If-None-Match, 304) are werkzeug's.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from functools import wraps
from typing import Any

from cachetools import LRUCache
from flask import Response, request, session
from flask_login import current_user
from werkzeug.datastructures import Headers

from marketplace.core.db import autocommit_statements
from marketplace.core.time import utcnow


def conditional(key: str, cache_control: str) -> Response:
    """An empty response carrying the validators of the body cached under `key`, made conditional on the
    request by werkzeug: a 304 when `If-None-Match` holds its ETag, else a 200 for the caller to fill.

    The ETag is weak (two processes may build a key's body seconds apart) and comes from the key alone, so
    the 304 is decided before any body exists: revalidating against a process that has not built this
    body yet costs none.
    """
    response = Response()
    response.set_etag(hashlib.blake2b(key.encode(), digest_size=16).hexdigest(), weak=True)
    response.headers["Cache-Control"] = cache_control
    if request.if_none_match:  # only then: make_conditional costs a hit ~20 us even with nothing to compare
        response.make_conditional(request)
    return response


class ResponseCache:
    """Caches the 200 responses of a GET view per process, by URL, `version()` and the current minute.

    For public views whose output is a function of those alone (no user, no cookie): `version()` must
    move, in the same commit, with every change to what the view shows, and the minute covers what time
    alone changes. Clients revalidate every time (`no-cache`) and get a 304 while the key holds.
    A response that sets a cookie is never kept.

    A page shows the signed-in visitor's name (and a pending flash message) in its header, so a browser
    signed in with a cookie, or with a message waiting, gets a fresh private answer: the cache holds only
    what every anonymous visitor sees. API clients (an Authorization header) are served from the cache.
    """

    CACHE_CONTROL = "public, no-cache"
    PERSONAL_CACHE_CONTROL = "private, no-store"

    def __init__(self, version: Callable[[], object], maxsize: int) -> None:
        self._version = version
        self._entries: LRUCache[str, tuple[bytes, Headers]] = LRUCache(maxsize)
        # cachetools' caches are not thread-safe (a read reorders the LRU); threaded workers share this one.
        self._lock = threading.Lock()

    def __call__(self, view: Callable[..., Any]) -> Callable[..., Response]:
        @wraps(view)
        def cached_view(*args: Any, **kwargs: Any) -> Response:
            if _personal():
                personal: Response = view(*args, **kwargs)
                personal.headers["Cache-Control"] = self.PERSONAL_CACHE_CONTROL
                return personal
            autocommit_statements()
            key = f"{request.url}\n{self._version()}\n{utcnow():%Y-%m-%dT%H:%M}"
            response = conditional(key, self.CACHE_CONTROL)
            if response.status_code == 304:
                return response
            with self._lock:
                entry = self._entries.get(key)
            if entry is None:
                built: Response = view(*args, **kwargs)
                if built.status_code != 200 or "Set-Cookie" in built.headers:
                    return built
                headers = Headers(
                    [(name, value) for name, value in built.headers if name != "Content-Length"]
                )
                entry = (built.get_data(), headers)
                with self._lock:
                    self._entries[key] = entry
            body, headers = entry
            response.headers.update(headers)
            response.set_data(body)
            return response

        return cached_view

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _personal() -> bool:
    """Whether this browser's page differs from an anonymous visitor's (a cookie session only: the user is
    not looked up unless the session cookie names one)."""
    if "Authorization" in request.headers:
        return False
    return "_flashes" in session or bool(current_user.is_authenticated)
