"""Real, throwaway servers for tests and the dev runner: PostgreSQL, Redis, localstripe and an SMTP sink.

Each context manager starts a genuine server bound to 127.0.0.1 on a free port inside its own temporary
directory, waits until it answers, yields connection details and, on exit (error or not), stops it and
deletes the directory. Nothing here is a mock: tests exercise the same wire protocols as production.
"""

from __future__ import annotations

import email
import email.policy
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from psycopg import sql

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0
# A port picked by free_port() can be grabbed by someone else before the server binds it.
START_ATTEMPTS = 3
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ServerStartError(RuntimeError):
    """A test server did not become ready; the message carries the tail of its log."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    """Last lines of a server log, for error messages that explain *why* a start failed."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log at {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:]) or "<empty log>"


def _wait_until(check: Callable[[], bool], timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """Poll ``check`` until it is true, the process dies (``alive`` false) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if not alive():
            return check()
        time.sleep(0.05)
    return False


def _make_tempdir(prefix: str, owner: str | None = None) -> Path:
    """Create a private temp dir; if ``owner`` is given, hand it to that user (who must reach it)."""
    # Root's TMPDIR may sit under a 0700 home the service user cannot traverse; /tmp always works.
    base = "/tmp" if owner and os.path.isdir("/tmp") else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def _stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate a child politely, then forcibly, and always reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


# --------------------------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path:
    """Find the directory holding ``initdb``/``pg_ctl``.

    Debian keeps them off PATH (``/usr/lib/postgresql/<major>/bin``), so try ``pg_config --bindir``,
    then the newest Debian layout, then PATH.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def major(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return -1.0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise ServerStartError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; run scripts/ensure-system-deps.sh "
        "or install postgresql + postgresql-contrib"
    )


def _postgres_os_user() -> str | None:
    """PostgreSQL refuses to run as root, so as root we run it as the ``postgres`` system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServerStartError(
            "running as root but there is no 'postgres' system user to run PostgreSQL as; "
            "install Debian's postgresql package (it creates the user)"
        ) from None
    return "postgres"


def _as_user(cmd: Sequence[str], user: str | None) -> list[str]:
    """Prefix ``cmd`` so it runs as ``user`` (``None``: as ourselves)."""
    if user is None:
        return list(cmd)
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    return ["su", user, "-s", "/bin/sh", "-c", shlex.join(cmd)]


def _start_postgres_once(
    bindir: Path, os_user: str | None, dbname: str, timeout: float
) -> tuple[Path, Path, int, str]:
    """Init and start a cluster; returns (tmpdir, datadir, port, url). Cleans up itself on failure."""
    tmp = _make_tempdir("pg-", owner=os_user)
    data = tmp / "data"
    log = tmp / "postgres.log"
    port = free_port()

    def run(cmd: Sequence[str], what: str) -> None:
        result = subprocess.run(
            _as_user(cmd, os_user), cwd=tmp, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"PostgreSQL {what} failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"--- log tail ---\n{_log_tail(log)}"
            )

    try:
        run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            "initdb",
        )  # fmt: skip
        server_opts = (
            f"-k {shlex.quote(str(tmp))} -c listen_addresses={HOST} -p {port} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        run(
            [str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", str(int(timeout)),
             "-o", server_opts],
            "start",
        )  # fmt: skip
        _create_database(port, dbname, log, timeout)
    except BaseException:
        _stop_postgres(bindir, os_user, data)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp, data, port, f"postgresql+psycopg://postgres@{HOST}:{port}/{dbname}"


def _create_database(port: int, dbname: str, log: Path, timeout: float) -> None:
    """Create the test database and, as superuser, ``btree_gist`` (app migrations may not be superuser)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = psycopg.connect(
                host=HOST, port=port, user="postgres", dbname="postgres", connect_timeout=5
            )
            break
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"PostgreSQL not answering: {exc}\n--- log tail ---\n{_log_tail(log)}"
                ) from exc
            time.sleep(0.1)
    with conn:
        conn.autocommit = True
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(dbname))
        )
    with psycopg.connect(host=HOST, port=port, user="postgres", dbname=dbname, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")


def _stop_postgres(bindir: Path, os_user: str | None, data: Path) -> None:
    """Immediate shutdown (nothing to preserve); kill the postmaster if pg_ctl cannot."""
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    with suppress(subprocess.TimeoutExpired):
        subprocess.run(
            _as_user(
                [str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w", "-t", "15"],
                os_user,
            ),
            cwd=data.parent,
            capture_output=True,
            timeout=30,
            check=False,
        )
    if pid_file.exists():
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


@contextmanager
def postgres_server(dbname: str = "marketplace", timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """Run a private PostgreSQL cluster; yields ``postgresql+psycopg://postgres@127.0.0.1:PORT/DBNAME``.

    The cluster uses trust auth (loopback only) and durability off for speed; ``btree_gist`` is
    already created in the database.
    """
    bindir = postgres_bindir()
    os_user = _postgres_os_user()
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            tmp, data, _port, url = _start_postgres_once(bindir, os_user, dbname, timeout)
            break
        except ServerStartError:
            if attempt == START_ATTEMPTS:
                raise
    try:
        yield url
    finally:
        _stop_postgres(bindir, os_user, data)
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- Redis


def _redis_binary() -> str:
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.isfile(p)), None
    )
    if not found:
        raise ServerStartError(
            "redis-server not found; run scripts/ensure-system-deps.sh or install redis-server"
        )
    return found


def _redis_ping(port: int) -> bool:
    """Raw RESP PING, so readiness does not depend on the redis client library."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server child process that can be stopped and restarted on the same port (fault tests)."""

    def __init__(self, directory: Path, port: int | None = None, timeout: float = STARTUP_TIMEOUT) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.timeout = timeout
        self.log_path = directory / "redis.log"
        self._binary = _redis_binary()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Connection URL for database 0; unchanged across stop()/start()."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers PING."""
        if self.running:
            return
        cmd = [
            self._binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        proc = self._proc
        if not _wait_until(lambda: _redis_ping(self.port), self.timeout, alive=lambda: proc.poll() is None):
            self.stop()
            raise ServerStartError(
                f"redis-server did not answer on port {self.port} within {self.timeout}s\n"
                f"--- log tail ---\n{_log_tail(self.log_path)}"
            )

    def stop(self) -> None:
        """Stop the server; clients then get connection errors until start() is called again."""
        if self._proc is not None:
            _stop_process(self._proc)
            self._proc = None


@contextmanager
def redis_server(timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """Run a private, non-persistent redis-server; yields ``redis://127.0.0.1:PORT/0``."""
    with redis_server_handle(timeout) as server:
        yield server.url


@contextmanager
def redis_server_handle(timeout: float = STARTUP_TIMEOUT) -> Iterator[RedisServer]:
    """Like :func:`redis_server` but yields the :class:`RedisServer`, for tests that stop/start it."""
    tmp = _make_tempdir("redis-")
    server: RedisServer | None = None
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            server = RedisServer(tmp, timeout=timeout)
            try:
                server.start()
                break
            except ServerStartError:
                if attempt == START_ATTEMPTS:
                    raise
        yield server  # type: ignore[misc]
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -------------------------------------------------------------------------------------------- localstripe


@dataclass
class LocalStripe:
    """Handle on a running localstripe: point ``stripe.api_base`` at :attr:`api_base`."""

    api_base: str
    log_path: Path

    def _config_request(self, method: str, path: str, form: list[tuple[str, str]] | None = None) -> None:
        body = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.api_base + path, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", "application/x-www-form-urlencoded")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def register_webhook(self, id: str, url: str, secret: str, events: list[str] | None = None) -> None:
        """Have localstripe POST signed events to ``url`` (all events, or only ``events``).

        Registering the same ``id`` again replaces that endpoint.
        """
        form = [("url", url), ("secret", secret)]
        form += [("events[]", event) for event in events or []]
        self._config_request("POST", f"/_config/webhooks/{urllib.parse.quote(id, safe='')}", form)

    def flush(self) -> None:
        """Delete every stored Stripe object (webhook registrations are kept)."""
        self._config_request("DELETE", "/_config/data")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def localstripe_server(timeout: float = STARTUP_TIMEOUT) -> Iterator[LocalStripe]:
    """Run localstripe (via ``scripts/run_localstripe.py``) on loopback with a fresh store."""
    tmp = _make_tempdir("localstripe-")
    log_path = tmp / "localstripe.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            port = free_port()
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, str(PROJECT_ROOT / "scripts" / "run_localstripe.py"), str(port)],
                    cwd=tmp,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            api_base = f"http://{HOST}:{port}"
            running = proc
            if _wait_until(
                lambda base=api_base: _http_ok(base + "/js.stripe.com/v3/"),
                timeout,
                alive=lambda p=running: p.poll() is None,
            ):
                break
            _stop_process(proc)
            proc = None
            if attempt == START_ATTEMPTS:
                raise ServerStartError(
                    f"localstripe did not answer at {api_base} within {timeout}s\n"
                    f"--- log tail ---\n{_log_tail(log_path)}"
                )
        yield LocalStripe(api_base=api_base, log_path=log_path)
    finally:
        if proc is not None:
            _stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------- SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP sink got it: envelope plus parsed message and raw bytes."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


class _SinkHandler:
    """aiosmtpd handler storing messages, or refusing DATA with 451 while ``refusing`` is set."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        if self._sink._refusing:
            self._sink._count_refusal()
            return "451 4.3.0 Temporary failure (test sink is refusing mail)"
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self._sink._add(
            ReceivedMail(
                mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), message=parsed, raw=raw
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class SmtpSink:
    """In-process SMTP server that records every delivered message (thread-safe)."""

    host: str
    port: int
    _messages: list[ReceivedMail] = field(default_factory=list, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _refusing: bool = field(default=False, repr=False)
    _refused: int = field(default=0, repr=False)

    @property
    def messages(self) -> list[ReceivedMail]:
        """Snapshot of the messages received so far."""
        with self._cond:
            return list(self._messages)

    def _add(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()

    def _count_refusal(self) -> None:
        with self._cond:
            self._refused += 1
            self._cond.notify_all()

    @property
    def refused(self) -> int:
        """How many deliveries were answered 451 so far."""
        with self._cond:
            return self._refused

    def clear(self) -> None:
        """Forget every received message."""
        with self._cond:
            self._messages.clear()

    def refuse(self, on: bool = True) -> None:
        """While on, answer DATA with ``451`` (temporary failure) so senders must retry."""
        self._refusing = on

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMail]:
        """Block until at least ``count`` messages arrived; raises TimeoutError listing what did arrive."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                got = [(m.rcpt_tos, m.message["Subject"]) for m in self._messages]
                raise TimeoutError(f"expected {count} mail(s) within {timeout}s, got {len(got)}: {got}")
            return list(self._messages)


@contextmanager
def smtp_server(timeout: float = STARTUP_TIMEOUT) -> Iterator[SmtpSink]:
    """Run an aiosmtpd sink on 127.0.0.1 in a background thread; yields the :class:`SmtpSink`."""
    for attempt in range(1, START_ATTEMPTS + 1):
        sink = SmtpSink(host=HOST, port=free_port())
        controller = Controller(_SinkHandler(sink), hostname=HOST, port=sink.port, ready_timeout=timeout)
        try:
            controller.start()
            break
        except (OSError, TimeoutError, RuntimeError) as exc:
            if attempt == START_ATTEMPTS:
                raise ServerStartError(f"SMTP sink failed to start on {HOST}:{sink.port}: {exc!r}") from exc
    try:
        yield sink
    finally:
        controller.stop()
