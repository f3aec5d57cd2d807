"""Version migration: moving a running instance onto another version of its definition.

`plan` checks, without changing anything, whether the instance's state fits the target
graph under a node mapping (`{"old id": "new id"}`; an unmapped node keeps its id): every
node with open work, join arrivals, `for_each` runs and registered compensations must name a
node of the new version of the same type (so a bookmark keeps its kind), a boundary bookmark
needs the same kind of boundary at the same position, and every join arrival must come
along a route the new graph has into that join. `migrate` applies a plan that holds as ONE
`InstanceMigrated` event, which renames node ids in the state (`domain.renames`) and sets
the version: bookmarks (ids, tokens, due times, claims), activities, variables, results and
joins are kept as they are. A plan that does not hold raises `MigrationRefusedError` and
records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.definition import Definition, Node
from domain.env import CommandEnv
from domain.errors import InvalidModificationError, MigrationRefusedError
from domain.instance import WorkflowInstance
from domain.state import BookmarkKind

_KIND_OF_TYPE = {
    "approval": BookmarkKind.TASK,
    "user_task": BookmarkKind.TASK,
    "wait": BookmarkKind.WAIT,
    "timer": BookmarkKind.TIMER,
    "sub_workflow": BookmarkKind.CHILD,
}


@dataclass
class MigrationPlan:
    reasons: list[str] = field(default_factory=list)
    nodes: dict[str, str] = field(default_factory=dict)  # only the renamed ones
    routes: dict[str, int] = field(default_factory=dict)  # str(old index) → new index

    @property
    def possible(self) -> bool:
        return not self.reasons


def check_mapping(old: Definition, new: Definition, mapping: dict[str, str]) -> None:
    """Every key a node of `old`, every value a node of `new` (JSON paths under /mapping)."""
    errors = []
    for key, value in mapping.items():
        if key not in old.nodes:
            errors.append(_error(key, f"version {old.version} has no node {key!r}"))
        elif not isinstance(value, str) or value not in new.nodes:
            errors.append(_error(key, f"version {new.version} has no node {value!r}"))
    if errors:
        raise InvalidModificationError(errors)


def plan(
    instance: WorkflowInstance, old: Definition, new: Definition, mapping: dict[str, str]
) -> MigrationPlan:
    result = MigrationPlan()
    reasons = result.reasons
    if instance.is_ended:
        reasons.append(f"the instance is {instance.status}")
        return result
    if instance.definition_version != old.version:
        reasons.append(
            f"the instance runs version {instance.definition_version}, not {old.version}"
        )
        return result

    def target(node_id: str, what: str) -> Node | None:
        new_id = mapping.get(node_id, node_id)
        node = new.nodes.get(new_id)
        if node is None:
            shown = f"{node_id} (mapped to {new_id})" if new_id != node_id else node_id
            reasons.append(f"{what} {shown} is missing in version {new.version}")
        elif new_id != node_id:
            result.nodes[node_id] = new_id
        return node

    for bookmark in instance.open_bookmarks():
        node = target(bookmark.node_id, f"the node of open bookmark {bookmark.id}")
        if node is None:
            continue
        if bookmark.boundary_of is not None:
            _check_boundary(bookmark.boundary_index, bookmark.kind, node, new, reasons)
        else:
            kind = _KIND_OF_TYPE.get(node.type)
            if kind is not bookmark.kind:
                reasons.append(
                    f"bookmark kind changed: {bookmark.id} is a {bookmark.kind} bookmark, "
                    f"but {node.id} is a {node.type} node in version {new.version}"
                )
            elif node.type != bookmark.node_type:
                reasons.append(
                    f"node type changed: {bookmark.node_id} is a {bookmark.node_type}, "
                    f"{node.id} a {node.type} in version {new.version}"
                )
        if bookmark.gateway_node is not None:
            gateway = target(bookmark.gateway_node, "the event gateway")
            if gateway is not None and gateway.type != "event_gateway":
                reasons.append(f"{gateway.id} is no event_gateway in version {new.version}")
    for activity in instance.scheduled_activities():
        node = target(activity.node_id, f"the node of activity {activity.id}")
        old_node = old.nodes.get(activity.node_id)
        if node is not None and old_node is not None and node.type != old_node.type:
            reasons.append(
                f"node type changed: {activity.node_id} is a {old_node.type}, "
                f"{node.id} a {node.type} in version {new.version}"
            )
    for node_id in instance.for_each:
        node = target(node_id, "the for_each node")
        if node is not None and not node.get("for_each"):
            reasons.append(f"{node.id} has no for_each in version {new.version}")
    for entry in instance.compensations:
        node = target(entry["node_id"], "the compensated step")
        if node is not None and not node.get("compensation"):
            reasons.append(f"{node.id} has no compensation in version {new.version}")
    if instance.compensating:
        reasons.append("a compensation is under way")
    if instance.interleaved:  # its started branches are routes of the old graph
        reasons.append("an interleaved parallel (WCP-17) is under way")
    for join_id, arrivals in instance.join_arrivals.items():
        _check_join(join_id, arrivals, old, new, mapping, result, target)
    return result


def migrate(
    instance: WorkflowInstance,
    old: Definition,
    new: Definition,
    mapping: dict[str, str],
    *,
    by: str | None,
    reason: str | None,
    env: CommandEnv,
) -> MigrationPlan:
    found = plan(instance, old, new, mapping)
    if not found.possible:
        raise MigrationRefusedError(instance.id, found.reasons)
    instance.migrate(old.version, new.version, found.nodes, found.routes, by, reason, env.now)
    return found


def _check_boundary(
    index: int | None, kind: BookmarkKind, node: Node, new: Definition, reasons: list[str]
) -> None:
    specs: list[dict[str, Any]] = list(node.get("boundary") or [])
    if index is None or index >= len(specs):
        reasons.append(f"{node.id} has no boundary event {index} in version {new.version}")
        return
    spec_kind = BookmarkKind.WAIT if "event" in specs[index] else BookmarkKind.TIMER
    if spec_kind is not kind:
        reasons.append(
            f"bookmark kind changed: boundary {index} of {node.id} is a {spec_kind} "
            f"in version {new.version}, the open one a {kind}"
        )


def _check_join(
    join_id: str,
    arrivals: list[int],
    old: Definition,
    new: Definition,
    mapping: dict[str, str],
    result: MigrationPlan,
    target: Any,
) -> None:
    node = target(join_id, "the join")
    if not arrivals or node is None:
        return
    if node.type != "join":
        result.reasons.append(f"{node.id} is no join in version {new.version}")
        return
    incoming = new.incoming(node.id)
    if len(arrivals) >= len(incoming):
        result.reasons.append(
            f"join {join_id} has {len(arrivals)} arrival(s); {node.id} in version "
            f"{new.version} takes {len(incoming)} branch(es)"
        )
    for index in arrivals:
        route = old.routes[index]
        source = mapping.get(route.source, route.source)
        match = [r for r in incoming if r.source == source]
        if not match:
            result.reasons.append(
                f"join {join_id} has an arrival via route {index} ({route.source} → "
                f"{route.target}) that version {new.version} cannot take"
            )
        elif match[0].index != index:
            result.routes[str(index)] = match[0].index


def _error(key: str, message: str) -> dict[str, str]:
    path = "/mapping/" + key.replace("~", "~0").replace("/", "~1")
    return {"path": path, "code": "unknown_node", "message": message}
