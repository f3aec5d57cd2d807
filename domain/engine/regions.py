"""Which join closes a split, and which nodes lie between them: pure graph helpers.

Shared by the validator (publish-time rules on the raw document) and the engine (an
inclusive split tells its closing join how many branches it started; an N-of-M join cancels
the open work of the branches it no longer waits for). They work on plain adjacency maps so
both sides can use them: `forward[a]` holds the targets of the routes leaving `a`.

The closing join of a split (a `parallel` or `inclusive` node) is the nearest `join` that
every one of its routes reaches without passing the split again; "nearest" is the smallest
longest distance from the split's route targets, ties broken by the order of `joins`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from domain.definition import Definition

Adjacency = Mapping[str, Iterable[str]]


def distances(seed: str, forward: Adjacency, stop: str) -> dict[str, int]:
    """Breadth-first distances from `seed`, never expanding `stop` (the split itself)."""
    seen = {seed: 0}
    queue = deque([seed])
    while queue:
        node = queue.popleft()
        if node == stop:
            continue
        for nxt in forward.get(node, ()):
            if nxt not in seen:
                seen[nxt] = seen[node] + 1
                queue.append(nxt)
    return seen


def closing_join(
    split: str, targets: Sequence[str], forward: Adjacency, joins: Sequence[str]
) -> str | None:
    """The join that closes `split` (whose routes lead to `targets`), or None."""
    if not targets:
        return None
    reach = [distances(target, forward, split) for target in targets]
    best: tuple[int, int, str] | None = None
    for order, join in enumerate(joins):
        if join == split or not all(join in r for r in reach):
            continue
        key = (max(r[join] for r in reach), order, join)
        if best is None or key < best:
            best = key
    return best[2] if best else None


def between(split: str, join: str, backward: Adjacency) -> set[str]:
    """The nodes from which `join` is reached without passing `split`: its branches' nodes
    (neither the split nor the join itself)."""
    seen: set[str] = set()
    queue = deque(backward.get(join, ()))
    while queue:
        node = queue.popleft()
        if node in seen or node in (split, join):
            continue
        seen.add(node)
        queue.extend(backward.get(node, ()))
    return seen


def forward_of(definition: Definition) -> dict[str, list[str]]:
    adjacency: dict[str, list[str]] = {}
    for route in definition.routes:
        adjacency.setdefault(route.source, []).append(route.target)
    return adjacency


def backward_of(definition: Definition) -> dict[str, list[str]]:
    adjacency: dict[str, list[str]] = {}
    for route in definition.routes:
        adjacency.setdefault(route.target, []).append(route.source)
    return adjacency


SPLIT_TYPES = ("parallel", "inclusive")


def join_of(definition: Definition, split: str) -> str | None:
    """The join closing the split node `split` of a published definition."""
    joins = [n.id for n in definition.nodes.values() if n.type == "join"]
    targets = [r.target for r in definition.outgoing(split)]
    return closing_join(split, targets, forward_of(definition), joins)


def split_of(definition: Definition, join: str) -> str | None:
    """The split a join closes (the first in document order), or None."""
    for node in definition.nodes.values():
        if node.type in SPLIT_TYPES and join_of(definition, node.id) == join:
            return node.id
    return None
