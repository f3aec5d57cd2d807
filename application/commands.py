"""Commands: what a caller asks the engine to do, as plain data.

The HTTP routes build them from request models, and the coming Kafka command consumer (and
the CLI) will build the same objects from their messages, so every entry point runs one
use case with one meaning. A command carries the tenant it acts for; an `idempotency_key`,
where a command has one, makes a repeat answer with the first result instead of acting
twice (the key is bound to the command's target: reusing it for another is refused).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any
from uuid import UUID

from domain.engine.task_access import Actor


@dataclass(frozen=True)
class StartInstance:
    """Start an instance of a definition (the latest version unless `version` is given)."""

    tenant: str
    definition: str
    version: int | None = None
    input: dict[str, Any] | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    # What asked for it (`domain.origin`); None: an API start by an unnamed caller.
    started_by: dict[str, Any] | None = None


@dataclass(frozen=True)
class CancelInstance:
    """Cancel a running or suspended instance, with its open bookmarks and tasks."""

    tenant: str
    instance_id: UUID
    reason: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ResumeBookmark:
    """Resume one waiting step of an instance with a payload."""

    tenant: str
    instance_id: UUID
    bookmark_id: str
    payload: Any = None
    idempotency_key: str | None = None
    source: str = "api"


@dataclass(frozen=True)
class DeliverEvent:
    """An external event comes in: it resumes matching `wait` nodes and starts the
    definitions it triggers. ("Publishing" is what the outbox does with our own events.)"""

    tenant: str
    type: str
    correlation: str | None = None
    payload: Any = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class DeliverCallback:
    """A signed callback for the bookmark whose token it names; `body` is the raw bytes the
    signature covers."""

    token: str
    body: bytes
    signature: str | None
    idempotency_key: str | None = None
    # The request path as sent: the signature covers it (`/v1/callbacks/<token>`).
    path: str = ""

    def __post_init__(self) -> None:
        if not self.path:
            object.__setattr__(self, "path", f"/v1/callbacks/{self.token}")


@dataclass(frozen=True)
class TriggerWebhook:
    """A signed webhook delivery that starts `definition` with its body as input; the tenant
    comes from an API key or the `Waymark-Tenant` header (None when neither was sent)."""

    tenant: str | None
    definition: str
    body: bytes
    signature: str | None
    idempotency_key: str | None = None
    # The request path as sent: the signature covers it (`/v1/webhooks/<definition>`).
    path: str = ""

    def __post_init__(self) -> None:
        if not self.path:
            object.__setattr__(self, "path", f"/v1/webhooks/{self.definition}")


@dataclass(frozen=True)
class TaskCommand:
    """What every command on one task names first: the tenant and the task."""

    tenant: str
    task_id: str


@dataclass(frozen=True)
class ClaimTask(TaskCommand):
    """Claim a task for `user`."""

    user: str
    # Who asks (checked: domain.engine.task_access); None only on trusted internal paths.
    actor: Actor | None = None


@dataclass(frozen=True)
class CancelTask(TaskCommand):
    """Withdraw an open task (operator): its node's `cancelled` route, else it fails."""

    reason: str | None = None
    by: str | None = None


@dataclass(frozen=True)
class DelegateTask(TaskCommand):
    """Hand a task to another assignee; `by` is who handed it over."""

    assignee: str
    by: str | None = None
    actor: Actor | None = None


@dataclass(frozen=True)
class CompleteTask(TaskCommand):
    """Decide an approval (`outcome`) or submit a user task's form `data`."""

    outcome: str | None = None
    data: dict[str, Any] | None = None
    comment: str | None = None
    user: str | None = None
    idempotency_key: str | None = None
    actor: Actor | None = None


@dataclass(frozen=True)
class RecoverNode:
    """What retry and skip share: the instance and, keyword-only, the incident they resolve
    (None: the oldest open one, or the failed node of a FAILED instance), who asks and why
    (`actor` and `reason`, recorded in the history) and the idempotency key."""

    tenant: str
    instance_id: UUID
    _: KW_ONLY
    incident_id: str | None = None
    actor: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RetryNode(RecoverNode):
    """Retry the failed node of an instance held as an incident, or of a FAILED instance
    (`domain.engine.recovery`); `variables` are merged first."""

    variables: dict[str, Any] | None = None


@dataclass(frozen=True)
class SkipNode(RecoverNode):
    """Complete the failed node with `result` (and `outcome`) instead of running it."""

    result: Any = None
    outcome: str | None = None
