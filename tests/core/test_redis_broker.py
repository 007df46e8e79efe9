"""A worker survives losing Redis with a task unacknowledged (issue 11): the chaos run saw workers exit on
kombu's `'NoneType' object has no attribute 'hostname'` when a channel waiting on BRPOP still held a task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from marketplace.core.celery import REDIS_TRANSPORT, _transport
from tests.support.servers import redis_server

QUEUE = Queue("probe", Exchange("probe"), routing_key="probe")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def _unacked_after_celery_collected_the_connection(connection: Connection, redis_url: str) -> None:
    """The state Celery leaves after a lost broker: the default channel holds an unacknowledged task, and
    the connection was collected (its transport lost its client) while that channel's first close was cut
    short mid-BRPOP; then Celery closes the connection."""
    redis.Redis.from_url(redis_url).flushall()
    channel = connection.default_channel
    with connection.Producer(channel) as producer:
        producer.publish({"task": "probe"}, exchange=QUEUE.exchange, routing_key="probe", declare=[QUEUE])
    assert channel.basic_get("probe", no_ack=False) is not None  # delivered, not acknowledged
    connection._do_close_transport()


def test_closing_a_channel_whose_connection_is_gone_keeps_its_task_for_redelivery(redis_url: str) -> None:
    connection = Connection(redis_url, transport=REDIS_TRANSPORT)
    _unacked_after_celery_collected_the_connection(connection, redis_url)

    connection.close()  # kombu's own transport raises AttributeError here, which ends a worker

    # Left in Redis' unacked set: restored to the queue after the visibility timeout, as when Redis is down.
    assert redis.Redis.from_url(redis_url).hlen("unacked") == 1


def test_kombus_own_transport_fails_there(redis_url: str) -> None:
    """What the guard is for; when a kombu release fixes this, the guard can go."""
    connection = Connection(redis_url, transport=kombu_redis.Transport)
    _unacked_after_celery_collected_the_connection(connection, redis_url)

    with pytest.raises(AttributeError, match="hostname"):
        connection.close()


def test_redis_brokers_use_the_guarded_transport() -> None:
    assert _transport("redis://127.0.0.1:6379/0") == REDIS_TRANSPORT
    assert _transport("rediss://cache.example:6380/0") == REDIS_TRANSPORT
    assert _transport("sqla+sqlite:///broker.db") == "marketplace.core.embedded_broker:Transport"
    assert _transport("memory://") is None
