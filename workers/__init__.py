"""The Celery app of `create_app`, with the beat schedule. Every task runs inside the Flask app context.

Worker: `celery -A workers worker`; scheduler: `celery -A workers beat`.
"""

from __future__ import annotations

from marketplace import create_app_or_exit
from workers.schedule import BEAT_SCHEDULE, beat_settings

flask_app = create_app_or_exit()
celery_app = flask_app.extensions["celery"]
celery_app.conf.beat_schedule = BEAT_SCHEDULE
celery_app.conf.update(beat_settings(flask_app.config))
