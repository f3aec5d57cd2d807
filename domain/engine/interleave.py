"""Interleaved parallel routing (WCP-17): `parallel` with `"interleaved": true`.

Each branch of the split runs exactly once, one at a time: a branch runs from the split
until it reaches the split's closing `join`, and only then does the next one start. Which
branch runs next is decided at run time, each time one is due:

- with `"order": "<expression>"`: the expression gives a list of the split's route targets
  (node ids), every branch once; the first one listed that has not run yet is next. It is
  evaluated when the split is entered and again each time a branch reaches the join, so a
  branch's results (`vars`, `nodes.<id>.result`) can change the order of the rest;
- without `order`: the routes' document order.

Each start is recorded (`InterleavedBranchStarted`, with every branch started so far), each
arrival at the join too (`JoinArrived`); the join fires after the last branch arrived. The
next branch is chosen from that state alone, so a replay rebuilds the same state, and the
choice made in a command is never made again.
"""

from __future__ import annotations

from typing import Any

from domain.definition import Definition, Node, Route
from domain.engine.regions import join_of
from domain.env import NodeFailure
from domain.expressions.evaluator import ExpressionError, evaluate
from domain.instance import WorkflowInstance

Targets = list[tuple[str, int | None]]


def is_interleaved(node: Node) -> bool:
    return node.type == "parallel" and node.get("interleaved") is True


def split(
    instance: WorkflowInstance, definition: Definition, node: Node, ctx: dict[str, Any]
) -> Targets:
    """Enter the split: start its first branch only."""
    join_id = join_of(definition, node.id)
    if join_id is None:  # publish refuses this; a definition stored before would stall
        raise NodeFailure(node.id, f"interleaved {node.id} is not closed by a join")
    return _start_next(instance, definition, node, join_id, [], ctx)


def waits_at(instance: WorkflowInstance, join_id: str) -> bool:
    """True when `join_id` closes an interleaved split that is running now."""
    return join_id in instance.interleaved


def arrive(
    instance: WorkflowInstance,
    definition: Definition,
    join: Node,
    via: int | None,
    ctx: dict[str, Any],
) -> Targets | None:
    """A branch reached the join: the next branch to start, or None when the join fires
    (every branch ran) and the walk continues after it."""
    run = instance.interleaved[join.id]
    split_node = definition.nodes[run.split]
    if via is not None:
        instance.arrive_at_join(join.id, via)
    arrived = len(instance.join_arrivals.get(join.id, []))
    started = list(run.started)
    if arrived < len(started):
        return []  # a branch that split inside itself: its other part is still running
    if len(started) < len(definition.outgoing(split_node.id)):
        return _start_next(instance, definition, split_node, join.id, started, ctx)
    instance.complete_join(join.id)
    return None


def _start_next(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    join_id: str,
    started: list[int],
    ctx: dict[str, Any],
) -> Targets:
    routes = definition.outgoing(node.id)
    route = next(r for r in _ordered(node, routes, ctx) if r.index not in started)
    now = [*started, route.index]
    instance.start_interleaved_branch(node.id, join_id, route.index, now, len(routes))
    return [(route.target, route.index)]


def _ordered(node: Node, routes: list[Route], ctx: dict[str, Any]) -> list[Route]:
    """The routes in the order `order` gives (document order without one)."""
    expression = node.get("order")
    if not expression:
        return routes
    try:
        value = evaluate(expression, ctx)
    except ExpressionError as e:
        raise NodeFailure(node.id, f"expression error in the order of {node.id}: {e}") from e
    by_target = {r.target: r for r in routes}
    expected = sorted(by_target)
    if (
        not isinstance(value, list)
        or not all(isinstance(v, str) for v in value)
        or sorted(value) != expected
    ):
        raise NodeFailure(
            node.id,
            f"the order of interleaved {node.id} must list each of its branches once "
            f"({', '.join(expected)}), got {str(value)[:200]}",
        )
    return [by_target[v] for v in value]
