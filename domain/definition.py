"""The workflow definition model: an immutable, validated graph of nodes and routes.

`Definition.from_document` builds the model from a JSON document that has already passed
`domain.validation.validate_document` (which reports every problem with its JSON path).
The model is what the engine walks; it never holds raw, unvalidated input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

NODE_TYPES = (
    "service_task",
    "gateway",
    "inclusive",
    "parallel",
    "join",
    "approval",
    "user_task",
    "wait",
    "timer",
    "sub_workflow",
    "set",
    "end",
    "event_gateway",
    "compensate",
)

APPROVAL_OUTCOMES = ("approved", "rejected")
ERROR_OUTCOME = "error"
TIMEOUT_OUTCOME = "timeout"
# A task withdrawn by an operator (`POST /v1/tasks/{id}/cancel`) takes its node's route with
# this outcome, if it has one.
CANCELLED_OUTCOME = "cancelled"


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed service task is retried; intervals in seconds."""

    max_attempts: int = 3
    initial_interval: float = 1.0
    backoff: float = 1.5
    max_interval: float = 30.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (attempt 2 is the first retry)."""
        if attempt <= 1:
            return 0.0
        try:
            delay = self.initial_interval * self.backoff ** (attempt - 2)
        except OverflowError:  # a huge backoff: the cap applies, never an error
            delay = math.inf
        return min(delay, self.max_interval)


@dataclass(frozen=True)
class Node:
    """One step of the graph. `config` keeps the type-specific fields as published."""

    id: str
    type: str
    name: str
    start: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)


@dataclass(frozen=True)
class Route:
    """A directed edge; `index` is its position in the document's `routes` array."""

    index: int
    source: str
    target: str
    condition: str | None = None
    outcome: str | None = None
    default: bool = False


@dataclass(frozen=True)
class Definition:
    """A published (or candidate) workflow definition."""

    name: str
    version: int
    nodes: dict[str, Node]
    routes: tuple[Route, ...]
    start_node: str
    description: str = ""
    category: str = ""
    sla_hours: float | None = None
    input_schema: dict[str, Any] | None = None
    output: dict[str, str] | None = None
    triggers: tuple[dict[str, Any], ...] = ()
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def outgoing(self, node_id: str) -> list[Route]:
        return [r for r in self.routes if r.source == node_id]

    def incoming(self, node_id: str) -> list[Route]:
        return [r for r in self.routes if r.target == node_id]

    @classmethod
    def from_document(cls, document: dict[str, Any], version: int = 0) -> Definition:
        """Build the model from a document that `validate_document` accepted."""
        nodes: dict[str, Node] = {}
        start_node = ""
        for raw in document["nodes"]:
            config = {k: v for k, v in raw.items() if k not in ("id", "type", "name", "start")}
            node = Node(
                id=raw["id"],
                type=raw["type"],
                name=raw.get("name") or raw["id"],
                start=bool(raw.get("start", False)),
                config=config,
            )
            nodes[node.id] = node
            if node.start and not start_node:
                start_node = node.id
        if not start_node and document["nodes"]:
            start_node = document["nodes"][0]["id"]
        routes = tuple(
            Route(
                index=i,
                source=raw["from"],
                target=raw["to"],
                condition=raw.get("condition"),
                outcome=raw.get("outcome"),
                default=bool(raw.get("default", False)),
            )
            for i, raw in enumerate(document.get("routes", []))
        )
        return cls(
            name=document["name"],
            version=version or int(document.get("version", 0) or 0),
            nodes=nodes,
            routes=routes,
            start_node=start_node,
            description=document.get("description", ""),
            category=document.get("category", ""),
            sla_hours=document.get("sla_hours"),
            input_schema=document.get("input_schema"),
            output=document.get("output"),
            triggers=tuple(document.get("triggers", ())),
            document=document,
        )
