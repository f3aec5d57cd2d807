"""Publish-time checks of boundary events and event gateways (`domain.engine.boundary`,
`domain.engine.event_gateway`).

The field checker `boundary_list` runs with the node's other fields (document.py); the
graph rules (`check_boundaries`, `check_event_gateways`) run with the graph checks and hand
`boundary_edges` to the reachability checks, so a node reached only through a boundary's
`to` is reachable, and a node whose only way out is a boundary is not stuck.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from domain.durations import MAX_DURATION, format_duration
from domain.engine.boundary import parse_timer
from domain.engine.event_gateway import EVENT_GATEWAY_TARGETS
from domain.validation.fields import (
    Checker,
    boolean,
    check_fields,
    expect,
    expression,
    pattern,
    string,
)
from domain.validation.report import Path, Report, short
from domain.validation.shapes import Edge, Reporter

if TYPE_CHECKING:
    from domain.validation.graph import GraphNode

# A boundary per node is a bookmark per node entry: bounded like everything a command stores.
MAX_BOUNDARIES = 10
_KINDS = ("timer", "until", "event")


def _timer(report: Report, parts: Path, value: Any) -> None:
    if not expect(report, parts, value, "string"):
        return
    try:
        _, delay = parse_timer(value)
    except ValueError as exc:
        text = f"{exc}; expected an ISO-8601 duration ('PT4H') or a repetition ('R3/PT1H')"
        report.about(parts, "invalid_duration", text)
        return
    if delay > MAX_DURATION:
        report.about(
            parts,
            "invalid_duration",
            f"{short(value)} is longer than the maximum {format_duration(MAX_DURATION)}",
        )
    elif delay <= timedelta(0):
        report.about(parts, "invalid_duration", f"{short(value)} must be longer than zero")


_FIELDS: dict[str, Checker] = {
    "timer": _timer,
    "until": expression,
    "event": string,
    "correlation": expression,
    "interrupting": boolean,
    "to": string,
    "name": string,
    # document.py's IDENTIFIER_PATTERN (document.py imports this module)
    "result_var": pattern(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}"), "an identifier"),
}


def boundary_list(report: Report, parts: Path, value: Any) -> None:
    """`"boundary": [{"timer" | "until" | "event", "to", "interrupting"?, ...}, ...]`."""
    if not expect(report, parts, value, "array"):
        return
    if len(value) > MAX_BOUNDARIES:
        text = f"at most {MAX_BOUNDARIES} boundary events per node, got {len(value)}"
        report.about(parts, "invalid_value", text)
    for index, spec in enumerate(value):
        where = parts + (index,)
        if not expect(report, where, spec, "object"):
            continue
        check_fields(report, where, spec, _FIELDS, required=("to",), owner=f"boundary {index}")
        kinds = [k for k in _KINDS if k in spec]
        if len(kinds) != 1:
            text = "a boundary needs exactly one of 'timer', 'until' or 'event', got " + (
                ", ".join(f"'{k}'" for k in kinds) or "none"
            )
            report.about(where, "missing_field" if not kinds else "invalid_value", text)
        if "correlation" in spec and "event" not in spec:
            report.about(
                where + ("correlation",), "invalid_value", "'correlation' belongs to an 'event'"
            )
        timer = spec.get("timer")
        repeating = isinstance(timer, str) and timer.startswith("R")
        if repeating and spec.get("interrupting", True) is not False:
            report.about(
                where + ("timer",),
                "invalid_value",
                f"a repeating timer {short(timer)} fires more than once: it needs "
                "'interrupting': false (an interrupting boundary fires once)",
            )


def boundary_edges(nodes: dict[str, GraphNode]) -> list[tuple[str, str]]:
    """(node id, `to`) of every boundary whose `to` names a node."""
    edges = []
    for node in nodes.values():
        specs = node.raw.get("boundary")
        if not isinstance(specs, list):
            continue
        for spec in specs:
            if isinstance(spec, dict) and isinstance(spec.get("to"), str) and spec["to"] in nodes:
                edges.append((node.id, spec["to"]))
    return edges


def check_boundaries(report: Reporter, nodes: dict[str, GraphNode]) -> None:
    """Every boundary's `to` names a node that can be entered without a route."""
    for node in nodes.values():
        specs = node.raw.get("boundary")
        if not isinstance(specs, list):
            continue
        for index, spec in enumerate(specs):
            to = spec.get("to") if isinstance(spec, dict) else None
            if not isinstance(to, str):
                continue
            where = (*node.path, "boundary", index, "to")
            target = nodes.get(to)
            if target is None:
                report.add(
                    where,
                    "unknown_boundary_target",
                    f"boundary {index} of {node.label} leads to unknown node {to[:64]!r}",
                )
            elif target.type == "join":
                report.add(
                    where,
                    "invalid_value",
                    f"boundary {index} of {node.label} leads to {target.label}: a join counts "
                    "its incoming routes, so route the boundary through another node first",
                )


def check_event_gateways(
    report: Reporter, nodes: dict[str, GraphNode], edges: Sequence[Edge]
) -> None:
    """An event gateway's routes are plain and lead to distinct wait/timer nodes."""
    for node in nodes.values():
        if node.type != "event_gateway":
            continue
        outgoing = [e for e in edges if e.source == node.id]
        if 0 < len(outgoing) < 2:
            report.add(
                node.path,
                "invalid_value",
                f"{node.label} needs at least 2 outgoing routes (the waits that race), "
                f"has {len(outgoing)}",
            )
        seen: set[str] = set()
        for edge in outgoing:
            where = ("routes", edge.index)
            if any(k in edge.raw for k in ("condition", "outcome", "default")):
                report.add(
                    where,
                    "invalid_value",
                    f"route #{edge.index} leaves {node.label}, whose routes are chosen by "
                    "which wait fires first: no condition, outcome or default",
                )
            target = nodes.get(edge.target) if edge.target else None
            if target is None:
                continue
            if target.type not in EVENT_GATEWAY_TARGETS:
                report.add(
                    (*where, "to"),
                    "invalid_value",
                    f"route #{edge.index} from {node.label} leads to {target.label}; an event "
                    f"gateway's routes lead to {' or '.join(EVENT_GATEWAY_TARGETS)} nodes",
                )
            elif target.raw.get("boundary"):
                report.add(
                    (*where, "to"),
                    "invalid_value",
                    f"route #{edge.index} from {node.label} leads to {target.label}, which has "
                    "boundary events; add their event as another route of the gateway instead",
                )
            if target.id in seen:
                report.add(
                    (*where, "to"),
                    "invalid_value",
                    f"route #{edge.index} from {node.label} leads to {target.label} again",
                )
            seen.add(target.id)
