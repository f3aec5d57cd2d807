"""The inclusive gateway (`"type": "inclusive"`): every route whose condition holds is taken.

WCP-6 (multi-choice): all routes with a true condition start a branch each, in document
order; when none holds the `default` route is taken; no match and no default fails the node.
The split records which routes it took (`InclusiveSplit`) and names its closing join, which
then waits for exactly that many arrivals (WCP-7, structured synchronising merge; see
`domain.engine.joins`).
"""

from __future__ import annotations

from typing import Any

from domain.definition import Definition, Node
from domain.engine.regions import join_of
from domain.env import NodeFailure
from domain.expressions.evaluator import ExpressionError, evaluate
from domain.instance import WorkflowInstance


def split(
    instance: WorkflowInstance, definition: Definition, node: Node, ctx: dict[str, Any]
) -> list[tuple[str, int | None]]:
    """Choose the routes, record the split; return the branches to start."""
    routes = definition.outgoing(node.id)
    taken = [r for r in routes if not r.default and r.condition and _holds(node, r.condition, ctx)]
    if not taken:
        taken = [r for r in routes if r.default]
    if not taken:
        raise NodeFailure(node.id, f"no route from {node.id} matched and none is default")
    instance.split_inclusive(node.id, join_of(definition, node.id), [r.index for r in taken])
    return [(r.target, r.index) for r in taken]


def _holds(node: Node, condition: str, ctx: dict[str, Any]) -> bool:
    try:
        return bool(evaluate(condition, ctx))
    except ExpressionError as e:
        raise NodeFailure(node.id, f"expression error at {node.id}: {e}") from e
