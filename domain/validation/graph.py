"""Graph checks of a definition document, run by `domain.validation.validate_document`.

Works on nodes and routes that already passed the per-field checks far enough to have a
string id. A route endpoint that is missing or names no node cannot be evaluated: it is
reported once here (unknown source/target) and otherwise left out, and the checks that depend
on it give the benefit of the doubt (its target counts as reachable, its source as able to
reach an end) so one broken route does not cascade into a page of follow-up problems.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from domain.definition import (
    APPROVAL_OUTCOMES,
    CANCELLED_OUTCOME,
    ERROR_OUTCOME,
    TIMEOUT_OUTCOME,
)
from domain.validation.boundary import boundary_edges, check_boundaries, check_event_gateways
from domain.validation.report import Path
from domain.validation.routing import check_routing
from domain.validation.shapes import Reporter
from domain.validation.splits import check_splits

_TRUE_LITERALS = frozenset({"true", "True"})


@dataclass(frozen=True)
class GraphNode:
    index: int  # position in the document's `nodes`
    id: str
    type: str  # may be unknown or "" (already reported); such nodes are plain graph nodes
    raw: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.type or 'untyped'} node '{self.id}'"

    @property
    def path(self) -> Path:
        return ("nodes", self.index)


@dataclass(frozen=True)
class GraphRoute:
    index: int  # position in the document's `routes`
    raw: dict[str, Any]


@dataclass(frozen=True)
class _Edge:
    index: int
    raw: dict[str, Any]
    source: str | None  # a known node id, or None when it cannot be evaluated
    target: str | None

    @property
    def is_default(self) -> bool:
        return self.raw.get("default") is True


def check_graph(
    report: Reporter,
    nodes: dict[str, GraphNode],
    routes: list[GraphRoute] | None,
    start: str | None,
) -> None:
    """Report graph problems; `routes` is None when the routes array itself is unusable."""
    if not any(node.type == "end" for node in nodes.values()):
        report.add(("nodes",), "missing_field", "the definition has no end node")
    if routes is None:
        return
    edges = [_resolve(report, nodes, route) for route in routes]
    first_default: dict[str, int] = {}
    for edge in edges:
        _check_route(report, nodes, first_default, edge)
    dead_ends = _check_outgoing(report, nodes, edges)
    check_boundaries(report, nodes)
    check_event_gateways(report, nodes, edges)
    # A boundary's `to` is an edge too: what it leads to is reachable, and left by it.
    extra = [_Edge(-1, {}, a, b) for a, b in boundary_edges(nodes)]
    _check_reachability(report, nodes, edges + extra, start, dead_ends)
    _check_joins(report, nodes, edges)
    check_splits(report, nodes, edges)
    check_routing(report, nodes, edges)


def _resolve(report: Reporter, nodes: dict[str, GraphNode], route: GraphRoute) -> _Edge:
    ends: list[str | None] = []
    for key, code, verb in (
        ("from", "unknown_route_source", "starts at"),
        ("to", "unknown_route_target", "leads to"),
    ):
        value = route.raw.get(key)
        if isinstance(value, str) and value not in nodes:
            report.add(
                ("routes", route.index, key),
                code,
                f"route #{route.index} {verb} unknown node {value[:64]!r}",
            )
        ends.append(value if isinstance(value, str) and value in nodes else None)
    return _Edge(route.index, route.raw, ends[0], ends[1])


def _check_route(
    report: Reporter, nodes: dict[str, GraphNode], first_default: dict[str, int], edge: _Edge
) -> None:
    where = ("routes", edge.index)
    if edge.is_default and "condition" in edge.raw:
        report.add(
            where + ("default",),
            "invalid_value",
            f"route #{edge.index} cannot be both the default and conditional",
        )
    source = nodes.get(edge.source) if edge.source else None
    if source is None:
        return
    if source.type == "end":
        report.add(
            where + ("from",),
            "invalid_value",
            f"route #{edge.index} leaves {source.label}; end nodes have no outgoing routes",
        )
    if edge.is_default and source.id in first_default:
        report.add(
            where + ("default",),
            "invalid_value",
            f"{source.label} already has a default route (#{first_default[source.id]})",
        )
    elif edge.is_default:
        first_default[source.id] = edge.index
    if source.type in _CHOICES and not edge.is_default and "condition" not in edge.raw:
        report.add(
            where,
            "invalid_value",
            f"route #{edge.index} from {source.label} needs a condition or default: true",
        )
    outcome = edge.raw.get("outcome")
    allowed = _allowed_outcomes(source)
    if isinstance(outcome, str) and allowed is not None and outcome not in allowed:
        report.add(
            where + ("outcome",),
            "invalid_value",
            f"route #{edge.index} from {source.label} has outcome '{outcome}'; "
            f"expected one of {', '.join(allowed)}",
        )


def _allowed_outcomes(node: GraphNode) -> tuple[str, ...] | None:
    """Outcomes a route from `node` may name; None means the node does not restrict them."""
    if isinstance(node.raw.get("for_each"), dict):  # leaves with no outcome, or by `error`
        return (ERROR_OUTCOME,)
    if node.type == "approval":
        return (*APPROVAL_OUTCOMES, TIMEOUT_OUTCOME, ERROR_OUTCOME, CANCELLED_OUTCOME)
    if node.type == "user_task":  # the engine's default when none are declared: "completed"
        declared = node.raw.get("outcomes")
        declared = declared if isinstance(declared, list) and declared else ["completed"]
        return (
            *(o for o in declared if isinstance(o, str)),
            TIMEOUT_OUTCOME,
            ERROR_OUTCOME,
            CANCELLED_OUTCOME,
        )
    return None


def _check_outgoing(report: Reporter, nodes: dict[str, GraphNode], edges: list[_Edge]) -> set[str]:
    """Per-node route counts and per-type rules; returns the nodes without outgoing routes."""
    dead_ends: set[str] = set()
    by_source: dict[str | None, list[_Edge]] = {}
    incoming_count: dict[str | None, int] = {}
    for edge in edges:
        by_source.setdefault(edge.source, []).append(edge)
        incoming_count[edge.target] = incoming_count.get(edge.target, 0) + 1
    for node in nodes.values():
        outgoing = by_source.get(node.id, [])
        if node.type == "join":
            incoming = incoming_count.get(node.id, 0)
            if incoming < 2:
                report.add(
                    node.path,
                    "invalid_value",
                    f"{node.label} needs at least 2 incoming routes, has {incoming}",
                )
        if node.type == "end":
            continue
        if not outgoing:
            report.add(node.path, "no_outgoing_route", f"{node.label} has no outgoing route")
            dead_ends.add(node.id)
        elif isinstance(node.raw.get("for_each"), dict):
            _for_each_rule(report, node, outgoing)
        elif node.type in _OUTGOING_RULES:
            _OUTGOING_RULES[node.type](report, node, outgoing)
    return dead_ends


def _gateway_rule(report: Reporter, node: GraphNode, outgoing: list[_Edge]) -> None:
    exhaustive = any(_is_true_literal(e.raw.get("condition")) for e in outgoing)
    if not exhaustive and not any(e.is_default for e in outgoing):
        report.add(
            node.path,
            "gateway_without_default",
            f"{node.label} has no default route and its conditions are not exhaustive",
        )


def _is_true_literal(condition: Any) -> bool:
    return isinstance(condition, str) and condition.strip() in _TRUE_LITERALS


def _parallel_rule(report: Reporter, node: GraphNode, outgoing: list[_Edge]) -> None:
    if len(outgoing) < 2:
        report.add(
            node.path,
            "invalid_value",
            f"{node.label} needs at least 2 outgoing routes, has {len(outgoing)}",
        )
    for edge in outgoing:
        # A fork takes every route: a branch skipped by a condition would leave its join
        # waiting forever, so conditions belong on a gateway after the fork.
        if edge.raw.get("condition") is not None or edge.raw.get("outcome") is not None:
            report.add(
                ("routes", edge.index),
                "invalid_value",
                f"route #{edge.index} leaves {node.label}, which takes every route: "
                "put conditions on a gateway inside the branch",
            )


def _wait_rule(report: Reporter, node: GraphNode, outgoing: list[_Edge]) -> None:
    if node.raw.get("timeout") and not any(e.raw.get("outcome") == "timeout" for e in outgoing):
        report.add(
            (*node.path, "timeout"),
            "missing_field",
            f"{node.label} has a timeout but no route with outcome 'timeout'",
        )


def _task_timeout_rule(report: Reporter, node: GraphNode, outgoing: list[_Edge]) -> None:
    """A task's `timeout` route is taken when its SLA passes: without `sla_hours`, never."""
    if node.raw.get("sla_hours"):
        return
    for edge in outgoing:
        if edge.raw.get("outcome") == TIMEOUT_OUTCOME:
            report.add(
                ("routes", edge.index, "outcome"),
                "invalid_value",
                f"route #{edge.index} from {node.label} has outcome 'timeout', taken when the "
                "task's SLA passes, but the node has no 'sla_hours', so it can never be taken: "
                "set 'sla_hours', or use a timer boundary event instead "
                '("boundary": [{"timer": "PT4H", "to": "<node id>"}])',
            )


