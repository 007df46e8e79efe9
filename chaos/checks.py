"""The invariants a chaos run must keep, read from the database, the Stripe stand-in, the SMTP sink and
nginx's access log after the load has stopped, and the table that shows them."""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

from chaos.faults import Fault
from chaos.load import Paid, Record
from chaos.prodsim import STRIPE_SETTINGS, ProdSim

# After the last fault ends, every paid booking must be confirmed (or refunded), and every mail owed be at
# the sink, within this long.
SETTLE_SECONDS = 60.0
# A request that ended this soon after a fault's end still counts as inside that fault's window.
WINDOW_GRACE_SECONDS = 5.0
HEALTHZ_P99_LIMIT_MS = 100.0
PLATFORM_FEE_PERCENT = 20
# A due reminder must be at the sink this long after it fell due (beat sweeps every minute).
REMINDER_SLACK_SECONDS = 150.0
MESSAGE_ID = re.compile(r"<(?P<kind>\w+)\.(?P<object_id>\d+)\.(?P<version>\d+)\.(?P<digest>[0-9a-f]+)@")
ACCESS_LINE = re.compile(r'^(?P<msec>[\d.]+) (?P<status>\d{3}) (?P<seconds>[\d.]+) "(?P<request>[^"]*)"')


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _connect(sim: ProdSim) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(sim.postgres.url.replace("+psycopg", ""), autocommit=True)


def double_bookings(sim: ProdSim) -> Check:
    with _connect(sim) as connection:
        rows = connection.execute(
            """
            SELECT a.id, b.id FROM bookings a JOIN bookings b
              ON a.mentor_id = b.mentor_id AND a.id < b.id
             AND a.start_at < b.end_at AND b.start_at < a.end_at
            WHERE a.status IN ('pending_payment', 'confirmed', 'completed')
              AND b.status IN ('pending_payment', 'confirmed', 'completed')
            """
        ).fetchall()
        total = connection.execute("SELECT count(*) FROM bookings").fetchone()
    return Check("0 double bookings", not rows, f"{len(rows)} overlapping pairs among {total[0] if total else 0} bookings"
                 + (f": {rows[:5]}" if rows else ""))  # fmt: skip


def _unsettled(sim: ProdSim, paid: list[Paid]) -> list[tuple[int, str, str]]:
    """Paid bookings neither confirmed (ever) nor refunded yet: (id, status, refund status)."""
    if not paid:
        return []
    with _connect(sim) as connection:
        rows = connection.execute(
            "SELECT id, status, refund_status, confirmed_at IS NOT NULL FROM bookings WHERE id = ANY(%s)",
            ([p.booking_id for p in paid],),
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows if not row[3] and row[2] != "succeeded"]  # type: ignore[misc]


def paid_settled(sim: ProdSim, record: Record, last_fault_end: float) -> Check:
    """Waits (polling) until every paid booking is settled or SETTLE_SECONDS after the last fault passed."""
    deadline = max(last_fault_end + SETTLE_SECONDS, time.time())
    unsettled = _unsettled(sim, record.paid)
    while unsettled and time.time() < deadline:
        time.sleep(1.0)
        unsettled = _unsettled(sim, record.paid)
    late = time.time() - last_fault_end
    return Check(
        f"paid bookings confirmed or refunded within {SETTLE_SECONDS:.0f}s of the last fault",
        not unsettled,
        f"{len(record.paid)} paid, {len(unsettled)} unsettled {late:.0f}s after the last fault"
        + (f": {unsettled[:8]}" if unsettled else ""),
    )


