"""gunicorn (run as the Procfile runs it, with the project's gunicorn.conf.py) keeps secrets out of its
access and error logs and writes each response's X-Request-ID into them.

The database is left unmigrated, so the feed lookup fails and the app logs the exception with the
request path: the app's own log lines are checked as well as the access log.
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.live_server import live_server

pytestmark = pytest.mark.slow


def _get(url: str, request_id: str) -> int:
    request = urllib.request.Request(url, headers={"X-Request-ID": request_id})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


def test_feed_tokens_never_reach_the_logs_and_lines_carry_the_request_id(tmp_path: Path) -> None:
    feed_token = secrets.token_urlsafe(32)
    query_token = secrets.token_urlsafe(16)
    log_path = tmp_path / "gunicorn.log"
    # Development, not testing: a testing app lets exceptions through to gunicorn instead of logging them.
    env = {"GUNICORN_CMD_ARGS": "--access-logfile -", "APP_ENV": "development"}

    with live_server(f"sqlite:///{tmp_path / 'empty.db'}", env=env, log_path=log_path, workers=1) as base:
        feed_status = _get(f"{base}/calendar/{feed_token}.ics", "feed-req-1")
        query_status = _get(f"{base}/careers?token={query_token}", "query-req-2")
    log = log_path.read_text(errors="replace")

    assert feed_status == 500, log
    assert query_status in (200, 500), log
    assert feed_token not in log
    assert query_token not in log
    access = [line for line in log.splitlines() if '"GET /calendar/' in line]
    assert len(access) == 1, log
    assert '"GET /calendar/[masked].ics HTTP/1.1" 500' in access[0]
    assert access[0].endswith("request_id=feed-req-1")
    assert any(
        "/careers?token=[masked]" in line and "request_id=query-req-2" in line for line in log.splitlines()
    )
    app_lines = [line for line in log.splitlines() if "Exception on /calendar/" in line]
    assert app_lines, log
    assert "Exception on /calendar/[masked].ics [GET]" in app_lines[0]
    assert "[request_id=feed-req-1]" in app_lines[0]
