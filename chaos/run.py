"""One chaos run: the production shape under load, the faults one after another, then the checks.

`python -m chaos [--duration SECONDS | --short]` (`make chaos`) prints the fault and invariant tables and
exits 1 when an invariant broke. tests/chaos runs the short form.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos import faults
from chaos.checks import HEALTHZ_P99_LIMIT_MS, Check, run_checks, table
from chaos.faults import Fault
from chaos.load import Record, seed, start_load
from chaos.prodsim import ProdSim, exit_cleanly_on_signals, prod_sim


@dataclass(frozen=True)
class Plan:
    """How long things last: the full run spreads the faults over `duration`; the short one packs them
    into about a minute, on one set of workers of one process each (the suite runs on 2 cores)."""

    duration: float
    redis_down: float
    slow_loris_seconds: float
    slow_loris_sockets: int
    beat_lock_timeout: int
    mentors: int
    learners: int
    # Sets of worker processes (the Procfile's worker lines), and the processes of each worker.
    machines: int = 2
    worker_processes: int = 2
    # The short run (in the suite, on a shared machine) holds /healthz to answering, not to a latency.
    healthz_p99_limit_ms: float | None = HEALTHZ_P99_LIMIT_MS

    @classmethod
    def full(cls, duration: float) -> Plan:
        return cls(duration, redis_down=30, slow_loris_seconds=20, slow_loris_sockets=50, beat_lock_timeout=15,
                   mentors=6, learners=10)  # fmt: skip

    @classmethod
    def short(cls) -> Plan:
        return cls(0, redis_down=4, slow_loris_seconds=4, slow_loris_sockets=50, beat_lock_timeout=4,
                   mentors=3, learners=4, machines=1, worker_processes=1,
                   healthz_p99_limit_ms=None)  # fmt: skip


@dataclass
class Outcome:
    checks: list[Check]
    faults: list[Fault]
    report: str

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def injections(sim: ProdSim, plan: Plan) -> list[Callable[[], Fault]]:
    return [
        lambda: faults.restart_postgres(sim),
        lambda: faults.stop_redis(sim, plan.redis_down),
        lambda: faults.kill_web_worker(sim),
        lambda: faults.kill_web_instance(sim),
        lambda: faults.kill_celery_worker(sim),
        lambda: faults.kill_active_beat(sim, plan.beat_lock_timeout),
        lambda: faults.slow_loris(sim, plan.slow_loris_sockets, plan.slow_loris_seconds),
    ]


def run_chaos(plan: Plan) -> Outcome:
    _say("starting the production shape")
    with prod_sim(
        lock_timeout=plan.beat_lock_timeout, machines=plan.machines, worker_processes=plan.worker_processes
    ) as sim:
        world = seed(sim.postgres.url, mentors=plan.mentors, learners=plan.learners)
        record, stop = Record(), threading.Event()
        began = time.monotonic()
        actors = start_load(sim.base_url, sim.stripe.api_base, world, record, stop)
        _say(f"load running through {sim.base_url}")
        steps = injections(sim, plan)
        gap = max(3.0, (plan.duration - 60) / (len(steps) + 1)) if plan.duration else 1.0
        done: list[Fault] = []
        try:
            for inject in steps:
                stop.wait(gap)
                fault = inject()
                done.append(fault)
                _say(f"{fault.name}: {fault.detail} ({fault.ended - fault.started:.1f}s)")
            stop.wait(max(gap, plan.duration - (time.monotonic() - began)))
        finally:
            stop.set()
            for actor in actors:
                actor.join(60)
        _say("load stopped; checking")
        checks, per_fault = run_checks(sim, record, done, plan.healthz_p99_limit_ms)
        report = table(checks, done, per_fault, record)
        if not all(check.ok for check in checks):
            report += (
                f"\nLogs of the processes: {sim.directory / 'logs'} (removed unless PROD_SIM_KEEP_LOGS=1)"
            )
        return Outcome(checks, done, report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chaos run against the production shape (make chaos).")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--short", action="store_true", help="one short fault of each kind, about a minute")
    args = parser.parse_args(argv)
    exit_cleanly_on_signals()
    outcome = run_chaos(Plan.short() if args.short else Plan.full(args.duration))
    print(outcome.report)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
