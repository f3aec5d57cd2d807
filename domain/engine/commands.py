"""Execution rules: how an instance moves through its definition's graph.

Each command decides here and records its decisions as events on the `WorkflowInstance`.
Side-effect-free nodes (gateway, set, parallel, join, end) run in the same command as the
event that woke the instance; it stops at every node that waits (a bookmark) and before
every side effect (a scheduled activity, executed later by a task worker). The walk itself
is in `domain.engine.traversal`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from domain.definition import (
    APPROVAL_OUTCOMES,
    TIMEOUT_OUTCOME,
    Definition,
    Node,
    RetryPolicy,
)
from domain.engine import (
    boundary,
    compensation,
    continuations,
    event_gateway,
    milestones,
    multi,
    task_access,
)
from domain.engine.retry import retry_policy_of
from domain.engine.sla import (
    SLA_PASSED,
    escalation_target,
    has_timeout_route,
    schedule_notification,
)
from domain.engine.traversal import (
    close_open_work,
    fail_node,
    follow,
    run,
    select_route,
)
from domain.engine.waits import due_after
from domain.env import CommandEnv
from domain.errors import (
    BookmarkNotFoundError,
    BookmarkNotOpenError,
    InstanceNotActiveError,
    InvalidOutcomeError,
    TaskAlreadyClaimedError,
    WrongBookmarkKindError,
)
from domain.instance import WorkflowInstance
from domain.state import BATCH_PURPOSE, COMPENSATE_PURPOSE, Activity, Bookmark, BookmarkKind
from domain.values import UnstorableValueError, clean_text, clean_value

__all__ = ["select_route"]


def start(instance: WorkflowInstance, definition: Definition, env: CommandEnv) -> None:
    """Run from the start node until the instance waits or ends."""
    run(instance, definition, [(definition.start_node, None)], env)


def complete_task(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark_id: str,
    *,
    outcome: str | None,
    data: dict[str, Any] | None,
    comment: str | None,
    completed_by: str | None,
    env: CommandEnv,
    actor: task_access.Actor | None = None,
) -> None:
    """A person decided an approval or finished a user task (`task_access`: who may)."""
    bookmark = open_bookmark(instance, bookmark_id, kinds=(BookmarkKind.TASK,))
    node = definition.nodes[bookmark.node_id]
    acted = task_access.guard_complete(instance, node, bookmark, completed_by, actor)
    outcome = _check_outcome(node, bookmark_id, outcome)
    milestones.guard(instance, node, bookmark)  # WCP-18: only while at its milestone
    # What a caller sends is refused (UnstorableValueError), the task left open.
    data = clean_value(data, f"the data completing task {bookmark_id}")
    comment = clean_value(comment, f"the comment on task {bookmark_id}")
    completed_by = clean_value(completed_by, f"the user completing task {bookmark_id}")
    instance.complete_task(bookmark_id, outcome, data, comment, completed_by, env.now, acted)
    result = {"outcome": outcome, "data": data or {}, "comment": comment, "by": completed_by}
    if bookmark.item_index is not None:  # one item of a for_each node
        continuations.item_finished(instance, definition, node, bookmark.item_index, result, env)
        return
    instance.complete_node(node.id, outcome, result, node.get("result_var"))
    follow(instance, definition, node, outcome, env)


def resume(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark_id: str,
    *,
    payload: Any,
    source: str,
    env: CommandEnv,
) -> None:
    """Resume a wait or timer with a payload (bookmark id, callback token or event)."""
    # Tasks are completed through the task queue, where their form data is validated.
    bookmark = open_bookmark(instance, bookmark_id, kinds=(BookmarkKind.WAIT, BookmarkKind.TIMER))
    node = definition.nodes[bookmark.node_id]
    payload = clean_value(payload, f"the payload resuming bookmark {bookmark_id}")
    source = clean_text(source, 200)
    milestones.guard(instance, node, bookmark)  # WCP-18: only while at its milestone
    if bookmark.boundary_of is not None:
        targets = boundary.fire(
            instance, definition, bookmark, payload=payload, source=source, env=env
        )
        run(instance, definition, targets, env)
        return
    event_gateway.decide(instance, bookmark, env)
    instance.resume_bookmark(bookmark_id, source, payload, env.now)
    instance.complete_node(node.id, None, payload, node.get("result_var"))
    follow(instance, definition, node, None, env)


def fire_timer(
    instance: WorkflowInstance, definition: Definition, bookmark_id: str, env: CommandEnv
) -> None:
    """A due time passed: a timer node continues, a wait takes its `timeout` route."""
    bookmark = open_bookmark(instance, bookmark_id, kinds=(BookmarkKind.TIMER, BookmarkKind.WAIT))
    node = definition.nodes[bookmark.node_id]
    if bookmark.boundary_of is not None:
        targets = boundary.fire(
            instance, definition, bookmark, payload=None, source="timer", env=env
        )
        run(instance, definition, targets, env)
        return
    event_gateway.decide(instance, bookmark, env)
    instance.resume_bookmark(bookmark_id, "timer", None, env.now)
    outcome = TIMEOUT_OUTCOME if bookmark.kind is BookmarkKind.WAIT else None
    instance.complete_node(node.id, outcome, None, None)
    follow(instance, definition, node, outcome, env)


def escalate(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark_id: str,
    env: CommandEnv,
    *,
    escalation_enabled: bool = True,
) -> str | None:
    """A task's SLA passed: take its `timeout` route, or mark it overdue and escalate it.

    Returns `"timeout"`, `"escalated"` (a role was added), `"overdue"` (marked only), or None
    when there is nothing to do: already escalated (a replica that lost the race re-decides
    on the fresh state and lands here, so it happens once), or not yet due by this clock.
    """
    bookmark = open_bookmark(instance, bookmark_id, kinds=(BookmarkKind.TASK,))
    if bookmark.escalated_at is not None or bookmark.due_at is None or bookmark.due_at > env.now:
        return None
    node = definition.nodes[bookmark.node_id]
    if has_timeout_route(definition, node):
        instance.cancel_bookmark(bookmark_id, SLA_PASSED, env.now)
        instance.complete_node(node.id, TIMEOUT_OUTCOME, None, None)
        follow(instance, definition, node, TIMEOUT_OUTCOME, env)
        return "timeout"
    to_role = escalation_target(node, bookmark, escalation_enabled)
    instance.escalate_task(bookmark_id, to_role, env.now)
    if to_role is None:
        return "overdue"
    schedule_notification(instance, node, instance.bookmarks[bookmark_id], "escalated", env)
    return "escalated"


def child_finished(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark_id: str,
    *,
    status: str,
    output: Any,
    error: dict[str, Any] | None,
    env: CommandEnv,
) -> None:
    """The child instance of a `sub_workflow` node ended."""
    bookmark = open_bookmark(instance, bookmark_id, kinds=(BookmarkKind.CHILD,))
    node = definition.nodes[bookmark.node_id]
    try:
        output = clean_value(output, f"the output of child instance {bookmark.child_id}")
    except UnstorableValueError as e:
        status, output, error = "failed", None, {"message": str(e)}
    instance.resume_bookmark(bookmark_id, f"child:{bookmark.child_id}", output, env.now)
    if bookmark.item_index is not None and status == "completed":
        continuations.item_finished(instance, definition, node, bookmark.item_index, output, env)
        return
    if status == "completed":
        instance.complete_node(node.id, None, output, node.get("result_var"))
        follow(instance, definition, node, None, env)
        return
    message = f"child instance {bookmark.child_id} {status}"
    if error and error.get("message"):
        message += f": {error['message']}"
    if bookmark.item_index is not None:
        continuations.item_failed(instance, definition, node, message, env)
        return
    fail_node(instance, definition, node, message, env)


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
    env: CommandEnv,
) -> bool:
    """Record a service task's outcome; False when it is stale (already recorded)."""
    activity = instance.activities.get(activity_id)
    if activity is None or not activity.is_scheduled or activity.attempt != attempt:
        return False
    node = definition.nodes[activity.node_id]
    if activity.is_notification:
        _record_notification(
            instance, node, activity, ok=ok, error=error, retryable=retryable, env=env
        )
        return True
    if activity.purpose == BATCH_PURPOSE:
        continuations.batch_recorded(instance, definition, activity, ok=ok, error=error, env=env)
        return True
    if activity.purpose == COMPENSATE_PURPOSE:
        continuations.compensation_recorded(
            instance,
            definition,
            activity,
            ok=ok,
            output=output,
            error=error,
            retryable=retryable,
            env=env,
        )
        return True
    if ok:
        try:
            # The side effect happened: NULs are replaced (U+FFFD) rather than the result lost.
            output = clean_value(output, f"the result of {node.id}", replace_nul=True)
        except UnstorableValueError as e:
            # Running the action again would give the same result: fail, never retry.
            ok, error, retryable = False, str(e), False
    if ok:
        instance.complete_activity(activity_id, attempt, output)
        if activity.item_index is not None:  # one item of a for_each node
            continuations.item_finished(
                instance, definition, node, activity.item_index, output, env
            )
            return True
        instance.complete_node(node.id, None, output, node.get("result_var"))
        compensation.register(instance, node, output)
        follow(instance, definition, node, None, env)
        return True
    message = clean_text(error or "action failed")
    policy = retry_policy_of(node)
    if retryable and attempt < policy.max_attempts:
        try:
            run_after = _retry_due(env, policy, attempt + 1)
        except ValueError as e:  # a backoff beyond what can be stored: no retry
            message = f"{message}; not retried: {e}"
        else:
            number = activity.attempt_number + 1
            key = f"{instance.id}:{node.id}:{number}"
            if activity.item_index is not None:
                number, key = multi.retry_identity(activity, attempt + 1)
            instance.schedule_activity_retry(
                activity_id, attempt, message, attempt + 1, number, run_after, key
            )
            return True
    instance.fail_activity(activity_id, attempt, message)
    failure = f"{message} (after {attempt} attempt(s))"
    if activity.item_index is not None:
        continuations.item_failed(instance, definition, node, failure, env)
        return True
    fail_node(instance, definition, node, failure, env)
    return True


