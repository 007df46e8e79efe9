"""The Celery app, built by create_app (Flask's celery_init_app pattern): tasks run in the app context.

Every task of the project goes through `task()`, so all share the reliability settings the architecture asks
for: JSON only, late acknowledgement, redelivery when a worker dies, bounded retries with exponential
backoff and jitter, and time limits.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, cast

from celery import Celery, Task, shared_task
from flask import Flask


class TransientError(Exception):
    """Raised by task code for a failure worth retrying (a provider outage, a refused SMTP delivery)."""


def task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    defaults: dict[str, Any] = {
        "name": name,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "autoretry_for": (TransientError,),
        "retry_backoff": 2,
        "retry_backoff_max": 600,
        "retry_jitter": True,
        "max_retries": 8,
        "soft_time_limit": 60,
        "time_limit": 90,
    }
    return cast("Callable[[Callable[..., Any]], Any]", shared_task(**{**defaults, **options}))


def celery_init_app(app: Flask, task_modules: Iterable[str]) -> Celery[Any]:
    class FlaskTask(Task[Any, Any]):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    modules = list(task_modules)
    for module in modules:
        importlib.import_module(module)
    broker_url = app.config["CELERY_BROKER_URL"]
    celery = Celery(app.name, task_cls=FlaskTask, include=modules)
    celery.conf.update(
        broker_url=broker_url,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_always_eager=app.config.get("CELERY_TASK_ALWAYS_EAGER", False),
        task_eager_propagates=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        broker_transport_options=_transport_options(
            broker_url, int(app.config.get("CELERY_VISIBILITY_TIMEOUT", 3600))
        ),
        beat_schedule_filename=app.config["CELERY_BEAT_SCHEDULE_FILE"],
        timezone="UTC",
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def _transport_options(broker_url: str, visibility_timeout: int = 3600) -> dict[str, Any]:
    """Redis redelivers unacknowledged tasks after the visibility timeout: it must outlast any retry delay.

    Workers look for such tasks every tenth of the timeout (at most every 10 s; kombu's default is ~100 s),
    so a task of a killed worker is picked up soon after the timeout, also when tests shorten it.
    """
    if broker_url.startswith(("redis://", "rediss://")):
        return {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": max(1, min(10, visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 3,
            "socket_timeout": 5,
        }
    return {}
