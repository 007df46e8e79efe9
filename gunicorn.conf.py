"""gunicorn settings read from the working directory by every `gunicorn wsgi:app` (Procfile, tests).

Threaded workers (gthread): a client that sends its headers or body slowly holds one thread, not a whole
process, and gunicorn hands a connection to a thread only once its request has begun to arrive, so a
few idle sockets cannot stop `/healthz` from answering. Many slow clients are nginx's to absorb: it buffers
each request whole before passing it on (docs/deploy.md). The app is safe to share between threads: each
thread has its own database session (Flask-SQLAlchemy scopes sessions to the app context) and the
per-process caches take a lock.

The logger masks secrets that travel in URLs (calendar-feed tokens) in the access and error logs, and
each access line ends with the response's X-Request-ID, the same id the app's log lines carry.
"""

import os

worker_class = "gthread"
# Processes (`--workers` or WEB_CONCURRENCY) times threads is how many requests run at once.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# A worker that has not told the master it is alive for this long (a thread stuck in C code) is replaced.
timeout = 30
# On SIGTERM, requests in flight get this long to finish before the worker is killed.
graceful_timeout = 20
# Idle keep-alive connections (from nginx or a client) are closed after this many seconds.
keepalive = 5
# The longest request line gunicorn takes (its maximum, as nginx's default buffer): a search with every
# filter at its longest, percent-encoded, fits, so the app answers it rather than gunicorn's HTML 414.
limit_request_line = 8190
logger_class = "marketplace.core.gunicorn_logging.GunicornLogger"
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" request_id=%({x-request-id}o)s'
)
