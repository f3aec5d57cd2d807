"""Validation of workflow definition documents (SPEC §2), standard library only.

`validate_document` reports every problem at once, each with the JSON path of the offending
part, a stable machine code and a sentence naming the nodes/routes involved; `[]` means the
document may be published and handed to `Definition.from_document`.

Field rules are data: each object kind (top level, node type, route, retry policy, http action,
trigger) maps its allowed keys to a checker `(report, path, value) -> None`; the tables are in
`domain.validation.document`, the checkers in `domain.validation.fields`, and the problems are
collected by `domain.validation.report`. Graph rules (endpoints, reachability, gateways, joins,
outcomes) live in `domain.validation.graph`.
"""

from __future__ import annotations

from typing import Any

from domain.validation.document import (
    COMMON_NODE_FIELDS,
    END_STATUSES,
    HTTP_METHODS,
    IDENTIFIER_PATTERN,
    NAME_PATTERN,
    NODE_FIELDS,
    NODE_ID_PATTERN,
    NODE_RULES,
    REQUIRED_NODE_FIELDS,
    ROUTE_FIELDS,
    TOP_FIELDS,
    URGENCIES,
)
from domain.validation.duties import check_duties
from domain.validation.fields import Checker, check_fields, expect, storable_characters
from domain.validation.graph import GraphNode, GraphRoute, check_graph
from domain.validation.report import Path, Problem, Report, type_name

__all__ = [
    "END_STATUSES",
    "HTTP_METHODS",
    "IDENTIFIER_PATTERN",
    "NAME_PATTERN",
    "NODE_ID_PATTERN",
    "URGENCIES",
    "Checker",
    "Path",
    "Problem",
    "validate_document",
]


def validate_document(document: Any) -> list[Problem]:
    """Every problem of `document`, ordered by where its path appears in the document."""
    report = Report(document)
    if not isinstance(document, dict):
        report.add(
            (),
            "invalid_type",
            f"a definition must be an object: expected object, got {type_name(document)}",
        )
        return report.problems()
    storable_characters(report, document)
    check_fields(report, (), document, TOP_FIELDS, required=("name",))
    nodes, start = _check_nodes(report, document)
    routes = _check_routes(report, document)
    if nodes:
        check_graph(report, nodes, routes, start)
        check_duties(report, nodes)
    return report.problems()


def _check_node(report: Report, parts: Path, node: dict[str, Any]) -> None:
    node_type = node.get("type")
    if not (isinstance(node_type, str) and node_type in NODE_FIELDS):
        # without a type, only the common fields can be judged
        check_fields(report, parts, node, COMMON_NODE_FIELDS, ("id", "type"), strict=False)
        return
    fields = {**COMMON_NODE_FIELDS, **NODE_FIELDS[node_type]}
    required = ("id", "type", *REQUIRED_NODE_FIELDS.get(node_type, ()))
    owner = f"{node_type} {report.where(parts)}"
    check_fields(report, parts, node, fields, required, owner=owner)
    rule = NODE_RULES.get(node_type)
    if rule is not None:
        rule(report, parts, node)


def _check_nodes(
    report: Report, document: dict[str, Any]
) -> tuple[dict[str, GraphNode], str | None]:
    """Check each node; return the graph nodes (first of each id) and the start node id."""
    raw = document.get("nodes")
    if "nodes" not in document:
        report.add(("nodes",), "missing_field", "the definition has no 'nodes'")
    if not isinstance(raw, list) or not raw:
        if "nodes" in document and expect(report, ("nodes",), raw, "array"):
            report.add(("nodes",), "invalid_value", "the definition needs at least one node")
        return {}, None
    nodes: dict[str, GraphNode] = {}
    starts: list[GraphNode] = []
    for index, node in enumerate(raw):
        parts = ("nodes", index)
        if not expect(report, parts, node, "object"):
            continue
        _check_node(report, parts, node)
        node_id, node_type = node.get("id"), node.get("type")
        if not isinstance(node_id, str):
            continue
        if node_id in nodes:
            report.add(
                parts + ("id",),
                "duplicate_node_id",
                f"node id '{node_id}' is already used by $.nodes[{nodes[node_id].index}]",
            )
            continue
        nodes[node_id] = GraphNode(
            index, node_id, node_type if isinstance(node_type, str) else "", node
        )
        if node.get("start") is True:
            starts.append(nodes[node_id])
    for extra in starts[1:]:
        report.add(
            extra.path + ("start",),
            "invalid_value",
            f"node '{extra.id}' is marked start but '{starts[0].id}' already is",
        )
    first = next(iter(nodes.values()), None)
    start = starts[0] if starts else first if first is not None and first.index == 0 else None
    return nodes, start.id if start else None


def _check_routes(report: Report, document: dict[str, Any]) -> list[GraphRoute] | None:
    raw = document.get("routes", [])
    if not expect(report, ("routes",), raw, "array"):
        return None
    routes = []
    for index, route in enumerate(raw):
        parts = ("routes", index)
        if expect(report, parts, route, "object"):
            check_fields(report, parts, route, ROUTE_FIELDS, ("from", "to"))
            routes.append(GraphRoute(index, route))
    return routes
