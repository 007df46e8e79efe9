"""Periodic work run by `celery -A workers beat`. Each entry names a task in its module's tasks.py."""

from __future__ import annotations

from typing import Any

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}
