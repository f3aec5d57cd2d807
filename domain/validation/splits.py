"""Graph rules for splits and joins: inclusive gateways, N-of-M joins, branch ends.

Run by `domain.validation.graph.check_graph` on edges whose endpoints are known nodes. The
closing join of a split is found as the engine finds it (`domain.engine.regions`), so what
publish accepts is what runs:

- an `inclusive` node must be closed by a `join`, and that join may only be reached from
  the inclusive node's branches (it counts the branches the split started);
- a `parallel` node may not have two routes to the same node (the second would be an
  identical branch the join cannot tell apart);
- a join's `wait_for` is at most the number of branches it can receive;
- a branch of a split that can reach an `end` with `"terminate": false` without passing
  the split's join leaves that join waiting for ever (unless the join has `wait_for`);
- a branch end (`"terminate": false`) ends no instance, so it has no `status: failed`,
  `error` or `output`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from domain.engine.regions import SPLIT_TYPES, between, closing_join, distances
from domain.validation.shapes import Edge, Node, Reporter


def check_splits(report: Reporter, nodes: Mapping[str, Node], edges: Sequence[Edge]) -> None:
    known = [e for e in edges if e.source is not None and e.target is not None]
    forward: dict[str, list[str]] = {}
    backward: dict[str, list[str]] = {}
    for e in known:
        assert e.source is not None and e.target is not None  # noqa: S101 - filtered above
        forward.setdefault(e.source, []).append(e.target)
        backward.setdefault(e.target, []).append(e.source)
    joins = [n.id for n in nodes.values() if n.type == "join"]
    closes: dict[str, str] = {}  # join -> the split it closes (the first in document order)
    for node in nodes.values():
        if node.type not in SPLIT_TYPES:
            continue
        routes = [e for e in known if e.source == node.id]
        _duplicates(report, node, routes)
        if node.type == "inclusive":
            _no_outcomes(report, node, routes)
        join = closing_join(node.id, [str(e.target) for e in routes], forward, joins)
        if join is None:
            if node.type == "inclusive":
                report.add(
                    node.path,
                    "join_mismatch",
                    f"{node.label} is not closed by a join: its routes must meet at one join "
                    "node, which waits for the branches the split started",
                )
            continue
        closes.setdefault(join, node.id)
        if node.type == "inclusive":
            _join_only_from_branches(report, nodes, node, nodes[join], known, backward)
        if not nodes[join].raw.get("wait_for"):
            _branch_ends_before(report, nodes, node, nodes[join], routes, forward)
    for node in nodes.values():
        if node.type == "join":
            _wait_for(report, nodes, node, closes.get(node.id), known)
        elif node.type == "end" and node.raw.get("terminate") is False:
            _branch_end_fields(report, node)


def _duplicates(report: Reporter, node: Node, routes: list[Edge]) -> None:
    seen: dict[tuple[str | None, str], int] = {}
    for e in routes:
        key = (e.target, repr(sorted((k, v) for k, v in e.raw.items() if k != "name")))
        if key in seen:
            report.add(
                ("routes", e.index),
                "duplicate_route",
                f"route #{e.index} repeats route #{seen[key]} from {node.label} to "
                f"'{e.target}': the same branch would start twice",
            )
        else:
            seen[key] = e.index


def _no_outcomes(report: Reporter, node: Node, routes: list[Edge]) -> None:
    for e in routes:
        if e.raw.get("outcome") is not None:
            report.add(
                ("routes", e.index, "outcome"),
                "invalid_value",
                f"route #{e.index} leaves {node.label}, which chooses its routes by their "
                "conditions: an outcome never matches there",
            )


def _join_only_from_branches(
    report: Reporter,
    nodes: Mapping[str, Node],
    split: Node,
    join: Node,
    edges: Sequence[Edge],
    backward: dict[str, list[str]],
) -> None:
    inside = between(split.id, join.id, backward) | {split.id}
    reached = set(distances(split.id, _forward(edges), join.id))
    for e in edges:
        if e.target == join.id and not (e.source in inside and e.source in reached):
            report.add(
                ("routes", e.index),
                "join_mismatch",
                f"route #{e.index} reaches {join.label}, which closes {split.label}, from "
                f"outside its branches: an inclusive join only counts the branches its split "
                "started",
            )


def _forward(edges: Sequence[Edge]) -> dict[str, list[str]]:
    forward: dict[str, list[str]] = {}
    for e in edges:
        if e.source is not None and e.target is not None:
            forward.setdefault(e.source, []).append(e.target)
    return forward


def _branch_ends_before(
    report: Reporter,
    nodes: Mapping[str, Node],
    split: Node,
    join: Node,
    routes: list[Edge],
    forward: dict[str, list[str]],
) -> None:
    """A branch that can end (terminate: false) before its join: the join never fires."""
    for e in routes:
        assert e.target is not None  # noqa: S101 - known edges only
        reach = _reach(e.target, forward, stops=(split.id, join.id))
        ends = sorted(
            n for n in reach if nodes[n].type == "end" and nodes[n].raw.get("terminate") is False
        )
        if ends:
            report.add(
                ("routes", e.index),
                "join_bypassed",
                f"the branch of route #{e.index} from {split.label} can reach branch end "
                f"'{ends[0]}' without passing {join.label}, which would then wait for it for "
                "ever: route it to the join, or give the join a 'wait_for'",
            )


def _reach(seed: str, forward: dict[str, list[str]], stops: tuple[str, ...]) -> set[str]:
    seen = {seed}
    stack = [seed]
    while stack:
        node = stack.pop()
        if node in stops:
            continue
        for nxt in forward.get(node, ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _wait_for(
    report: Reporter,
    nodes: Mapping[str, Node],
    join: Node,
    split: str | None,
    edges: Sequence[Edge],
) -> None:
    wait_for = join.raw.get("wait_for")
    if not isinstance(wait_for, int) or isinstance(wait_for, bool):
        if "cancel_remaining" in join.raw and "wait_for" not in join.raw:
            report.add(
                (*join.path, "cancel_remaining"),
                "invalid_value",
                f"{join.label} has 'cancel_remaining' but no 'wait_for': it waits for every "
                "branch, so none is left to cancel",
            )
        return
    if split is not None and nodes[split].type == "inclusive":
        most = sum(1 for e in edges if e.source == split)
    else:
        most = sum(1 for e in edges if e.target == join.id)
    if wait_for > most:
        report.add(
            (*join.path, "wait_for"),
            "invalid_value",
            f"{join.label} waits for {wait_for} branches but can receive at most {most}",
        )


def _branch_end_fields(report: Reporter, node: Node) -> None:
    for key in ("output", "error"):
        if key in node.raw:
            report.add(
                (*node.path, key),
                "invalid_value",
                f"{node.label} ends only its branch (terminate: false): it has no '{key}'; "
                "the instance's output is the definition's top-level 'output'",
            )
    if node.raw.get("status") == "failed":
        report.add(
            (*node.path, "status"),
            "invalid_value",
            f"{node.label} ends only its branch (terminate: false) and cannot fail the "
            "instance: use an end with terminate: true (the default)",
        )
