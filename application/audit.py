"""The audit log: every administrative act, with who, when, what and from where.

Acts that are database writes record their entry in the same transaction (a definition's
publish and enable/disable; an instance's cancel, through the command's projection; an
erasure), so an act without its entry, or an entry without its act, cannot be committed.

Who and from where come from the request (`api` fills `context()` once the caller is
known); outside a request the actor is `system` unless the caller says otherwise (the CLI's
`waymark erase --by`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from application.read_models import Page

# The actions recorded (GET /v1/audit?action=...).
DEFINITION_PUBLISHED = "definition.published"
DEFINITION_ENABLED = "definition.enabled"
DEFINITION_DISABLED = "definition.disabled"
TEMPLATE_INSTANTIATED = "template.instantiated"
INSTANCE_CANCELLED = "instance.cancelled"
INSTANCE_ERASED = "instance.erased"
DEAD_LETTER_RETRIED = "dead_letter.retried"
# Operator recovery (docs/operations-recovery.md)
INSTANCE_RETRIED = "instance.retried"
INSTANCE_SKIPPED = "instance.skipped"
INSTANCE_MODIFIED = "instance.modified"
INSTANCE_MIGRATED = "instance.migrated"
ACTIONS = (
    DEFINITION_PUBLISHED,
    DEFINITION_ENABLED,
    DEFINITION_DISABLED,
    TEMPLATE_INSTANTIATED,
    INSTANCE_CANCELLED,
    INSTANCE_ERASED,
    DEAD_LETTER_RETRIED,
)
# The CloudEvents type of an audit entry in the outbox export.
CLOUDEVENTS_TYPE = "waymark.audit.recorded"
# Bounds on what a client controls (the user agent): the entry stays small.
MAX_USER_AGENT = 512


@dataclass
class RequestContext:
    """Who is acting and from where (mutable: filled in as the request is authenticated)."""

    actor: str = "system"
    client_ip: str | None = None
    user_agent: str | None = None


_context: ContextVar[RequestContext | None] = ContextVar("waymark_audit_context", default=None)


def context() -> RequestContext:
    found = _context.get()
    return found if found is not None else RequestContext()


@contextmanager
def acting_as(
    actor: str, client_ip: str | None = None, user_agent: str | None = None
) -> Iterator[RequestContext]:
    """Record the acts of this block as `actor`'s, from `client_ip` / `user_agent`."""
    found = RequestContext(actor, client_ip, (user_agent or "")[:MAX_USER_AGENT] or None)
    token = _context.set(found)
    try:
        yield found
    finally:
        _context.reset(token)


@dataclass(frozen=True)
class AuditEntry:
    tenant: str
    action: str
    target: str
    actor: str = "system"
    client_ip: str | None = None
    user_agent: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    recorded_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "details": self.details,
        }


def entry(tenant: str, action: str, target: str, **details: Any) -> AuditEntry:
    """An entry for an act of the current context's actor."""
    found = context()
    return AuditEntry(
        tenant=tenant,
        action=action,
        target=target,
        actor=found.actor,
        client_ip=found.client_ip,
        user_agent=found.user_agent,
        details={k: v for k, v in details.items() if v is not None},
    )


class AuditLog(Protocol):
    """Where entries are kept (written by the stores of the acts themselves)."""

    def record(self, entry: AuditEntry) -> None:
        """An entry on its own (for acts that are not a database write of ours)."""

    def list(
        self,
        tenant: str,
        limit: int,
        cursor: str | None,
        *,
        action: str | None = None,
        target: str | None = None,
    ) -> Page: ...
