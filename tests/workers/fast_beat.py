"""`celery -A tests.workers.fast_beat beat`: the project's Celery app, beat settings included, with one entry
due every second in place of the real schedule (whose shortest period is 30 s), for the standby-beat test."""

from workers import celery_app

TICK_TASK = "tests.beat_tick"

celery_app.conf.beat_schedule = {"tick": {"task": TICK_TASK, "schedule": 1.0}}
