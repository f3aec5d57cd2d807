"""The `email` action: one message through an SMTP connection (Python's smtplib and email).

The standard library's `smtplib` and `email` packages are the well-kept SMTP client here:
the protocol (EHLO, STARTTLS, AUTH, pipelining of recipients) and MIME building are theirs,
and the action runs on a worker thread, so a blocking client is what it needs.

The connection (`type: smtp`) holds `host`, `port`, `security` (`starttls`, `tls` or
`none`; default `starttls`, or `tls` on port 465), `username`, `password`, `from` and
optionally `verify` (false: accept any server certificate — tests only) or
`ca_file`. The action holds the message: `to`, `cc`, `bcc`, `subject`, `text` and/or
`html`, `reply_to`, `from` (overrides the connection's), `headers`.

The SPEC §3 idempotency key (`instance:node:attempt`) goes out as `X-Idempotency-Key`, and
the `Message-ID` is derived from it, so a worker that crashed after sending and runs the
same attempt again sends a message with the same `Message-ID` (mail systems and clients
collapse duplicates on it). The result is `{message_id, accepted, refused}`.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, parseaddr
from typing import Any

from application.connections import Connection
from application.ports import ActionResult
from infrastructure.actions.http import DEFAULT_TIMEOUT_SECONDS

_SECURITY = ("starttls", "tls", "none")
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Reply-To",
        "Message-ID",
        "Date",
        "X-Idempotency-Key",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    )
)


def message_id_for(idempotency_key: str, sender: str) -> str:
    """`<sha256(key)[:32]@sender's domain>`: the same attempt always gets the same id."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "waymark.invalid"
    return f"<{digest}@{domain}>"


class EmailAction:
    """`{"type": "email", "connection", "to", "subject", "text"|"html", ...}`."""

    def __call__(
        self,
        action: dict[str, Any],
        idempotency_key: str,
        timeout: float,
        connection: Connection,
    ) -> ActionResult:
        try:
            message, recipients = _message(action, connection, idempotency_key)
            security, port = _security(connection)
        except ValueError as exc:
            return ActionResult(ok=False, error=f"email action: {exc}", retryable=False)
        host = str(connection.get("host"))
        seconds = float(timeout or DEFAULT_TIMEOUT_SECONDS)
        where = f"SMTP {host}:{port} (connection {connection.name!r})"
        try:
            refused = self._send(connection, host, port, security, seconds, message, recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {r: code for r, (code, _) in exc.recipients.items()}
            transient = all(400 <= code < 500 for code in codes.values())
            return ActionResult(
                ok=False, error=f"{where} refused every recipient: {codes}", retryable=transient
            )
        except smtplib.SMTPAuthenticationError as exc:
            return ActionResult(
                ok=False, error=f"{where}: authentication failed ({exc.smtp_code})", retryable=False
            )
        except smtplib.SMTPResponseException as exc:
            # 4xx: try again later; 5xx: the server will say the same next time.
            return ActionResult(
                ok=False,
                error=f"{where} answered {exc.smtp_code}: {_text(exc.smtp_error)}",
                retryable=exc.smtp_code < 500,
            )
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, TLS, timeouts
            return ActionResult(ok=False, error=f"cannot send through {where}: {_describe(exc)}")
        accepted = [r for r in recipients if r not in refused]
        return ActionResult(
            ok=True,
            output={
                "message_id": message["Message-ID"],
                "accepted": accepted,
                "refused": {r: code for r, (code, _) in refused.items()},
            },
        )

    def _send(
        self,
        connection: Connection,
        host: str,
        port: int,
        security: str,
        seconds: float,
        message: EmailMessage,
        recipients: list[str],
    ) -> dict[str, tuple[int, bytes]]:
        context = _tls_context(connection)
        client: smtplib.SMTP
        if security == "tls":
            client = smtplib.SMTP_SSL(host, port, timeout=seconds, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=seconds)
        with client:
            client.ehlo()
            if security == "starttls":
                client.starttls(context=context)
                client.ehlo()
            username, password = connection.get("username"), connection.get("password")
            if username:
                client.login(str(username), str(password or ""))
            return client.send_message(message, to_addrs=recipients)


def _message(
    action: dict[str, Any], connection: Connection, idempotency_key: str
) -> tuple[EmailMessage, list[str]]:
    sender = action.get("from") or connection.get("from") or connection.get("username")
    if not sender:
        raise ValueError(
            f"no 'from' address (neither the action nor connection {connection.name!r})"
        )
    to, cc, bcc = (_addresses(action.get(k)) for k in ("to", "cc", "bcc"))
    recipients = [address for _, address in getaddresses(to + cc + bcc) if address]
    if not recipients:
        raise ValueError("no recipient in 'to', 'cc' or 'bcc'")
    text, html = action.get("text"), action.get("html")
    if text is None and html is None:
        raise ValueError("needs 'text' or 'html'")
    message = EmailMessage()
    message["From"] = str(sender)
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    # Bcc recipients get the message through the envelope only: no Bcc header is sent.
    if action.get("reply_to"):
        message["Reply-To"] = str(action["reply_to"])
    message["Subject"] = str(action.get("subject") or "")
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id_for(idempotency_key, str(sender))
    message["X-Idempotency-Key"] = idempotency_key
    for name, value in (action.get("headers") or {}).items():
        if str(name).lower() not in _RESERVED_HEADERS:
            message[str(name)] = str(value)
    if text is not None:
        message.set_content(str(text))
        if html is not None:
            message.add_alternative(str(html), subtype="html")
    else:
        message.set_content(str(html), subtype="html")
    return message, recipients


def _addresses(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items if str(item).strip()]


def _security(connection: Connection) -> tuple[str, int]:
    port = int(connection.get("port") or 587)
    security = str(connection.get("security") or ("tls" if port == 465 else "starttls")).lower()
    if security not in _SECURITY:
        raise ValueError(f"connection {connection.name!r}: 'security' must be one of {_SECURITY}")
    return security, port


def _tls_context(connection: Connection) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=connection.get("ca_file"))
    if connection.get("verify") is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")[:200]
    return str(value)[:200]


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
