"""Walking the graph: entering nodes, choosing routes, failing and ending.

Used by the commands in `domain.engine`. Side-effect-free nodes (gateway, set, parallel,
join, end) run within the command; waiting nodes open a bookmark, service tasks schedule an
activity, and the walk stops there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from domain.definition import ERROR_OUTCOME, TIMEOUT_OUTCOME, Definition, Node, Route
from domain.durations import parse_duration
from domain.engine import (
    boundary,
    branches,
    compensation,
    event_gateway,
    incidents,
    inclusive,
    interleave,
    joins,
    milestones,
    multi,
)
from domain.engine.waits import open_waiting_bookmark
from domain.env import CommandEnv, NodeFailure
from domain.expressions.evaluator import ExpressionError, evaluate, evaluate_mapping, render_value
from domain.instance import WorkflowInstance
from domain.values import UnstorableValueError, clean_value


def run(
    instance: WorkflowInstance,
    definition: Definition,
    targets: list[tuple[str, int | None]],
    env: CommandEnv,
) -> None:
    queue = deque(targets)
    last: str | None = None
    while not instance.is_ended:
        if not queue:  # WCP-18: withdraw what waits on a milestone passed in this walk
            queue.extend(_withdraw_passed(instance, definition, env))
            if not queue:
                break
        node_id, via = queue.popleft()
        node = definition.nodes[node_id]
        exceeded = env.steps.enter(str(instance.id), node.id)
        if exceeded:
            _fail(instance, node.id, exceeded, env)
            return
        instance.enter_node(node.id, node.type, via)
        last = node.id
        try:
            queue.extend(_enter(instance, definition, node, via, env, queue))
        except NodeFailure as failure:
            next_targets = _error_route(instance, definition, node, failure.message, env)
            queue.extend(next_targets)
    # Nothing left to wait for: every branch ended (WCP-11), or a join can never fire.
    branches.settle_quiet(instance, definition, last, env)


def _enter(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    via: int | None,
    env: CommandEnv,
    pending: deque[tuple[str, int | None]],
) -> list[tuple[str, int | None]]:
    """Apply one node; return the nodes to enter next (none when it waits or ends)."""
    ctx = instance.context(env.now)
    kind = node.type
    if multi.is_multi(node):  # one task/activity/child per item (domain.engine.multi)
        boundaries = boundary.prepare(node, ctx, env, _eval)
        if multi.enter(instance, definition, node, env):
            return _next(definition, node, None, ctx)
        boundary.arm(instance, boundaries, multi.host_id(node.id, instance.for_each[node.id].run))
        return []
    if kind == "compensate":  # undo completed steps first (domain.engine.compensation)
        waits = compensation.begin(instance, definition, node, env)
        return [] if waits else _next(definition, node, None, ctx)
    if kind == "gateway":
        return _next(definition, node, None, ctx)
    if kind == "set":
        values = _eval_value(
            node,
            lambda: evaluate_mapping(node.get("variables", {}), ctx),
            f"the variables of {node.id}",
        )
        instance.set_variables(node.id, values)
        return _next(definition, node, None, instance.context(env.now))
    if interleave.is_interleaved(node):  # one branch at a time (WCP-17)
        return interleave.split(instance, definition, node, ctx)
    if kind == "join" and interleave.waits_at(instance, node.id):
        after = interleave.arrive(instance, definition, node, via, ctx)
        return _next(definition, node, None, ctx) if after is None else after
    if kind == "parallel":  # the validator admits no conditions here: every branch runs
        return [(r.target, r.index) for r in definition.outgoing(node.id)]
    if kind == "inclusive":
        return inclusive.split(instance, definition, node, ctx)
    if kind == "join":
        fired = joins.arrive(instance, definition, node, via, env, pending)
        return _next(definition, node, None, ctx) if fired else []
    if kind == "end" and branches.is_branch_end(node):
        instance.end_branch(node.id)
        return []
    if kind == "end":
        _end(instance, definition, node, env)
        return []
    if kind == "event_gateway":
        event_gateway.enter(instance, definition, node, ctx, env, _eval)
        return []
    # Boundary events are computed before the host opens and attached to it after.
    boundaries = boundary.prepare(node, ctx, env, _eval)
    if kind == "service_task":
        host = _schedule_activity(instance, node, ctx, env)
    else:
        # A child's input is a value the child stores: it must be JSON-clean like any other.
        guard = _eval_child_input if kind == "sub_workflow" else _eval
        host = open_waiting_bookmark(instance, node, ctx, env, guard)
    boundary.arm(instance, boundaries, host)
    return []


def _end(instance: WorkflowInstance, definition: Definition, node: Node, env: CommandEnv) -> None:
    if node.get("compensate") and compensation.begin(instance, definition, node, env):
        return  # ends once the compensations ran (domain.engine.continuations)
    finish_end(instance, definition, node, env)


def finish_end(
    instance: WorkflowInstance, definition: Definition, node: Node, env: CommandEnv
) -> None:
    """End the instance at an `end` node (after its compensations, if any)."""
    ctx = instance.context(env.now)
    # The end node's own mapping wins; else the definition's top-level `output`.
    mapping = node.get("output") or definition.output or {}
    output = _eval_value(node, lambda: evaluate_mapping(mapping, ctx), f"the output of {node.id}")
    close_open_work(instance, f"instance ended at {node.id}", env)
    if node.get("status", "completed") == "failed":
        message = node.get("error") or f"ended at failed end node {node.id}"
        instance.fail(node.id, {"message": message, "node_id": node.id, "output": output}, env.now)
    else:
        instance.complete(node.id, output, env.now)


def _schedule_activity(
    instance: WorkflowInstance, node: Node, ctx: dict[str, Any], env: CommandEnv
) -> str:
    action = _eval_value(
        node, lambda: render_value(node.get("action", {}), ctx), f"the action of {node.id}"
    )
    number = instance.node_attempts.get(node.id, 0) + 1
    timeout = parse_duration(node.get("timeout", "PT2M")).total_seconds()
    activity_id = env.new_id()
    instance.schedule_activity(
        {
            "id": activity_id,
            "node_id": node.id,
            "attempt": 1,
            "attempt_number": number,
            "action": action,
            "timeout_seconds": timeout,
            "run_after": env.now,
            "idempotency_key": f"{instance.id}:{node.id}:{number}",
            **env.trace(),
        }
    )
    return activity_id


def follow(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    outcome: str | None,
    env: CommandEnv,
) -> None:
    """Leave a node that finished waiting, taking the route for its outcome."""
    boundary.sweep(instance, env)  # the node's boundary events close with it
    try:
        targets = _next(definition, node, outcome, instance.context(env.now))
    except NodeFailure as failure:
        targets = _error_route(instance, definition, node, failure.message, env)
    run(instance, definition, targets, env)


def _withdraw_passed(
    instance: WorkflowInstance, definition: Definition, env: CommandEnv
) -> list[tuple[str, int | None]]:
    """Withdraw the open nodes whose milestone was passed (domain.engine.milestones)."""
    targets: list[tuple[str, int | None]] = []
    for bookmark, node in milestones.due(instance, definition):
        route = milestones.withdraw(instance, definition, bookmark, node, env)
        boundary.sweep(instance, env)
        if route is not None:  # its `cancelled` route, whatever the order of its routes
            targets.append((route.target, route.index))
            continue
        try:  # skipped: its route without an outcome
            targets.extend(_next(definition, node, None, instance.context(env.now)))
        except NodeFailure as failure:
            targets.extend(_error_route(instance, definition, node, failure.message, env))
    return targets


def fail_node(
    instance: WorkflowInstance, definition: Definition, node: Node, message: str, env: CommandEnv
) -> None:
    boundary.sweep(instance, env)
    run(instance, definition, _error_route(instance, definition, node, message, env), env)


def _error_route(
    instance: WorkflowInstance, definition: Definition, node: Node, message: str, env: CommandEnv
) -> list[tuple[str, int | None]]:
    """Follow the node's `error` route if it has one; otherwise hold an incident
    (`on_failure: "incident"`, domain.engine.incidents) or fail the instance."""
    for route in definition.outgoing(node.id):
        if route.outcome == ERROR_OUTCOME:
            instance.complete_node(node.id, ERROR_OUTCOME, {"error": message}, None)
            return [(route.target, route.index)]
    if incidents.hold(instance, definition, node, message, env):
        return []
    _fail(instance, node.id, message, env)
    return []


def _fail(instance: WorkflowInstance, node_id: str, message: str, env: CommandEnv) -> None:
    close_open_work(instance, f"instance failed at {node_id}", env)
    instance.fail(node_id, {"message": message, "node_id": node_id}, env.now)


def close_open_work(instance: WorkflowInstance, reason: str, env: CommandEnv) -> None:
    for bookmark in instance.open_bookmarks():
        instance.cancel_bookmark(bookmark.id, reason, env.now)
    for activity in instance.scheduled_activities():
        instance.cancel_activity(activity.id)
    incidents.close_open(instance, reason, env)


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


def _eval_value(node: Node, compute: Callable[[], Any], what: str) -> Any:
    """An expression value the instance stores: JSON-clean and bounded, or a node failure."""
    value = _eval(node, compute)
    try:
        return clean_value(value, what)
    except UnstorableValueError as e:
        raise NodeFailure(node.id, f"error at {node.id}: {e}") from e


def _eval_child_input(node: Node, compute: Callable[[], Any]) -> Any:
    return _eval_value(node, compute, f"the input of the child of {node.id}")


def _eval(node: Node, compute: Callable[[], Any]) -> Any:
    try:
        return compute()
    except ExpressionError as e:
        raise NodeFailure(node.id, f"expression error at {node.id}: {e}") from e
    except ValueError as e:  # a bad duration or timestamp computed at run time
        raise NodeFailure(node.id, f"error at {node.id}: {e}") from e
