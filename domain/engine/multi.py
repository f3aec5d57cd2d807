"""Multi-instance nodes (`for_each`, WCP-12/13/14): one task, activity or child per item.

A `service_task`, `user_task`, `approval` or `sub_workflow` node with
`"for_each": {"items": <expr>, "as": "item", "mode": "parallel"|"sequential",
"completion": <expr>}` evaluates its items once (`ForEachStarted` stores them, so a replay
never re-evaluates), then opens one activity/bookmark per item, each tagged with its
`item_index`; templates see the item under its `as` name and its position as `index`.

Parallel mode starts at most `ForEachLimits.batch` items per command; when more remain it
schedules a no-op `for_each_batch` activity whose recording (a command of its own, run by
the task worker) starts the next batch. Sequential mode opens the next item when the last
one finished. Each finished item is a `ForEachItemCompleted`; when all finished, or the
`completion` expression holds (it sees `results`, `completed`, `total`, `approvals`,
`rejections`), the items still open are cancelled, `ForEachCompleted` is recorded and the
node completes with the results in item order (`null` for items that never finished).

Boundary events (`domain.engine.boundary`) attach to the run (`host_id`): an interrupting
one cancels every open item (`close_items`) and ends the run.

This module decides only; `domain.engine.continuations` continues the graph afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from domain.durations import parse_duration
from domain.engine.waits import open_waiting_bookmark
from domain.env import CommandEnv, NodeFailure
from domain.errors import ForEachTooLargeError
from domain.expressions.evaluator import ExpressionError, evaluate, render_value
from domain.state import BATCH_PURPOSE, Activity, ForEachState
from domain.values import UnstorableValueError, clean_value

if TYPE_CHECKING:
    from domain.definition import Definition, Node
    from domain.instance import WorkflowInstance

FOR_EACH_TYPES = ("service_task", "user_task", "approval", "sub_workflow")
MODES = ("parallel", "sequential")
# Names an item may not take: the context's own, and the index.
RESERVED_NAMES = frozenset(
    {"input", "vars", "nodes", "instance", "now", "index", "results", "completed", "total"}
)
# How long the no-op batch activity may take (it does nothing).
_BATCH_TIMEOUT_SECONDS = 30.0


def is_multi(node: Node) -> bool:
    return node.type in FOR_EACH_TYPES and isinstance(node.get("for_each"), dict)


def enter(instance: WorkflowInstance, definition: Definition, node: Node, env: CommandEnv) -> bool:
    """Start the node's items; True when it completed at once (an empty list).

    More items than `WAYMARK_FOR_EACH_MAX_ITEMS`: a command a caller waits for is refused
    (`ForEachTooLargeError`, nothing of it stored); a worker's command fails the node."""
    spec = node.get("for_each")
    ctx = instance.context(env.now)
    items = _guard(node, lambda: evaluate(spec["items"], ctx))
    if not isinstance(items, list):
        kind = type(items).__name__
        raise NodeFailure(node.id, f"for_each items of {node.id} gave {kind}, not a list")
    limit = env.for_each.max_items
    if len(items) > limit:
        if env.caller_waits:
            raise ForEachTooLargeError(node.id, items_path(definition, node), len(items), limit)
        raise NodeFailure(
            node.id,
            f"for_each of {node.id} has {len(items):,} items, more than the limit of "
            f"{limit:,} (WAYMARK_FOR_EACH_MAX_ITEMS)",
        )
    try:
        items = clean_value(items, f"the for_each items of {node.id}")
    except UnstorableValueError as e:
        raise NodeFailure(node.id, f"error at {node.id}: {e}") from e
    run = instance.node_attempts.get(node.id, 0) + 1
    instance.start_for_each(node.id, items, spec.get("mode", "parallel"), run)
    if not items:
        finish(instance, node, env)
        return True
    try:
        start_more(instance, node, env)
    except NodeFailure as failure:  # an item's template failed: nothing stays open
        abort(instance, node, failure.message, env)
        raise
    return False


def items_path(definition: Definition, node: Node) -> str:
    """The JSON path of the node's `for_each.items` in its definition document."""
    for position, raw in enumerate(definition.document.get("nodes") or ()):
        if isinstance(raw, dict) and raw.get("id") == node.id:
            return f"$.nodes[{position}].for_each.items"
    return f"$.nodes[?(@.id=={node.id!r})].for_each.items"  # a model built without a document


def host_id(node_id: str, run: int) -> str:
    """What the boundary events of a `for_each` node are attached to: the run of the node
    (its items open and close one by one; the boundaries last as long as the run)."""
    return f"for_each:{node_id}:{run}"


def is_running(instance: WorkflowInstance, node_id: str, host: str) -> bool:
    """Whether `host` (a `host_id`) names the node's for_each run that is still open.

    Only the prefix and the run are compared: a migration that renames the node
    (`domain.renames`) leaves the old id in the boundary's `boundary_of`."""
    state = instance.for_each.get(node_id)
    prefix, _, run = host.rpartition(":")
    return state is not None and prefix.startswith("for_each:") and run == str(state.run)


def start_more(instance: WorkflowInstance, node: Node, env: CommandEnv) -> None:
    """Open the next items: one (sequential, none open) or up to a batch (parallel)."""
    state = instance.for_each[node.id]
    first, total = state.started, len(state.items)
    if state.mode == "sequential":
        count = 1 if first == len(state.results) and first < total else 0
    else:
        count = min(env.for_each.batch, total - first)
    for index in range(first, first + count):
        _open_item(instance, node, state, index, env)
    if state.mode == "parallel" and state.started < total:
        _schedule_batch(instance, node, state, env)


