"""gunicorn settings read from the working directory by every `gunicorn wsgi:app` (Procfile, tests).

The logger masks secrets that travel in URLs (calendar-feed tokens) in the access and error logs, and
each access line ends with the response's X-Request-ID, the same id the app's log lines carry.
"""

# The longest request line gunicorn takes (its maximum, as nginx's default buffer): a search with every
# filter at its longest, percent-encoded, fits, so the app answers it rather than gunicorn's HTML 414.
limit_request_line = 8190
logger_class = "marketplace.core.gunicorn_logging.GunicornLogger"
access_log_format = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" request_id=%({x-request-id}o)s'
)
