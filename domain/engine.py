"""Execution rules: how an instance moves through its definition's graph.

Each command decides here and records its decisions as events on the `WorkflowInstance`.
Side-effect-free nodes (gateway, set, parallel, join, end) run in the same command as the
event that woke the instance; it stops at every node that waits (a bookmark) and before
every side effect (a scheduled activity, executed later by a task worker).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from domain.definition import (
    APPROVAL_OUTCOMES,
    ERROR_OUTCOME,
    TIMEOUT_OUTCOME,
    Definition,
    Node,
    Route,
)
from domain.durations import parse_duration
from domain.errors import (
    BookmarkNotFoundError,
    BookmarkNotOpenError,
    InstanceNotActiveError,
    InvalidOutcomeError,
    TaskAlreadyClaimedError,
    WrongBookmarkKindError,
)
from domain.expressions import ExpressionError, evaluate, evaluate_mapping, render_value
from domain.instance import WorkflowInstance
from domain.retry import retry_policy_of
from domain.waits import open_waiting_bookmark

# A command that walks more nodes than this without suspending is looping forever.
MAX_STEPS_PER_COMMAND = 1_000


@dataclass(frozen=True)
class Env:
    """What a command needs from outside the domain, decided by the application layer."""

    now: datetime
    new_id: Callable[[], str]
    new_token: Callable[[], str]


class NodeFailure(Exception):
    """A runtime error at a node: recorded on the instance, or routed via `error`."""

    def __init__(self, node_id: str, message: str):
        super().__init__(message)
        self.node_id = node_id
        self.message = message


def start(instance: WorkflowInstance, definition: Definition, env: Env) -> None:
    """Run from the start node until the instance waits or ends."""
    _run(instance, definition, [(definition.start_node, None)], env)


def complete_task(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark_id: str,
    *,
    outcome: str | None,
    data: dict[str, Any] | None,
    comment: str | None,
    completed_by: str | None,
    env: Env,
) -> None:
    """A person decided an approval or finished a user task."""
    bookmark = open_bookmark(instance, bookmark_id, kinds=("task",))
    node = definition.nodes[bookmark["node_id"]]
    outcome = _check_outcome(node, bookmark_id, outcome)
    instance._task_completed(bookmark_id, outcome, data, comment, completed_by, env.now)
    result = {"outcome": outcome, "data": data or {}, "comment": comment, "by": completed_by}
    instance._node_completed(node.id, outcome, result, node.get("result_var"))
    _follow(instance, definition, node, outcome, env)


def resume(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark_id: str,
    *,
    payload: Any,
    source: str,
    env: Env,
) -> None:
    """Resume a wait or timer with a payload (bookmark id, callback token or event)."""
    # Tasks are completed through the task queue, where their form data is validated.
    bookmark = open_bookmark(instance, bookmark_id, kinds=("wait", "timer"))
    node = definition.nodes[bookmark["node_id"]]
    instance._bookmark_resumed(bookmark_id, source, payload, env.now)
    instance._node_completed(node.id, None, payload, node.get("result_var"))
    _follow(instance, definition, node, None, env)


def fire_timer(
    instance: WorkflowInstance, definition: Definition, bookmark_id: str, env: Env
) -> None:
    """A due time passed: a timer node continues, a wait takes its `timeout` route."""
    bookmark = open_bookmark(instance, bookmark_id, kinds=("timer", "wait"))
    node = definition.nodes[bookmark["node_id"]]
    instance._bookmark_resumed(bookmark_id, "timer", None, env.now)
    outcome = TIMEOUT_OUTCOME if bookmark["kind"] == "wait" else None
    instance._node_completed(node.id, outcome, None, None)
    _follow(instance, definition, node, outcome, env)


def child_finished(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark_id: str,
    *,
    status: str,
    output: Any,
    error: dict[str, Any] | None,
    env: Env,
) -> None:
    """The child instance of a `sub_workflow` node ended."""
    bookmark = open_bookmark(instance, bookmark_id, kinds=("child",))
    node = definition.nodes[bookmark["node_id"]]
    instance._bookmark_resumed(bookmark_id, f"child:{bookmark['child_id']}", output, env.now)
    if status == "completed":
        instance._node_completed(node.id, None, output, node.get("result_var"))
        _follow(instance, definition, node, None, env)
        return
    message = f"child instance {bookmark['child_id']} {status}"
    if error and error.get("message"):
        message += f": {error['message']}"
    _fail_node(instance, definition, node, message, env)


def record_activity_result(
    instance: WorkflowInstance,
    definition: Definition,
    activity_id: str,
    *,
    attempt: int,
    ok: bool,
    output: Any,
    error: str | None,
    retryable: bool,
    env: Env,
) -> bool:
    """Record a service task's outcome; False when it is stale (already recorded)."""
    activity = instance.activities.get(activity_id)
    if activity is None or activity["status"] != "scheduled" or activity["attempt"] != attempt:
        return False
    node = definition.nodes[activity["node_id"]]
    if ok:
        instance._activity_completed(activity_id, attempt, output)
        instance._node_completed(node.id, None, output, node.get("result_var"))
        _follow(instance, definition, node, None, env)
        return True
    message = error or "action failed"
    policy = retry_policy_of(node)
    if retryable and attempt < policy.max_attempts:
        number = activity["attempt_number"] + 1
        instance._activity_retry_scheduled(
            activity_id,
            attempt,
            message,
            attempt + 1,
            number,
            env.now + timedelta(seconds=policy.delay_before(attempt + 1)),
            f"{instance.id}:{node.id}:{number}",
        )
        return True
    instance._activity_failed(activity_id, attempt, message)
    _fail_node(instance, definition, node, f"{message} (after {attempt} attempt(s))", env)
    return True


