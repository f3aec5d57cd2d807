"""Publish-time checks of separation of duties (`domain.engine.task_access`).

`distinct_from` (a task node's list of other task node ids, and `"$starter"`) is checked
field by field with the node (document.py: a list of strings); here each named node must
exist, be an `approval` or `user_task` (a node with an approver), and not be the node itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.engine.task_access import STARTER
from domain.validation.report import Report, short

if TYPE_CHECKING:
    from domain.validation.graph import GraphNode

TASK_NODES = ("approval", "user_task")


def check_duties(report: Report, nodes: dict[str, GraphNode]) -> None:
    for node in nodes.values():
        named = node.raw.get("distinct_from")
        if node.type not in TASK_NODES or not isinstance(named, list):
            continue
        for index, other in enumerate(named):
            parts = node.path + ("distinct_from", index)
            if not isinstance(other, str) or other == STARTER:
                continue  # a non-string is reported by the field check
            if other == node.id:
                text = f"{node.label} cannot be distinct from itself"
                report.add(parts, "invalid_reference", text)
            elif other not in nodes:
                text = (
                    f"{node.label} is distinct_from {short(other)}, which is not a node; "
                    f"expected a task node id or '{STARTER}'"
                )
                report.add(parts, "unknown_node", text)
            elif nodes[other].type not in TASK_NODES:
                text = (
                    f"{node.label} is distinct_from {nodes[other].label}, which has no "
                    "approver; expected an approval or user_task node"
                )
                report.add(parts, "invalid_reference", text)
