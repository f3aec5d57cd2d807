"""Branch ends and implicit termination (WCP-11), and the guard against a stalled instance.

An `end` with `"terminate": false` ends only the branch that reaches it (`BranchEnded`).
After every walk the engine asks `settle_quiet`: an instance that has not ended but has no
open bookmark and no scheduled activity (a notification does not count) can never move
again. If no join is left waiting, every branch ended: the instance completes (implicit
termination, with the definition's top-level `output`). If a join still waits for branches
that can no longer arrive (a branch routed around its join), the instance fails with an
error naming that join, instead of staying `running` for ever.
"""

from __future__ import annotations

from domain.definition import Definition, Node
from domain.env import CommandEnv
from domain.expressions.evaluator import ExpressionError, evaluate_mapping
from domain.instance import WorkflowInstance
from domain.values import UnstorableValueError, clean_value

STALLED = "stalled"


def is_branch_end(node: Node) -> bool:
    return node.type == "end" and node.get("terminate", True) is False


def has_live_work(instance: WorkflowInstance) -> bool:
    if instance.open_bookmarks() or instance.open_incidents():  # an incident waits too
        return True
    return any(not a.is_notification for a in instance.scheduled_activities())


def settle_quiet(
    instance: WorkflowInstance, definition: Definition, last_node: str | None, env: CommandEnv
) -> None:
    """End an instance that has nothing left to wait for (see the module docstring)."""
    if instance.is_ended or has_live_work(instance):
        return
    waiting = {j: a for j, a in instance.join_arrivals.items() if a}
    for join_id in instance.interleaved:  # its next branch can never start (WCP-17)
        waiting.setdefault(join_id, [])
    for activity in instance.scheduled_activities():  # notifications of nothing
        instance.cancel_activity(activity.id)
    if waiting:
        join_id, arrivals = sorted(waiting.items())[0]
        expected = instance.join_expected.get(join_id) or len(definition.incoming(join_id))
        if join_id in instance.interleaved:
            expected = len(definition.outgoing(instance.interleaved[join_id].split))
        message = (
            f"no branch is active but join {join_id} waits ({len(arrivals)} of {expected} "
            "branches arrived): the others ended or were routed around it, so it can never fire"
        )
        error = {"message": message, "node_id": join_id, "type": STALLED}
        instance.fail(join_id, error, env.now)
        return
    try:
        output = clean_value(
            evaluate_mapping(definition.output or {}, instance.context(env.now)),
            "the output of the instance",
        )
    except (ExpressionError, UnstorableValueError, ValueError) as e:
        message = f"every branch ended, but the output could not be computed: {e}"
        instance.fail(last_node, {"message": message, "node_id": last_node}, env.now)
        return
    instance.complete(last_node or "", output, env.now)
