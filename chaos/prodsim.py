"""`make prod-sim`: the production shape on loopback, started by this command and stopped with it.

nginx (buffering requests) in front of two gunicorn instances standing for two web machines; the worker lines
of the Procfile run twice (two worker machines); the beat line runs twice (celery-redbeat: one active, one
standby); PostgreSQL, Redis, the Stripe stand-in (localstripe, its webhooks sent through nginx) and an SMTP
sink (aiosmtpd). Every process runs with APP_ENV=production settings, in a throwaway directory, on free
ports. A supervisor restarts any process that exits, as systemd would; Ctrl-C (or SIGTERM) stops all.

Usage: `python -m chaos.prodsim [--port PORT] [--seed]` (`make prod-sim`).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import requests

from tests.support.servers import (
    HOST,
    PROJECT_ROOT,
    LocalStripe,
    RedisServer,
    SmtpSink,
    free_port,
    localstripe_server,
    postgres_bindir,
    postgres_server,
    redis_server_handle,
    smtp_server,
)

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
READY_TIMEOUT = 90.0
RESTART_DELAY_SECONDS = 1.0
STRIPE_SETTINGS = {
    "STRIPE_SECRET_KEY": "sk_test_prod_sim",
    "STRIPE_PUBLISHABLE_KEY": "pk_test_prod_sim",
    "STRIPE_WEBHOOK_SECRET": "whsec_prod_sim",
}
# Inherited settings that would point a process somewhere other than this run's servers.
DROPPED_SETTINGS = ("CELERY_BROKER_URL", "RATELIMIT_STORAGE_URI", "PROMETHEUS_MULTIPROC_DIR", "MAIL_BACKEND")


class ProdSimError(RuntimeError):
    """A part of the production shape did not start; the message names it and shows its log."""


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


@dataclass
class Service:
    """One supervised process (with its children: its own process group), restarted when it exits."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    supervised: bool = True

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} start {self.name}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """This incarnation's log: what the process wrote since its last start."""
        text = self.log_path.read_text(errors="replace")
        return text[text.rfind(f"start {self.name}\n") :]

    def kill(self) -> None:
        """kill -9 the process and its children (the supervisor starts it again)."""
        if self.proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        self.supervised = False
        if self.proc is None or self.proc.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # Children a graceful stop left behind (a pool process) go too.
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


class Supervisor(threading.Thread):
    """Starts again, after a second, every supervised service whose process has exited."""

    def __init__(self, services: list[Service]) -> None:
        super().__init__(name="prod-sim-supervisor", daemon=True)
        self.services = services
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stopping.wait(0.25):
            with self.lock:
                for service in self.services:
                    if service.supervised and service.proc is not None and service.proc.poll() is not None:
                        if time.monotonic() - service.started_at < RESTART_DELAY_SECONDS:
                            continue
                        # The group may still hold children of the dead process (prefork pool processes).
                        with suppress(ProcessLookupError):
                            os.killpg(service.proc.pid, signal.SIGKILL)
                        service.restarts += 1
                        service.start()


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class Postgres:
    """The run's PostgreSQL: its URL and how to restart it (pg_ctl restart keeps its options and port)."""

    url: str
    data_dir: Path

    def restart(self) -> None:
        log = self.data_dir.parent / "postgres.log"
        cmd = [
            str(postgres_bindir() / "pg_ctl"),
            "restart",
            "-D",
            str(self.data_dir),
            "-m",
            "fast",
            "-w",
            "-l",
            str(log),
        ]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        # The new server's output goes to its log: a pipe here would stay open as long as it runs.
        subprocess.run(
            cmd, cwd="/tmp", check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
        )


