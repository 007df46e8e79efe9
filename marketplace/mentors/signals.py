"""Vetting events for modules that react to them; receivers run inside the transaction.

`vetting_transition` is sent with the profile id and `action`, `from_status`, `to_status`, `note`.
`revision_decided` is sent with the profile id and `action` (`approve_revision`/`reject_revision`),
`revision_id`, `event_id` (the audit row) and `note`, when an admin decides a profile revision; the vetting
status does not change, so it is not a `vetting_transition`.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

vetting_transition = _signals.signal("vetting-transition")
revision_decided = _signals.signal("revision-decided")
# Sent by the profile schema with the career-path `slugs` a mentor names; receivers answer with the ones that
# are no career path. Which paths exist is the careers module's to say: it loads them into the database.
career_paths_named = _signals.signal("career-paths-named")
