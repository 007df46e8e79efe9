"""The embedded default's broker: kombu's SQLAlchemy transport (a table on SQLite), polled often enough.

The virtual transport polls its table every `polling_interval` (1 s by default), and a worker that holds a
task (late acknowledgement, prefetch 1) asks again only after the next poll: about two tasks a second per
process. kombu reads the interval from the transport options, but the SQLAlchemy channels hand every
transport option to `create_engine`, which refuses it; so it is this class's attribute, set from
`CELERY_BROKER_POLLING_INTERVAL` when the app is built (a process has one broker).
"""

from __future__ import annotations

from kombu.transport import sqlalchemy


class Transport(sqlalchemy.Transport):
    polling_interval = 0.01
