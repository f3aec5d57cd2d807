"""A real local SMTP server for the email action's tests (aiosmtpd), recording messages."""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.messages)


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        with self.server.lock:
            self.server.messages.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    message,  # type: ignore[arg-type]
                    tls=session.ssl is not None,
                    login=login,
                )
            )
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(  # noqa: S603
        [  # noqa: S607
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@contextlib.contextmanager
def smtp_server(
    *, certificate: tuple[Path, Path] | None = None, users: dict[str, str] | None = None
) -> Iterator[SmtpServer]:
    """An SMTP server on a free port; with `certificate` it offers (and requires) STARTTLS,
    with `users` it requires AUTH LOGIN/PLAIN with one of them."""
    server = SmtpServer("127.0.0.1", _free_port())
    kwargs: dict[str, Any] = {}
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certificate[0]), str(certificate[1]))
        kwargs.update(tls_context=context, require_starttls=True)
    if users is not None:

        def authenticate(
            smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and users.get(data.login.decode()) == data.password.decode()
            )
            return AuthResult(
                success=ok, handled=False, auth_data=data.login.decode() if ok else None
            )

        kwargs.update(authenticator=authenticate, auth_required=True)
    controller = Controller(_Handler(server), hostname=server.host, port=server.port, **kwargs)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