def cancel(instance: WorkflowInstance, reason: str, env: Env) -> None:
    """Cancel a running or suspended instance and everything it waits on."""
    _require_active(instance)
    _close_open_work(instance, f"instance cancelled: {reason}", env)
    instance._cancelled(reason, env.now)


def claim_task(instance: WorkflowInstance, bookmark_id: str, user: str) -> None:
    bookmark = open_bookmark(instance, bookmark_id, kinds=("task",))
    holder = bookmark.get("claimed_by")
    if holder == user:
        return  # claiming again is a no-op, so a retried claim is safe
    if holder:
        raise TaskAlreadyClaimedError(bookmark_id, holder)
    instance._task_claimed(bookmark_id, user)


def delegate_task(
    instance: WorkflowInstance, bookmark_id: str, assignee: str, by: str | None
) -> None:
    open_bookmark(instance, bookmark_id, kinds=("task",))
    instance._task_delegated(bookmark_id, assignee, by)


def open_bookmark(
    instance: WorkflowInstance, bookmark_id: str, kinds: tuple[str, ...]
) -> dict[str, Any]:
    """The open bookmark, or the error a client should see."""
    bookmark = instance.bookmarks.get(bookmark_id)
    if bookmark is None:
        raise BookmarkNotFoundError(instance.id, bookmark_id)
    if bookmark["status"] != "open":
        raise BookmarkNotOpenError(bookmark)
    _require_active(instance)
    if bookmark["kind"] not in kinds:
        raise WrongBookmarkKindError(bookmark_id, bookmark["kind"], "/".join(kinds))
    return bookmark


# --- walking the graph ---------------------------------------------------------------------


def _run(
    instance: WorkflowInstance,
    definition: Definition,
    targets: list[tuple[str, int | None]],
    env: Env,
) -> None:
    queue = deque(targets)
    steps = 0
    while queue and not instance.is_ended:
        node_id, via = queue.popleft()
        steps += 1
        node = definition.nodes[node_id]
        if steps > MAX_STEPS_PER_COMMAND:
            _fail(instance, node.id, "step limit exceeded: the graph loops without waiting", env)
            return
        instance._node_entered(node.id, node.type, via)
        try:
            queue.extend(_enter(instance, definition, node, via, env))
        except NodeFailure as failure:
            next_targets = _error_route(instance, definition, node, failure.message, env)
            queue.extend(next_targets)


def _enter(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    via: int | None,
    env: Env,
) -> list[tuple[str, int | None]]:
    """Apply one node; return the nodes to enter next (none when it waits or ends)."""
    ctx = instance.context(env.now)
    kind = node.type
    if kind == "gateway":
        return _next(definition, node, None, ctx)
    if kind == "set":
        values = _eval(node, lambda: evaluate_mapping(node.get("variables", {}), ctx))
        instance._variables_set(node.id, values)
        return _next(definition, node, None, instance.context(env.now))
    if kind == "parallel":  # the validator admits no conditions here: every branch runs
        return [(r.target, r.index) for r in definition.outgoing(node.id)]
    if kind == "join":
        return _arrive_at_join(instance, definition, node, via, ctx)
    if kind == "end":
        _end(instance, node, ctx, env)
        return []
    if kind == "service_task":
        _schedule_activity(instance, node, ctx, env)
        return []
    open_waiting_bookmark(instance, node, ctx, env, _eval)
    return []


def _arrive_at_join(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    via: int | None,
    ctx: dict[str, Any],
) -> list[tuple[str, int | None]]:
    if via is not None and via not in instance.join_arrivals.get(node.id, []):
        instance._join_arrived(node.id, via)
    arrived = set(instance.join_arrivals.get(node.id, []))
    expected = {r.index for r in definition.incoming(node.id)}
    if not expected <= arrived:
        return []
    instance._join_completed(node.id)
    return _next(definition, node, None, ctx)


