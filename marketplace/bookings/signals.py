"""What happened to a booking, for the modules that react to it (notifications, reminders, earnings).

Receivers run synchronously inside the transaction that made the change, so whatever they write (reminder
rows, outbox messages) commits or rolls back with it. They receive the booking id and must not commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from blinker import Namespace

_signals = Namespace()

# Sent as a new hold is flushed; a receiver returns what to run once the hold has committed, with no
# transaction open: the payments module's opens the hold's PaymentIntent, or withdraws the hold and raises
# (503) when Stripe cannot make it.
payment_needed = _signals.signal("payment-needed")
# Sent in the transaction that gives the hold its PaymentIntent: the hold is now something its learner can pay.
booking_held = _signals.signal("booking-held")
booking_confirmed = _signals.signal("booking-confirmed")
# A request to a mentor who confirms bookings: the card is authorized and the mentor has to answer.
booking_requested = _signals.signal("booking-requested")
# The mentor declined a request: its authorization is released, nothing is charged.
booking_declined = _signals.signal("booking-declined")
booking_cancelled = _signals.signal("booking-cancelled")
booking_rescheduled = _signals.signal("booking-rescheduled")
booking_expired = _signals.signal("booking-expired")
booking_completed = _signals.signal("booking-completed")
payment_failed = _signals.signal("payment-failed")
# The money arrived after the slot was lost, so it is being refunded in full.
late_payment_refunded = _signals.signal("late-payment-refunded")
booking_disputed = _signals.signal("booking-disputed")
# A no-show was settled (by a report, or by an admin deciding a dispute): a mentor's absence carries a
# pending full refund for the payments module to make.
booking_no_show = _signals.signal("booking-no-show")
# Both parties reported each other absent: the admins decide.
no_show_disputed = _signals.signal("no-show-disputed")
# Money went back to the learner, as the provider confirmed: the booking's own refund (a cancellation, a mentor's
# no-show, a late payment) when `admin_refund_id` is None, else that refund an admin made. May be sent again for
# the same refund (its webhook after the API's answer): receivers act once per refund.
refund_succeeded = _signals.signal("refund-succeeded")
# Asked by a module that may not read the payments module's rows (the receipts): its receiver answers with the
# booking's refunds made by admins, as a list of `ManualRefund`.
manual_refunds_wanted = _signals.signal("manual-refunds-wanted")


@dataclass(frozen=True)
class ManualRefund:
    id: int
    amount_cents: int
    reason: str
    reference: str | None
    succeeded: bool