def _record_notification(
    instance: WorkflowInstance,
    node: Node,
    activity: Activity,
    *,
    ok: bool,
    error: str | None,
    retryable: bool,
    env: CommandEnv,
) -> None:
    """A notification's result is recorded only: the instance neither moves nor fails."""
    if ok:
        # The output is not kept: a notification has no result variable.
        instance.complete_activity(activity.id, activity.attempt, None)
        return
    message = clean_text(error or "action failed")
    policy = retry_policy_of(node)
    if retryable and activity.attempt < policy.max_attempts:
        try:
            run_after = _retry_due(env, policy, activity.attempt + 1)
        except ValueError:
            pass
        else:
            attempt = activity.attempt + 1
            # `instance:task:notify-<what>:<attempt>` (engine.sla.notify_key), next attempt
            key = f"{activity.idempotency_key.rpartition(':')[0]}:{attempt}"
            instance.schedule_activity_retry(
                activity.id, activity.attempt, message, attempt, attempt, run_after, key
            )
            return
    instance.fail_activity(activity.id, activity.attempt, message)


def _retry_due(env: CommandEnv, policy: RetryPolicy, attempt: int) -> datetime:
    """When the retry runs; ValueError when the backoff overflows what can be stored."""
    try:
        delay = timedelta(seconds=policy.delay_before(attempt))
    except OverflowError:
        raise ValueError("the retry delay is too large") from None
    return due_after(env.now, delay, "the retry delay")


