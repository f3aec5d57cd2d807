"""Milestones (WCP-18): a node that may only act while another branch sits at a milestone.

A `user_task`, `approval` or `wait` with `"milestone": "<node id>"` (the milestone: a node
that waits with a bookmark) opens as usual, but its task can only be completed (its wait
only resumed) while the instance has an open bookmark at the milestone node; otherwise the
command is refused (`MilestoneNotReachedError`, a 409) and nothing changes.

The milestone is *passed* when the latest bookmark the instance opened at the milestone
node is no longer open (resumed, completed, timed out or cancelled). From then on the
dependent node can never act: after every walk the engine withdraws each open dependent
whose milestone is passed (`due`), also one that opens after the milestone was passed. A
withdrawn dependent's bookmark is cancelled; it follows its `cancelled` route if it has
one, else it is *skipped*: it completes without an outcome (result
`{"withdrawn": true, "milestone": ...}`) and takes its route without an outcome, so the
branch goes on (publish requires one of the two routes).

Everything is decided from bookmarks the events built, so a replay rebuilds the same state:
the withdrawal itself is a `BookmarkCancelled` and a `NodeCompleted` event.
"""

from __future__ import annotations

from typing import Any

from domain.definition import CANCELLED_OUTCOME, Definition, Node, Route
from domain.env import CommandEnv
from domain.errors import MilestoneNotReachedError
from domain.instance import WorkflowInstance
from domain.state import Bookmark

FIELD = "milestone"
# The node types that may depend on a milestone, and those that can be one (they wait).
DEPENDENT_TYPES = ("user_task", "approval", "wait")
MILESTONE_TYPES = ("user_task", "approval", "wait", "timer", "sub_workflow")


def milestone_of(node: Node) -> str | None:
    value = node.get(FIELD)
    return value if isinstance(value, str) else None


def state(instance: WorkflowInstance, milestone: str) -> str:
    """`"reached"` (a bookmark open there), `"passed"` (the latest one closed) or
    `"pending"` (never reached)."""
    latest: Bookmark | None = None
    for bookmark in instance.bookmarks.values():  # in the order they were created
        if bookmark.node_id == milestone and bookmark.boundary_of is None:
            if bookmark.is_open:
                return "reached"
            latest = bookmark
    return "pending" if latest is None else "passed"


def guard(instance: WorkflowInstance, node: Node, bookmark: Bookmark) -> None:
    """Refuse completing or resuming `bookmark` of `node` unless its milestone is reached."""
    milestone = milestone_of(node)
    if milestone is None or bookmark.boundary_of is not None:
        return
    where = state(instance, milestone)
    if where != "reached":
        raise MilestoneNotReachedError(bookmark.id, node.id, milestone, where)


def due(instance: WorkflowInstance, definition: Definition) -> list[tuple[Bookmark, Node]]:
    """The open dependents whose milestone is passed, in the order they opened."""
    found: list[tuple[Bookmark, Node]] = []
    if not any(FIELD in node.config for node in definition.nodes.values()):
        return found  # the common case: no bookmark to look at
    for bookmark in instance.open_bookmarks():
        if bookmark.boundary_of is not None or bookmark.item_index is not None:
            continue
        node = definition.nodes.get(bookmark.node_id)
        milestone = milestone_of(node) if node is not None else None
        if node is not None and milestone and state(instance, milestone) == "passed":
            found.append((bookmark, node))
    return found


def withdraw(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark: Bookmark,
    node: Node,
    env: CommandEnv,
) -> Route | None:
    """Cancel the dependent's bookmark and complete its node; return its `cancelled` route
    (None: it has none and is skipped, leaving by its route without an outcome)."""
    milestone = milestone_of(node)
    reason = f"withdrawn: milestone {milestone} was passed"
    instance.cancel_bookmark(bookmark.id, reason, env.now)
    route = next((r for r in definition.outgoing(node.id) if r.outcome == CANCELLED_OUTCOME), None)
    outcome = CANCELLED_OUTCOME if route is not None else None
    result: dict[str, Any] = {"withdrawn": True, "milestone": milestone, "outcome": outcome}
    instance.complete_node(node.id, outcome, result, node.get("result_var"))
    return route
