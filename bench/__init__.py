"""Benchmarks: `make bench`. Speed is measured here, never in the unit tests.

The machines are shared and noisy, so every figure is printed beside a baseline measured in the same run
(a `GET /healthz` served by the same gunicorn), as a ratio; absolute numbers are for orientation only.
"""
