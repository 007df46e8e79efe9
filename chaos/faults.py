"""The faults, one after another: each breaks one part of a running prod-sim, waits until the shape has
recovered (or a bound passes) and returns its window (wall-clock start and end), for the 5xx count."""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass

import requests

from chaos.prodsim import ProdSim, Service

RECOVERY_TIMEOUT = 90.0
TASK_RECEIVED = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] received")
TASK_DONE = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] (?:succeeded|raised|retry|failed)")


@dataclass
class Fault:
    name: str
    started: float
    ended: float
    detail: str
    recovered: bool = True
    healthz_p99_ms: float | None = None


def _until(check: Callable[[], object], timeout: float = RECOVERY_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def _fault(name: str, action: Callable[[], tuple[str, bool]]) -> Fault:
    started = time.time()
    detail, recovered = action()
    return Fault(name, started, time.time(), detail, recovered)


def restart_postgres(sim: ProdSim) -> Fault:
    def act() -> tuple[str, bool]:
        sim.postgres.restart()
        return "pg_ctl restart -m fast", _until(sim.healthy)

    return _fault("PostgreSQL restart", act)


def stop_redis(sim: ProdSim, seconds: float) -> Fault:
    def act() -> tuple[str, bool]:
        sim.redis.stop()
        time.sleep(seconds)
        sim.redis.start()
        return f"stopped {seconds:.0f}s", _until(sim.healthy)

    return _fault(f"Redis stopped {seconds:.0f}s", act)


def kill_web_worker(sim: ProdSim) -> Fault:
    instance = sim.web[0]

    def act() -> tuple[str, bool]:
        workers = sim.web_workers(instance)
        if not workers:
            return "no worker found", False
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        replaced = _until(
            lambda: len(sim.web_workers(instance)) == len(workers) and victim not in sim.web_workers(instance)
        )
        return f"kill -9 gunicorn worker {victim} of {instance.name}", replaced and sim.healthy()

    return _fault("kill -9 gunicorn worker", act)


def _restarted(service: Service, restarts_before: int, ready: Callable[[], bool]) -> bool:
    return _until(lambda: service.restarts > restarts_before and service.alive() and ready())


def kill_web_instance(sim: ProdSim) -> Fault:
    instance = sim.web[-1]
    port = instance.argv[instance.argv.index("--bind") + 1]

    def ready() -> bool:
        try:
            return requests.get(f"http://{port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def act() -> tuple[str, bool]:
        before = instance.restarts
        instance.kill()
        return f"kill -9 {instance.name} (master and workers)", _restarted(instance, before, ready)

    return _fault("kill -9 web instance", act)


def _busy_worker(sim: ProdSim) -> Service | None:
    """A Celery worker whose log shows a task received and not finished yet."""
    for worker in sim.workers:
        if not worker.alive():
            continue
        log = worker.log()
        if set(TASK_RECEIVED.findall(log)) - set(TASK_DONE.findall(log)):
            return worker
    return None


def kill_celery_worker(sim: ProdSim, wait_for_task: float = 30.0) -> Fault:
    def act() -> tuple[str, bool]:
        busy = None
        deadline = time.monotonic() + wait_for_task
        while busy is None and time.monotonic() < deadline:
            busy = _busy_worker(sim)
            time.sleep(0.02)
        victim = busy or sim.workers[0]
        before = victim.restarts
        victim.kill()
        state = "mid-task" if busy else "idle (no task in flight seen)"
        return f"kill -9 {victim.name}, {state}", _restarted(
            victim, before, lambda: " ready." in victim.log()
        )

    return _fault("kill -9 Celery worker", act)


def kill_active_beat(sim: ProdSim, lock_timeout: float) -> Fault:
    def act() -> tuple[str, bool]:
        active = sim.active_beat()
        if active is None:
            return "no active beat", False
        active.kill()
        # The standby, or the killed one once the supervisor has started it again, takes the lock when it lapses.
        taken_over = _until(lambda: sim.active_beat() is not None, lock_timeout + RECOVERY_TIMEOUT)
        successor = sim.active_beat()
        return f"kill -9 {active.name}; now active: {successor.name if successor else 'none'}", taken_over

    return _fault("kill -9 active beat", act)


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 2 else float("inf")


def _probe_healthz(sim: ProdSim, seconds: float, failures: list[str], tag: str) -> list[float]:
    """Ask /healthz?probe=`tag` through nginx ten times a second for `seconds`; the latencies in ms as this
    client saw them (failures noted)."""
    latencies: list[float] = []
    with requests.Session() as probe:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                status = probe.get(sim.base_url + "/healthz", params={"probe": tag}, timeout=10).status_code
                if status != 200:
                    failures.append(str(status))
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
            latencies.append((time.perf_counter() - began) * 1000)
            time.sleep(0.1)
    return latencies


def _nginx_latencies(sim: ProdSim, tag: str) -> list[float]:
    """The request times (ms) nginx logged for the probe's requests: from the request's first byte to the
    answer's last, free of the load generator's own scheduling."""
    pattern = re.compile(rf'^[\d.]+ \d{{3}} (?P<seconds>[\d.]+) "GET /healthz\?probe={tag} ')
    lines = (sim.directory / "nginx" / "access.log").read_text(errors="replace").splitlines()
    return [float(match["seconds"]) * 1000 for line in lines if (match := pattern.match(line))]


def slow_loris(sim: ProdSim, sockets: int, seconds: float) -> Fault:
    """`sockets` connections to nginx that send part of a request and trickle a byte now and then, while
    /healthz is asked through nginx ten times a second; the fault's figure is the p99 of those requests as
    nginx timed them, shown beside the client's and beside the same probe's just before (what the machine's
    load alone costs)."""
    host, port = sim.base_url.removeprefix("http://").split(":")
    failures: list[str] = []
    client_baseline = _probe_healthz(sim, min(5.0, seconds), failures, "before")
    started = time.time()
    with ExitStack() as stack:
        open_sockets = []
        for number in range(sockets):
            sock = stack.enter_context(socket.create_connection((host, int(port)), timeout=5))
            if number % 2:
                sock.sendall(
                    b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"
                )
            else:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            open_sockets.append(sock)
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(3.0):
                for number, sock in enumerate(open_sockets):
                    with suppress(OSError):
                        sock.sendall(b" " if number % 2 else b"X-a: b\r\n")

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        client_latencies = _probe_healthz(sim, seconds, failures, "loris")
        stop.set()
        trickler.join()
    p99 = _p99(_nginx_latencies(sim, "loris"))
    return Fault(
        f"{sockets} slow-loris sockets",
        started,
        time.time(),
        f"{len(client_latencies)} probes of /healthz, p99 at nginx {p99:.1f} ms, at the client "
        f"{_p99(client_latencies):.1f} ms (just before the sockets opened: {_p99(_nginx_latencies(sim, 'before')):.1f}"
        f" and {_p99(client_baseline):.1f} ms), failed {len(failures)}",
        recovered=not failures,
        healthz_p99_ms=p99,
    )