def _digest(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()[:16]


def mails_once(sim: ProdSim) -> Check:
    """Every confirmation owed and every reminder that fell due is at the sink exactly once; no message at
    all arrived twice. (Reminders of a booking cancelled or moved since are gone from `reminders`; the ones
    sent are still in `sent_emails`.)"""
    received: Counter[tuple[str, int, str]] = Counter()
    duplicates: Counter[str] = Counter(m.message["Message-ID"] for m in sim.smtp.messages)
    for message in sim.smtp.messages:
        match = MESSAGE_ID.match(str(message.message["Message-ID"]))
        if match:
            received[(match["kind"], int(match["object_id"]), match["digest"])] += 1
    twice = {key: n for key, n in duplicates.items() if n > 1}
    with _connect(sim) as connection:
        # A booking cancelled before its confirmation went out gets none (by design), so the confirmations
        # owed are those of bookings still confirmed, and those the app marked sent.
        confirmed = connection.execute(
            """
            SELECT b.id, learner.email FROM bookings b JOIN users learner ON learner.id = b.learner_id
            WHERE b.status IN ('confirmed', 'completed')
            UNION
            SELECT b.id, mentor_user.email FROM bookings b
              JOIN mentor_profiles m ON m.id = b.mentor_id JOIN users mentor_user ON mentor_user.id = m.user_id
            WHERE b.status IN ('confirmed', 'completed')
            UNION
            SELECT object_id, recipient FROM sent_emails WHERE kind = 'booking_confirmed' AND status = 'sent'
            """
        ).fetchall()
        reminders = connection.execute(
            """
            SELECT object_id, recipient, status FROM sent_emails WHERE kind = 'reminder' AND status = 'sent'
            UNION
            SELECT r.id, u.email, r.status FROM reminders r JOIN users u ON u.id = r.user_id
              JOIN bookings b ON b.id = r.booking_id
            WHERE r.due_at < now() - make_interval(secs => %s) AND r.status != 'skipped'
              AND b.status = 'confirmed' AND b.start_at > now()
            """,
            (REMINDER_SLACK_SECONDS,),
        ).fetchall()
    wrong: list[str] = []
    for booking_id, address in confirmed:
        count = received[("booking_confirmed", int(str(booking_id)), _digest(str(address)))]
        if count != 1:
            wrong.append(f"confirmation of booking {booking_id} to {address}: {count}")
    for reminder_id, address, status in reminders:
        count = received[("reminder", int(str(reminder_id)), _digest(str(address)))]
        if count != 1:
            wrong.append(f"reminder {reminder_id} ({status}) to {address}: {count}")
    return Check(
        "every confirmation and reminder mail exactly once",
        not wrong and not twice,
        f"{len(confirmed)} confirmations and {len(reminders)} reminders expected, "
        f"{len(sim.smtp.messages)} messages at the sink; {len(wrong)} wrong, {len(twice)} duplicated"
        + (f": {(wrong + list(twice))[:6]}" if wrong or twice else ""),
    )


def _eventually(check: Callable[[], Check], deadline: float) -> Check:
    """`check` again every second until it passes or `deadline` (wall clock) has passed: mail is sent by
    workers after the commit that asks for it, so the last confirmations may still be on their way."""
    result = check()
    while not result.ok and time.time() < deadline:
        time.sleep(1.0)
        result = check()
    return result


def _mentor_share(amount_cents: int) -> int:
    return amount_cents - round(amount_cents * PLATFORM_FEE_PERCENT / 100)


def ledger_matches_payments(sim: ProdSim, record: Record) -> Check:
    """Per booking: the ledger holds the mentor's share of what Stripe captured less what it refunded."""
    expected: Counter[int] = Counter()
    with requests.Session() as stripe:
        stripe.headers["Authorization"] = f"Bearer {STRIPE_SETTINGS['STRIPE_SECRET_KEY']}"
        refunds_of = {
            paid.payment_intent_id: stripe.get(
                f"{sim.stripe.api_base}/v1/refunds",
                params={"payment_intent": paid.payment_intent_id},
                timeout=30,
            ).json()["data"]
            for paid in record.paid
        }
    for paid in record.paid:
        refunds = refunds_of[paid.payment_intent_id]
        refunded = sum(refund["amount"] for refund in refunds if refund.get("status") == "succeeded")
        expected[paid.booking_id] += _mentor_share(paid.amount_cents) - (
            _mentor_share(refunded) if refunded else 0
        )
    with _connect(sim) as connection:
        rows = connection.execute(
            "SELECT booking_id, sum(amount_cents) FROM earning_entries GROUP BY booking_id"
        )
        ledger: Counter[int] = Counter({int(booking_id): int(total) for booking_id, total in rows})  # type: ignore[call-overload]
    differences = {
        booking_id: (ledger[booking_id], expected[booking_id])
        for booking_id in set(ledger) | set(expected)
        if ledger[booking_id] != expected[booking_id]
    }
    return Check(
        "ledger equal to the payments",
        not differences,
        f"{sum(ledger.values())} cents in the ledger, {sum(expected.values())} owed by Stripe's records; "
        f"{len(differences)} bookings differ"
        + (f" (ledger, owed): {dict(list(differences.items())[:6])}" if differences else ""),
    )


def server_errors(sim: ProdSim, faults: list[Fault]) -> tuple[Check, dict[str, int]]:
    """5xx answered by nginx (the load's calls and the stand-in's webhooks), each placed in a fault window."""
    per_fault = {fault.name: 0 for fault in faults}
    outside: list[str] = []
    log = Path(sim.directory / "nginx" / "access.log")
    total = 0
    for line in log.read_text(errors="replace").splitlines():
        match = ACCESS_LINE.match(line)
        if not match:
            continue
        total += 1
        if not match["status"].startswith("5"):
            continue
        ended = float(match["msec"])
        began = ended - float(match["seconds"])
        window = next(
            (f for f in faults if began <= f.ended + WINDOW_GRACE_SECONDS and ended >= f.started), None
        )
        if window is None:
            outside.append(
                f"{time.strftime('%H:%M:%S', time.localtime(ended))} {match['status']} {match['request']}"
            )
        else:
            per_fault[window.name] += 1
    inside = sum(per_fault.values())
    return (
        Check(
            "5xx only inside fault windows",
            not outside,
            f"{total} requests through nginx; 5xx: {inside} inside fault windows, {len(outside)} outside"
            + (f": {outside[:5]}" if outside else ""),
        ),
        per_fault,
    )


def healthz_under_slow_loris(faults: list[Fault], limit_ms: float | None) -> Check:
    """The p99 of /healthz through nginx with the sockets open; without a limit, that it was measured and
    every probe answered 200 (the fault's `recovered`)."""
    figures = [fault.healthz_p99_ms for fault in faults if fault.healthz_p99_ms is not None]
    worst = max(figures) if figures else float("inf")
    answered = all(fault.recovered for fault in faults if fault.healthz_p99_ms is not None)
    if limit_ms is None:
        return Check(
            "/healthz answered through nginx with slow-loris sockets open",
            bool(figures) and answered,
            f"p99 {worst:.1f} ms (not held to a limit in the short run)" if figures else "not measured",
        )
    return Check(
        f"/healthz p99 through nginx under {limit_ms:.0f} ms with slow-loris sockets open",
        worst < limit_ms and answered,
        f"p99 {worst:.1f} ms" if figures else "not measured",
    )


def run_checks(
    sim: ProdSim, record: Record, faults: list[Fault], healthz_limit_ms: float | None = HEALTHZ_P99_LIMIT_MS
) -> tuple[list[Check], dict[str, int]]:
    last_fault_end = max((fault.ended for fault in faults), default=time.time())
    checks: list[Callable[[], Check]] = [
        lambda: double_bookings(sim),
        lambda: paid_settled(sim, record, last_fault_end),
        lambda: _eventually(lambda: mails_once(sim), last_fault_end + SETTLE_SECONDS),
        lambda: ledger_matches_payments(sim, record),
        lambda: healthz_under_slow_loris(faults, healthz_limit_ms),
    ]
    results = [check() for check in checks]
    errors, per_fault = server_errors(sim, faults)
    results.insert(4, errors)
    results.append(
        Check(
            "every fault recovered from",
            all(fault.recovered for fault in faults),
            ", ".join(f"{fault.name}: {'yes' if fault.recovered else 'NO'}" for fault in faults),
        )
    )
    return results, per_fault


def table(checks: list[Check], faults: list[Fault], per_fault: dict[str, int], record: Record) -> str:
    """The faults (window, what happened, 5xx inside) and the invariants (pass or FAIL, with figures)."""
    lines = ["", "Faults", f"{'fault':<28} {'window':>8} {'5xx':>5}  detail"]
    for fault in faults:
        lines.append(
            f"{fault.name:<28} {fault.ended - fault.started:>7.1f}s {per_fault.get(fault.name, 0):>5}  {fault.detail}"
        )
    lines += ["", "Invariants", f"{'':<6} {'invariant':<76} detail"]
    for check in checks:
        lines.append(f"{'pass' if check.ok else 'FAIL':<6} {check.name:<76} {check.detail}")
    calls = ", ".join(f"{key}: {n}" for key, n in sorted(record.statuses.items()))
    lines += ["", f"Load: {calls}", f"Client errors (no answer): {len(record.client_errors)}"]
    return "\n".join(lines)
