"""Incidents: a node failure held for an operator instead of failing the instance.

When a node fails (a service task's last attempt, a gateway with no matching route, an
expression error at run time, a failed child) and the node has no `error` route, the walk
asks `hold`: with `on_failure: "incident"` on the node, or else on the definition, the
instance records `IncidentRaised` and stays active with status `incident`; with `"fail"`
(the default, `DEFAULT_ON_FAILURE`) it fails as before. Other branches keep running; an
instance that ends or is cancelled closes its open incidents (`close_open`). The operator's
actions, retry and skip, are in `domain.engine.recovery`.
"""

from __future__ import annotations

from domain.definition import Definition, Node
from domain.env import CommandEnv
from domain.instance import WorkflowInstance

INCIDENT = "incident"
FAIL = "fail"
ON_FAILURE_CHOICES = (INCIDENT, FAIL)
DEFAULT_ON_FAILURE = FAIL


def policy(definition: Definition, node: Node) -> str:
    """The node's `on_failure`, else the definition's, else the default."""
    return str(
        node.get("on_failure") or definition.document.get("on_failure") or DEFAULT_ON_FAILURE
    )


def hold(
    instance: WorkflowInstance, definition: Definition, node: Node, message: str, env: CommandEnv
) -> bool:
    """Raise an incident at `node` when its policy says so; True when held."""
    if policy(definition, node) != INCIDENT:
        return False
    error = {"message": message, "node_id": node.id}
    instance.raise_incident(env.new_id(), node.id, node.type, error, env.now)
    return True


def close_open(instance: WorkflowInstance, reason: str, env: CommandEnv) -> None:
    for incident in instance.open_incidents():
        instance.close_incident(incident.id, reason, env.now)
