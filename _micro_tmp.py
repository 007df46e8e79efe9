import time
from datetime import timedelta
from zoneinfo import ZoneInfo
from sqlalchemy import select, bindparam
from bench.scenario import TIMEZONE, seed
from tests.helpers import temporary_app
from tests.support.servers import postgres_server
from marketplace.extensions import db
from marketplace.mentors.models import MentorProfile
from marketplace.bookings import service
def bench(label, fn, n=3000):
    for _ in range(300): fn()
    t = time.process_time()
    for _ in range(n): fn()
    print(f"{label:45s} {(time.process_time()-t)/n*1e6:8.1f} us CPU")
with postgres_server(dbname="prof") as url:
    with temporary_app(url) as app:
        seeded = seed(app)
    app = temporary_app(url).__enter__()
    mid = seeded.mentor_id
    zone = ZoneInfo(TIMEZONE)
    last = seeded.first + timedelta(days=59)
    with app.app_context():
        cols = (MentorProfile.vetting_status, MentorProfile.session_minutes, MentorProfile.calendar_version)
        bench("build select", lambda: select(*cols).where(MentorProfile.id == mid))
        const = select(*cols).where(MentorProfile.id == bindparam("mentor_id"))
        def full(fn):
            def go():
                db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
                fn(); db.session.commit(); db.session.remove()
            return go
        bench("full: resolve_slot_query", full(lambda: service.resolve_slot_query(mid, seeded.first, last, zone, 60)))
        bench("full: ORM execute built", full(lambda: db.session.execute(select(*cols).where(MentorProfile.id == mid)).first()))
        bench("full: ORM execute const", full(lambda: db.session.execute(const, {"mentor_id": mid}).first()))
        bench("full: Core execute const", full(lambda: db.session.connection().execute(const, {"mentor_id": mid}).first()))
        bench("full: nothing (checkout+ping)", full(lambda: None))
