"""The production shape on one machine (`make prod-sim`) and the chaos run against it (`make chaos`).

prodsim.py starts nginx in front of two gunicorn instances, two sets of Celery workers, two beats (one
active, one standby on celery-redbeat's lock), PostgreSQL, Redis, the Stripe stand-in and an SMTP sink, all
on loopback in a throwaway directory, restarts whatever dies (as systemd would) and stops everything on exit.
load.py plays learners, mentors and visitors through nginx; faults.py breaks one thing after another;
checks.py says afterwards whether the invariants held. docs/deploy.md describes the same shape on real
machines.
"""
