"""One logging setup (core/logs.py): app records at INFO reach stderr, one line each, with the request id."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from celery.app import log as celery_log
from flask import Flask, current_app

from config import ConfigurationError
from marketplace.core.logs import ConsoleHandler, configure_logging
from tests.helpers import make_test_app


@pytest.fixture
def probe_app() -> Iterator[Flask]:
    """An app with a route that logs at INFO; the test's logging setup is put back afterwards."""
    app = make_test_app("sqlite://")

    @app.get("/log-probe")
    def log_probe() -> str:
        current_app.logger.info("probe for %s", "the request id")
        return "ok"

    yield app
    configure_logging(app.config["LOG_LEVEL"])


def _our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, ConsoleHandler)]


def test_an_info_line_of_the_app_names_time_level_logger_and_request_id(
    probe_app: Flask, capfd: pytest.CaptureFixture[str]
) -> None:
    probe_app.test_client().get("/log-probe", headers={"X-Request-ID": "probe-req-7"})

    lines = [line for line in capfd.readouterr().err.splitlines() if "probe for" in line]
    assert len(lines) == 1, lines
    assert re.fullmatch(
        r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] INFO marketplace \[request_id=probe-req-7\]: "
        r"probe for the request id",
        lines[0],
    )


def test_json_lines_carry_the_same_fields(probe_app: Flask, capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json_lines=True)

    probe_app.test_client().get("/log-probe", headers={"X-Request-ID": "probe-req-8"})

    (line,) = [line for line in capfd.readouterr().err.splitlines() if "probe for" in line]
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "request_id", "message"}
    assert (entry["level"], entry["logger"], entry["request_id"], entry["message"]) == (
        "INFO",
        "marketplace",
        "probe-req-8",
        "probe for the request id",
    )


def test_the_level_is_a_setting_and_building_apps_again_adds_no_second_handler(
    capfd: pytest.CaptureFixture[str],
) -> None:
    app = make_test_app("sqlite://", LOG_LEVEL="warning")
    try:
        app.logger.info("quiet please")
        app.logger.warning("loud enough")
        err = capfd.readouterr().err
        assert "quiet please" not in err
        assert "WARNING marketplace [request_id=-]: loud enough" in err
        assert len(_our_handlers()) == 1
    finally:
        configure_logging("INFO")


def test_an_unknown_level_is_a_configuration_error() -> None:
    try:
        with pytest.raises(ConfigurationError, match="LOG_LEVEL must be one of"):
            configure_logging("chatty")
    finally:
        configure_logging("INFO")


def test_celery_leaves_the_root_logger_to_us(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a worker does at start: without our receiver of `setup_logging`, Celery would replace the root
    logger's handlers with its own."""
    monkeypatch.setattr(celery_log.Logging, "_setup", False)
    before = logging.getLogger().handlers[:]

    app.extensions["celery"].log.setup_logging_subsystem(loglevel="DEBUG")

    assert logging.getLogger().handlers == before
    assert len(_our_handlers()) == 1
