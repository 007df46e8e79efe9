import cProfile, pstats, tempfile, time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo
from bench.scenario import TIMEZONE, seed, window_bounds
from tests.helpers import temporary_app
from marketplace.bookings.service import blocking_intervals, list_free_slots
from marketplace.core.time import utcnow
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.scheduling.service import rules_for
from marketplace.scheduling.slots import free_slots
tmp = Path(tempfile.mkdtemp())
with temporary_app(f"sqlite:///{tmp/'b.db'}") as app:
    s = seed(app)
    zone = ZoneInfo(TIMEZONE)
    with app.app_context():
        p = db.session.get(MentorProfile, s.mentor_id); rules = rules_for(p); now = utcnow()
        start, end = window_bounds(s.first, s.last)
        busy = blocking_intervals(p.id, start - timedelta(days=1), end + timedelta(days=1), now)
    def pure(): free_slots(rules, busy, now, start, end, 60)
    def svc():
        with app.app_context(): list_free_slots(s.mentor_id, s.first, s.last, zone, 60)
    for label, fn in (("pure", pure), ("service", svc)):
        for _ in range(20): fn()
        t = time.perf_counter()
        for _ in range(200): fn()
        print(label, round((time.perf_counter() - t) / 200 * 1000, 3), "ms")
        pr = cProfile.Profile(); pr.enable()
        for _ in range(200): fn()
        pr.disable(); pstats.Stats(pr).sort_stats("tottime").print_stats(14)