def _for_each_rule(report: Reporter, node: GraphNode, outgoing: list[_Edge]) -> None:
    """A `for_each` node leaves with no outcome (its result is the list of item results)."""
    if not any(e.raw.get("outcome") is None for e in outgoing):
        report.add(
            node.path,
            "no_outgoing_route",
            f"{node.label} has for_each, so it leaves without an outcome: it needs a route "
            f"without 'outcome' (conditions may read its results)",
        )


def _approval_rule(report: Reporter, node: GraphNode, outgoing: list[_Edge]) -> None:
    _task_timeout_rule(report, node, outgoing)
    if any(e.raw.get("outcome") is None for e in outgoing):
        return  # a route without outcome catches every decision
    covered = [e.raw.get("outcome") for e in outgoing]
    for outcome in APPROVAL_OUTCOMES:
        if outcome not in covered:
            report.add(
                node.path, "missing_field", f"{node.label} has no route for outcome '{outcome}'"
            )


# Nodes whose routes are chosen by their conditions (every route: a condition or the default).
_CHOICES = ("gateway", "inclusive")

_OUTGOING_RULES: dict[str, Callable[[Reporter, GraphNode, list[_Edge]], None]] = {
    "gateway": _gateway_rule,
    "inclusive": _gateway_rule,
    "parallel": _parallel_rule,
    "approval": _approval_rule,
    "user_task": _task_timeout_rule,
    "wait": _wait_rule,
}


