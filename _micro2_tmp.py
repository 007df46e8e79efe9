import time, hashlib
from datetime import timedelta
from zoneinfo import ZoneInfo
from flask import Response
from bench.scenario import TIMEZONE, seed
from tests.helpers import temporary_app
from tests.support.servers import postgres_server
from marketplace.extensions import db
from marketplace.bookings import service, routes
def bench(label, fn, n=5000):
    for _ in range(300): fn()
    t = time.process_time()
    for _ in range(n): fn()
    print(f"{label:45s} {(time.process_time()-t)/n*1e6:8.1f} us CPU")
with postgres_server(dbname="prof") as url:
    with temporary_app(url) as app:
        seeded = seed(app)
    app = temporary_app(url).__enter__()
    zone = ZoneInfo(TIMEZONE)
    last = seeded.first + timedelta(days=59)
    with app.test_request_context("/x"):
        q = service.resolve_slot_query(seeded.mentor_id, seeded.first, last, zone, 60)
        routes._slots_response(q)
        bench("_slots_response hit", lambda: routes._slots_response(q))
        bench("etag hash", lambda: hashlib.blake2b(q.key.encode(), digest_size=16).hexdigest())
        bench("key", lambda: q.key)
        from flask import request
        bench("if_none_match", lambda: request.if_none_match.contains_weak("abc"))
        body = routes.SLOTS_CACHE.get(q.key)
        bench("Response()", lambda: Response(body, mimetype="application/json"))
        def full():
            r = Response(body, mimetype="application/json"); r.set_etag("abc", weak=True); r.cache_control.public = True; r.cache_control.max_age = 30
        bench("Response+headers", full)
        def full2():
            Response(body, mimetype="application/json", headers={"ETag": 'W/"abc"', "Cache-Control": "public, max-age=30"})
        bench("Response(headers=)", full2)
