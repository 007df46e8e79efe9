"""Account events for modules that react to them; receivers run inside the transaction and get the user id."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

user_registered = _signals.signal("user-registered")
# The receiver mails a link made at send time (marketplace.accounts.links); `version` tells requests apart.
password_reset_requested = _signals.signal("password-reset-requested")
