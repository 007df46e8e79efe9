"""GET /api/v1/mentors/{mentor_id}/slots: a mentor's free slots, cached per process, revalidated by ETag.

Correct across processes: the listing's key holds the mentor's calendar version, read from the database on
every request, and every change to the mentor's free slots bumps it in its own transaction
(`mentors.calendar_version.bump_calendar_versions`), so no process serves a list of an older calendar. The key's minute covers what
time alone changes (notice, lapsing holds, the horizon).

Clients and proxies may keep the list for 30 seconds, then revalidate with the ETag. A list that stale is
safe: creating a booking checks the slot again and the database refuses overlapping bookings, so the worst
case is a clear 409 for a slot taken meanwhile.
"""

from __future__ import annotations

import threading
from operator import attrgetter
from typing import Any, cast
from zoneinfo import ZoneInfo

from cachetools import LRUCache, cached
from flask import Response, current_app
from flask.views import MethodView

from marketplace.bookings.availability import service
from marketplace.bookings.availability.schemas import SlotArgsSchema, SlotSchema
from marketplace.core.api import Blueprint
from marketplace.core.cache import conditional
from marketplace.core.db import autocommit_statements
from marketplace.scheduling.slots import Slot

blp = Blueprint("slots", __name__, url_prefix="/api/v1", description="Free slots of mentors")

SLOT_LIST = SlotSchema(many=True)
# Serialized listings by `SlotQuery.key`, per process; bounded so many mentors and windows stay cheap.
SLOTS_CACHE: LRUCache[str, bytes] = LRUCache(maxsize=2048)
SLOTS_MAX_AGE_SECONDS = 30


@blp.route("/mentors/<int:mentor_id>/slots")
class Slots(MethodView):
    @blp.arguments(SlotArgsSchema(), location="query")  # an instance: a class is instantiated per request
    @blp.response(200, SLOT_LIST)
    @blp.alt_response(304, description="Unchanged: the ETag sent in `If-None-Match` is current")
    def get(self, args: dict[str, Any], mentor_id: int) -> Response:
        """Free bookable starts between two dates of the `tz` calendar, shown in `tz`."""
        zone = ZoneInfo(args["tz"])
        autocommit_statements()
        query = service.resolve_slot_query(mentor_id, args["from_"], args["to"], zone, args["duration"])
        response = conditional(query.key, f"public, max-age={SLOTS_MAX_AGE_SECONDS}")
        if response.status_code == 200:
            response.set_data(_listing(query))
            response.mimetype = "application/json"
        return response


@cached(SLOTS_CACHE, key=attrgetter("key"), lock=threading.Lock())
def _listing(query: service.SlotQuery) -> bytes:
    """`query`'s slots dumped by `SlotSchema` and written as jsonify writes them, once per key and process."""
    zoned = [
        Slot(slot.start.astimezone(query.zone), slot.end.astimezone(query.zone))
        for slot in service.slots_for(query)
    ]
    return cast(Response, current_app.json.response(SLOT_LIST.dump(zoned))).get_data()
