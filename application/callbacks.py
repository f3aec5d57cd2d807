"""Signed callbacks: an external system resumes a waiting step with its bookmark token.

Signature (SPEC §4): `Waymark-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<request
path>.<raw body>">` with the tenant's secret — the path as sent (`/v1/callbacks/<token>`), so a
signature is valid for one target only; rejected when the timestamp is more than five minutes
off or the MAC differs (constant-time compare). A rejected callback changes nothing.

An unknown token is answered exactly like a wrong signature (`SignatureError`, same
message), after the same work: its signature is checked against a random per-process decoy
secret. So a caller without the tenant's secret cannot tell a live token from a made-up one
— by status, body or timing. (The secret is per tenant, and only the token names the
tenant, so the signature cannot be checked before the lookup.)

A token of an open bookmark of an instance this process committed is known to its instance
cache (application/instance_cache.py): the signature is checked at once with the tenant's
secret, and when it holds the cached copy is resumed with no read. When it does not, the
read is made anyway before the refusal, so a live token still costs a wrong signature what
a made-up one does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from typing import Any
from uuid import UUID

from application.commands import DeliverCallback, ResumeBookmark
from application.errors import SignatureError
from application.instance_cache import InstanceCache
from application.instances import InstanceService
from application.ports import Clock, InstanceRead, InstanceStore

SIGNATURE_TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int, path: str) -> str:
    """The header value a sender puts in `Waymark-Signature` for a POST to `path`."""
    signed = f"{timestamp}.{path}.".encode() + body
    mac = hmac.new(secret.encode(), signed, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


# `t=<unix seconds>` (ASCII digits only: `int()` also takes "٣" or a 4,000-digit number,
# which then overflows the float arithmetic) and `v1=<64 hex digits>`.
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_MAC = re.compile(r"[0-9a-f]{64}")


def verify(secret: str, body: bytes, header: str | None, now: float, path: str) -> str:
    """Check the signature of a POST of `body` to `path`; its MAC (hex) when it holds."""
    if not header:
        raise SignatureError("the Waymark-Signature header is missing")
    parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
    timestamp, given = parts.get("t", ""), parts.get("v1", "").lower()
    if not _TIMESTAMP.fullmatch(timestamp) or not _MAC.fullmatch(given):
        raise SignatureError("the Waymark-Signature header is malformed")
    if abs(now - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
        raise SignatureError("the signature timestamp is more than 5 minutes off")
    expected = sign(secret, body, int(timestamp), path).split("v1=", 1)[1]
    # Both ASCII by now (compare_digest raises TypeError on non-ASCII str).
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise SignatureError("the signature does not match")
    return given


def callback_payload(body: bytes) -> Any:
    """The resume payload: the JSON body (None when empty); JSONDecodeError when it is not
    JSON or not UTF-8 text."""
    try:
        return json.loads(body) if body.strip() else None
    except UnicodeDecodeError:
        raise json.JSONDecodeError("the body is not UTF-8 text", "", 0) from None


class CallbackService:
    """Verifies and applies callbacks."""

    def __init__(
        self,
        instances: InstanceService,
        store: InstanceStore,
        secret_for: Callable[[str], str | None],
        clock: Clock,
        cache: InstanceCache | None = None,
    ):
        self.instances = instances
        self.store = store
        self.secret_for = secret_for
        self.clock = clock
        # This process's instance cache: a token of a bookmark it holds needs no read.
        self.cache = cache
        # Never configured anywhere, never revealed: no signature made outside this process
        # can match it, so an unknown token always fails as "the signature does not match".
        self._decoy_secret = secrets.token_hex(32)

    def callback(self, cmd: DeliverCallback) -> tuple[dict[str, Any], bool]:
        """Resume the bookmark the token names; (result, replayed)."""
        token, body, signature = cmd.token, cmd.body, cmd.signature
        local = self.cache.bookmark(token) if self.cache is not None else None
        secret = self.secret_for(local.tenant) if local is not None else None
        if local is not None and secret:
            # An open bookmark of an instance this process committed: no read. A wrong
            # signature is refused after the read the path below makes, so that a live
            # token costs what a made-up one does (the signature is checked once either way).
            now = self.clock.now().timestamp()
            try:
                verify(secret, body, signature, now, cmd.path)
            except SignatureError:
                self.store.by_bookmark_token(token)
                raise
            return self._resume(local.tenant, local.instance_id, local.bookmark_id, cmd)
        # The bookmark and its instance's events in one round trip; the instance is rebuilt
        # only once the signature holds, and not at all when this process holds it at the
        # version read (application/instance_cache.py).
        found = self.store.by_bookmark_token(token)
        bookmark, instance = found if found is not None else (None, None)
        secret = self.secret_for(bookmark.tenant) if bookmark is not None else None
        # Missing token, or a tenant without a secret: the same checks, against the decoy,
        # so the answer (and its cost) is that of a live token with a wrong signature.
        verify(
            secret or self._decoy_secret, body, signature, self.clock.now().timestamp(), cmd.path
        )
        if bookmark is None or instance is None or not secret:
            raise SignatureError("the signature does not match")
        return self._resume(bookmark.tenant, bookmark.instance_id, bookmark.id, cmd, instance)

    def _resume(
        self,
        tenant: str,
        instance_id: UUID,
        bookmark_id: str,
        cmd: DeliverCallback,
        loaded: InstanceRead | None = None,
    ) -> tuple[dict[str, Any], bool]:
        payload = callback_payload(cmd.body)
        return self.instances.resume(
            ResumeBookmark(
                tenant,
                instance_id,
                bookmark_id,
                payload,
                idempotency_key=cmd.idempotency_key,
                source="callback",
            ),
            loaded=loaded,
        )
