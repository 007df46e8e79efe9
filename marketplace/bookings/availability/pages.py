"""The mentor's availability page (`/mentor/availability`): weekly hours, days that differ, and a preview.

The forms are read into the API's own input (`AvailabilitySchema`, `DateOverrideSchema`) and saved by the API's
own services (`scheduling.service`); the preview lists the free slots with this package's `slots_for`, the
computation behind the public slot listing and the mentor's public page, so it shows what learners will see
(once the profile is approved). It lives here, not in `scheduling`, because free slots depend on bookings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import flash, redirect, request, url_for
from flask.views import MethodView
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from marketplace.bookings.availability.service import SlotQuery, slots_for
from marketplace.core.api import Blueprint
from marketplace.core.errors import DomainError, NotFound
from marketplace.core.pages import Form, render_page
from marketplace.core.time import utcnow
from marketplace.core.validation import fields
from marketplace.mentors.models import MentorProfile
from marketplace.mentors.pages import (
    current_mentor,
    field_messages,
    mentor_view,
    own_profile_first,
    refusals_as_pages,
    refused,
    whole_number,
)
from marketplace.scheduling import service
from marketplace.scheduling.models import AvailabilitySchedule
from marketplace.scheduling.schemas import WEEKDAYS, AvailabilitySchema, DateOverrideSchema

html = Blueprint(
    "mentor_availability_pages", __name__, description="The mentor's own pages (HTML): availability"
)

PREVIEW_DAYS = 7
MAX_ROWS = 10  # time ranges per weekday the form offers
OVERRIDE_ROWS = 2
SETTINGS = ("timezone", "buffer_minutes", "min_notice_minutes", "horizon_days")
_WEEKLY_FIELD = re.compile(r"w([0-6])-([0-9])-(start|end)")
_DATE = fields.Date()


@dataclass(frozen=True)
class Preview:
    """The free starts of the next days in the mentor's zone, for the length learners see first."""

    zone: ZoneInfo
    duration: int
    days: list[tuple[date, list[datetime]]]


def _end_of_day(end: str) -> str:
    """A time input cannot say 24:00: an end of 00:00 means the following midnight, as in `slots`."""
    return "24:00" if end == "00:00" else end


def _time_ranges(prefixes: list[str], form: Form) -> tuple[list[dict[str, str]], list[str]]:
    """The filled start/end pairs under `prefixes` (`w0-1` reads `w0-1-start` and `w0-1-end`), and the
    prefix of each one kept; a half-filled pair gets its message."""
    ranges: list[dict[str, str]] = []
    kept: list[str] = []
    for prefix in prefixes:
        start = form.values.get(f"{prefix}-start", "").strip()
        end = form.values.get(f"{prefix}-end", "").strip()
        if not start and not end:
            continue
        if not start or not end:
            form.errors[f"{prefix}-{'end' if start else 'start'}"] = ["Fill in both times, or neither."]
            continue
        ranges.append({"start": start, "end": _end_of_day(end)})
        kept.append(prefix)
    return ranges, kept


def _row_errors(messages: Any, kept: list[str], name: str) -> dict[str, list[str]]:
    """Messages about the list `name` put next to the form's rows (`kept[i]` is item i's row)."""
    flat: dict[str, list[str]] = {}
    for field_name, value in messages.items():
        if field_name == name and isinstance(value, dict):
            for index, problems in value.items():
                row = kept[int(index)]
                for part, texts in problems.items() if isinstance(problems, dict) else [("start", problems)]:
                    flat[f"{row}-{part}"] = [str(text) for text in texts]
        else:
            flat.update(field_messages({field_name: value}))
    return flat


def _posted_weekly() -> tuple[dict[str, Any] | None, Form]:
    posted = request.form
    form = Form(values={name: posted.get(name, "") for name in SETTINGS})
    form.values.update({key: value for key, value in posted.items() if _WEEKLY_FIELD.fullmatch(key)})
    prefixes = [f"w{day}-{row}" for day in range(7) for row in range(MAX_ROWS)]
    ranges, kept = _time_ranges(prefixes, form)
    weekly = [{"weekday": int(prefix[1]), **interval} for prefix, interval in zip(kept, ranges, strict=True)]
    payload: dict[str, Any] = {
        name: whole_number(posted[name]) for name in SETTINGS if posted.get(name, "").strip()
    }
    if "timezone" in payload:
        payload["timezone"] = posted["timezone"].strip()
    try:
        data = AvailabilitySchema().load({**payload, "weekly": weekly})
    except ValidationError as exc:
        form.errors = {**_row_errors(exc.messages, kept, "weekly"), **form.errors}
        return None, form
    return (None if form.errors else data), form


def _posted_override() -> tuple[dict[str, Any] | None, Form]:
    posted = request.form
    prefixes = [f"o-{row}" for row in range(OVERRIDE_ROWS)]
    names = ["date", *(f"{prefix}-{part}" for prefix in prefixes for part in ("start", "end"))]
    form = Form(values={name: posted.get(name, "") for name in names})
    intervals, kept = _time_ranges(prefixes, form)
    try:
        data = DateOverrideSchema().load({"date": posted.get("date", "").strip(), "intervals": intervals})
    except ValidationError as exc:
        form.errors = {**_row_errors(exc.messages, kept, "intervals"), **form.errors}
        return None, form
    return (None if form.errors else data), form


