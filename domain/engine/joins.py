"""Joins: how many arrivals a `join` waits for, and what happens to the branches left over.

- A join closing a `parallel` waits for one arrival on each of its incoming routes (WCP-3).
- A join closing an `inclusive` split waits for as many arrivals as the split started
  branches (`InclusiveSplit` recorded the number): the OR-join of WCP-7.
- `"wait_for": N` fires on the N-th arrival (WCP-9 discriminator when N is 1, WCP-30
  partial join otherwise). With `"cancel_remaining": true` the open work of the other
  branches (bookmarks, activities, queued steps) is cancelled (WCP-29/34 style); otherwise
  their later arrivals are ignored (`JoinArrivalIgnored`), once each.

Everything is decided from the aggregate's state and recorded as events, so a replay
rebuilds the same counts.
"""

from __future__ import annotations

from collections import deque

from domain.definition import Definition, Node
from domain.engine.regions import backward_of, between, split_of
from domain.env import CommandEnv
from domain.instance import WorkflowInstance

Targets = deque[tuple[str, int | None]]


def arrive(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    via: int | None,
    env: CommandEnv,
    pending: Targets,
) -> bool:
    """Record an arrival at `node`; True when the join fires and the walk continues."""
    if instance.join_late.get(node.id, 0) > 0:
        instance.ignore_join_arrival(node.id, via)
        return False
    counted = node.id in instance.join_expected
    arrivals = instance.join_arrivals.get(node.id, [])
    if via is not None and (counted or via not in arrivals):
        instance.arrive_at_join(node.id, via)
    arrivals = instance.join_arrivals.get(node.id, [])
    if counted:
        expected = instance.join_expected[node.id]
        arrived = len(arrivals)
    else:
        incoming = {r.index for r in definition.incoming(node.id)}
        expected = len(incoming)
        arrived = len(incoming & set(arrivals))
    wait_for = node.get("wait_for")
    needed = min(int(wait_for), expected) if wait_for else expected
    if arrived < needed:
        return False
    if needed >= expected:
        instance.complete_join(node.id)
        return True
    _release_early(instance, definition, node, arrived, expected, env, pending)
    return True


def _release_early(
    instance: WorkflowInstance,
    definition: Definition,
    node: Node,
    arrived: int,
    expected: int,
    env: CommandEnv,
    pending: Targets,
) -> None:
    """An N-of-M join fired before every branch arrived."""
    if not node.get("cancel_remaining", False):
        instance.complete_partial_join(node.id, arrived, expected, False, expected - arrived, [])
        return
    split = split_of(definition, node.id)
    region = between(split, node.id, backward_of(definition)) if split else set()
    reason = f"join {node.id} continued after {arrived} of {expected} branches"
    for bookmark in instance.open_bookmarks():
        if bookmark.node_id in region:
            instance.cancel_bookmark(bookmark.id, reason, env.now)
    for activity in instance.scheduled_activities():
        if activity.node_id in region:  # a cancelled task's notifications too
            instance.cancel_activity(activity.id)
    # Branches still queued in this command stop too, before they take another step.
    kept = [t for t in pending if t[0] not in region and t[0] != node.id]
    pending.clear()
    pending.extend(kept)
    # Joins inside the cancelled branches forget their arrivals (and an interleaving there
    # its branches), so the instance is not taken for stalled on them later.
    reset = sorted(j for j in {*instance.join_arrivals, *instance.interleaved} if j in region)
    instance.complete_partial_join(node.id, arrived, expected, True, 0, reset)