def _check_reachability(
    report: Reporter,
    nodes: dict[str, GraphNode],
    edges: list[_Edge],
    start: str | None,
    dead_ends: set[str],
) -> None:
    forward = _adjacency((e.source, e.target) for e in edges)
    if start in nodes:
        seeds = {start} | {e.target for e in edges if e.source is None and e.target}
        reached = _closure(seeds, forward)
        for node in nodes.values():
            if node.id not in reached:
                report.add(
                    node.path,
                    "unreachable_node",
                    f"{node.label} is not reachable from the start node '{start}'",
                )
    ends = {node.id for node in nodes.values() if node.type == "end"}
    if not ends:
        return  # reported as a missing end node
    backward = _adjacency((e.target, e.source) for e in edges)
    seeds = ends | {e.source for e in edges if e.target is None and e.source}
    finishing = _closure(seeds, backward)
    for node in nodes.values():
        if node.id not in finishing and node.id not in dead_ends:
            report.add(node.path, "no_path_to_end", f"no end node can be reached from {node.label}")


def _check_joins(report: Reporter, nodes: dict[str, GraphNode], edges: list[_Edge]) -> None:
    forward = _adjacency((e.source, e.target) for e in edges)
    forks = [node.id for node in nodes.values() if node.type in ("parallel", "inclusive")]
    after_fork = _closure({t for fork in forks for t in forward.get(fork, ())}, forward)
    for node in nodes.values():
        if node.type == "join" and node.id not in after_fork:
            report.add(
                node.path,
                "join_mismatch",
                f"{node.label} is not reached from any parallel or inclusive node",
            )


def _adjacency(pairs: Iterable[tuple[str | None, str | None]]) -> dict[str, set[str]]:
    adjacency: dict[str, set[str]] = {}
    for a, b in pairs:
        if a is not None and b is not None:
            adjacency.setdefault(a, set()).add(b)
    return adjacency


def _closure(seeds: Iterable[str], adjacency: dict[str, set[str]]) -> set[str]:
    seen = set(seeds)
    stack = list(seen)
    while stack:
        for nxt in adjacency.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen
