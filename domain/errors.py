"""Domain errors. They carry ids and a stable `code`, and never know about HTTP; the API maps
codes to problems (`api/problems.py`), like those of `application.errors`."""

from __future__ import annotations

from typing import Any, ClassVar

from domain.state import Bookmark


class WorkflowError(Exception):
    """Base class of every domain error."""

    code: ClassVar[str]


class InstanceNotActiveError(WorkflowError):
    code = "instance-not-active"

    def __init__(self, instance_id: Any, status: str):
        super().__init__(f"instance {instance_id} is {status}")
        self.instance_id = instance_id
        self.status = status


class BookmarkNotFoundError(WorkflowError):
    code = "not-found"

    def __init__(self, instance_id: Any, bookmark_id: str):
        super().__init__(f"instance {instance_id} has no bookmark {bookmark_id}")
        self.instance_id = instance_id
        self.bookmark_id = bookmark_id


class BookmarkNotOpenError(WorkflowError):
    """The bookmark was already consumed or cancelled; `bookmark` is its current state."""

    code = "bookmark-not-open"

    def __init__(self, bookmark: Bookmark):
        super().__init__(f"bookmark {bookmark.id} is {bookmark.status}")
        self.bookmark = bookmark
        self.bookmark_id = bookmark.id


class WrongBookmarkKindError(WorkflowError):
    code = "wrong-bookmark-kind"

    def __init__(self, bookmark_id: str, kind: str, expected: str):
        super().__init__(f"bookmark {bookmark_id} is a {kind} bookmark, not a {expected}")
        self.bookmark_id = bookmark_id
        self.kind = kind


class InvalidOutcomeError(WorkflowError):
    code = "invalid-outcome"

    def __init__(self, bookmark_id: str, outcome: Any, allowed: list[str]):
        super().__init__(
            f"outcome {outcome!r} is not allowed for task {bookmark_id}; expected one of {allowed}"
        )
        self.bookmark_id = bookmark_id
        self.outcome = outcome
        self.allowed = allowed


class TaskAlreadyClaimedError(WorkflowError):
    """Someone else holds the task; it must be delegated (or released) first."""

    code = "task-already-claimed"

    def __init__(self, bookmark_id: str, claimed_by: str):
        super().__init__(f"task {bookmark_id} is already claimed by {claimed_by}")
        self.bookmark_id = bookmark_id
        self.claimed_by = claimed_by


class NotRecoverableError(WorkflowError):
    """Retry/skip asked of an instance that has no open incident and is not a retryable
    FAILED instance (`why` says which)."""

    code = "not-recoverable"

    def __init__(self, instance_id: Any, status: str, why: str):
        super().__init__(f"instance {instance_id} ({status}) cannot be recovered: {why}")
        self.instance_id = instance_id
        self.status = status
        self.why = why


class InvalidModificationError(WorkflowError):
    """An instance modification or migration request names what the graph does not have;
    `errors` are `{"path", "code", "message"}` with JSON paths into the request body."""

    code = "invalid-modification"

    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors


class NodeNotActiveError(WorkflowError):
    """A modification cancels a node that has no open work."""

    code = "node-not-active"

    def __init__(self, node_id: str, path: str):
        super().__init__(f"node {node_id} is not active ({path})")
        self.node_id = node_id
        self.path = path


class MigrationRefusedError(WorkflowError):
    """An instance cannot move to the target version; `reasons` say why. Nothing changed."""

    code = "migration-refused"

    def __init__(self, instance_id: Any, reasons: list[str]):
        super().__init__(f"instance {instance_id} cannot migrate: {'; '.join(reasons)}")
        self.instance_id = instance_id
        self.reasons = reasons


class MilestoneNotReachedError(WorkflowError):
    """A task or wait with a `milestone` acted on while the instance is not at it
    (`where`: "pending", never reached, or "passed"); nothing changed."""

    code = "milestone-not-reached"

    def __init__(self, bookmark_id: str, node_id: str, milestone: str, where: str):
        when = "has not been reached yet" if where == "pending" else "has already been passed"
        super().__init__(
            f"bookmark {bookmark_id} of node {node_id} can only be completed while the "
            f"instance is at milestone {milestone}, which {when}"
        )
        self.bookmark_id = bookmark_id
        self.node_id = node_id
        self.milestone = milestone
        self.where = where


class ForEachTooLargeError(WorkflowError):
    """A `for_each` node's `items` gave more items than WAYMARK_FOR_EACH_MAX_ITEMS while a
    caller waits for the command (an HTTP request): the command is refused, nothing stored.
    Reached asynchronously (a service task's result, a timer) the node fails instead.
    `path` is the JSON path of the node's `items` in the definition document."""

    code = "for-each-too-large"

    def __init__(self, node_id: str, path: str, items: int, limit: int):
        super().__init__(
            f"for_each of {node_id} has {items:,} items, more than the limit of {limit:,} "
            f"(WAYMARK_FOR_EACH_MAX_ITEMS): {path}"
        )
        self.node_id = node_id
        self.path = path
        self.items = items
        self.limit = limit
