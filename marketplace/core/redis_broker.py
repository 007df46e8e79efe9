"""The Redis broker's transport: kombu's, with a guard for a channel closed after its connection (issue 11).

When a worker loses Redis, Celery first collects the broker connection, which leaves the kombu transport
without its `client`, and then closes it. A channel that was waiting on BRPOP at the loss survives the first
close unclosed; the second close restores its unacknowledged messages (a prefetched or running task), for
which kombu 5.7 builds a new connection pool from `client.hostname` and raises AttributeError, an error the
worker cannot recover from: it exits. Here such a channel raises a connection error instead, which the close
ignores, as it does when the restore fails because Redis is down: the messages stay in Redis' unacked set
and go back to the queue after the visibility timeout (and what Redis lost, the outbox re-sends).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if getattr(self.connection, "client", None) is None:
            raise RedisConnectionError("the broker connection was closed under this channel")
        params: dict[str, Any] = super()._connparams(asynchronous)  # type: ignore[misc]  # not in the stubs
        return params


class Transport(redis.Transport):
    Channel = Channel