@dataclass
class ProdSim:
    """Handles on every part of a running production shape (for faults and checks)."""

    directory: Path
    base_url: str
    env: dict[str, str]
    postgres: Postgres
    redis: RedisServer
    stripe: LocalStripe
    smtp: SmtpSink
    nginx: Service
    web: list[Service]
    workers: list[Service]
    beats: list[Service]
    supervisor: Supervisor
    services: list[Service] = field(default_factory=list)

    def web_workers(self, instance: Service) -> list[int]:
        """Process ids of one gunicorn instance's workers (children of its master)."""
        return _children(instance.pid)

    def active_beat(self) -> Service | None:
        """The beat holding celery-redbeat's lock in its current incarnation."""
        return next(
            (beat for beat in self.beats if beat.alive() and "beat: Acquired lock" in beat.log()), None
        )

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            return requests.get(self.base_url + "/healthz", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False


def _procfile_commands(prefix: str) -> dict[str, str]:
    """The Procfile's commands whose process name starts with `prefix` (worker lines, the beat line)."""
    commands = {}
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        match = re.match(r"^([\w-]+):\s*(.+)$", line)
        if match and match.group(1).startswith(prefix):
            commands[match.group(1)] = match.group(2)
    return commands


def production_env(directory: Path, database_url: str, redis_url: str, stripe: LocalStripe, smtp: SmtpSink,
                   lock_timeout: int) -> dict[str, str]:  # fmt: skip
    """The settings every process of the shape runs with: APP_ENV=production, which refuses to start
    without them (config.production_problems). The https URL stands for nginx's TLS end on a real machine."""
    env = {key: value for key, value in os.environ.items() if key not in DROPPED_SETTINGS}
    env.update(
        {
            "APP_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PUBLIC_BASE_URL": "https://marketplace.prod-sim.invalid",
            "TRUSTED_PROXY_COUNT": "1",
            **STRIPE_SETTINGS,
            "STRIPE_API_BASE": stripe.api_base,
            "MAIL_SERVER": smtp.host,
            "MAIL_PORT": str(smtp.port),
            "MAIL_DEFAULT_SENDER": "Mentor marketplace <no-reply@prod-sim.invalid>",
            "INSTANCE_DIR": str(directory / "instance"),
            "BEAT_LOCK_TIMEOUT_SECONDS": str(lock_timeout),
            # The load plays many learners from one address: their holds are not what is being limited here.
            "HOLD_RATE_LIMIT": "100000 per hour",
            # Reminders that fall due during a run of a minute or more, for sessions booked a few hours ahead.
            "REMINDER_OFFSETS_MINUTES": ",".join(str(minutes) for minutes in [1440, *range(360, 59, -4)]),
            # Redis here keeps nothing across a stop (as one without persistence would), so messages it held
            # are lost and the outbox must send them again. Production waits 10 minutes before doing so; the
            # checks wait 60 s after the last fault, so the run shortens that wait and a killed sender's claim.
            "OUTBOX_REDELIVER_AFTER_SECONDS": "20",
            "MAIL_CLAIM_LEASE_SECONDS": "30",
            "WEB_THREADS": "4",
            "PYTHONUNBUFFERED": "1",
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    return env


def _nginx_config(directory: Path, port: int, web_ports: list[int]) -> Path:
    """Fill the template with this run's paths and ports; nginx runs as the user who started the run."""
    prefix = directory / "nginx"
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "temp" / temp).mkdir(parents=True, exist_ok=True)
    user = ""
    if os.geteuid() == 0:
        user = "user root root;"  # workers as the run's own user: they read and write only its directory
    upstreams = "\n".join(
        f"        server {HOST}:{web_port} max_fails=3 fail_timeout=3s;" for web_port in web_ports
    )
    text = TEMPLATE.read_text()
    for name, value in {
        "@USER@": user, "@PREFIX@": str(prefix), "@LISTEN@": f"{HOST}:{port}", "@UPSTREAMS@": upstreams,
    }.items():  # fmt: skip
        text = text.replace(name, value)
    config = prefix / "nginx.conf"
    config.write_text(text)
    return config


def _wait(check: Any, what: str, log: Path | None = None, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise ProdSimError(f"{what} not ready within {timeout:.0f}s" + (f"\n{log_tail(log)}" if log else ""))


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _migrate(env: dict[str, str], log: Path) -> None:
    """The release phase (Procfile `release:`): migrations run before any new web code serves."""
    with log.open("ab") as out:
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=180,
        )  # fmt: skip
    if result.returncode != 0:
        raise ProdSimError(f"flask db upgrade failed\n{log_tail(log)}")


@contextmanager
def prod_sim(
    port: int = 0, lock_timeout: int = 15, machines: int = 2, worker_processes: int = 2
) -> Iterator[ProdSim]:
    """Start the whole shape; yields it running and healthy; stops everything on exit, error or not.

    Two web instances of two processes each (one dying leaves its instance serving) and two beats;
    `machines` sets of the Procfile's workers, each of `worker_processes` (the `*_WORKER_CONCURRENCY` settings).
    """
    web_instances = beats = 2
    directory = Path(tempfile.mkdtemp(prefix="prod-sim-"))
    logs = directory / "logs"
    logs.mkdir()
    (directory / "instance").mkdir()
    services: list[Service] = []
    supervisor = Supervisor(services)
    try:
        with ExitStack() as stack:
            database_url = stack.enter_context(postgres_server())
            redis = stack.enter_context(redis_server_handle())
            stripe = stack.enter_context(localstripe_server())
            smtp = stack.enter_context(smtp_server())
            quiet_sink_logs()
            with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as connection:
                row = connection.execute("SHOW data_directory").fetchone()
                assert row is not None
                postgres = Postgres(database_url, Path(row[0]))
            env = production_env(directory, database_url, redis.url, stripe, smtp, lock_timeout)
            env.update(
                {"WEB_CONCURRENCY": "2"}
                | {
                    f"{queue}_WORKER_CONCURRENCY": str(worker_processes)
                    for queue in ("PAYMENTS", "MAIL", "UPKEEP")
                }
            )
            _migrate(env, logs / "release.log")

            port = port or free_port()
            base_url = f"http://{HOST}:{port}"
            web_ports = [free_port() for _ in range(web_instances)]
            web = [
                Service(
                    f"web-{number}",
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "wsgi:app",
                        "--bind",
                        f"{HOST}:{web_port}",
                        "--no-control-socket",
                        "--access-logfile",
                        "-",
                    ],
                    env,
                    logs / f"web-{number}.log",
                )
                for number, web_port in enumerate(web_ports, 1)
            ]
            workers = [
                Service(
                    f"{name}-{machine}",
                    ["bash", "-c", f"exec {command} -n {name}-{machine}@%h"],
                    env,
                    logs / f"{name}-{machine}.log",
                )
                for machine in range(1, machines + 1)
                for name, command in _procfile_commands("worker").items()
            ]
            beat_command = _procfile_commands("beat")["beat"]
            beat_services = [
                Service(
                    f"beat-{number}", ["bash", "-c", f"exec {beat_command}"], env, logs / f"beat-{number}.log"
                )
                for number in range(1, beats + 1)
            ]
            nginx_binary = shutil.which("nginx") or "/usr/sbin/nginx"
            config = _nginx_config(directory, port, web_ports)
            nginx = Service(
                "nginx",
                [nginx_binary, "-p", str(config.parent), "-c", str(config), "-e", str(config.parent / "error.log"),
                 "-g", "daemon off;"],
                env,
                logs / "nginx.log",
            )  # fmt: skip
            services.extend([*web, *workers, *beat_services, nginx])

            def stop_all() -> None:
                supervisor.stopping.set()
                with supervisor.lock:
                    for service in services:
                        service.supervised = False
                # nginx first (no new requests), then everything else at once.
                nginx.stop()
                stoppers = [threading.Thread(target=service.stop) for service in services]
                for stopper in stoppers:
                    stopper.start()
                for stopper in stoppers:
                    stopper.join()

            stack.callback(stop_all)
            for service in services:
                service.start()
            supervisor.start()
            for number, web_port in enumerate(web_ports):
                _wait(
                    lambda p=web_port: _http_ok(f"http://{HOST}:{p}/healthz"),
                    web[number].name,
                    web[number].log_path,
                )
            for worker in workers:
                _wait(lambda w=worker: " ready." in w.log(), worker.name, worker.log_path)
            for beat in beat_services:
                _wait(lambda b=beat: "beat: Starting..." in b.log(), beat.name, beat.log_path)
            _wait(lambda: _http_ok(base_url + "/healthz"), "nginx", directory / "nginx" / "error.log")
            stripe.register_webhook(
                "marketplace", f"{base_url}/webhooks/stripe", STRIPE_SETTINGS["STRIPE_WEBHOOK_SECRET"]
            )
            sim = ProdSim(
                directory, base_url, env, postgres, redis, stripe, smtp, nginx, web, workers, beat_services,
                supervisor, services,
            )  # fmt: skip
            _wait(lambda: sim.active_beat() is not None, "an active beat", beat_services[0].log_path)
            yield sim
    finally:
        if os.environ.get("PROD_SIM_KEEP_LOGS"):
            print(f"logs kept in {directory / 'logs'}", file=sys.stderr)
        else:
            shutil.rmtree(directory, ignore_errors=True)


def quiet_sink_logs() -> None:
    """The SMTP sink runs in this process: its per-command log lines are not this command's output."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def exit_cleanly_on_signals() -> None:
    """SIGTERM and SIGHUP raise SystemExit in the main thread, so the `finally`s stop every process."""

    def _raise(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PROD_SIM_PORT", "0")),
                        help="nginx's port on 127.0.0.1 (default: a free one)")  # fmt: skip
    parser.add_argument(
        "--seed", action="store_true", help="add mentors and learners (as the chaos load does)"
    )
    args = parser.parse_args(argv)
    exit_cleanly_on_signals()
    with prod_sim(port=args.port) as sim:
        if args.seed:
            from chaos.load import seed

            world = seed(sim.postgres.url, mentors=4, learners=4)
            print(f"seeded: mentors {world.mentor_ids}; a learner's API token: {world.learner_tokens[0]}")
        print(f"\nMentor marketplace (production shape): {sim.base_url}   (Ctrl-C stops everything)")
        print(f"  web instances: {', '.join(shlex.quote(s.argv[5]) for s in sim.web)}")
        print(
            f"  workers: {', '.join(s.name for s in sim.workers)}; beats: {', '.join(s.name for s in sim.beats)}"
        )
        print(f"  Stripe stand-in: {sim.stripe.api_base}; SMTP sink: {sim.smtp.host}:{sim.smtp.port}")
        print(f"  logs: {sim.directory / 'logs'}\n", flush=True)
        # Until Ctrl-C or SIGTERM (SystemExit): the supervisor thread runs as long as the shape does.
        while sim.supervisor.is_alive():
            sim.supervisor.join(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
