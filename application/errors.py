"""Application errors: one base class, each with a stable `code`.

The code names the kind of failure for every caller — the HTTP API maps it to a problem
type (`api/problems.py`, one table), the coming Kafka command consumer will put it in its
reply. Errors carry the ids they are about and never know about HTTP. Domain errors
(`domain.errors`) carry a code the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

if TYPE_CHECKING:
    from domain.validation import Problem


class WaymarkError(Exception):
    """Base class of every application error; `code` is stable across releases."""

    code: ClassVar[str]


# --- not found ------------------------------------------------------------------------------


class InstanceNotFoundError(WaymarkError):
    code = "not-found"

    def __init__(self, instance_id: Any):
        super().__init__(f"instance {instance_id} not found")
        self.instance_id = instance_id


class DefinitionNotFoundError(WaymarkError):
    code = "not-found"

    def __init__(self, name: str, version: int | None = None):
        shown = f"{name} version {version}" if version else name
        super().__init__(f"definition {shown} not found")
        self.name = name
        self.version = version


class TaskNotFoundError(WaymarkError):
    code = "not-found"

    def __init__(self, task_id: str):
        super().__init__(f"task {task_id} not found")
        self.task_id = task_id


class TemplateNotFoundError(WaymarkError):
    code = "not-found"

    def __init__(self, template_id: str):
        super().__init__(f"template {template_id} not found")
        self.template_id = template_id


class CallbackNotFoundError(WaymarkError):
    """No longer raised by `CallbackService` (an unknown token is a `SignatureError`)."""

    code = "not-found"

    def __init__(self) -> None:
        super().__init__("no bookmark has this callback token")


# --- refused requests -----------------------------------------------------------------------


class DefinitionDisabledError(WaymarkError):
    code = "definition-disabled"

    def __init__(self, name: str):
        super().__init__(f"definition {name} is disabled and starts no new instances")
        self.name = name


class DefinitionExistsError(WaymarkError):
    """Instantiating a template would publish over a definition the tenant already has."""

    code = "definition-exists"

    def __init__(self, name: str, version: int):
        super().__init__(
            f"definition {name} exists (version {version}): ask for a new version "
            '("new_version": true) or give another "name"'
        )
        self.name = name
        self.version = version


class InvalidDefinitionError(WaymarkError):
    """The document has problems; all of them are listed."""

    code = "invalid-definition"

    def __init__(self, problems: list[Problem]):
        super().__init__(f"definition has {len(problems)} problem(s)")
        self.problems = problems


class InvalidDataError(WaymarkError):
    """Data (instance input, task form data) violates its JSON Schema."""

    code = "invalid-data"

    def __init__(self, what: str, errors: list[tuple[str, str]]):
        super().__init__(f"{what} is invalid: " + "; ".join(f"{p}: {m}" for p, m in errors))
        self.what = what
        self.errors = errors


class IdempotencyKeyReusedError(WaymarkError):
    """The key was used before for another target: refuse rather than answer for it.

    A key is bound to what it acts on: the bookmark of a resume, the instance of a cancel,
    the task of a completion, the type and correlation of an event, the definition of a
    start. The body of a repeated delivery is not compared (providers' redeliveries often
    differ in timestamps): the first result wins.
    """

    code = "idempotency-key-reused"

    def __init__(self, key: str):
        super().__init__(f"idempotency key {key!r} was already used for a different request")
        self.key = key


class SignatureError(WaymarkError):
    """Missing, malformed, stale or wrong signature."""

    code = "invalid-signature"


class SignatureReplayedError(WaymarkError):
    """A webhook signature that was accepted before: each is accepted once (SPEC §4)."""

    code = "signature-replayed"

    def __init__(self) -> None:
        super().__init__("this signature was already used: sign every delivery anew")


class InvalidCursorError(WaymarkError, ValueError):
    """The cursor was not produced by this API (or was tampered with)."""

    code = "invalid-cursor"

    def __init__(self, cursor: str) -> None:
        super().__init__(f"invalid cursor {cursor[:40]!r}")
        self.cursor = cursor


# --- transient ------------------------------------------------------------------------------


class CommandConflictError(WaymarkError):
    """The command lost the concurrency race on every attempt (transient: retry later).

    Not the "bookmark already consumed" answer: nothing was decided, the request may be
    repeated as it is."""

    code = "concurrency-conflict"

    def __init__(self, instance_ids: list[UUID]):
        super().__init__(f"instance(s) {', '.join(map(str, instance_ids))} kept changing")
        self.instance_ids = instance_ids


# --- retention and erasure ------------------------------------------------------------------


class InstanceNotEndedError(WaymarkError):
    """Only an ended instance may be erased (a running one's events are its state)."""

    code = "instance-not-ended"

    def __init__(self, instance_id: Any, status: str, why: str = ""):
        super().__init__(f"instance {instance_id} is {status}{why}: only an ended one is erased")
        self.instance_id = instance_id
        self.status = status


# --- signed task links (application/task_links.py) ------------------------------------------


class TaskLinkInvalidError(WaymarkError):
    """A task link this server did not sign (tampered with, truncated, or made up)."""

    code = "invalid-task-link"

    def __init__(self) -> None:
        super().__init__("this task link is not valid")


class TaskLinkExpiredError(WaymarkError):
    """A genuine task link past its expiry (WAYMARK_TASK_LINK_TTL_SECONDS)."""

    code = "task-link-expired"

    def __init__(self) -> None:
        super().__init__("this task link has expired: decide the task in the application")


class TaskLinkSupersededError(WaymarkError):
    """The task was delegated after the link was sent: its holder is someone else now."""

    code = "task-link-superseded"

    def __init__(self, sent_to: str | None, now_with: str | None) -> None:
        super().__init__(
            "this task was delegated after the link was sent: decide it in the application"
        )
        self.sent_to = sent_to
        self.now_with = now_with


class TaskLinkUsedError(WaymarkError):
    """A task link is used once: its decision was applied already."""

    code = "task-link-used"

    def __init__(self) -> None:
        super().__init__("this task link was already used")
