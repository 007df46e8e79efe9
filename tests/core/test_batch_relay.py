"""`BatchRelay`: items committed by concurrent requests reach the broker in few messages, each item once,
and a broker outage costs the caller nothing (the items' own rows are swept later)."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from marketplace.core.celery import PAYMENTS_QUEUE
from marketplace.core.outbox import BatchRelay
from marketplace.payments.service import PROCESS_EVENTS_TASK
from tests.helpers import temporary_app
from tests.support.servers import free_port, redis_server

THREADS = 10
ITEMS_PER_THREAD = 60


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def _celery_on(broker_url: str) -> Iterator[Celery]:
    with temporary_app("sqlite://", CELERY_BROKER_URL=broker_url, CELERY_TASK_ALWAYS_EAGER=False) as app:
        yield app.extensions["celery"]


@pytest.fixture
def celery_app(broker_url: str) -> Iterator[Celery]:
    redis.Redis.from_url(broker_url).flushdb()
    yield from _celery_on(broker_url)


def _published(broker_url: str) -> list[dict[str, Any]]:
    """The task messages waiting on the payments queue, as (task name, keyword arguments)."""
    messages = []
    for raw in redis.Redis.from_url(broker_url).lrange(PAYMENTS_QUEUE, 0, -1):
        envelope = json.loads(raw)
        _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        messages.append({"task": envelope["headers"]["task"], "kwargs": kwargs})
    return messages


def test_items_from_concurrent_threads_are_published_once_in_few_messages(
    celery_app: Celery, broker_url: str
) -> None:
    relay = BatchRelay()
    start = threading.Barrier(THREADS)

    def request_thread(n: int) -> None:
        start.wait()
        for i in range(ITEMS_PER_THREAD):
            relay.add(celery_app, PROCESS_EVENTS_TASK, f"evt_{n}_{i}")

    threads = [threading.Thread(target=request_thread, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    relay.flush()  # whatever the relay's thread has not sent yet

    messages = _published(broker_url)
    items = [item for message in messages for item in message["kwargs"]["items"]]
    assert {message["task"] for message in messages} == {PROCESS_EVENTS_TASK}
    assert sorted(items) == sorted(f"evt_{n}_{i}" for n in range(THREADS) for i in range(ITEMS_PER_THREAD))
    assert len(messages) < THREADS * ITEMS_PER_THREAD / 10
    assert all(len(message["kwargs"]["items"]) <= BatchRelay.MAX_ITEMS for message in messages)


def test_the_relay_thread_publishes_without_being_asked(celery_app: Celery, broker_url: str) -> None:
    relay = BatchRelay()
    relay.add(celery_app, PROCESS_EVENTS_TASK, "evt_alone")

    for _ in range(100):
        if _published(broker_url):
            break
        threading.Event().wait(0.05)
    assert _published(broker_url) == [{"task": PROCESS_EVENTS_TASK, "kwargs": {"items": ["evt_alone"]}}]


def test_a_broker_outage_raises_nothing_and_the_relay_keeps_working(broker_url: str) -> None:
    """The request that committed the items never sees the outage; the relay's next batch goes out."""
    relay = BatchRelay()
    for celery_down in _celery_on(f"redis://127.0.0.1:{free_port()}/0"):
        relay.add(celery_down, PROCESS_EVENTS_TASK, "evt_lost")
        assert relay.flush() == 0

    redis.Redis.from_url(broker_url).flushdb()
    for celery_up in _celery_on(broker_url):
        relay.add(celery_up, PROCESS_EVENTS_TASK, "evt_next")
        relay.flush()
        assert "evt_next" in [item for m in _published(broker_url) for item in m["kwargs"]["items"]]
