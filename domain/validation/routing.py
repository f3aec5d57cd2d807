"""Publish-time checks of interleaved parallel routing (WCP-17) and milestones (WCP-18).

Run by `domain.validation.graph.check_graph` on edges whose endpoints are known nodes; the
fields themselves (`interleaved`, `order`, `milestone`) are checked with the node
(document.py). The engine sides are `domain.engine.interleave` and
`domain.engine.milestones`.

- `"interleaved": true` on a `parallel`: it must be closed by a `join` without `wait_for`,
  reached only from the split's branches (an arrival from outside would start the next
  branch while one still runs); its routes lead to distinct nodes (`order` names branches
  by their first node); no branch leads back into the split before the join, and nothing
  in a branch sends the join a second arrival (a split inside a branch is closed before
  it; no non-interrupting boundary leads into the branches). `order` only goes with
  `interleaved`.
- `"milestone": "<node id>"`: names another node that waits with a bookmark (a task, a
  wait, a timer or a sub-workflow); the dependent has no `for_each`, and it has a route to
  take when it is withdrawn: outcome `cancelled`, or one without an outcome (skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.definition import CANCELLED_OUTCOME
from domain.engine.milestones import FIELD, MILESTONE_TYPES
from domain.engine.regions import SPLIT_TYPES, between, closing_join, distances
from domain.validation.report import short
from domain.validation.shapes import Edge, Node, Reporter


def check_routing(report: Reporter, nodes: Mapping[str, Node], edges: Sequence[Edge]) -> None:
    known = [e for e in edges if e.source is not None and e.target is not None]
    forward: dict[str, list[str]] = {}
    backward: dict[str, list[str]] = {}
    for e in known:
        forward.setdefault(str(e.source), []).append(str(e.target))
    # A boundary's `to` continues its host's branch too (an escalation path into the join).
    for source, target in [(str(e.source), str(e.target)) for e in known] + _boundary_pairs(nodes):
        backward.setdefault(target, []).append(source)
    joins = [n.id for n in nodes.values() if n.type == "join"]
    for node in nodes.values():
        if node.type == "parallel":
            _interleaved(report, nodes, node, known, forward, backward, joins)
        if isinstance(node.raw.get(FIELD), str):
            _milestone(report, nodes, node, [e for e in known if e.source == node.id])


def _interleaved(
    report: Reporter,
    nodes: Mapping[str, Node],
    split: Node,
    edges: list[Edge],
    forward: dict[str, list[str]],
    backward: dict[str, list[str]],
    joins: list[str],
) -> None:
    if split.raw.get("interleaved") is not True:
        if "order" in split.raw:
            report.add(
                (*split.path, "order"),
                "invalid_value",
                f"{split.label} has an 'order' but is not interleaved: it starts every "
                'branch at once; add "interleaved": true to run them one at a time',
            )
        return
    routes = [e for e in edges if e.source == split.id]
    seen: dict[str, int] = {}
    for e in routes:
        target = str(e.target)
        if target in seen:
            report.add(
                ("routes", e.index),
                "duplicate_route",
                f"route #{e.index} leads from interleaved {split.label} to '{target}' like "
                f"route #{seen[target]}: its branches are named by their first node, so each "
                "must lead to a different one",
            )
        seen.setdefault(target, e.index)
    join = closing_join(split.id, list(seen), forward, joins)
    if join is None:
        report.add(
            split.path,
            "join_mismatch",
            f"interleaved {split.label} is not closed by a join: each branch runs until it "
            "reaches that join, and only then does the next one start",
        )
        return
    if "wait_for" in nodes[join].raw:
        report.add(
            (*nodes[join].path, "wait_for"),
            "invalid_value",
            f"{nodes[join].label} closes interleaved {split.label}, which runs every branch "
            "once, one after the other: it cannot continue after fewer ('wait_for')",
        )
    inside = between(split.id, join, backward)
    with_boundaries = {k: list(v) for k, v in forward.items()}
    for source, target in _boundary_pairs(nodes):
        with_boundaries.setdefault(source, []).append(target)
    reached = set(distances(split.id, with_boundaries, join))
    lines = [set(distances(str(e.target), forward, join)) - {split.id} for e in routes]
    _one_token(report, nodes, split, nodes[join], inside, forward, joins, lines)
    for e in edges:
        if e.target == join and not (e.source in inside and e.source in reached):
            report.add(
                ("routes", e.index),
                "join_mismatch",
                f"route #{e.index} reaches {nodes[join].label}, which closes interleaved "
                f"{split.label}, from outside its branches: that arrival would start the "
                "next branch while one is still running",
            )
        elif e.target == split.id and e.source in inside:
            report.add(
                ("routes", e.index),
                "invalid_value",
                f"route #{e.index} leads from a branch of interleaved {split.label} back "
                f"into it before {nodes[join].label}: a branch must reach the join first",
            )


def _one_token(
    report: Reporter,
    nodes: Mapping[str, Node],
    split: Node,
    join: Node,
    inside: set[str],
    forward: dict[str, list[str]],
    joins: list[str],
    lines: list[set[str]],
) -> None:
    """Inside the branches, nothing may send a second arrival to the join: a split must be
    closed before it, a non-interrupting boundary may not lead into the branches, and an
    interrupting one may not jump into another branch (`lines`: each branch's nodes)."""
    for node_id in sorted(inside, key=lambda n: nodes[n].path):
        node = nodes[node_id]
        if node.type in SPLIT_TYPES:
            closes = closing_join(node.id, forward.get(node.id, []), forward, joins)
            if closes is None or closes not in inside:
                report.add(
                    node.path,
                    "invalid_value",
                    f"{node.label} splits a branch of interleaved {split.label} but is not "
                    f"closed by a join before {join.label}: its branches would reach it "
                    "separately and start the next branch while one still runs",
                )
        for index, spec in enumerate(_boundaries(node)):
            to = spec.get("to")
            if to not in inside:
                continue
            if spec.get("interrupting", True) is False:
                report.add(
                    (*node.path, "boundary", index, "interrupting"),
                    "invalid_value",
                    f"a non-interrupting boundary of {node.label} leads into the branches of "
                    f"interleaved {split.label}: it would reach {join.label} as a second "
                    "arrival; make it interrupting or lead it outside",
                )
            elif _other_branch(node_id, str(to), lines):
                report.add(
                    (*node.path, "boundary", index, "to"),
                    "invalid_value",
                    f"the boundary of {node.label} jumps to '{to}' in another branch of "
                    f"interleaved {split.label}: that branch would then run twice; lead it "
                    "to a node of its own branch or outside",
                )


def _other_branch(host: str, to: str, lines: list[set[str]]) -> bool:
    """`to` lies on some branch, none of them the host's."""
    theirs = [i for i, line in enumerate(lines) if to in line]
    return bool(theirs) and not any(host in lines[i] for i in theirs)


def _boundary_pairs(nodes: Mapping[str, Node]) -> list[tuple[str, str]]:
    return [
        (node.id, str(spec["to"]))
        for node in nodes.values()
        for spec in _boundaries(node)
        if isinstance(spec.get("to"), str) and spec["to"] in nodes
    ]


def _boundaries(node: Node) -> list[dict[str, Any]]:
    specs = node.raw.get("boundary")
    if not isinstance(specs, list):
        return []
    return [spec for spec in specs if isinstance(spec, dict)]


def _milestone(report: Reporter, nodes: Mapping[str, Node], node: Node, out: list[Edge]) -> None:
    milestone = node.raw[FIELD]
    parts = (*node.path, FIELD)
    if milestone == node.id:
        report.add(parts, "invalid_reference", f"{node.label} cannot be its own milestone")
        return
    if milestone not in nodes:
        report.add(
            parts,
            "unknown_node",
            f"the milestone of {node.label} is {short(milestone)}, which is not a node",
        )
        return
    if nodes[milestone].type not in MILESTONE_TYPES:
        report.add(
            parts,
            "invalid_reference",
            f"the milestone of {node.label} is {nodes[milestone].label}, which never waits; "
            f"expected a node an instance stays at: {', '.join(MILESTONE_TYPES)}",
        )
    if "for_each" in node.raw:
        report.add(
            parts,
            "invalid_value",
            f"{node.label} has a for_each and a milestone: put the for_each in a "
            "sub_workflow, or the milestone on a node without for_each",
        )
    if not any(e.raw.get("outcome") in (None, CANCELLED_OUTCOME) for e in out):
        report.add(
            node.path,
            "no_outgoing_route",
            f"{node.label} is withdrawn when its milestone '{milestone}' is passed: it "
            f"needs a route with outcome '{CANCELLED_OUTCOME}', or one without an outcome "
            "(taken when it is skipped)",
        )
