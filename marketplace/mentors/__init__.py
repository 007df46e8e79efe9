"""Mentor profiles, the vetting state machine and its audit trail, public search."""
