"""An operator's recovery of a held or failed instance: retry the failed node, or skip it.

`retry` re-enters the failed node (a service task schedules a fresh attempt with a new
attempt number and idempotency key; a gateway or `set` evaluates again), after merging the
given `variables`; `skip` completes the node with the given `result` (and `outcome`) and
continues from it as if it had produced that result. Both act on an open incident
(`domain.engine.incidents`), or on a FAILED instance, which they reopen: the instance's
other branches were closed when it failed, so only the failed node's branch runs on. Each
action is one event (`IncidentRetried` / `IncidentSkipped`) naming who did it and why.

Not recoverable: an instance that is completed or cancelled, failed at a `failed` end node
(a deliberate outcome) or by the stalled-instance guard, or a failed child instance (its
parent already took its failure).
"""

from __future__ import annotations

from typing import Any

from domain.definition import Definition, Node
from domain.engine import traversal
from domain.engine.branches import STALLED
from domain.env import CommandEnv
from domain.errors import NotRecoverableError
from domain.instance import WorkflowInstance
from domain.state import Incident
from domain.values import clean_value


def retry(
    instance: WorkflowInstance,
    definition: Definition,
    *,
    incident_id: str | None,
    variables: dict[str, Any] | None,
    actor: str | None,
    reason: str | None,
    env: CommandEnv,
) -> str:
    """Re-enter the failed node; returns its id."""
    node, incident = _target(instance, definition, incident_id)
    values = clean_value(dict(variables or {}), "the variables of the retry")
    reason = clean_value(reason, "the reason of the retry")
    instance.retry_incident(
        incident.id if incident else None,
        node.id,
        values,
        incident is None,
        actor,
        reason,
        env.now,
    )
    traversal.run(instance, definition, [(node.id, None)], env)
    return node.id


def skip(
    instance: WorkflowInstance,
    definition: Definition,
    *,
    incident_id: str | None,
    result: Any,
    outcome: str | None,
    actor: str | None,
    reason: str | None,
    env: CommandEnv,
) -> str:
    """Complete the failed node with `result` and continue from it; returns its id."""
    node, incident = _target(instance, definition, incident_id)
    result = clean_value(result, "the result of the skipped node")
    reason = clean_value(reason, "the reason of the skip")
    instance.skip_incident(
        incident.id if incident else None,
        node.id,
        result,
        outcome,
        incident is None,
        actor,
        reason,
        env.now,
    )
    instance.complete_node(node.id, outcome, result, node.get("result_var"))
    traversal.follow(instance, definition, node, outcome, env)
    return node.id


def _target(
    instance: WorkflowInstance, definition: Definition, incident_id: str | None
) -> tuple[Node, Incident | None]:
    """The node to recover and its open incident (None for a FAILED instance)."""
    if not instance.is_ended:
        incident = _open_incident(instance, incident_id)
        return _node(instance, definition, incident.node_id), incident
    if instance.ended_status != "failed":
        raise NotRecoverableError(instance.id, instance.status, "only a failed instance")
    error = instance.error or {}
    node_id = error.get("node_id")
    if instance.parent is not None:
        why = "a child instance: its parent already took its failure"
        raise NotRecoverableError(instance.id, instance.status, why)
    if error.get("type") == STALLED:
        raise NotRecoverableError(instance.id, instance.status, "failed by the stalled guard")
    if not node_id or node_id not in definition.nodes:
        raise NotRecoverableError(instance.id, instance.status, "no failed node recorded")
    node = definition.nodes[node_id]
    if node.type == "end":
        why = f"it ended at the failed end node {node_id}"
        raise NotRecoverableError(instance.id, instance.status, why)
    return node, None


def _open_incident(instance: WorkflowInstance, incident_id: str | None) -> Incident:
    open_ = instance.open_incidents()
    if incident_id is not None:
        for incident in open_:
            if incident.id == incident_id:
                return incident
        raise NotRecoverableError(instance.id, instance.status, f"no open incident {incident_id}")
    if not open_:
        raise NotRecoverableError(instance.id, instance.status, "no open incident")
    return min(open_, key=lambda i: (i.raised_at, i.id))  # the oldest, when several


def _node(instance: WorkflowInstance, definition: Definition, node_id: str) -> Node:
    node = definition.nodes.get(node_id)
    if node is None:
        why = f"node {node_id} is not in version {definition.version}"
        raise NotRecoverableError(instance.id, instance.status, why)
    return node
