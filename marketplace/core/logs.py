"""One logging setup for every process (web, Celery worker and beat, CLI): stdlib logging on the root logger.

Each record is one line on stderr with its time, level, logger, the request id ("-" outside a request) and
the message, secrets masked; or, with LOG_JSON, one JSON object a line for a log collector. create_app
configures it, so gunicorn workers, `flask` commands and Celery (which would otherwise replace the root
logger's handlers with its own) all log the same way.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from celery import signals
from flask import Flask
from flask.logging import default_handler

from config import ConfigurationError
from marketplace.core.request_log import LOG_FORMAT, RequestIdFilter, SecretMaskingFilter

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConsoleHandler(logging.StreamHandler[TextIO]):
    """Writes to the process's own stderr: a Celery worker points sys.stderr back into logging, which
    would loop."""

    def __init__(self) -> None:
        super().__init__(sys.__stderr__)
        for kind in (RequestIdFilter, SecretMaskingFilter):
            self.addFilter(kind())


class JsonLinesFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, request_id, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, json_lines: bool = False) -> None:
    """Give the root logger exactly one of our handlers, at `level`; calling it again replaces it."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ConsoleHandler)]:
        root.removeHandler(handler)
    handler = ConsoleHandler()
    handler.setFormatter(JsonLinesFormatter() if json_lines else logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    try:
        root.setLevel(level.upper())
    except ValueError:
        raise ConfigurationError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, not {level!r}.") from None


def _keep_ours_in_celery(**_: Any) -> None:
    """A receiver of Celery's setup_logging: with one connected, Celery leaves the root logger as it is."""


def init_app(app: Flask) -> None:
    configure_logging(app.config["LOG_LEVEL"], app.config["LOG_JSON"])
    # Flask's own handler would print the app's records a second time, in another format.
    app.logger.removeHandler(default_handler)
    signals.setup_logging.connect(_keep_ours_in_celery, weak=False, dispatch_uid="marketplace.core.logs")
