"""Who may claim and complete a task, and separation of duties (four eyes).

A task may be claimed or completed by its assignee, by a holder of its candidate role (after
escalation: the escalation role too), or by an admin, whose act is then recorded as an
override. A task claimed by one person is completed by that person only (an admin may
override). A task without assignee and role is open to every caller who may run tasks.

Separation of duties: a task node's `distinct_from` names earlier task nodes (and
`"$starter"`, or `distinct_from_starter: true`): whoever acts on this task must not be the
instance's starter nor anyone who completed a named node. No role, admin included,
overrides it. The check runs at claim and at complete.

The actor of a command is recorded on the event (`actor`: kind, id, the key it came through,
whether it was an override); `completed_by`/`claimed_by` are the person's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.definition import Node
from domain.errors import WorkflowError
from domain.instance import WorkflowInstance
from domain.state import Bookmark, BookmarkKind, BookmarkStatus

ADMIN_ROLE = "admin"
STARTER = "$starter"


class TaskNotPermittedError(WorkflowError):
    """The caller is neither the task's assignee nor a holder of its candidate role."""

    code = "task-forbidden"

    def __init__(self, bookmark_id: str, actor: str, action: str):
        super().__init__(
            f"{actor} may not {action} task {bookmark_id}: it is for its assignee or "
            "a holder of its candidate role"
        )
        self.bookmark_id = bookmark_id


class TaskClaimedByAnotherError(WorkflowError):
    """The task is claimed by someone else: only they complete it."""

    code = "task-claimed-by-another"

    def __init__(self, bookmark_id: str, claimed_by: str):
        super().__init__(f"task {bookmark_id} is claimed by {claimed_by}: only they may act on it")
        self.bookmark_id = bookmark_id
        self.claimed_by = claimed_by


class SeparationOfDutiesError(WorkflowError):
    """Four eyes: the actor started the instance or approved a node this one is distinct
    from."""

    code = "separation-of-duties"

    def __init__(self, bookmark_id: str, actor: str, conflicts: list[str]):
        super().__init__(
            f"{actor} may not act on task {bookmark_id}: separation of duties "
            f"(already acted as {', '.join(conflicts)})"
        )
        self.bookmark_id = bookmark_id
        self.conflicts = conflicts


@dataclass(frozen=True)
class Actor:
    """Who is acting: a person (`kind` "user": a token's subject, or a key acting on behalf
    of them, `via_key`) or a service key (`kind` "key": `id` is the key's name)."""

    id: str
    kind: str = "key"
    roles: frozenset[str] = frozenset()
    via_key: str | None = None

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def payload(self, *, override: bool = False) -> dict[str, Any]:
        """The event's `actor`."""
        recorded: dict[str, Any] = {"kind": self.kind, "id": self.id}
        if self.via_key is not None:
            recorded["via_key"] = self.via_key
        if override:
            recorded["override"] = ADMIN_ROLE
        return recorded


def is_candidate(bookmark: Bookmark, actor: Actor) -> bool:
    """The actor is the assignee or holds a candidate role (the escalation role included)."""
    if bookmark.assignee is None and bookmark.role is None and bookmark.escalated_to is None:
        return True  # nobody in particular: anyone who may run tasks
    if bookmark.assignee is not None and bookmark.assignee == actor.id:
        return True
    roles = {r for r in (bookmark.role, bookmark.escalated_to) if r}
    return bool(roles & actor.roles)


def authorize_claim(bookmark: Bookmark, actor: Actor, claim_for: str) -> bool:
    """Raise unless `actor` may claim the task for `claim_for`; True when only as admin."""
    if claim_for == actor.id and is_candidate(bookmark, actor):
        return False
    if actor.is_admin:
        return True
    raise TaskNotPermittedError(bookmark.id, actor.id, "claim")


def authorize_complete(bookmark: Bookmark, actor: Actor, action: str = "complete") -> bool:
    """Raise unless `actor` may complete (or delegate) the task; True when only as admin (an
    override)."""
    holder = bookmark.claimed_by
    if holder is not None and holder != actor.id:
        if actor.is_admin:
            return True
        raise TaskClaimedByAnotherError(bookmark.id, holder)
    if holder == actor.id or is_candidate(bookmark, actor):
        return False
    if actor.is_admin:
        return True
    raise TaskNotPermittedError(bookmark.id, actor.id, action)


def check_duties(instance: WorkflowInstance, node: Node, bookmark_id: str, person: str) -> None:
    """Separation of duties for `person` acting on `node`'s task (see the module doc)."""
    named = node.get("distinct_from") or []
    conflicts = []
    wants_starter = node.get("distinct_from_starter") is True or STARTER in named
    if wants_starter and person in starters(instance):
        conflicts.append("the instance's starter")
    earlier = {n for n in named if n != STARTER}
    for other in instance.bookmarks.values():
        if (
            other.kind is BookmarkKind.TASK
            and other.node_id in earlier
            and other.status is BookmarkStatus.CONSUMED
            and other.completed_by == person
        ):
            conflicts.append(f"approver of {other.node_id}")
    if conflicts:
        raise SeparationOfDutiesError(bookmark_id, person, sorted(set(conflicts)))


def starters(instance: WorkflowInstance) -> set[str]:
    """The people (or keys) who started the instance: `started_by`'s user and key name."""
    started_by = instance.started_by or {}
    return {v for k in ("user", "key_name") if isinstance(v := started_by.get(k), str)}


def guard_claim(
    instance: WorkflowInstance, node: Node, bookmark: Bookmark, user: str, actor: Actor | None
) -> dict[str, Any] | None:
    """The checks of a claim for `user`; the event's `actor` (None: a trusted internal path,
    e.g. a Kafka command, checked for separation of duties only)."""
    check_duties(instance, node, bookmark.id, user)
    if actor is None:
        return None
    return actor.payload(override=authorize_claim(bookmark, actor, user))


def guard_delegate(bookmark: Bookmark, actor: Actor | None) -> dict[str, Any] | None:
    """Delegating is for whoever may complete the task (or an admin, an override)."""
    if actor is None:
        return None
    return actor.payload(override=authorize_complete(bookmark, actor, "delegate"))


def guard_complete(
    instance: WorkflowInstance,
    node: Node,
    bookmark: Bookmark,
    user: str | None,
    actor: Actor | None,
) -> dict[str, Any] | None:
    """The checks of a completion by `user` (the person; see `guard_claim`)."""
    if user is not None:
        check_duties(instance, node, bookmark.id, user)
    if actor is None:
        return None
    return actor.payload(override=authorize_complete(bookmark, actor))