def item_done(
    instance: WorkflowInstance, node: Node, index: int, result: Any, env: CommandEnv
) -> bool:
    """Record one item's result; True when the node completed (the caller follows it)."""
    state = instance.for_each[node.id]
    instance.complete_for_each_item(node.id, index, result)
    if len(state.results) == len(state.items) or _completion_holds(instance, node, state, env):
        finish(instance, node, env)
        return True
    if state.mode == "sequential":
        start_more(instance, node, env)
    return False


def finish(instance: WorkflowInstance, node: Node, env: CommandEnv) -> None:
    """Cancel what is still open and complete the node with the results in item order."""
    state = instance.for_each[node.id]
    results = state.results_in_order()
    completed = len(state.results)
    cancelled = close_items(instance, node, "for_each completion holds", env)
    instance.complete_for_each(node.id, completed, cancelled)
    instance.complete_node(node.id, None, results, node.get("result_var"))


def abort(instance: WorkflowInstance, node: Node, reason: str, env: CommandEnv) -> None:
    """An item failed: cancel the others; the caller fails the node."""
    state = instance.for_each.get(node.id)
    if state is None:
        return
    cancelled = close_items(instance, node, reason, env)
    instance.complete_for_each(node.id, len(state.results), cancelled)


def close_items(instance: WorkflowInstance, node: Node, reason: str, env: CommandEnv) -> int:
    """Cancel the node's open item bookmarks/activities and its batch; how many items."""
    cancelled = 0
    for bookmark in instance.open_bookmarks():
        if bookmark.node_id == node.id and bookmark.item_index is not None:
            instance.cancel_bookmark(bookmark.id, reason, env.now)
            cancelled += 1
    for activity in instance.scheduled_activities():
        if activity.node_id == node.id and (
            activity.item_index is not None or activity.purpose == BATCH_PURPOSE
        ):
            instance.cancel_activity(activity.id)
            cancelled += activity.item_index is not None
    return cancelled


def retry_identity(activity: Activity, attempt: int) -> tuple[int, str]:
    """An item's retry keeps the run's number; its key ends in the next attempt."""
    return activity.attempt_number, f"{activity.idempotency_key.rpartition(':')[0]}:{attempt}"


def _open_item(
    instance: WorkflowInstance, node: Node, state: ForEachState, index: int, env: CommandEnv
) -> None:
    ctx = instance.context(env.now)
    ctx[node.get("for_each").get("as", "item")] = state.items[index]
    ctx["index"] = index
    if node.type == "service_task":
        _schedule_item(instance, node, state, index, ctx, env)
        return
    guard = _guard_child_input if node.type == "sub_workflow" else _guard
    open_waiting_bookmark(instance, node, ctx, env, guard, extra={"item_index": index})


def _schedule_item(
    instance: WorkflowInstance,
    node: Node,
    state: ForEachState,
    index: int,
    ctx: dict[str, Any],
    env: CommandEnv,
) -> None:
    action = _guard_clean(
        node, lambda: render_value(node.get("action", {}), ctx), f"the action of {node.id}"
    )
    instance.schedule_activity(
        {
            "id": env.new_id(),
            "node_id": node.id,
            "attempt": 1,
            "attempt_number": state.run,
            "action": action,
            "timeout_seconds": parse_duration(node.get("timeout", "PT2M")).total_seconds(),
            "run_after": env.now,
            # instance:node:run:item<index>:attempt — unique per item and attempt
            "idempotency_key": f"{instance.id}:{node.id}:{state.run}:item{index}:1",
            "item_index": index,
        }
    )


def _schedule_batch(
    instance: WorkflowInstance, node: Node, state: ForEachState, env: CommandEnv
) -> None:
    instance.schedule_activity(
        {
            "id": env.new_id(),
            "node_id": node.id,
            "attempt": 1,
            "attempt_number": state.run,
            "action": {"type": "noop"},
            "timeout_seconds": _BATCH_TIMEOUT_SECONDS,
            "run_after": env.now,
            "idempotency_key": f"{instance.id}:{node.id}:{state.run}:batch{state.started}",
            "purpose": BATCH_PURPOSE,
        }
    )


def _completion_holds(
    instance: WorkflowInstance, node: Node, state: ForEachState, env: CommandEnv
) -> bool:
    source = node.get("for_each").get("completion")
    if not source:
        return False
    ctx = instance.context(env.now)
    ctx.update(summary(state))
    return bool(_guard(node, lambda: evaluate(source, ctx)))


def summary(state: ForEachState) -> dict[str, Any]:
    """What a `completion` expression sees besides the usual context."""
    done = [state.results[i] for i in sorted(state.results)]
    outcomes = [r.get("outcome") for r in done if isinstance(r, dict)]
    return {
        "results": state.results_in_order(),
        "completed": len(done),
        "total": len(state.items),
        "approvals": outcomes.count("approved"),
        "rejections": outcomes.count("rejected"),
    }


def _guard(node: Node, compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except ExpressionError as e:
        raise NodeFailure(node.id, f"expression error at {node.id}: {e}") from e
    except ValueError as e:
        raise NodeFailure(node.id, f"error at {node.id}: {e}") from e


def _guard_clean(node: Node, compute: Callable[[], Any], what: str) -> Any:
    value = _guard(node, compute)
    try:
        return clean_value(value, what)
    except UnstorableValueError as e:
        raise NodeFailure(node.id, f"error at {node.id}: {e}") from e


def _guard_child_input(node: Node, compute: Callable[[], Any]) -> Any:
    return _guard_clean(node, compute, f"the input of the child of {node.id}")