def _end(instance: WorkflowInstance, node: Node, ctx: dict[str, Any], env: Env) -> None:
    output = _eval(node, lambda: evaluate_mapping(node.get("output", {}), ctx))
    _close_open_work(instance, f"instance ended at {node.id}", env)
    if node.get("status", "completed") == "failed":
        message = node.get("error") or f"ended at failed end node {node.id}"
        instance._failed(
            node.id, {"message": message, "node_id": node.id, "output": output}, env.now
        )
    else:
        instance._completed(node.id, output, env.now)


def _schedule_activity(
    instance: WorkflowInstance, node: Node, ctx: dict[str, Any], env: Env
) -> None:
    action = _eval(node, lambda: render_value(node.get("action", {}), ctx))
    number = instance.node_attempts.get(node.id, 0) + 1
    timeout = parse_duration(node.get("timeout", "PT2M")).total_seconds()
    instance._activity_scheduled(
        {
            "id": env.new_id(),
            "node_id": node.id,
            "attempt": 1,
            "attempt_number": number,
            "action": action,
            "timeout_seconds": timeout,
            "run_after": env.now,
            "idempotency_key": f"{instance.id}:{node.id}:{number}",
        }
    )


def _follow(
    instance: WorkflowInstance, definition: Definition, node: Node, outcome: str | None, env: Env
) -> None:
    """Leave a node that finished waiting, taking the route for its outcome."""
    try:
        targets = _next(definition, node, outcome, instance.context(env.now))
    except NodeFailure as failure:
        targets = _error_route(instance, definition, node, failure.message, env)
    _run(instance, definition, targets, env)


def _fail_node(
    instance: WorkflowInstance, definition: Definition, node: Node, message: str, env: Env
) -> None:
    _run(instance, definition, _error_route(instance, definition, node, message, env), env)


def _error_route(
    instance: WorkflowInstance, definition: Definition, node: Node, message: str, env: Env
) -> list[tuple[str, int | None]]:
    """Follow the node's `error` route if it has one; otherwise fail the instance."""
    for route in definition.outgoing(node.id):
        if route.outcome == ERROR_OUTCOME:
            instance._node_completed(node.id, ERROR_OUTCOME, {"error": message}, None)
            return [(route.target, route.index)]
    _fail(instance, node.id, message, env)
    return []


def _fail(instance: WorkflowInstance, node_id: str, message: str, env: Env) -> None:
    _close_open_work(instance, f"instance failed at {node_id}", env)
    instance._failed(node_id, {"message": message, "node_id": node_id}, env.now)


def _close_open_work(instance: WorkflowInstance, reason: str, env: Env) -> None:
    for bookmark in instance.open_bookmarks():
        instance._bookmark_cancelled(bookmark["id"], reason, env.now)
    for activity in instance.scheduled_activities():
        instance._activity_cancelled(activity["id"])


def _next(
    definition: Definition, node: Node, outcome: str | None, ctx: dict[str, Any]
) -> list[tuple[str, int | None]]:
    route = select_route(definition, node, outcome, ctx)
    if route is None:
        shown = f" for outcome {outcome!r}" if outcome else ""
        raise NodeFailure(node.id, f"no route from {node.id}{shown} matched and none is default")
    return [(route.target, route.index)]


def select_route(
    definition: Definition, node: Node, outcome: str | None, ctx: dict[str, Any]
) -> Route | None:
    """First route whose outcome and condition match, else the default route."""
    routes = definition.outgoing(node.id)
    for route in routes:
        if route.default:
            continue
        if route.outcome != outcome and (route.outcome is not None or outcome in _EXPLICIT):
            continue
        if route.condition and not _truthy(node, route, ctx):
            continue
        return route
    for route in routes:
        if route.default and (
            route.outcome == outcome or (route.outcome is None and outcome not in _EXPLICIT)
        ):
            return route
    return None


# Outcomes that only ever follow a route naming them, never a plain route.
_EXPLICIT = frozenset({ERROR_OUTCOME, TIMEOUT_OUTCOME})


def _truthy(node: Node, route: Route, ctx: dict[str, Any]) -> bool:
    assert route.condition is not None
    return bool(_eval(node, lambda: evaluate(route.condition or "", ctx)))


def _eval(node: Node, compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except ExpressionError as e:
        raise NodeFailure(node.id, f"expression error at {node.id}: {e}") from e
    except ValueError as e:  # a bad duration or timestamp computed at run time
        raise NodeFailure(node.id, f"error at {node.id}: {e}") from e


def _check_outcome(node: Node, bookmark_id: str, outcome: str | None) -> str:
    if node.type == "approval":
        allowed = list(APPROVAL_OUTCOMES)
        if outcome not in allowed:
            raise InvalidOutcomeError(bookmark_id, outcome, allowed)
        return str(outcome)
    allowed = list(node.get("outcomes") or ["completed"])
    if outcome is None:
        return allowed[0]
    if outcome not in allowed:
        raise InvalidOutcomeError(bookmark_id, outcome, allowed)
    return outcome


def _require_active(instance: WorkflowInstance) -> None:
    if instance.is_ended:
        raise InstanceNotActiveError(instance.id, instance.status)
