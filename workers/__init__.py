"""The Celery app, built through create_app so every task runs inside the Flask app context.

Worker: `celery -A workers worker`; scheduler: `celery -A workers beat`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

from marketplace import create_app
from workers.schedule import BEAT_SCHEDULE, TASK_MODULES


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask, include=list(TASK_MODULES))
    celery.conf.update(
        broker_url=app.config["CELERY_BROKER_URL"],
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options=_transport_options(app.config["CELERY_BROKER_URL"]),
        beat_schedule=BEAT_SCHEDULE,
        beat_schedule_filename=app.config["CELERY_BEAT_SCHEDULE_FILE"],
        timezone="UTC",
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def _transport_options(broker_url: str) -> dict[str, Any]:
    """Redis redelivers unacknowledged tasks after the visibility timeout: it must outlast any retry delay."""
    if broker_url.startswith(("redis://", "rediss://")):
        return {"visibility_timeout": 3600}
    return {}


flask_app = create_app()
celery_app = celery_init_app(flask_app)
