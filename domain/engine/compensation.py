"""Compensation (the saga pattern): undoing completed steps, newest first.

A `service_task` may carry a `compensation` action, its undo step. When such a task
completes, `CompensationRegistered` records its result. An `end` node with
`"compensate": true`, or a `compensate` node (typically the target of an `error` route),
starts a run: `CompensationStarted` lists the registered steps newest first, and each is
undone by an activity (`purpose: "compensate"`) that the task worker runs like any other —
durable, retried under the step's own `retry` policy, so at least once. Its action's
templates see the step's result as `result`; its idempotency key,
`<instance>:compensate:<step node>:<seq>`, is the same on every attempt and different for
every step. One step runs at a time; each success is a `StepCompensated`, and after the
last a `CompensationCompleted`, after which the `end` ends the instance (with its own
status) or the `compensate` node follows its route. A compensation that fails for good
fails the node that started the run (its `error` route, else the instance).

This module decides only; `domain.engine.continuations` continues the graph afterwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from domain.durations import parse_duration
from domain.engine.retry import retry_policy_of
from domain.engine.waits import due_after
from domain.env import CommandEnv, NodeFailure
from domain.expressions.evaluator import ExpressionError, render_value
from domain.state import COMPENSATE_PURPOSE, Activity
from domain.values import UnstorableValueError, clean_text, clean_value

if TYPE_CHECKING:
    from domain.definition import Definition, Node
    from domain.instance import WorkflowInstance


def register(instance: WorkflowInstance, node: Node, result: Any) -> None:
    """A step completed: remember its result if it has an undo step."""
    if node.type == "service_task" and node.get("compensation"):
        instance.register_compensation(node.id, result)


def begin(instance: WorkflowInstance, definition: Definition, node: Node, env: CommandEnv) -> bool:
    """Start undoing the registered steps; False when there is nothing to undo."""
    if not instance.compensations:
        return False
    instance.start_compensation(node.id, list(reversed(instance.compensations)))
    _schedule_step(instance, definition, node, env)
    return True


def record(
    instance: WorkflowInstance,
    definition: Definition,
    activity: Activity,
    *,
    ok: bool,
    output: Any,
    error: str | None,
    retryable: bool,
    env: CommandEnv,
) -> str | None:
    """Record one undo step. Returns "done" (every step undone: the caller continues the
    node), "failed: <message>" (the caller fails the node), or None (more to do)."""
    by = definition.nodes[activity.compensation_of or ""]
    run = instance.compensating[by.id]
    step = run["steps"][run["done"]]
    if ok:
        try:
            output = clean_value(
                output, f"the result of compensating {step['node_id']}", replace_nul=True
            )
        except UnstorableValueError:
            output = None  # the undo happened; its result is not needed to go on
        instance.complete_activity(activity.id, activity.attempt, output)
        instance.compensate_step(by.id, step["node_id"], step["seq"], output)
        if run["done"] < len(run["steps"]):
            _schedule_step(instance, definition, by, env)
            return None
        instance.complete_compensation(by.id)
        return "done"
    message = clean_text(error or "action failed")
    policy = retry_policy_of(definition.nodes[step["node_id"]])
    if retryable and activity.attempt < policy.max_attempts:
        attempt = activity.attempt + 1
        try:
            delay = timedelta(seconds=policy.delay_before(attempt))
            run_after = due_after(env.now, delay, "the retry delay")
        except (OverflowError, ValueError):
            pass
        else:
            instance.schedule_activity_retry(
                activity.id,
                activity.attempt,
                message,
                attempt,
                activity.attempt_number,
                run_after,
                activity.idempotency_key,  # one key per step, the same on every attempt
            )
            return None
    instance.fail_activity(activity.id, activity.attempt, message)
    return (
        f"failed: compensation of {step['node_id']} failed: {message} "
        f"(after {activity.attempt} attempt(s))"
    )


def _schedule_step(
    instance: WorkflowInstance, definition: Definition, by: Node, env: CommandEnv
) -> None:
    run = instance.compensating[by.id]
    step = run["steps"][run["done"]]
    step_node = definition.nodes[step["node_id"]]
    ctx = instance.context(env.now)
    ctx["result"] = step["result"]
    try:
        action = clean_value(
            render_value(step_node.get("compensation"), ctx),
            f"the compensation of {step_node.id}",
        )
    except (ExpressionError, UnstorableValueError, ValueError) as e:
        raise NodeFailure(by.id, f"compensation of {step_node.id}: {e}") from e
    instance.schedule_activity(
        {
            "id": env.new_id(),
            "node_id": step_node.id,
            "attempt": 1,
            "attempt_number": 1,
            "action": action,
            "timeout_seconds": parse_duration(step_node.get("timeout", "PT2M")).total_seconds(),
            "run_after": env.now,
            "idempotency_key": f"{instance.id}:compensate:{step_node.id}:{step['seq']}",
            "purpose": COMPENSATE_PURPOSE,
            "compensation_of": by.id,
        }
    )
