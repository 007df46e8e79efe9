import time, statistics
from datetime import timedelta
from bench.scenario import TIMEZONE, seed
from tests.helpers import temporary_app
from tests.support.servers import postgres_server
from marketplace.bookings.routes import SLOTS_CACHE
with postgres_server(dbname="prof") as url:
    with temporary_app(url) as app:
        seeded = seed(app)
    app = temporary_app(url).__enter__()
    c = app.test_client()
    last = seeded.first + timedelta(days=59)
    q = f"/api/v1/mentors/{seeded.mentor_id}/slots?from={seeded.first}&to={last}&duration=60&tz={TIMEZONE}"
    def miss(): SLOTS_CACHE.clear(); c.get(q)
    def hit(): c.get(q)
    for label, fn in (("miss", miss), ("hit", hit), ("healthz", lambda: c.get("/healthz"))):
        for _ in range(30): fn()
        xs = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(100): fn()
            xs.append((time.perf_counter() - t) / 100 * 1000)
        print(label, round(statistics.median(xs), 3), "ms")
