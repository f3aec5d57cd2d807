"""Instance modification: an operator cancels active nodes and starts others.

`POST /v1/instances/{id}/modify` with `operations`, each `{"cancel": "<node id>"}` or
`{"start_before": "<node id>"}` (Camunda's process instance modification). The whole list is
checked against the graph before anything happens (an unknown node, a `start_before` of a
join: `InvalidModificationError` with the JSON path; cancelling a node with no open work:
`NodeNotActiveError`), then one command records `InstanceModified` (who and why), cancels the
nodes' open work (their boundary events close with them) and walks from the started nodes.
An instance left with nothing to wait for ends as after any walk (`branches.settle_quiet`).
"""

from __future__ import annotations

from typing import Any

from domain.definition import Definition
from domain.engine import boundary
from domain.engine.traversal import run
from domain.env import CommandEnv
from domain.errors import InstanceNotActiveError, InvalidModificationError, NodeNotActiveError
from domain.instance import WorkflowInstance

CANCEL = "cancel"
START_BEFORE = "start_before"
MODIFIED = "cancelled by an instance modification"


def check(
    instance: WorkflowInstance, definition: Definition, operations: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """The operations as (kind, node id), or the error a caller should see."""
    if instance.is_ended:
        raise InstanceNotActiveError(instance.id, instance.status)
    errors: list[dict[str, str]] = []
    parsed: list[tuple[str, str]] = []
    if not operations:
        errors.append(_error("/operations", "empty", "at least one operation is required"))
    for index, op in enumerate(operations):
        path = f"/operations/{index}"
        keys = list(op) if isinstance(op, dict) else []
        if len(keys) != 1 or keys[0] not in (CANCEL, START_BEFORE):
            errors.append(_error(path, "invalid", "expected {cancel: id} or {start_before: id}"))
            continue
        kind, node_id = keys[0], op[keys[0]]
        node = definition.nodes.get(node_id) if isinstance(node_id, str) else None
        if node is None:
            message = f"version {definition.version} has no node {node_id!r}"
            errors.append(_error(f"{path}/{kind}", "unknown_node", message))
        elif kind == START_BEFORE and node.type == "join":
            message = f"{node_id} is a join: start the branches before it instead"
            errors.append(_error(f"{path}/{kind}", "join", message))
        else:
            parsed.append((kind, node_id))
    if errors:
        raise InvalidModificationError(errors)
    for index, (kind, node_id) in enumerate(parsed):
        if kind == CANCEL and not _active_work(instance, node_id):
            raise NodeNotActiveError(node_id, f"/operations/{index}/cancel")
    return parsed


def modify(
    instance: WorkflowInstance,
    definition: Definition,
    operations: list[dict[str, Any]],
    *,
    by: str | None,
    reason: str | None,
    env: CommandEnv,
) -> None:
    parsed = check(instance, definition, operations)
    instance.modify([{kind: node} for kind, node in parsed], by, reason, env.now)
    starts: list[tuple[str, int | None]] = []
    for kind, node_id in parsed:
        if kind == CANCEL:
            _cancel_node(instance, node_id, env)
        else:
            starts.append((node_id, None))
    boundary.sweep(instance, env)
    run(instance, definition, starts, env)


def active_nodes(instance: WorkflowInstance) -> set[str]:
    """The nodes with open work (bookmarks other than boundaries, activities)."""
    nodes = {b.node_id for b in instance.open_bookmarks() if b.boundary_of is None}
    nodes |= {a.node_id for a in instance.scheduled_activities() if not a.is_notification}
    return nodes


def _active_work(instance: WorkflowInstance, node_id: str) -> bool:
    return node_id in active_nodes(instance)


def _cancel_node(instance: WorkflowInstance, node_id: str, env: CommandEnv) -> None:
    for bookmark in instance.open_bookmarks():
        if bookmark.node_id == node_id and bookmark.boundary_of is None:
            instance.cancel_bookmark(bookmark.id, MODIFIED, env.now)
    for activity in instance.scheduled_activities():
        if activity.node_id == node_id:
            instance.cancel_activity(activity.id)
    state = instance.for_each.get(node_id)
    if state is not None:
        instance.complete_for_each(
            node_id, len(state.results), len(state.items) - len(state.results)
        )


def _error(path: str, code: str, message: str) -> dict[str, str]:
    return {"path": path, "code": code, "message": message}
