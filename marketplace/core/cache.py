"""Per-process caches: a small bounded LRU map, and whole-response caching of public GET endpoints.

Both are safe across processes only because every key holds a version read from the database on each
request (a mentor's calendar version, the catalog version): a change commits a new version, so no process
keeps answering from data older than the last commit it can see.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import wraps
from typing import Any, Generic, TypeVar

from flask import Response, request

from marketplace.core.db import statements_commit_alone
from marketplace.core.time import utcnow

K = TypeVar("K")
V = TypeVar("V")


class LRUCache(Generic[K, V]):
    """At most `maxsize` entries; the least recently read or written goes first. Thread-safe, so it also
    serves threaded gunicorn workers."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def weak_etag(key: str) -> str:
    """The ETag of a response cached under `key`: weak, as two processes may build it seconds apart."""
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


class ResponseCache:
    """Caches the 200 responses of a GET view per process, by URL, `version()` and the current minute.

    For public views whose output is a function of those alone (no user, no cookie): `version()` must
    move, in the same commit, with every change to what the view shows, and the minute covers what time
    alone changes. Clients revalidate every time (`no-cache`) and get a 304 while the key holds.
    A response that sets a cookie is never kept.
    """

    CACHE_CONTROL = "public, no-cache"

    def __init__(self, version: Callable[[], object], maxsize: int) -> None:
        self._version = version
        self._entries: LRUCache[str, tuple[bytes, list[tuple[str, str]]]] = LRUCache(maxsize)

    def __call__(self, view: Callable[..., Any]) -> Callable[..., Response]:
        @wraps(view)
        def cached_view(*args: Any, **kwargs: Any) -> Response:
            statements_commit_alone()
            key = f"{request.url}\n{self._version()}\n{utcnow():%Y-%m-%dT%H:%M}"
            etag = weak_etag(key)
            validators = {"ETag": f'W/"{etag}"', "Cache-Control": self.CACHE_CONTROL}
            if request.if_none_match.contains_weak(etag):
                return Response(status=304, headers=validators)
            entry = self._entries.get(key)
            if entry is None:
                response = view(*args, **kwargs)
                if response.status_code != 200 or "Set-Cookie" in response.headers:
                    return response
                headers = [(name, value) for name, value in response.headers if name != "Content-Length"]
                entry = (response.get_data(), headers)
                self._entries.put(key, entry)
            body, headers = entry
            response = Response(body, headers=headers)
            response.headers.update(validators)
            return response

        return cached_view

    def clear(self) -> None:
        self._entries.clear()
