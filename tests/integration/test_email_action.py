"""The email action against a real local SMTP server (aiosmtpd): plain, and STARTTLS with a
verified certificate and a login."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from application.connections import Connection
from infrastructure.actions.email import EmailAction, message_id_for
from tests.smtp_server import self_signed_certificate, smtp_server

ACTION: dict[str, Any] = {
    "type": "email",
    "connection": "mail",
    "to": ["Ann <ann@example.com>", "bob@example.com"],
    "cc": "carol@example.com",
    "bcc": ["audit@example.com"],
    "reply_to": "help@acme.example",
    "subject": "Order 42 shipped",
    "text": "Hello Ann, order 42 is on its way.",
    "html": "<p>Hello <b>Ann</b>, order 42 is on its way.</p>",
    "headers": {"X-Order": "42", "Message-ID": "<forged@x>"},
}


def test_a_message_arrives_with_its_subject_bodies_and_recipients() -> None:
    with smtp_server() as server:
        connection = Connection(
            "mail",
            "smtp",
            {
                "host": server.host,
                "port": server.port,
                "security": "none",
                "from": "Acme <noreply@acme.example>",
            },
        )
        result = EmailAction()(ACTION, "inst:mail:1", 10.0, connection)

        assert result.ok, result.error
        (received,) = server.received()
    message = received.message
    assert message["Subject"] == "Order 42 shipped"
    assert message["From"] == "Acme <noreply@acme.example>"
    assert message["To"] == "Ann <ann@example.com>, bob@example.com"
    assert message["Cc"] == "carol@example.com"
    assert message["Bcc"] is None  # the envelope carries it, no header shows it
    assert message["Reply-To"] == "help@acme.example"
    assert message["X-Order"] == "42"
    assert message["X-Idempotency-Key"] == "inst:mail:1"
    assert message["Message-ID"] == message_id_for("inst:mail:1", "noreply@acme.example")
    assert message.get_body(("plain",)).get_content().strip() == ACTION["text"]
    assert message.get_body(("html",)).get_content().strip() == ACTION["html"]
    everyone = ["ann@example.com", "bob@example.com", "carol@example.com", "audit@example.com"]
    assert received.recipients == everyone
    assert result.output == {
        "message_id": message["Message-ID"],
        "accepted": everyone,
        "refused": {},
    }


def test_the_same_attempt_sends_the_same_message_id_and_another_attempt_a_new_one() -> None:
    with smtp_server() as server:
        connection = Connection(
            "mail",
            "smtp",
            {"host": server.host, "port": server.port, "security": "none", "from": "a@b.example"},
        )
        action = {"to": "x@example.com", "subject": "s", "text": "t"}
        for key in ("i:n:1", "i:n:1", "i:n:2"):
            assert EmailAction()(action, key, 5.0, connection).ok
        ids = [r.message["Message-ID"] for r in server.received()]
    assert ids[0] == ids[1] != ids[2]


def test_starttls_with_a_verified_certificate_and_a_login(tmp_path: Path) -> None:
    certificate = self_signed_certificate(tmp_path)
    with smtp_server(certificate=certificate, users={"mailer": "pw-123"}) as server:
        settings = {
            "host": server.host,
            "port": server.port,
            "security": "starttls",
            "username": "mailer",
            "password": "pw-123",
            "from": "mailer@acme.example",
            "ca_file": str(certificate[0]),
        }
        result = EmailAction()(
            {"to": "x@example.com", "subject": "tls", "text": "t"},
            "k",
            5.0,
            Connection("mail", "smtp", settings),
        )
        assert result.ok, result.error
        (received,) = server.received()
        assert received.tls and received.login == "mailer"

        wrong = EmailAction()(
            {"to": "x@example.com", "subject": "tls", "text": "t"},
            "k",
            5.0,
            Connection("mail", "smtp", {**settings, "password": "nope"}),
        )
        assert (
            not wrong.ok and not wrong.retryable and "authentication failed" in (wrong.error or "")
        )
        assert "nope" not in (wrong.error or "")


def test_an_unreachable_server_is_a_retryable_failure() -> None:
    with smtp_server() as server:
        port = server.port
    result = EmailAction()(
        {"to": "x@example.com", "subject": "s", "text": "t"},
        "k",
        2.0,
        Connection(
            "mail",
            "smtp",
            {"host": "127.0.0.1", "port": port, "security": "none", "from": "a@b.example"},
        ),
    )
    assert not result.ok and result.retryable


@pytest.mark.parametrize(
    ("action", "why"),
    [
        ({"subject": "s", "text": "t"}, "no recipient"),
        ({"to": "x@example.com", "subject": "s"}, "needs 'text' or 'html'"),
    ],
)
def test_an_unsendable_message_is_a_permanent_failure(action: dict[str, Any], why: str) -> None:
    connection = Connection("mail", "smtp", {"host": "127.0.0.1", "port": 1, "from": "a@b.example"})
    result = EmailAction()(action, "k", 1.0, connection)
    assert not result.ok and not result.retryable and why in (result.error or "")
