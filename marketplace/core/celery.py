"""The Celery app, built by create_app (Flask's celery_init_app pattern): tasks run in the app context.

Every task of the project goes through `task()`, so all share the reliability settings the architecture asks
for: JSON only, late acknowledgement, redelivery when a worker dies, bounded retries with exponential
backoff and jitter, and time limits. A task sent by the outbox marks its row done once it has run (unless
the task marked it inside its own transaction), and records why it failed when it fails.

Tasks go to one of three queues (`task_routes` below), each with workers of its own (Procfile, Procfile.dev),
so a backlog of one never delays another: `payments` (Stripe events and the work they start: a booking
confirmed seconds after the payment), `mail` (every message) and `upkeep` (sweeps, reconciliation, search
refreshes; the default).

The broker connection is retried for ever, at start and after a loss, with short socket timeouts and health
checks on Redis, so a Redis outage pauses the workers rather than ending them.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, cast

from celery import Celery, Task, shared_task
from flask import Flask
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import OperationalError as DatabaseError

from marketplace.core import embedded_broker, outbox
from marketplace.extensions import db

log = logging.getLogger(__name__)

PAYMENTS_QUEUE = "payments"
MAIL_QUEUE = "mail"
UPKEEP_QUEUE = "upkeep"
QUEUES = (PAYMENTS_QUEUE, MAIL_QUEUE, UPKEEP_QUEUE)
# `sqla+<database URL>` (the embedded default) runs on kombu's SQLAlchemy transport with its polling tuned.
EMBEDDED_PREFIX = "sqla+"
EMBEDDED_TRANSPORT = "marketplace.core.embedded_broker:Transport"
# Redis through kombu's transport with a guard that keeps a worker alive when Redis goes away (redis_broker).
REDIS_TRANSPORT = "marketplace.core.redis_broker:Transport"
REDIS_SCHEMES = ("redis://", "rediss://")
# Task name -> queue; a task not named here runs on upkeep.
TASK_ROUTES: dict[str, dict[str, str]] = {
    "payments.process_events": {"queue": PAYMENTS_QUEUE},
    "payments.execute_refund": {"queue": PAYMENTS_QUEUE},
    "payments.cancel_released_intent": {"queue": PAYMENTS_QUEUE},
    "payments.refund_duplicate": {"queue": PAYMENTS_QUEUE},
    "payments.reverse_transfer": {"queue": PAYMENTS_QUEUE},
    "payments.finish_accepted_captures": {"queue": PAYMENTS_QUEUE},
    "notifications.send_email": {"queue": MAIL_QUEUE},
    "notifications.send_reminder": {"queue": MAIL_QUEUE},
}


class TransientError(Exception):
    """Raised by task code for a failure worth retrying (a provider outage, a refused SMTP delivery)."""


# What a retry can fix: a provider's or SMTP server's temporary refusal, the database restarting or
# unreachable (SQLAlchemy wraps the driver's error in OperationalError), the broker away.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (TransientError, DatabaseError, BrokerError)


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
            message_id = outbox.message_id_of(self.request.id)
            with app.app_context(), outbox.consuming(message_id):
                result = self.run(*args, **kwargs)
                _mark_completed()
                return result

        def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            message_id = outbox.message_id_of(task_id)
            if message_id is None:
                return
            with app.app_context():
                try:
                    outbox.record_failure(message_id, f"{exc.__class__.__name__}: {exc}")
                    db.session.commit()
                except Exception:  # the database may be what failed; the row is sent again regardless
                    db.session.rollback()
                    log.warning("could not record the failure of outbox message %s", message_id)

    modules = list(task_modules)
    for module in modules:
        importlib.import_module(module)
    broker_url = app.config["CELERY_BROKER_URL"]
    embedded_broker.Transport.polling_interval = float(app.config.get("CELERY_BROKER_POLLING_INTERVAL", 0.01))
    celery = Celery(app.name, task_cls=FlaskTask, include=modules)
    celery.conf.update(
        broker_url=broker_url.removeprefix(EMBEDDED_PREFIX),
        broker_transport=_transport(broker_url),
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_always_eager=app.config.get("CELERY_TASK_ALWAYS_EAGER", False),
        task_eager_propagates=True,
        worker_prefetch_multiplier=1,
        task_default_queue=UPKEEP_QUEUE,
        task_routes=TASK_ROUTES,
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        broker_connection_timeout=3,
        # Tasks running when the connection drops finish their work (a mail half sent is not cut off and sent
        # again); their acknowledgement is lost, so the message comes back and finds the work done.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_transport_options=_transport_options(
            broker_url, int(app.config.get("CELERY_VISIBILITY_TIMEOUT", 3600))
        ),
        beat_schedule_filename=app.config["CELERY_BEAT_SCHEDULE_FILE"],
        timezone="UTC",
    )
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


def _mark_completed() -> None:
    """The task ran to its end: its outbox row is done (unless it marked it in its own transaction)."""
    message_id = outbox.pending_completion()
    if message_id is None:
        return
    try:
        outbox.complete(message_id)
        db.session.commit()
    except DatabaseError:
        # The work is done and the row will be sent again: the consumer's idempotence absorbs the repeat.
        db.session.rollback()
        log.warning("outbox message %s ran but could not be marked done", message_id)


def _transport(broker_url: str) -> str | None:
    """The transport class for the broker URL (None: the one its scheme names)."""
    if broker_url.startswith(EMBEDDED_PREFIX):
        return EMBEDDED_TRANSPORT
    return REDIS_TRANSPORT if broker_url.startswith(REDIS_SCHEMES) else None


def _transport_options(broker_url: str, visibility_timeout: int = 3600) -> dict[str, Any]:
    """Redis redelivers unacknowledged tasks after the visibility timeout: it must outlast any retry delay.

    Workers look for such tasks every tenth of the timeout (at most every 10 s; kombu's default is ~100 s),
    so a task of a killed worker is picked up soon after the timeout, also when tests shorten it. Short
    socket timeouts and a health check every few seconds notice a dead Redis at once, so the worker starts
    reconnecting within seconds of its return.
    """
    if broker_url.startswith(REDIS_SCHEMES):
        return {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": max(1, min(10, visibility_timeout // 10)),
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 3,
            "socket_timeout": 5,
            "socket_keepalive": True,
            "health_check_interval": 5,
            "retry_on_timeout": True,
        }
    return {}
