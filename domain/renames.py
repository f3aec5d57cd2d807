"""Renaming node ids in an instance's state: what `InstanceMigrated` applies.

A pure rewrite of the keys and fields that name nodes of the definition (bookmarks,
activities, results, attempts, joins, `for_each` runs, compensations) and of the route
indices recorded by join arrivals. Ids, tokens, due times, variables and everything else
stay as they are, so no open work is lost.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from domain.instance import WorkflowInstance


def rename_nodes(instance: WorkflowInstance, nodes: dict[str, str], routes: dict[int, int]) -> None:
    def new(node_id: str) -> str:
        return nodes.get(node_id, node_id)

    for key, bookmark in list(instance.bookmarks.items()):
        gateway = bookmark.gateway_node
        instance.bookmarks[key] = replace(
            bookmark,
            node_id=new(bookmark.node_id),
            gateway_node=new(gateway) if gateway is not None else None,
        )
    for key, activity in list(instance.activities.items()):
        instance.activities[key] = replace(activity, node_id=new(activity.node_id))
    instance.node_results = _keys(instance.node_results, new)
    instance.node_attempts = _keys(instance.node_attempts, new)
    instance.join_arrivals = {
        new(j): [routes.get(i, i) for i in arrivals]
        for j, arrivals in instance.join_arrivals.items()
    }
    instance.join_expected = _keys(instance.join_expected, new)
    instance.join_late = _keys(instance.join_late, new)
    instance.interleaved = {
        new(j): replace(v, split=new(v.split), started=tuple(routes.get(i, i) for i in v.started))
        for j, v in instance.interleaved.items()
    }
    instance.for_each = _keys(instance.for_each, new)
    instance.compensations = [{**c, "node_id": new(c["node_id"])} for c in instance.compensations]
    instance.compensating = _keys(instance.compensating, new)


def _keys(mapping: dict[str, Any], new: Any) -> dict[str, Any]:
    return {new(k): v for k, v in mapping.items()}
