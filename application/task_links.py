"""Signed task links: approve or reject an approval from a notification, without an API key.

A token is `<payload>.<mac>`, both base64url without padding: the payload is the JSON
array `[1, tenant, task id, decision, expires at (unix seconds), assignee or null]`, the MAC
an HMAC-SHA256 of `"waymark-task-link." + payload` with a key derived from the database's
server secret (`infrastructure.bootstrap.task_link_signer`), so every replica signs and
checks alike with no configuration. The link is bound to its tenant, task, decision and the
task's assignee when it was sent (changing any byte breaks the MAC; a task delegated since
answers 409 `task-link-superseded`: the link went to someone who no longer holds the task),
expires (`WAYMARK_TASK_LINK_TTL_SECONDS`, 72 h by default) and is used once (a row in
`task_link_uses` per used link). The payload is readable, not secret: the MAC is the
credential, and whoever holds the link may decide the task.

`GET` only reads (mail scanners and link previews fetch GETs); `POST` applies the decision
through `TaskService.complete` — the same form check, history and completion as the API —
with `completed_by` "link:<the assignee the link was sent to, else the task's role>" and the
idempotency key `task-link:<mac>`. That key is stored in the completion's own transaction,
so two concurrent POSTs complete the task once: the second is replayed, and answered 409
like any second use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from application.commands import CompleteTask
from application.errors import (
    TaskLinkExpiredError,
    TaskLinkInvalidError,
    TaskLinkSupersededError,
    TaskLinkUsedError,
    TaskNotFoundError,
)
from application.ports import Clock
from application.tasks import TaskService

# A link's decision → the approval outcome it completes the task with.
DECISIONS = {"approve": "approved", "reject": "rejected"}
DEFAULT_TTL = timedelta(hours=72)
_DOMAIN = b"waymark-task-link."
MAX_TOKEN_CHARS = 2048  # a longer path segment is not one of ours: refused before decoding


@dataclass(frozen=True)
class LinkClaims:
    """What a verified token says."""

    tenant: str
    task_id: str
    decision: str
    expires_at: datetime
    link_id: str  # the MAC, hex: names the link in `task_link_uses`
    assignee: str | None = None  # the task's assignee when the link was sent

    @property
    def outcome(self) -> str:
        return DECISIONS[self.decision]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TaskLinkSigner:
    """Makes and checks tokens (pure: the clock reading is passed in)."""

    def __init__(self, key: bytes, ttl: timedelta = DEFAULT_TTL):
        self._key = key
        self.ttl = ttl

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, _DOMAIN + payload.encode(), hashlib.sha256).digest()

    def token(
        self,
        tenant: str,
        task_id: str,
        decision: str,
        issued_at: datetime,
        assignee: str | None = None,
    ) -> str:
        if decision not in DECISIONS:
            raise ValueError(f"unknown task link decision {decision!r}")
        expires = int((issued_at + self.ttl).timestamp())
        claims = [1, tenant, task_id, decision, expires, assignee]
        body = json.dumps(claims, separators=(",", ":"))
        payload = _b64(body.encode())
        return f"{payload}.{_b64(self._mac(payload))}"

    def read(self, token: str, now: datetime) -> LinkClaims:
        """The token's claims; TaskLinkInvalidError unless this key signed it (checked
        first, in constant time), TaskLinkExpiredError when it is genuine but expired."""
        payload, dot, mac_text = token.partition(".")
        if not dot or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise TaskLinkInvalidError()
        expected = self._mac(payload)
        # Compared as text, not decoded bytes: base64 ignores a last character's spare bits,
        # so only the one canonical spelling of the MAC is accepted.
        if not hmac.compare_digest(_b64(expected).encode(), mac_text.encode()):
            raise TaskLinkInvalidError()
        try:
            version, tenant, task_id, decision, expires, assignee = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, TypeError):  # signed by us: never, but be strict
            raise TaskLinkInvalidError() from None
        if version != 1 or decision not in DECISIONS or not isinstance(expires, int):
            raise TaskLinkInvalidError()
        if assignee is not None and not isinstance(assignee, str):
            raise TaskLinkInvalidError()
        expires_at = datetime.fromtimestamp(expires, UTC)
        if now >= expires_at:
            raise TaskLinkExpiredError()
        return LinkClaims(str(tenant), str(task_id), decision, expires_at, expected.hex(), assignee)


@dataclass(frozen=True)
class UsedLink:
    link_id: str
    used_at: datetime
    used_by: str


class UsedTaskLinks(Protocol):
    """The record of used links (PostgreSQL: table `task_link_uses`)."""

    def find(self, link_id: str) -> UsedLink | None: ...

    def record(self, claims: LinkClaims, used_by: str, at: datetime) -> bool:
        """Store the use; False when the link was recorded already."""
        ...


class TaskLinkService:
    """GET shows, POST decides."""

    def __init__(
        self, signer: TaskLinkSigner, used: UsedTaskLinks, tasks: TaskService, clock: Clock
    ):
        self.signer = signer
        self.used = used
        self.tasks = tasks
        self.clock = clock

    def _claims(self, token: str) -> LinkClaims:
        claims = self.signer.read(token, self.clock.now())
        if self.used.find(claims.link_id) is not None:
            raise TaskLinkUsedError()
        return claims

    def preview(self, token: str) -> dict[str, Any]:
        """What the confirmation page shows; changes nothing."""
        claims = self._claims(token)
        task = self.tasks.get(claims.tenant, claims.task_id)
        _check_holder(claims, task.get("status"), task.get("assignee"))
        return {
            "decision": claims.decision,
            "outcome": claims.outcome,
            "expires_at": claims.expires_at.isoformat(),
            "task": {k: task.get(k) for k in ("id", "name", "status", "assignee", "role")},
        }

    def apply(self, token: str) -> dict[str, Any]:
        """Complete the task with the link's decision; the instance view."""
        claims = self._claims(token)
        row = self.tasks.queries.task(claims.tenant, claims.task_id)
        if row is None:
            raise TaskNotFoundError(claims.task_id)
        _check_holder(claims, row.status, row.assignee)
        by = f"link:{claims.assignee or row.role or 'anyone'}"
        view, replayed = self.tasks.complete(
            CompleteTask(
                claims.tenant,
                claims.task_id,
                outcome=claims.outcome,
                user=by,
                idempotency_key=f"task-link:{claims.link_id}",
            )
        )
        # Recorded by whichever POST gets here first (the replayed one may); the completion's
        # idempotency record already decided which POST won.
        self.used.record(claims, by, self.clock.now())
        if replayed:
            raise TaskLinkUsedError()  # a concurrent POST of the same link completed it
        return view


def _check_holder(claims: LinkClaims, status: Any, assignee: Any) -> None:
    """An open task delegated since the link was sent is decided by its new holder only."""
    if status in ("open", "claimed") and assignee != claims.assignee:
        raise TaskLinkSupersededError(claims.assignee, assignee)
