"""Continuing the graph after a `for_each` item, a batch, an undo step or a withdrawn task.

`domain.engine.multi` and `domain.engine.compensation` decide without walking the graph
(`domain.engine.traversal` calls them); the commands call these functions, which record
the decision and then follow the node's route or fail it.
"""

from __future__ import annotations

from typing import Any

from domain.definition import CANCELLED_OUTCOME, Definition, Node
from domain.engine import compensation, multi
from domain.engine.traversal import fail_node, finish_end, follow, run
from domain.env import CommandEnv, NodeFailure
from domain.instance import WorkflowInstance
from domain.state import Activity, Bookmark
from domain.values import clean_text


def item_finished(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    index: int,
    result: Any,
    env: CommandEnv,
) -> None:
    """One item of a `for_each` node finished with `result`."""
    try:
        done = multi.item_done(instance, node, index, result, env)
    except NodeFailure as failure:
        item_failed(instance, definition, node, failure.message, env)
        return
    if done:
        compensation.register(instance, node, instance.node_results.get(node.id))
        follow(instance, definition, node, None, env)


def item_failed(
    instance: WorkflowInstance, definition: Definition, node: Node, message: str, env: CommandEnv
) -> None:
    """An item failed for good: the other items are cancelled and the node fails."""
    multi.abort(instance, node, f"for_each item failed: {message}", env)
    fail_node(instance, definition, node, message, env)


def batch_recorded(
    instance: WorkflowInstance,
    definition: Definition,
    activity: Activity,
    *,
    ok: bool,
    error: str | None,
    env: CommandEnv,
) -> None:
    """The no-op batch activity ran: start the next items (whatever it answered)."""
    if ok:
        instance.complete_activity(activity.id, activity.attempt, None)
    else:
        instance.fail_activity(activity.id, activity.attempt, clean_text(error or "failed"))
    node = definition.nodes[activity.node_id]
    if node.id not in instance.for_each:
        return
    try:
        multi.start_more(instance, node, env)
    except NodeFailure as failure:
        item_failed(instance, definition, node, failure.message, env)


def compensation_recorded(
    instance: WorkflowInstance,
    definition: Definition,
    activity: Activity,
    *,
    ok: bool,
    output: Any,
    error: str | None,
    retryable: bool,
    env: CommandEnv,
) -> None:
    """One undo step ran: schedule the next, or continue / fail the node of the run."""
    by = definition.nodes[activity.compensation_of or ""]
    try:
        verdict = compensation.record(
            instance,
            definition,
            activity,
            ok=ok,
            output=output,
            error=error,
            retryable=retryable,
            env=env,
        )
    except NodeFailure as failure:
        verdict = f"failed: {failure.message}"
    if verdict is None:
        return
    if verdict != "done":
        fail_node(instance, definition, by, verdict.removeprefix("failed: "), env)
        return
    if by.type == "end":
        try:
            finish_end(instance, definition, by, env)
        except NodeFailure as failure:
            fail_node(instance, definition, by, failure.message, env)
        return
    instance.complete_node(by.id, None, None, None)
    follow(instance, definition, by, None, env)


def task_withdrawn(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark: Bookmark,
    *,
    reason: str | None,
    by: str | None,
    env: CommandEnv,
) -> None:
    """An operator withdrew an open task: its node's `cancelled` route, else a node failure.

    A `for_each` item's task counts as that item finished with outcome `cancelled`; the
    node goes on with the others.
    """
    node = definition.nodes[bookmark.node_id]
    text = f"task {bookmark.id} withdrawn" + (f" by {by}" if by else "")
    text += f": {reason}" if reason else ""
    instance.cancel_bookmark(bookmark.id, text, env.now)
    result: dict[str, Any] = {"outcome": CANCELLED_OUTCOME, "data": {}, "comment": reason, "by": by}
    if bookmark.item_index is not None and node.id in instance.for_each:
        item_finished(instance, definition, node, bookmark.item_index, result, env)
        return
    route = next((r for r in definition.outgoing(node.id) if r.outcome == CANCELLED_OUTCOME), None)
    if route is None:
        fail_node(instance, definition, node, text, env)
        return
    instance.complete_node(node.id, CANCELLED_OUTCOME, result, node.get("result_var"))
    run(instance, definition, [(route.target, route.index)], env)
