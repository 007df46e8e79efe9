"""The throwaway servers in tests/support/servers.py really start, answer, and clean up after themselves."""

from __future__ import annotations

import json
import queue
import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psycopg
import pytest
import redis
import requests
import stripe
from sqlalchemy.engine import make_url

from tests.support.servers import (
    free_port,
    localstripe_server,
    postgres_server,
    redis_server,
    redis_server_handle,
    smtp_server,
)

STRIPE_HEADERS = {"Authorization": "Bearer sk_test_x"}


def _psycopg_kwargs(sqlalchemy_url: str) -> dict[str, object]:
    url = make_url(sqlalchemy_url)
    return {"host": url.host, "port": url.port, "user": url.username, "dbname": url.database}


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_postgres_server_runs_real_postgres_with_btree_gist() -> None:
    with postgres_server(dbname="support_check") as url:
        assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
        assert url.endswith("/support_check")
        kwargs = _psycopg_kwargs(url)
        with psycopg.connect(**kwargs, autocommit=True) as conn:  # type: ignore[arg-type]
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
            # btree_gist is what makes exclusion constraints over (scalar, range) possible.
            conn.execute(
                "CREATE TABLE slot (mentor int, during tstzrange, "
                "EXCLUDE USING gist (mentor WITH =, during WITH &&))"
            )
            conn.execute("INSERT INTO slot VALUES (1, '[2030-01-01 10:00Z, 2030-01-01 11:00Z)')")
            with pytest.raises(psycopg.errors.ExclusionViolation):
                conn.execute("INSERT INTO slot VALUES (1, '[2030-01-01 10:30Z, 2030-01-01 11:30Z)')")
            encoding = conn.execute("show server_encoding").fetchone()
            assert encoding == ("UTF8",)
    # Stopped: the port no longer accepts connections.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**kwargs, connect_timeout=2)  # type: ignore[arg-type]


def test_redis_server_set_get() -> None:
    with redis_server() as url:
        assert url.startswith("redis://127.0.0.1:")
        assert url.endswith("/0")
        client = redis.Redis.from_url(url)
        try:
            client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"
        finally:
            client.close()


def test_redis_server_stop_and_restart_on_same_url() -> None:
    with redis_server_handle() as server:
        url = server.url
        directory = server.directory
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            assert client.ping() is True
            server.stop()
            with pytest.raises(redis.exceptions.ConnectionError):
                client.ping()
            server.start()
            assert server.url == url
            assert client.set("after-restart", "1") is True
            assert client.get("after-restart") == b"1"
        finally:
            client.close()
    assert not Path(directory).exists()


class _WebhookReceiver:
    """Tiny real HTTP endpoint collecting (body, Stripe-Signature) pairs."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[bytes, str]] = queue.Queue()
        # The answers to give, first to last; 200 once they are used up.
        self.answers: list[int] = []
        received, answers = self.received, self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put((body, self.headers.get("Stripe-Signature", "")))
                self.send_response(answers.pop(0) if answers else 200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def webhook_receiver() -> Iterator[_WebhookReceiver]:
    receiver = _WebhookReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join()


def test_localstripe_payment_intent_and_signed_webhook(webhook_receiver: _WebhookReceiver) -> None:
    with localstripe_server() as ls:
        assert ls.api_base.startswith("http://127.0.0.1:")
        response = requests.post(
            ls.api_base + "/v1/payment_intents",
            data={"amount": "4500", "currency": "eur"},
            headers=STRIPE_HEADERS,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        intent = response.json()
        assert intent["id"].startswith("pi_")
        assert intent["amount"] == 4500
        assert intent["status"] == "requires_payment_method"

        secret = "whsec_test_support"
        ls.register_webhook("main", webhook_receiver.url, secret, events=["customer.created"])
        customer = requests.post(
            ls.api_base + "/v1/customers", data={"email": "a@example.com"}, headers=STRIPE_HEADERS, timeout=10
        ).json()
        body, signature = webhook_receiver.received.get(timeout=15)
        # The official library accepts localstripe's signature: same scheme as real Stripe.
        event = stripe.Webhook.construct_event(body.decode(), signature, secret)
        assert event["type"] == "customer.created"
        assert json.loads(body)["data"]["object"]["id"] == customer["id"]

        ls.flush()
        gone = requests.get(
            ls.api_base + f"/v1/payment_intents/{intent['id']}", headers=STRIPE_HEADERS, timeout=10
        )
        assert gone.status_code == 404


def test_an_event_refused_by_the_endpoint_is_sent_again_until_accepted(
    webhook_receiver: _WebhookReceiver,
) -> None:
    """Stripe re-sends what the endpoint did not take (the intake answers 503 while its database is down)."""
    secret = "whsec_test_support"
    webhook_receiver.answers.append(503)
    with localstripe_server() as ls:
        ls.register_webhook("main", webhook_receiver.url, secret, events=["customer.created"])
        requests.post(
            ls.api_base + "/v1/customers", data={"email": "b@example.com"}, headers=STRIPE_HEADERS, timeout=10
        )
        refused = stripe.Webhook.construct_event(*_decoded(webhook_receiver.received.get(timeout=15)), secret)
        again = stripe.Webhook.construct_event(*_decoded(webhook_receiver.received.get(timeout=15)), secret)

        assert again["id"] == refused["id"]
        assert again["type"] == "customer.created"
        with pytest.raises(queue.Empty):
            webhook_receiver.received.get(timeout=5)


def _decoded(delivery: tuple[bytes, str]) -> tuple[str, str]:
    return delivery[0].decode(), delivery[1]


def test_localstripe_instances_do_not_share_a_store() -> None:
    with localstripe_server() as first:
        created = requests.post(
            first.api_base + "/v1/customers",
            data={"email": "x@example.com"},
            headers=STRIPE_HEADERS,
            timeout=10,
        ).json()
    with localstripe_server() as second:
        listed = requests.get(second.api_base + "/v1/customers", headers=STRIPE_HEADERS, timeout=10).json()
        assert created["id"] not in [c["id"] for c in listed["data"]]
        assert listed["data"] == []


def _mail(to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "noreply@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Your session is booked. Ünïcode survives.")
    return msg


def test_smtp_sink_receives_and_can_refuse() -> None:
    with smtp_server() as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.send_message(_mail("mentee@example.com", "Booked"))
        [mail] = sink.wait_for(1)
        assert mail.rcpt_tos == ["mentee@example.com"]
        assert mail.mail_from == "noreply@example.com"
        assert mail.message["Subject"] == "Booked"
        assert "Ünïcode survives" in mail.message.get_content()

        sink.clear()
        assert sink.messages == []
        sink.refuse(True)
        with (
            smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp,
            pytest.raises(smtplib.SMTPDataError) as err,
        ):
            smtp.send_message(_mail("mentor@example.com", "Refused"))
        assert err.value.smtp_code == 451
        assert sink.messages == []

        sink.refuse(False)
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as smtp:
            smtp.send_message(_mail("mentor@example.com", "Retried"))
        assert [m.message["Subject"] for m in sink.wait_for(1)] == ["Retried"]
    with pytest.raises(TimeoutError):
        sink.wait_for(2, timeout=0.1)
