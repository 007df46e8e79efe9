"""Vetting events for modules that react to them; receivers run inside the transaction.

`vetting_transition` is sent with the profile id and `action`, `from_status`, `to_status`, `note`.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

vetting_transition = _signals.signal("vetting-transition")