def cancel(instance: WorkflowInstance, reason: str, env: CommandEnv) -> None:
    """Cancel a running or suspended instance and everything it waits on."""
    _require_active(instance)
    close_open_work(instance, f"instance cancelled: {reason}", env)
    instance.cancel(reason, env.now)


def withdraw_task(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark_id: str,
    *,
    reason: str | None,
    by: str | None,
    env: CommandEnv,
) -> None:
    """An operator withdraws an open task (domain.engine.continuations.task_withdrawn)."""
    bookmark = open_bookmark(instance, bookmark_id, kinds=(BookmarkKind.TASK,))
    reason = clean_value(reason, f"the reason withdrawing task {bookmark_id}")
    continuations.task_withdrawn(instance, definition, bookmark, reason=reason, by=by, env=env)


def claim_task(
    instance: WorkflowInstance,
    bookmark_id: str,
    user: str,
    definition: Definition | None = None,
    actor: task_access.Actor | None = None,
) -> None:
    bookmark = open_bookmark(instance, bookmark_id, kinds=(BookmarkKind.TASK,))
    holder = bookmark.claimed_by
    if holder == user:
        return  # claiming again is a no-op, so a retried claim is safe
    if holder:
        raise TaskAlreadyClaimedError(bookmark_id, holder)
    acted = None
    if definition is not None:
        node = definition.nodes[bookmark.node_id]
        acted = task_access.guard_claim(instance, node, bookmark, user, actor)
    instance.claim_task(bookmark_id, user, acted)


def delegate_task(
    instance: WorkflowInstance,
    bookmark_id: str,
    assignee: str,
    by: str | None,
    actor: task_access.Actor | None = None,
) -> None:
    bookmark = open_bookmark(instance, bookmark_id, kinds=(BookmarkKind.TASK,))
    instance.delegate_task(bookmark_id, assignee, by, task_access.guard_delegate(bookmark, actor))


def open_bookmark(
    instance: WorkflowInstance, bookmark_id: str, kinds: tuple[BookmarkKind, ...]
) -> Bookmark:
    """The open bookmark, or the error a client should see."""
    bookmark = instance.bookmarks.get(bookmark_id)
    if bookmark is None:
        raise BookmarkNotFoundError(instance.id, bookmark_id)
    if not bookmark.is_open:
        raise BookmarkNotOpenError(bookmark)
    _require_active(instance)
    if bookmark.kind not in kinds:
        raise WrongBookmarkKindError(bookmark_id, bookmark.kind, "/".join(kinds))
    return bookmark


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