def _weekly_values(schedule: AvailabilitySchedule | None, profile: MentorProfile) -> dict[str, str]:
    if schedule is None:
        zone = profile.timezone or current_mentor().timezone
        return {
            "timezone": zone or "",
            "buffer_minutes": "0",
            "min_notice_minutes": "120",
            "horizon_days": "60",
        }
    values = {name: str(getattr(schedule, name)) for name in SETTINGS}
    rows = [0] * 7
    for interval in schedule.weekly:
        prefix = f"w{interval.weekday}-{rows[interval.weekday]}"
        values[f"{prefix}-start"] = interval.start
        values[f"{prefix}-end"] = "00:00" if interval.end == "24:00" else interval.end
        rows[interval.weekday] += 1
    return values


def _rows_per_day(values: dict[str, str]) -> list[int]:
    """Every range filled in, and one or two empty rows to add another."""
    used = [0] * 7
    for key, value in values.items():
        match = _WEEKLY_FIELD.fullmatch(key)
        if match and value:
            used[int(match[1])] = max(used[int(match[1])], int(match[2]) + 1)
    return [min(MAX_ROWS, max(2, count + 1)) for count in used]


def _preview(profile: MentorProfile, schedule: AvailabilitySchedule | None) -> Preview | None:
    """The free slots of the next `PREVIEW_DAYS` days, as the public listing computes them."""
    offered = tuple(profile.session_minutes or ())
    if schedule is None or not offered:
        return None
    zone = ZoneInfo(schedule.timezone)
    duration = 60 if 60 in offered else min(offered)
    now = utcnow()
    first = now.astimezone(zone).date()
    last = first + timedelta(days=PREVIEW_DAYS - 1)
    query = SlotQuery(profile.id, profile.calendar_version, offered, first, last, duration, zone, now)
    days: dict[date, list[datetime]] = {}
    for slot in slots_for(query):
        start = slot.start.astimezone(zone)
        days.setdefault(start.date(), []).append(start)
    return Preview(zone, duration, sorted(days.items()))


def _schedule() -> AvailabilitySchedule | None:
    try:
        return service.own_availability(current_mentor())
    except NotFound:
        return None


def _labels() -> dict[str, str]:
    """How the error summary names the generated rows: as their labels read."""
    labels = {"weekly": "Weekly hours", "intervals": "Times"}
    for part, word in (("start", "from"), ("end", "to")):
        labels.update(
            {
                f"w{day}-{row}-{part}": f"{WEEKDAYS[day]} {row + 1}, {word}"
                for day in range(7)
                for row in range(MAX_ROWS)
            }
        )
        labels.update({f"o-{row}-{part}": f"Time {row + 1}, {word}" for row in range(OVERRIDE_ROWS)})
    return labels


def _show(weekly: Form | None = None, override: Form | None = None, status: int = 200) -> Response:
    profile = own_profile_first(current_mentor())
    schedule = _schedule()
    weekly = weekly or Form(values=_weekly_values(schedule, profile))
    return render_page(
        "mentor/availability.html",
        title="Your availability",
        description="Set the hours learners can book you, the days that differ, and see your free times.",
        status=status,
        weekly=weekly,
        override=override or Form(),
        rows_per_day=_rows_per_day(weekly.values),
        weekdays=WEEKDAYS,
        schedule=schedule,
        today=schedule.local_today() if schedule else utcnow().date(),
        preview=_preview(profile, schedule),
        preview_days=PREVIEW_DAYS,
        labels=_labels(),
        override_rows=OVERRIDE_ROWS,
    )


@html.route("/mentor/availability")
class AvailabilityPage(MethodView):
    @mentor_view(html, "Weekly hours, dates that differ, preview", (404, "No mentor profile yet"))
    def get(self) -> Response:
        return _show()

    @mentor_view(
        html,
        "Saved: back to the page, whose preview shows the new free times",
        (422, "The form again, with what to change"),
        status=303,
    )
    def post(self) -> Response:
        """Replace the weekly hours and settings (dates that differ are kept)."""
        data, form = _posted_weekly()
        if data is None:
            return _show(weekly=form, status=422)
        try:
            service.save_availability(current_mentor(), data)
        except DomainError as exc:
            return _show(weekly=refused(form, exc), status=exc.status_code)
        flash("Your weekly hours are saved.")
        return redirect(url_for("mentor_availability_pages.AvailabilityPage"), code=303)


@html.route("/mentor/availability/overrides")
class OverridePage(MethodView):
    @mentor_view(
        html,
        "The date's hours are set (no times: a day off)",
        (422, "The form again, with what to change"),
        status=303,
    )
    def post(self) -> Response:
        data, form = _posted_override()
        if data is None:
            return _show(override=form, status=422)
        if _schedule() is None:
            form.message = "Save your weekly hours first; then set the days that differ."
            return _show(override=form, status=404)
        try:
            service.save_override(current_mentor(), data)
        except DomainError as exc:
            return _show(override=refused(form, exc), status=exc.status_code)
        flash(f"Your hours on {data['day']:%A %d %B %Y} are saved.")
        return redirect(url_for("mentor_availability_pages.AvailabilityPage"), code=303)


@html.route("/mentor/availability/overrides/remove")
class RemoveOverridePage(MethodView):
    @mentor_view(
        html, "Removed: the weekly hours apply on that date again", (404, "No such date set"), status=303
    )
    def post(self) -> Response:
        try:
            day = _DATE.deserialize(request.form.get("date", ""))
        except ValidationError:
            raise NotFound("No such date is set.") from None
        service.delete_override(current_mentor(), day)
        flash(f"Your hours on {day:%A %d %B %Y} follow the weekly hours again.")
        return redirect(url_for("mentor_availability_pages.AvailabilityPage"), code=303)


refusals_as_pages(html)
