"""Publish-time checks of interleaved parallel routing (WCP-17) and milestones (WCP-18).

Run by `domain.validation.graph.check_graph` on edges whose endpoints are known nodes; the
fields themselves (`interleaved`, `order`, `milestone`) are checked with the node
(document.py). The engine sides are `domain.engine.interleave` and
`domain.engine.milestones`.

- `"interleaved": true` on a `parallel`: it must be closed by a `join` without `wait_for`,
  reached only from the split's branches (an arrival from outside would start the next
  branch while one still runs); its routes lead to distinct nodes (`order` names branches
  by their first node); no branch leads back into the split before the join. `order` only
  goes with `interleaved`.
- `"milestone": "<node id>"`: names another node that waits with a bookmark (a task, a
  wait, a timer or a sub-workflow); the dependent has no `for_each`, and it has a route to
  take when it is withdrawn: outcome `cancelled`, or one without an outcome (skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from domain.definition import CANCELLED_OUTCOME
from domain.engine.milestones import FIELD, MILESTONE_TYPES
from domain.engine.regions import between, closing_join, distances
from domain.validation.report import Path, short


class Reporter(Protocol):
    def add(self, parts: Path, code: str, message: str) -> None: ...


class Node(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def raw(self) -> dict[str, Any]: ...
    @property
    def label(self) -> str: ...
    @property
    def path(self) -> Path: ...


class Edge(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def raw(self) -> dict[str, Any]: ...
    @property
    def source(self) -> str | None: ...
    @property
    def target(self) -> str | None: ...


def check_routing(report: Reporter, nodes: Mapping[str, Node], edges: Sequence[Edge]) -> None:
    known = [e for e in edges if e.source is not None and e.target is not None]
    forward: dict[str, list[str]] = {}
    backward: dict[str, list[str]] = {}
    for e in known:
        forward.setdefault(str(e.source), []).append(str(e.target))
        backward.setdefault(str(e.target), []).append(str(e.source))
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
    reached = set(distances(split.id, forward, join))
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
