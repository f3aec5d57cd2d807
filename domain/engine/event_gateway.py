"""The event-based gateway (WCP-16, deferred choice): the first of several waits wins.

Entering an `event_gateway` enters every node its routes lead to (each a `wait` or a
`timer`) and opens their bookmarks together, marked with one `gateway_group` (a fresh id per
entry). The first of them to be resumed or to fire decides the gateway: `decide` records
`EventGatewayDecided` and cancels the group's other bookmarks in the same command, then the
winner continues as the node it is. Two deliveries racing for two bookmarks of the group are
two commands on one instance: the aggregate's optimistic concurrency lets one commit; the
other re-decides on the fresh state, finds its bookmark cancelled (`BookmarkNotOpenError`:
`409` for a direct resume, "not resumed" for an event), and nothing is applied twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from domain.engine.waits import open_waiting_bookmark
from domain.env import CommandEnv, NodeFailure
from domain.state import Bookmark

if TYPE_CHECKING:
    from domain.definition import Definition, Node
    from domain.instance import WorkflowInstance

EVENT_GATEWAY_TARGETS = ("wait", "timer")
Guard = Callable[["Node", Callable[[], Any]], Any]


def enter(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    ctx: dict[str, Any],
    env: CommandEnv,
    guard: Guard,
) -> None:
    """Open the bookmark of every node the gateway's routes lead to, as one group."""
    group = env.new_id()
    opened: list[str] = []
    try:
        for route in definition.outgoing(node.id):
            target = definition.nodes[route.target]
            exceeded = env.steps.enter(str(instance.id), target.id)
            if exceeded:
                raise NodeFailure(node.id, exceeded)
            instance.enter_node(target.id, target.type, route.index)
            extra = {"gateway_group": group, "gateway_node": node.id}
            opened.append(open_waiting_bookmark(instance, target, ctx, env, guard, extra=extra))
    except NodeFailure:
        # One wait that cannot open (a correlation that fails to evaluate) fails the gateway
        # with none of its waits left open.
        for bookmark_id in opened:
            instance.cancel_bookmark(bookmark_id, f"event gateway {node.id} failed", env.now)
        raise


def decide(instance: WorkflowInstance, bookmark: Bookmark, env: CommandEnv) -> None:
    """`bookmark`, of a gateway's group, fires first: cancel the others of its group."""
    if bookmark.gateway_group is None:
        return
    instance.decide_event_gateway(
        str(bookmark.gateway_node),
        bookmark.gateway_group,
        bookmark.id,
        bookmark.node_id,
        env.now,
    )
    reason = f"event gateway {bookmark.gateway_node} decided by {bookmark.node_id}"
    for other in instance.open_bookmarks():
        if other.gateway_group == bookmark.gateway_group and other.id != bookmark.id:
            instance.cancel_bookmark(other.id, reason, env.now)
